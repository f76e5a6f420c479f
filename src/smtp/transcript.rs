//! The session transcript, recorded at the byte level so it shows exactly
//! what crossed the wire, with two exceptions made by construction: while a
//! session authenticates, every client line is masked, and the message body
//! is summarised by its size, never copied.

use serde::{Deserialize, Serialize};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Who sent a line: the client (Herald) or the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Dir {
    /// Herald, or a note of its own.
    C,
    /// The server.
    S,
}

/// One recorded line, without its line ending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// Who sent it.
    pub dir: Dir,
    /// What was sent.
    pub line: String,
}

/// What stands in for a credential.
const MASK: &str = "********";
const MAX_LINES: usize = 400;
const MAX_LINE_CHARS: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientMode {
    Clear,
    /// AUTH in progress: the mechanism name is kept, everything else masked.
    Masked,
    /// DATA content: counted, not recorded.
    Body,
}

#[derive(Debug)]
struct Inner {
    lines: Vec<Line>,
    client_partial: Vec<u8>,
    server_partial: Vec<u8>,
    mode: ClientMode,
    body_bytes: usize,
    eof: bool,
    dropped: usize,
}

/// A shared handle on a session's transcript.
#[derive(Debug, Clone)]
pub struct Transcript(Arc<Mutex<Inner>>);

impl Default for Transcript {
    fn default() -> Self {
        Transcript(Arc::new(Mutex::new(Inner {
            lines: Vec::new(),
            client_partial: Vec::new(),
            server_partial: Vec::new(),
            mode: ClientMode::Clear,
            body_bytes: 0,
            eof: false,
            dropped: 0,
        })))
    }
}

impl Inner {
    fn push(&mut self, dir: Dir, line: String) {
        if self.lines.len() >= MAX_LINES {
            self.dropped += 1;
            return;
        }
        let mut line = line;
        if line.chars().count() > MAX_LINE_CHARS {
            line = line.chars().take(MAX_LINE_CHARS).collect::<String>() + " …";
        }
        self.lines.push(Line { dir, line });
    }

    fn client_line(&mut self, raw: &[u8]) {
        let text = String::from_utf8_lossy(raw).trim_end_matches(['\r', '\n']).to_string();
        let line = match self.mode {
            ClientMode::Clear => text,
            ClientMode::Masked => mask_auth_line(&text),
            ClientMode::Body => return,
        };
        self.push(Dir::C, line);
    }
}

/// `AUTH PLAIN abc=` → `AUTH PLAIN ********`; any continuation → `********`.
fn mask_auth_line(text: &str) -> String {
    let mut words = text.splitn(3, ' ');
    match (words.next(), words.next(), words.next()) {
        (Some(verb), Some(mech), rest) if verb.eq_ignore_ascii_case("AUTH") => match rest {
            Some(_) => format!("{verb} {mech} {MASK}"),
            None => format!("{verb} {mech}"),
        },
        _ if text.is_empty() => String::new(),
        _ => MASK.to_string(),
    }
}

impl Transcript {
    /// The lines so far, with a last line counting those past the limit.
    pub fn lines(&self) -> Vec<Line> {
        let inner = self.0.lock().expect("transcript lock");
        let mut lines = inner.lines.clone();
        if inner.dropped > 0 {
            lines.push(Line {
                dir: Dir::C,
                line: format!("[{} more lines not recorded]", inner.dropped),
            });
        }
        lines
    }

    /// Starts afresh for the next message on a reused connection.
    pub fn clear(&self) {
        let mut inner = self.0.lock().expect("transcript lock");
        inner.lines.clear();
        inner.dropped = 0;
        inner.client_partial.clear();
        inner.server_partial.clear();
    }

    /// True once the server closed the connection.
    pub(crate) fn saw_eof(&self) -> bool {
        self.0.lock().expect("transcript lock").eof
    }

    /// Masks client lines until `end_auth`.
    pub(crate) fn begin_auth(&self) {
        self.0.lock().expect("transcript lock").mode = ClientMode::Masked;
    }

    /// Records client lines in clear again.
    pub(crate) fn end_auth(&self) {
        self.0.lock().expect("transcript lock").mode = ClientMode::Clear;
    }

