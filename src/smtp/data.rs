//! The content of a message: DATA, then the content made safe for the wire
//! (every line ended by CRLF, every leading dot doubled) and the final dot,
//! all in one write, and the server's verdict on it.

use super::client::{Client, command, read_reply, write_all};
use super::error::{Failure, Reply, Stage};
use smtp_proto::Response;
use tokio::io::{AsyncRead, AsyncWrite};

/// Sends the content and returns the server's acceptance. `data_reply` is the
/// reply to a DATA already pipelined with the envelope; without one, DATA is
/// sent here. A refusal of DATA is followed by a RSET.
pub(crate) async fn send_data<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut Client<S>,
    data_reply: Option<Response<String>>,
    content: &[u8],
) -> Result<Reply, Failure> {
    let r = match data_reply {
        Some(r) => r,
        None => command(client, Stage::Data, b"DATA\r\n").await?,
    };
    if r.code != 354 {
        let _ = client.cmd(b"RSET\r\n").await;
        return Err(Failure::refused(Stage::Data, &r));
    }
    // The content and its terminating dot in one write: written apart,
    // they would be two packets, the second waiting on the first's ACK.
    let payload = data_payload(content);
    let transcript = client.stream.transcript.clone();
    transcript.begin_body();
    let written = write_all(client, Stage::Data, &payload, "sending the message content timed out").await;
    transcript.end_body();
    written?;
    let r = read_reply(client, Stage::Data, "the server did not confirm the message in time").await?;
    if r.code / 100 != 2 {
        return Err(Failure::refused(Stage::Data, &r));
    }
    Ok(Reply::from_response(&r))
}

/// The DATA payload (RFC 5321 4.5.2): the content with every line ended by
/// CRLF, a second dot before each line that starts with one, then the `.`
/// line. A lone CR or LF becomes CRLF first: a server that takes either as a
/// line end would otherwise read `<LF>.<LF>` as the end of the message and
/// what follows as commands (SMTP smuggling).
fn data_payload(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + content.len() / 64 + 5);
    let mut line_start = true;
    let mut bytes = content.iter().copied().peekable();
    while let Some(b) = bytes.next() {
        match b {
            b'\r' | b'\n' => {
                if b == b'\r' {
                    bytes.next_if_eq(&b'\n');
                }
                out.extend_from_slice(b"\r\n");
                line_start = true;
            }
            _ => {
                if line_start && b == b'.' {
                    out.push(b'.');
                }
                out.push(b);
                line_start = false;
            }
        }
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::testing::send;

    /// A pipelined envelope accepted, then the content and `verdict`.
    fn script(verdict: &'static str) -> Vec<&'static str> {
        vec![
            "S: 220 mx.test",
            "C: EHLO herald.test",
            "S: 250-mx.test",
            "S: 250 PIPELINING",
            "C: MAIL FROM:<a@example.com>",
            "C: RCPT TO:<b@example.com>",
            "C: DATA",
            "S: 250 OK",
            "S: 250 OK",
            "S: 354 Go ahead",
            "C: <content>",
            verdict,
        ]
    }

    /// True when every CR in `bytes` starts a CRLF and every LF ends one.
    fn only_crlf(bytes: &[u8]) -> bool {
        bytes.iter().enumerate().all(|(i, &b)| match b {
            b'\r' => bytes.get(i + 1) == Some(&b'\n'),
            b'\n' => i > 0 && bytes[i - 1] == b'\r',
            _ => true,
        })
    }

    #[tokio::test]
    async fn content_is_dot_stuffed_and_ends_with_one_dot_line() {
        let content = b"Subject: dots\r\n\r\n.hidden\r\n..two\r\nnot.first\r\n.";
        let (sent, heard) = send(&script("S: 250 2.0.0 Queued"), &["b@example.com"], content).await;
        assert_eq!(sent.expect("sent").reply.enhanced.as_deref(), Some("2.0.0"));
        assert_eq!(
            heard.contents,
            [&b"Subject: dots\r\n\r\n..hidden\r\n...two\r\nnot.first\r\n..\r\n.\r\n"[..]]
        );
    }

    #[tokio::test]
    async fn a_bare_cr_or_lf_in_the_content_never_reaches_the_wire() {
        let smuggled = b"Subject: x\r\n\r\nhi\r.\rMAIL FROM:<x@evil.test>\r\na\n.\nb\n";
        let (sent, heard) = send(&script("S: 250 2.0.0 Queued"), &["b@example.com"], smuggled).await;
        sent.expect("sent");
        assert_eq!(
            heard.contents,
            [&b"Subject: x\r\n\r\nhi\r\n..\r\nMAIL FROM:<x@evil.test>\r\na\r\n..\r\nb\r\n.\r\n"[..]]
        );
        assert!(only_crlf(&heard.bytes), "{:?}", String::from_utf8_lossy(&heard.bytes));
        let ends = heard.bytes.windows(5).filter(|w| w == b"\r\n.\r\n").count();
        assert_eq!(ends, 1, "the content ends once, at its end");
        assert!(heard.bytes.ends_with(b"\r\n.\r\n"));
    }

    #[tokio::test]
    async fn content_refused_after_the_final_dot_fails_at_data() {
        let verdict = "S: 552 5.3.4 Message size exceeds fixed limit";
        let (sent, _) = send(&script(verdict), &["b@example.com"], b"hi\r\n").await;
        let f = sent.expect_err("refused");
        let reply = f.reply().expect("the server's reply");
        assert_eq!(
            (f.stage(), reply.code, reply.enhanced.as_deref()),
            (Stage::Data, 552, Some("5.3.4"))
        );
    }

    #[test]
    fn data_payload_stuffs_dots_and_ends_with_one_dot_line() {
        assert_eq!(data_payload(b"a\r\n.b\r\n..\r\n"), b"a\r\n..b\r\n...\r\n.\r\n");
        assert_eq!(data_payload(b".first\r\nlast"), b"..first\r\nlast\r\n.\r\n");
        assert_eq!(
            data_payload(b"x.\r\n"),
            b"x.\r\n.\r\n",
            "a dot inside a line stays single"
        );
        assert_eq!(data_payload(b""), b"\r\n.\r\n");
    }

    #[test]
    fn data_payload_ends_every_lone_cr_and_lf_as_crlf() {
        assert_eq!(
            data_payload(b"hi\r.\rMAIL FROM:<x@evil.test>"),
            b"hi\r\n..\r\nMAIL FROM:<x@evil.test>\r\n.\r\n"
        );
        assert_eq!(data_payload(b"a\n.\nb"), b"a\r\n..\r\nb\r\n.\r\n");
        assert_eq!(data_payload(b"a\n\rb\r\r\n"), b"a\r\n\r\nb\r\n\r\n.\r\n");
        assert_eq!(data_payload(b"end\r"), b"end\r\n.\r\n");
    }
}
