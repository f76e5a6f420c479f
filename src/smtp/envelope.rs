//! The envelope of a message: MAIL FROM and one RCPT TO per recipient, in
//! one pipelined write (with DATA at its end) when the server allows it.
//! Recipients refused for good are set aside; the rest still get the message.

use super::client::{Client, command, failure};
use super::ehlo::Capabilities;
use super::error::{Condition, Failure, Reply, Stage};
use crate::domain::EmailAddress;
use smtp_proto::Response;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// The envelope of one message.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// MAIL FROM: where bounces go.
    pub from: EmailAddress,
    /// One RCPT TO each; never empty.
    pub to: Vec<EmailAddress>,
}

/// The envelope as the server took it.
pub(crate) struct Accepted {
    pub accepted: Vec<EmailAddress>,
    pub rejected: Vec<(EmailAddress, Reply)>,
    /// The reply to DATA when it was pipelined with the envelope; the DATA
    /// phase sends the command itself otherwise.
    pub data_reply: Option<Response<String>>,
}

/// Sends the envelope. Fails when MAIL FROM is refused or no recipient is
/// accepted, after a RSET so the connection can be reused.
pub(crate) async fn send_envelope<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut Client<S>,
    caps: &Capabilities,
    envelope: &Envelope,
) -> Result<Accepted, Failure> {
    let smtputf8 =
        caps.smtputf8 && (!envelope.from.as_str().is_ascii() || envelope.to.iter().any(|a| !a.as_str().is_ascii()));
    let params = if smtputf8 { " SMTPUTF8" } else { "" };
    let mail = format!("MAIL FROM:<{}>{params}\r\n", envelope.from);
    let rcpts: Vec<String> = envelope.to.iter().map(|r| format!("RCPT TO:<{r}>\r\n")).collect();
    // With PIPELINING the envelope and DATA go out in one write and their
    // replies come back together (RFC 2920: DATA may end a group): one
    // round trip instead of one per command.
    let (replies, data_reply) = if caps.pipelining {
        let mut group = Vec::with_capacity(mail.len() + rcpts.len() * 40 + 6);
        group.extend_from_slice(mail.as_bytes());
        for r in &rcpts {
            group.extend_from_slice(r.as_bytes());
        }
        group.extend_from_slice(b"DATA\r\n");
        let mut replies = exchange(client, &group, rcpts.len() + 2).await?;
        let data = replies.pop().expect("a reply per command");
        (replies, Some(data))
    } else {
        let mut replies = vec![command(client, Stage::MailFrom, &mail).await?];
        if replies[0].code / 100 == 2 {
            for rcpt in &rcpts {
                replies.push(command(client, Stage::RcptTo, rcpt).await?);
            }
        }
        (replies, None)
    };
    if replies[0].code / 100 != 2 {
        // The server read RCPT and DATA after the refused MAIL; a RSET
        // leaves no doubt that no transaction is open.
        if caps.pipelining {
            let _ = client.cmd(b"RSET\r\n").await;
        }
        return Err(Failure::refused(Stage::MailFrom, &replies[0]));
    }
    let mut accepted = Vec::new();
    let mut rejected = Vec::new();
    for (rcpt, r) in envelope.to.iter().zip(replies.iter().skip(1)) {
        if r.code / 100 == 2 {
            accepted.push(rcpt.clone());
        } else {
            rejected.push((rcpt.clone(), Reply::from_response(r)));
        }
    }
    if accepted.is_empty() {
        let (_, reply) = rejected
            .into_iter()
            .next()
            .expect("a message has at least one recipient");
        let _ = client.cmd(b"RSET\r\n").await;
        return Err(Failure::from_reply(Stage::RcptTo, reply));
    }
    Ok(Accepted {
        accepted,
        rejected,
        data_reply,
    })
}

