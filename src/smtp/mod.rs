//! The SMTP client session: connect, TLS, greeting, EHLO, STARTTLS, AUTH,
//! envelope and data, each step a `Stage` so that a failure says where it
//! happened. The wire protocol is mail-send's `SmtpClient` (reply parsing
//! with enhanced status codes, the DATA transparency procedure); this module
//! adds the stages, the recorded and masked transcript, TLS policy and XOAUTH2
//! the way Google and Microsoft speak it.

mod conn;
pub mod session;
pub mod tls;
pub mod transcript;

pub use session::{Credentials, Envelope, SendOutcome, ServerSettings, Session};
pub use transcript::{Dir, Line, Transcript};