    /// Counts rather than records client bytes until `end_body`.
    pub(crate) fn begin_body(&self) {
        let mut inner = self.0.lock().expect("transcript lock");
        inner.mode = ClientMode::Body;
        inner.body_bytes = 0;
    }

    /// Ends the content: records its size and the final dot.
    pub(crate) fn end_body(&self) {
        let mut inner = self.0.lock().expect("transcript lock");
        inner.mode = ClientMode::Clear;
        inner.client_partial.clear();
        let n = inner.body_bytes;
        inner.push(Dir::C, format!("[message content: {n} bytes]"));
        inner.push(Dir::C, ".".to_string());
    }

    /// A note from Herald itself (a TLS handshake, a decision), shown as a client line in brackets.
    pub fn note(&self, text: impl Into<String>) {
        let mut inner = self.0.lock().expect("transcript lock");
        inner.push(Dir::C, format!("[{}]", text.into()));
    }

    fn record_client(&self, bytes: &[u8]) {
        let mut inner = self.0.lock().expect("transcript lock");
        if inner.mode == ClientMode::Body {
            inner.body_bytes += bytes.len();
            return;
        }
        for &b in bytes {
            inner.client_partial.push(b);
            if b == b'\n' {
                let line = std::mem::take(&mut inner.client_partial);
                inner.client_line(&line);
            }
        }
    }

    fn record_server(&self, bytes: &[u8]) {
        let mut inner = self.0.lock().expect("transcript lock");
        if bytes.is_empty() {
            inner.eof = true;
            return;
        }
        for &b in bytes {
            inner.server_partial.push(b);
            if b == b'\n' {
                let line = std::mem::take(&mut inner.server_partial);
                let text = String::from_utf8_lossy(&line)
                    .trim_end_matches(['\r', '\n'])
                    .to_string();
                inner.push(Dir::S, text);
            }
        }
    }
}

/// Wraps the session's stream and records what passes through it.
pub(crate) struct Recorder<S> {
    pub inner: S,
    pub transcript: Transcript,
}

impl<S: AsyncRead + Unpin> AsyncRead for Recorder<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &r {
            this.transcript.record_server(&buf.filled()[before..]);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Recorder<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            this.transcript.record_client(&buf[..*n]);
        }
        r
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_lines_are_masked() {
        let t = Transcript::default();
        t.record_client(b"EHLO herald\r\n");
        t.begin_auth();
        t.record_client(b"AUTH PLAIN AHVzZXIAc2VjcmV0\r\n");
        t.record_client(b"AUTH LOGIN\r\n");
        t.record_client(b"c2VjcmV0\r\n");
        t.end_auth();
        t.record_client(b"MAIL FROM:<a@b.c>\r\n");
        let lines: Vec<String> = t.lines().into_iter().map(|l| l.line).collect();
        assert_eq!(
            lines,
            [
                "EHLO herald",
                "AUTH PLAIN ********",
                "AUTH LOGIN",
                "********",
                "MAIL FROM:<a@b.c>"
            ]
        );
    }

    #[test]
    fn body_is_counted_not_recorded() {
        let t = Transcript::default();
        t.begin_body();
        let body = b"Subject: secret plans\r\n\r\nhello\r\n.\r\n";
        t.record_client(body);
        t.end_body();
        let lines = t.lines();
        assert!(lines.iter().all(|l| !l.line.contains("secret plans")));
        assert_eq!(lines[0].line, format!("[message content: {} bytes]", body.len()));
    }

    #[test]
    fn server_lines_split_across_reads() {
        let t = Transcript::default();
        t.record_server(b"250-smtp.example.com\r\n250-AUTH PL");
        t.record_server(b"AIN LOGIN\r\n250 OK\r\n");
        let lines: Vec<String> = t.lines().into_iter().map(|l| l.line).collect();
        assert_eq!(lines, ["250-smtp.example.com", "250-AUTH PLAIN LOGIN", "250 OK"]);
        assert!(!t.saw_eof());
        t.record_server(b"");
        assert!(t.saw_eof());
    }
}