/// Writes a pipelined group of commands at once and reads `replies` replies,
/// all within one timeout.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut Client<S>,
    group: &[u8],
    replies: usize,
) -> Result<Vec<Response<String>>, Failure> {
    let r = tokio::time::timeout(client.timeout, async {
        client.stream.write_all(group).await?;
        client.stream.flush().await?;
        client.read_many(replies).await
    })
    .await
    .map_err(|_| Failure::condition(Stage::MailFrom, Condition::Timeout, "the server did not answer in time"))?;
    r.map_err(|e| failure(client, Stage::MailFrom, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::testing::send;

    /// Greeting and EHLO from a server that pipelines, then `rest`.
    fn pipelining(rest: &[&'static str]) -> Vec<&'static str> {
        [
            &[
                "S: 220 mx.test",
                "C: EHLO herald.test",
                "S: 250-mx.test",
                "S: 250 PIPELINING",
            ][..],
            rest,
        ]
        .concat()
    }

    #[tokio::test]
    async fn pipelined_envelope_sets_a_refused_recipient_aside() {
        let script = pipelining(&[
            "C: MAIL FROM:<a@example.com>",
            "C: RCPT TO:<b@example.com>",
            "C: RCPT TO:<nobody@example.com>",
            "C: DATA",
            "S: 250 2.1.0 Sender OK",
            "S: 250 2.1.5 Recipient OK",
            "S: 550 5.1.1 No such user",
            "S: 354 Go ahead",
            "C: <content>",
            "S: 250 2.0.0 Queued as 1",
        ]);
        let (sent, _) = send(&script, &["b@example.com", "nobody@example.com"], b"hi\r\n").await;
        let sent = sent.expect("sent to the one recipient left");
        assert_eq!(sent.reply.code, 250);
        assert_eq!(sent.accepted, [EmailAddress::parse("b@example.com").unwrap()]);
        let (who, why) = &sent.rejected[0];
        assert_eq!(
            (who.as_str(), why.code, why.enhanced.as_deref()),
            ("nobody@example.com", 550, Some("5.1.1"))
        );
    }

    #[tokio::test]
    async fn no_recipient_left_fails_at_rcpt_to_after_a_rset() {
        let script = pipelining(&[
            "C: MAIL FROM:<a@example.com>",
            "C: RCPT TO:<nobody@example.com>",
            "C: DATA",
            "S: 250 2.1.0 Sender OK",
            "S: 450 4.2.1 Mailbox busy",
            "S: 554 5.5.1 No valid recipients",
            "C: RSET",
            "S: 250 2.0.0 OK",
        ]);
        let (sent, _) = send(&script, &["nobody@example.com"], b"hi\r\n").await;
        let f = sent.expect_err("no recipient accepted");
        assert_eq!((f.stage(), f.reply().map(|r| r.code)), (Stage::RcptTo, Some(450)));
        assert!(f.is_transient());
    }

    #[tokio::test]
    async fn mail_from_refused_fails_at_mail_from() {
        let script = pipelining(&[
            "C: MAIL FROM:<a@example.com>",
            "C: RCPT TO:<b@example.com>",
            "C: DATA",
            "S: 553 5.7.1 Sender address rejected: not owned by user",
            "S: 503 5.5.1 No sender",
            "S: 503 5.5.1 No recipients",
            "C: RSET",
            "S: 250 2.0.0 OK",
        ]);
        let (sent, _) = send(&script, &["b@example.com"], b"hi\r\n").await;
        let f = sent.expect_err("refused");
        let reply = f.reply().expect("the server's reply");
        assert_eq!(
            (f.stage(), reply.code, reply.enhanced.as_deref()),
            (Stage::MailFrom, 553, Some("5.7.1"))
        );
    }

    #[tokio::test]
    async fn without_pipelining_each_command_waits_for_its_reply() {
        let script = [
            "S: 220 mx.test",
            "C: EHLO herald.test",
            "S: 250 mx.test",
            "C: MAIL FROM:<a@example.com>",
            "S: 250 OK",
            "C: RCPT TO:<b@example.com>",
            "S: 250 OK",
            "C: DATA",
            "S: 354 Go ahead",
            "C: <content>",
            "S: 250 OK",
        ];
        let (sent, heard) = send(&script, &["b@example.com"], b"hi").await;
        sent.expect("sent");
        assert_eq!(heard.contents, [b"hi\r\n.\r\n"]);
    }
}
