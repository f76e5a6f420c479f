//! The step every phase is made of: write a command, read the reply, and
//! name the stage when either goes wrong. The client's stream is always a
//! `Recorder`, so the transcript is kept by construction, whatever the phase.

use super::error::{Condition, Failure, Stage};
use super::transcript::{Recorder, Transcript};
use mail_send::SmtpClient;
use smtp_proto::Response;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// mail-send's client (reply parsing, timeouts) over a recorded stream.
pub(crate) type Client<S> = SmtpClient<Recorder<S>>;

/// A client over `stream`, recording into `transcript`.
pub(crate) fn client<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    transcript: Transcript,
    timeout: Duration,
) -> Client<S> {
    SmtpClient {
        stream: Recorder {
            inner: stream,
            transcript,
        },
        timeout,
    }
}

/// The transcript the client records into.
pub(crate) fn transcript_of<S: AsyncRead + AsyncWrite + Unpin>(client: &Client<S>) -> &Transcript {
    &client.stream.transcript
}

/// A client error at `stage`, told apart from a server that hung up.
pub(crate) fn failure<S: AsyncRead + AsyncWrite + Unpin>(
    client: &Client<S>,
    stage: Stage,
    e: mail_send::Error,
) -> Failure {
    Failure::from_client(stage, transcript_of(client).saw_eof(), e)
}

/// Sends one command and reads its reply, within the client's timeout.
pub(crate) async fn command<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut Client<S>,
    stage: Stage,
    cmd: impl AsRef<[u8]>,
) -> Result<Response<String>, Failure> {
    let r = client.cmd(cmd).await;
    r.map_err(|e| failure(client, stage, e))
}

/// Reads a reply the client did not ask for with a command of its own (the
/// greeting, the verdict on the content); `late` says what was awaited.
pub(crate) async fn read_reply<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut Client<S>,
    stage: Stage,
    late: &str,
) -> Result<Response<String>, Failure> {
    match tokio::time::timeout(client.timeout, client.read()).await {
        Err(_) => Err(Failure::condition(stage, Condition::Timeout, late)),
        Ok(r) => r.map_err(|e| failure(client, stage, e)),
    }
}

/// Writes `bytes` in one go and flushes them, within the client's timeout;
/// `late` says what timed out.
pub(crate) async fn write_all<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut Client<S>,
    stage: Stage,
    bytes: &[u8],
    late: &str,
) -> Result<(), Failure> {
    let written = tokio::time::timeout(client.timeout, async {
        client.stream.write_all(bytes).await?;
        client.stream.flush().await
    })
    .await;
    match written {
        Err(_) => Err(Failure::condition(stage, Condition::Timeout, late)),
        Ok(Err(e)) => Err(failure(client, stage, mail_send::Error::Io(e))),
        Ok(Ok(())) => Ok(()),
    }
}
