//! TLS policy: certificates are verified against the Mozilla roots by
//! default, plus an account's own CA (`tls.ca_pem`) when given; verification
//! is skipped only when the account says so explicitly (`tls.skip_verify`).
//! The handshake runs over whatever stream was dialed, for implicit TLS and
//! for STARTTLS alike.

use super::ServerSettings;
use super::error::{Condition, Failure, Stage};
use super::transcript::Transcript;
use crate::catalog::Security;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn builder() -> rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier> {
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
}

fn mozilla_roots() -> RootCertStore {
    RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

/// TLS for HTTPS clients (autoconfig, OAuth2 token endpoints): ring and the
/// Mozilla roots, the same trust as the SMTP side.
pub fn https_client_config() -> ClientConfig {
    builder().with_root_certificates(mozilla_roots()).with_no_client_auth()
}

/// Parses PEM certificates; an error names what is wrong with the text.
pub fn parse_ca_pem(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(pem.as_bytes()).collect();
    let certs = certs.map_err(|e| {
        format!("is not valid PEM ({e}): paste the CA certificate(s) including the BEGIN/END CERTIFICATE lines")
    })?;
    if certs.is_empty() {
        return Err(
            "holds no certificate: paste the CA certificate(s) including the BEGIN/END CERTIFICATE lines".into(),
        );
    }
    let mut store = RootCertStore::empty();
    for c in &certs {
        store
            .add(c.clone())
            .map_err(|e| format!("holds a certificate that cannot be used as a trust anchor ({e})"))?;
    }
    Ok(certs)
}

/// The connector for an account's TLS settings.
fn connector(ca_pem: Option<&str>, skip_verify: bool) -> Result<TlsConnector, String> {
    static DEFAULT: OnceLock<TlsConnector> = OnceLock::new();
    if skip_verify {
        let config = builder()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider())))
            .with_no_client_auth();
        return Ok(TlsConnector::from(Arc::new(config)));
    }
    match ca_pem.filter(|p| !p.trim().is_empty()) {
        None => Ok(DEFAULT
            .get_or_init(|| {
                TlsConnector::from(Arc::new(
                    builder().with_root_certificates(mozilla_roots()).with_no_client_auth(),
                ))
            })
            .clone()),
        Some(pem) => {
            let mut roots = mozilla_roots();
            for cert in parse_ca_pem(pem)? {
                roots.add(cert).map_err(|e| e.to_string())?;
            }
            Ok(TlsConnector::from(Arc::new(
                builder().with_root_certificates(roots).with_no_client_auth(),
            )))
        }
    }
}

fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_string()).map_err(|_| format!("'{host}' cannot be used as a TLS server name"))
}

/// Accepts any certificate: only for `tls.skip_verify`, which the account
/// must set explicitly and the API shows.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The connector a session needs: none in clear, else one built from the
/// account's CA and verification settings (a bad `tls.ca_pem` fails here,
/// before anything is dialed).
pub(crate) fn session_connector(settings: &ServerSettings) -> Result<Option<TlsConnector>, Failure> {
    if settings.security == Security::None {
        return Ok(None);
    }
    connector(settings.ca_pem.as_deref(), settings.skip_verify)
        .map(Some)
        .map_err(|m| Failure::condition(Stage::Tls, Condition::TlsFailed, format!("tls.ca_pem {m}")))
}

/// TLS over `stream` to `host`, within `timeout`; a failure says whether the
/// certificate was refused or the peer does not speak TLS at all.
pub(crate) async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    connector: &TlsConnector,
    host: &str,
    stream: S,
    timeout: Duration,
    transcript: &Transcript,
) -> Result<TlsStream<S>, Failure> {
    let name = server_name(host).map_err(|m| Failure::condition(Stage::Tls, Condition::TlsFailed, m))?;
    match tokio::time::timeout(timeout, connector.connect(name, stream)).await {
        Err(_) => Err(Failure::condition(
            Stage::Tls,
            Condition::Timeout,
            "the TLS handshake timed out",
        )),
        Ok(Err(e)) => Err(match classify_handshake_error(&e) {
            TlsProblem::Untrusted(m) => Failure::condition(Stage::Tls, Condition::TlsUntrusted, m),
            TlsProblem::NotTls => Failure::condition(
                Stage::Tls,
                Condition::TlsNotTls,
                "the server answered in plain text: this port does not speak implicit TLS",
            ),
            TlsProblem::Other(m) => {
                Failure::condition(Stage::Tls, Condition::TlsFailed, format!("TLS handshake failed: {m}"))
            }
        }),
        Ok(Ok(s)) => {
            let (_, conn) = s.get_ref();
            let version = conn.protocol_version().map(|v| format!("{v:?}")).unwrap_or_default();
            transcript.note(format!("TLS established ({version})"));
            Ok(s)
        }
    }
}

/// What went wrong in a handshake, in the terms of the diagnosis.
enum TlsProblem {
    /// The certificate is not trusted, expired, or for another host.
    Untrusted(String),
    /// The peer does not speak TLS at all (a plain SMTP port).
    NotTls,
    Other(String),
}

fn classify_handshake_error(err: &std::io::Error) -> TlsProblem {
    if let Some(inner) = err.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
        return match inner {
            rustls::Error::InvalidCertificate(c) => TlsProblem::Untrusted(describe_cert_error(c)),
            rustls::Error::InvalidMessage(_) => TlsProblem::NotTls,
            other => TlsProblem::Other(other.to_string()),
        };
    }
    TlsProblem::Other(err.to_string())
}

fn describe_cert_error(e: &rustls::CertificateError) -> String {
    use rustls::CertificateError as C;
    match e {
        C::UnknownIssuer => "the server's certificate is signed by an authority that is not trusted".into(),
        C::Expired | C::ExpiredContext { .. } => "the server's certificate has expired".into(),
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            "the server's certificate is not valid for this host name".into()
        }
        C::BadSignature => "the server's certificate has a bad signature".into(),
        other => format!("the server's certificate was refused ({other:?})"),
    }
}

#[cfg(test)]
mod tests {
    use crate::catalog::Security;
    use crate::smtp::testing::{SIGN_IN, Server, open_and_quit, password, serve, settings, tls_acceptor};
    use crate::smtp::{Condition, Credentials, Session, Stage, Transcript};

    #[tokio::test]
    async fn implicit_tls_runs_over_the_dialed_stream() {
        let (acceptor, ca_pem) = tls_acceptor();
        let mut settings = settings(Security::Tls);
        settings.ca_pem = Some(ca_pem);
        let script = [&["TLS", "S: 220 mx.test"][..], &SIGN_IN].concat();
        open_and_quit(&script, &settings, &password(), Some(acceptor)).await;
    }

    #[tokio::test]
    async fn a_certificate_from_an_unknown_authority_is_refused() {
        let (acceptor, _) = tls_acceptor();
        let (io, server): (_, Server) = serve(&["TLS", "S: 220 mx.test"], Some(acceptor));
        let f = match Session::handshake(io, &settings(Security::Tls), &Credentials::None, Transcript::default()).await
        {
            Ok(_) => panic!("an untrusted certificate must not be accepted"),
            Err(f) => f,
        };
        assert_eq!((f.stage(), f.condition), (Stage::Tls, Some(Condition::TlsUntrusted)));
        assert!(server.heard().await.bytes.is_empty());
    }
}
