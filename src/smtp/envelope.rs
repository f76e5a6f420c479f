//! The envelope of a message: MAIL FROM and one RCPT TO per recipient, in
//! one pipelined write (with DATA at its end) when the server allows it.
//! Recipients refused for good are set aside; the rest still get the message.

use super::client::{Client, command, failure, transcript_of};
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
    // Domains go as A-labels, which every server takes; a non-ASCII local
    // part has no ASCII form and goes only with SMTPUTF8 (RFC 6531). Without
    // it, the address is refused here, before anything is sent: the sender
    // fails the message, a recipient is set aside as a server would.
    if envelope.from.needs_smtputf8() && !caps.smtputf8 {
        return Err(Failure::from_reply(
            Stage::MailFrom,
            no_smtputf8(client, &envelope.from),
        ));
    }
    let mut rejected = Vec::new();
    let mut to = Vec::with_capacity(envelope.to.len());
    for rcpt in &envelope.to {
        if rcpt.needs_smtputf8() && !caps.smtputf8 {
            rejected.push((rcpt.clone(), no_smtputf8(client, rcpt)));
        } else {
            to.push(rcpt);
        }
    }
    if to.is_empty() {
        let (_, reply) = rejected.swap_remove(0);
        return Err(Failure::from_reply(Stage::RcptTo, reply));
    }
    let smtputf8 = caps.smtputf8 && (envelope.from.needs_smtputf8() || to.iter().any(|a| a.needs_smtputf8()));
    let params = if smtputf8 { " SMTPUTF8" } else { "" };
    let mail = format!("MAIL FROM:<{}>{params}\r\n", envelope.from.a_label_form());
    let rcpts: Vec<String> = to
        .iter()
        .map(|r| format!("RCPT TO:<{}>\r\n", r.a_label_form()))
        .collect();
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
    let refused_here = rejected.len();
    for (&rcpt, r) in to.iter().zip(replies.iter().skip(1)) {
        if r.code / 100 == 2 {
            accepted.push(rcpt.clone());
        } else {
            rejected.push((rcpt.clone(), Reply::from_response(r)));
        }
    }
    if accepted.is_empty() {
        // The server's first refusal, after Herald's own.
        let (_, reply) = rejected
            .into_iter()
            .nth(refused_here)
            .expect("the server refused every recipient sent");
        let _ = client.cmd(b"RSET\r\n").await;
        return Err(Failure::from_reply(Stage::RcptTo, reply));
    }
    Ok(Accepted {
        accepted,
        rejected,
        data_reply,
    })
}

