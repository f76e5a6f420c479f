//! TLS policy: certificates are verified against the Mozilla roots by
//! default, plus an account's own CA (`tls.ca_pem`) when given; verification
//! is skipped only when the account says so explicitly (`tls.skip_verify`).

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::sync::{Arc, OnceLock};
use tokio_rustls::TlsConnector;

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
pub fn connector(ca_pem: Option<&str>, skip_verify: bool) -> Result<TlsConnector, String> {
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

pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
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

/// What went wrong in a handshake, in the terms of the diagnosis.
pub enum TlsProblem {
    /// The certificate is not trusted, expired, or for another host.
    Untrusted(String),
    /// The peer does not speak TLS at all (a plain SMTP port).
    NotTls,
    Other(String),
}

pub fn classify_handshake_error(err: &std::io::Error) -> TlsProblem {
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
