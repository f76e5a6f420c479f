//! TLS policy: certificates are verified against the Mozilla roots by
//! default, plus an account's own CA (`tls.ca_pem`) when given; a pinned
//! certificate (`tls.pin_sha256`) is accepted exactly, and nothing else;
//! verification is skipped only when the account says so explicitly
//! (`tls.skip_verify`). A refused certificate is worded plainly (expired,
//! not yet valid, another host name, self-signed, unknown issuer, a CA used
//! as the server's own) and shown with its fingerprint, names and validity.
//! The handshake runs over whatever stream was dialed, for implicit TLS and
//! for STARTTLS alike.

use super::ServerSettings;
use super::certificate::PeerCertificate;
use super::error::{Condition, Failure, Stage};
use super::transcript::Transcript;
use crate::catalog::Security;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use subtle::ConstantTimeEq;
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

/// The verifier for an account's TLS settings: a pinned certificate, no
/// verification at all, or WebPKI over the Mozilla roots plus the account's
/// own CA.
fn verifier(settings: &ServerSettings) -> Result<Arc<dyn ServerCertVerifier>, String> {
    static DEFAULT: OnceLock<Arc<dyn ServerCertVerifier>> = OnceLock::new();
    if let Some(pin) = settings.pin_sha256 {
        return Ok(Arc::new(Pinned {
            pin,
            provider: provider(),
        }));
    }
    if settings.skip_verify {
        return Ok(Arc::new(NoVerification(provider())));
    }
    let webpki = |roots: RootCertStore| -> Result<Arc<dyn ServerCertVerifier>, String> {
        let v = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| e.to_string())?;
        Ok(v)
    };
    match settings.ca_pem.as_deref().filter(|p| !p.trim().is_empty()) {
        None => Ok(DEFAULT
            .get_or_init(|| webpki(mozilla_roots()).expect("the Mozilla roots make a verifier"))
            .clone()),
        Some(pem) => {
            let mut roots = mozilla_roots();
            for cert in parse_ca_pem(pem)? {
                roots.add(cert).map_err(|e| e.to_string())?;
            }
            webpki(roots)
        }
    }
}

/// The TLS side of one session: the connector, and the certificate the
/// server presented (read for the report when it is refused).
#[derive(Clone)]
pub(crate) struct SessionTls {
    connector: TlsConnector,
    presented: Presented,
    pinned: bool,
}

type Presented = Arc<Mutex<Option<CertificateDer<'static>>>>;

/// Notes the end-entity certificate, then lets `inner` decide.
#[derive(Debug)]
struct Recording {
    inner: Arc<dyn ServerCertVerifier>,
    presented: Presented,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.presented.lock().expect("presented certificate") = Some(end_entity.clone().into_owned());
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Accepts exactly the certificate whose DER hashes to the pin (validity
/// dates, names and issuer are what the user accepted when pinning it); the
/// handshake's signatures are still verified against that certificate's
/// key, so only the holder of its private key gets through.
#[derive(Debug)]
struct Pinned {
    pin: [u8; 32],
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let digest: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if bool::from(digest.ct_eq(&self.pin)) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
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
pub(crate) fn session_connector(settings: &ServerSettings) -> Result<Option<SessionTls>, Failure> {
    if settings.security == Security::None {
        return Ok(None);
    }
    let inner = verifier(settings)
        .map_err(|m| Failure::condition(Stage::Tls, Condition::TlsFailed, format!("tls.ca_pem {m}")))?;
    let presented = Presented::default();
    let config = builder()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Recording {
            inner,
            presented: presented.clone(),
        }))
        .with_no_client_auth();
    Ok(Some(SessionTls {
        connector: TlsConnector::from(Arc::new(config)),
        presented,
        pinned: settings.pin_sha256.is_some(),
    }))
}

/// TLS over `stream` to `host`, within `timeout`; a failure says whether the
/// certificate was refused or the peer does not speak TLS at all.
pub(crate) async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    tls: &SessionTls,
    host: &str,
    stream: S,
    timeout: Duration,
    transcript: &Transcript,
) -> Result<TlsStream<S>, Failure> {
    let name = server_name(host).map_err(|m| Failure::condition(Stage::Tls, Condition::TlsFailed, m))?;
    let presented = || tls.presented.lock().expect("presented certificate").clone();
    match tokio::time::timeout(timeout, tls.connector.connect(name, stream)).await {
        Err(_) => Err(Failure::condition(
            Stage::Tls,
            Condition::Timeout,
            "the TLS handshake timed out",
        )),
        Ok(Err(e)) => Err(match classify_handshake_error(&e) {
            TlsProblem::Certificate(c) => {
                let cert = presented().map(|der| PeerCertificate::from_der(der.as_ref()));
                let (condition, m) = describe_cert_error(&c, cert.as_ref(), host);
                let f = Failure::condition(Stage::Tls, condition, m);
                match cert {
                    Some(cert) => {
                        transcript.note(format!("the server presented: {}", cert.summary()));
                        f.with_certificate(cert)
                    }
                    None => f,
                }
            }
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
            if tls.pinned
                && let Some(der) = presented()
            {
                transcript.note(format!(
                    "the certificate is the pinned one (sha256 {})",
                    super::certificate::fingerprint(der.as_ref())
                ));
            }
            Ok(s)
        }
    }
}

/// What went wrong in a handshake, in the terms of the diagnosis.
enum TlsProblem {
    /// The certificate is not trusted, expired, or for another host.
    Certificate(rustls::CertificateError),
    /// The peer does not speak TLS at all (a plain SMTP port).
    NotTls,
    Other(String),
}

fn classify_handshake_error(err: &std::io::Error) -> TlsProblem {
    if let Some(inner) = err.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
        return match inner {
            rustls::Error::InvalidCertificate(c) => TlsProblem::Certificate(c.clone()),
            rustls::Error::InvalidMessage(_) => TlsProblem::NotTls,
            other => TlsProblem::Other(other.to_string()),
        };
    }
    TlsProblem::Other(err.to_string())
}