/// Herald's own refusal of an address the server cannot take, worded as an
/// SMTPUTF8 relay would (RFC 6531 3.7.4.1: 553 5.6.7) and noted in the
/// transcript, since the server never saw it.
fn no_smtputf8<S: AsyncRead + AsyncWrite + Unpin>(client: &Client<S>, address: &EmailAddress) -> Reply {
    let text = format!("the server does not accept internationalised addresses (no SMTPUTF8): {address}");
    transcript_of(client).note(format!("not sent: {text}"));
    Reply {
        code: 553,
        enhanced: Some("5.6.7".into()),
        text,
    }
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
    use crate::smtp::testing::{send, send_from};

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

    /// Greeting and EHLO from a server that pipelines and takes UTF-8
    /// addresses (SMTPUTF8), then `rest`.
    fn pipelining_utf8(rest: &[&'static str]) -> Vec<&'static str> {
        [
            &[
                "S: 220 mx.test",
                "C: EHLO herald.test",
                "S: 250-mx.test",
                "S: 250-PIPELINING",
                "S: 250 SMTPUTF8",
            ][..],
            rest,
        ]
        .concat()
    }

    /// After greeting and EHLO (with SMTPUTF8 or not), the client's
    /// pipelined `mail` and `rcpts`, each accepted, then the content.
    fn all_accepted(smtputf8: bool, mail: &str, rcpts: &[&str]) -> Vec<String> {
        let start = if smtputf8 {
            pipelining_utf8(&[])
        } else {
            pipelining(&[])
        };
        let mut script: Vec<String> = start.into_iter().map(String::from).collect();
        script.push(format!("C: {mail}"));
        script.extend(rcpts.iter().map(|r| format!("C: {r}")));
        script.extend(["C: DATA", "S: 250 2.1.0 Sender OK"].map(String::from));
        script.extend(rcpts.iter().map(|_| "S: 250 2.1.5 Recipient OK".to_string()));
        script.extend(["S: 354 Go ahead", "C: <content>", "S: 250 2.0.0 Queued as 1"].map(String::from));
        script
    }

    #[tokio::test]
    async fn without_smtputf8_an_idn_domain_goes_as_its_a_label() {
        let script = all_accepted(
            false,
            "MAIL FROM:<a@xn--bcher-kva.example>",
            &["RCPT TO:<idn@xn--bcher-kva.example>"],
        );
        let (sent, _) = send_from(&script, "a@Bücher.example", &["idn@bücher.example"], b"hi\r\n").await;
        let sent = sent.expect("sent");
        assert!(sent.rejected.is_empty());
        assert_eq!(sent.accepted[0].as_str(), "idn@bücher.example", "reported as given");
    }

    #[tokio::test]
    async fn without_smtputf8_a_non_ascii_local_part_is_refused_alone_before_anything_is_sent() {
        let script = all_accepted(false, "MAIL FROM:<a@example.com>", &["RCPT TO:<b@example.com>"]);
        let (sent, _) = send(&script, &["用户@example.com", "b@example.com"], b"hi\r\n").await;
        let sent = sent.expect("sent to the one recipient left");
        assert_eq!(sent.accepted, [EmailAddress::parse("b@example.com").unwrap()]);
        let (who, why) = &sent.rejected[0];
        assert_eq!(
            (who.as_str(), why.code, why.enhanced.as_deref(), why.text.as_str()),
            (
                "用户@example.com",
                553,
                Some("5.6.7"),
                "the server does not accept internationalised addresses (no SMTPUTF8): 用户@example.com"
            )
        );
        assert_eq!(why.code / 100, 5, "a permanent refusal: {why:?}");
    }

    #[tokio::test]
    async fn without_smtputf8_no_ascii_recipient_left_fails_at_rcpt_to_and_nothing_is_sent() {
        let (sent, heard) = send(&pipelining(&[]), &["用户@example.com"], b"hi\r\n").await;
        let f = sent.expect_err("no recipient left");
        let reply = f.reply().expect("the refusal");
        assert_eq!(
            (f.stage(), reply.code, reply.enhanced.as_deref()),
            (Stage::RcptTo, 553, Some("5.6.7"))
        );
        assert!(f.is_permanent());
        assert_eq!(heard.bytes, b"EHLO herald.test\r\n", "nothing after EHLO");
    }

    #[tokio::test]
    async fn without_smtputf8_a_non_ascii_sender_fails_at_mail_from_and_nothing_is_sent() {
        let (sent, heard) = send_from(&pipelining(&[]), "发件人@example.com", &["b@example.com"], b"hi\r\n").await;
        let f = sent.expect_err("the sender cannot be written");
        let reply = f.reply().expect("the refusal");
        assert_eq!(
            (f.stage(), reply.code, reply.enhanced.as_deref(), reply.text.as_str()),
            (
                Stage::MailFrom,
                553,
                Some("5.6.7"),
                "the server does not accept internationalised addresses (no SMTPUTF8): 发件人@example.com"
            )
        );
        assert!(f.is_permanent());
        assert_eq!(heard.bytes, b"EHLO herald.test\r\n", "nothing after EHLO");
    }

    #[tokio::test]
    async fn with_smtputf8_a_non_ascii_local_part_goes_as_utf8_with_the_parameter() {
        let script = all_accepted(
            true,
            "MAIL FROM:<a@example.com> SMTPUTF8",
            &["RCPT TO:<用户@xn--bcher-kva.example>", "RCPT TO:<b@example.com>"],
        );
        let (sent, _) = send(&script, &["用户@bücher.example", "b@example.com"], b"hi\r\n").await;
        let sent = sent.expect("sent");
        assert!(sent.rejected.is_empty());
        assert_eq!(sent.accepted.len(), 2);
    }

    #[tokio::test]
    async fn with_smtputf8_ascii_and_idn_addresses_need_no_parameter() {
        let script = all_accepted(
            true,
            "MAIL FROM:<a@example.com>",
            &["RCPT TO:<idn@xn--bcher-kva.example>"],
        );
        let (sent, _) = send(&script, &["idn@bücher.example"], b"hi\r\n").await;
        sent.expect("sent");
    }

    #[tokio::test]
    async fn a_quoted_local_part_goes_on_the_wire_as_given() {
        let script = all_accepted(
            false,
            "MAIL FROM:<a@example.com>",
            &[
                r#"RCPT TO:<"john doe"@example.com>"#,
                r#"RCPT TO:<"a\"b@c"@example.com>"#,
            ],
        );
        let (sent, _) = send(
            &script,
            &[r#""john doe"@example.com"#, r#""a\"b@c"@example.com"#],
            b"hi\r\n",
        )
        .await;
        assert_eq!(sent.expect("sent").accepted.len(), 2);
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