/// Why the certificate was refused, in plain words, with what it is for
/// and what it says when it could be read.
fn describe_cert_error(
    e: &rustls::CertificateError,
    cert: Option<&PeerCertificate>,
    host: &str,
) -> (Condition, String) {
    use rustls::CertificateError as C;
    let fp = cert.map(|c| format!(" (sha256 {})", c.sha256)).unwrap_or_default();
    let names = cert
        .map(|c| c.names.join(", "))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "other names".into());
    match e {
        C::Expired | C::ExpiredContext { .. } => (
            Condition::TlsExpired,
            match cert {
                Some(c) => format!("the server's certificate expired on {}{fp}", c.not_after),
                None => "the server's certificate has expired".into(),
            },
        ),
        C::NotValidYet | C::NotValidYetContext { .. } => (
            Condition::TlsNotYetValid,
            match cert {
                Some(c) => format!("the server's certificate is not valid until {}{fp}", c.not_before),
                None => "the server's certificate is not valid yet".into(),
            },
        ),
        C::NotValidForName | C::NotValidForNameContext { .. } => (
            Condition::TlsWrongHost,
            format!("the server's certificate is for {names}, not for {host}{fp}"),
        ),
        // rustls passes webpki's CaUsedAsEndEntity through as `Other`.
        C::Other(o) if o.to_string().contains("CaUsedAsEndEntity") => (
            Condition::TlsCaAsServer,
            format!(
                "the server presents a CA certificate as its own{}{fp} (what a one-step `openssl req -x509` makes): no trusted authority vouches for it, and a CA certificate cannot be trusted as tls.ca_pem for itself, only pinned",
                if cert.is_some_and(|c| c.self_signed) {
                    ", self-signed"
                } else {
                    ""
                }
            ),
        ),
        C::UnknownIssuer if cert.is_some_and(|c| c.self_signed) => (
            Condition::TlsSelfSigned,
            format!(
                "the server's certificate is self-signed ({}){fp}: no trusted authority vouches for it",
                cert.map(|c| c.subject.as_str()).unwrap_or("")
            ),
        ),
        C::UnknownIssuer => (
            Condition::TlsUntrusted,
            match cert {
                Some(c) => format!(
                    "the server's certificate is issued by {}, an authority that is not trusted{fp}",
                    c.issuer
                ),
                None => "the server's certificate is signed by an authority that is not trusted".into(),
            },
        ),
        C::ApplicationVerificationFailure => (
            Condition::TlsPinMismatch,
            format!(
                "the server's certificate{fp} is not the one pinned in tls.pin_sha256: it changed, or this is another server"
            ),
        ),
        C::BadSignature => (
            Condition::TlsUntrusted,
            format!("the server's certificate has a bad signature{fp}"),
        ),
        other => (
            Condition::TlsUntrusted,
            format!("the server's certificate was refused ({other:?}){fp}"),
        ),
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
