//! The certificate a server presented, as a person checks it before
//! trusting it (a mail client's "confirm security exception"): its SHA-256
//! fingerprint (what `tls.pin_sha256` takes), subject, issuer, names and
//! validity; and the fingerprint syntax pins are written in.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A presented certificate, read for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerCertificate {
    /// Hex SHA-256 of the certificate's DER: the value for `tls.pin_sha256`.
    pub sha256: String,
    /// The subject's distinguished name, e.g. `CN=localhost`.
    pub subject: String,
    /// The issuer's distinguished name (the subject again when self-signed).
    pub issuer: String,
    /// The DNS names and IP addresses it is for (subjectAltName; else the subject's CN).
    pub names: Vec<String>,
    /// Valid from (RFC 3339).
    pub not_before: String,
    /// Valid until (RFC 3339).
    pub not_after: String,
    /// Issued by itself: subject and issuer are the same, and its own key signed it.
    pub self_signed: bool,
    /// A CA certificate (basicConstraints CA:TRUE).
    pub ca: bool,
}

/// The lower-case hex SHA-256 of `der`.
pub fn fingerprint(der: &[u8]) -> String {
    hex(&Sha256::digest(der))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses a pin as people copy it: 64 hex digits, in either case, with or
/// without `:` or spaces between the bytes (openssl prints
/// `sha256 Fingerprint=AB:CD:…`; a `sha256:` prefix is also accepted).
pub fn parse_pin(text: &str) -> Result<[u8; 32], String> {
    let t = text.trim();
    let t = t
        .strip_prefix("sha256:")
        .or_else(|| t.strip_prefix("SHA256:"))
        .or_else(|| t.strip_prefix("sha256 Fingerprint="))
        .unwrap_or(t);
    let digits: String = t.chars().filter(|c| !matches!(c, ':' | ' ')).collect();
    let usage = "give the 64 hex digits of the SHA-256 fingerprint of the server's certificate (the report's certificate.sha256, or `openssl x509 -noout -fingerprint -sha256`)";
    if digits.len() != 64 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("is not a SHA-256 fingerprint: {usage}"));
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&digits[2 * i..2 * i + 2], 16).expect("hex checked");
    }
    Ok(out)
}

/// The pin in the form Herald stores and shows: lower-case hex.
pub fn pin_text(pin: &[u8; 32]) -> String {
    hex(pin)
}

fn rfc3339(t: &x509_parser::time::ASN1Time) -> String {
    t.to_datetime()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

impl PeerCertificate {
    /// Reads a DER certificate; what cannot be parsed is left empty, the
    /// fingerprint is always there.
    pub fn from_der(der: &[u8]) -> PeerCertificate {
        let sha256 = fingerprint(der);
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
            return PeerCertificate {
                sha256,
                subject: "(unreadable certificate)".into(),
                issuer: String::new(),
                names: Vec::new(),
                not_before: String::new(),
                not_after: String::new(),
                self_signed: false,
                ca: false,
            };
        };
        let mut names = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            use x509_parser::extensions::GeneralName;
            for n in &san.value.general_names {
                match n {
                    GeneralName::DNSName(d) => names.push(d.to_string()),
                    GeneralName::IPAddress(ip) => match ip.len() {
                        4 => names.push(std::net::Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]).to_string()),
                        16 => {
                            let a: [u8; 16] = (*ip).try_into().expect("16 bytes");
                            names.push(std::net::Ipv6Addr::from(a).to_string())
                        }
                        _ => {}
                    },
                    _ => {}
                }
            }
        }
        if names.is_empty() {
            names.extend(
                cert.subject()
                    .iter_common_name()
                    .filter_map(|cn| cn.as_str().ok())
                    .map(str::to_string),
            );
        }
        let ca = matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
        PeerCertificate {
            sha256,
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            // Issued by itself: the names match and its own key signed it
            // (a CA and its server may carry the same name).
            self_signed: cert.subject().as_raw() == cert.issuer().as_raw() && cert.verify_signature(None).is_ok(),
            ca,
            names,
            not_before: rfc3339(&cert.validity().not_before),
            not_after: rfc3339(&cert.validity().not_after),
        }
    }

    /// One line for the transcript and logs.
    pub fn summary(&self) -> String {
        format!(
            "subject {}, issuer {}, names [{}], valid {} to {}, sha256 {}",
            self.subject,
            self.issuer,
            self.names.join(", "),
            self.not_before,
            self.not_after,
            self.sha256
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_read_as_people_copy_them() {
        let hex = "ab".repeat(32);
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(parse_pin(&hex).unwrap(), [0xab; 32]);
        assert_eq!(parse_pin(&colons).unwrap(), [0xab; 32]);
        assert_eq!(parse_pin(&format!("sha256 Fingerprint={colons}")).unwrap(), [0xab; 32]);
        assert_eq!(pin_text(&[0xab; 32]), hex);
        assert!(parse_pin("abcd").unwrap_err().contains("64 hex digits"));
        assert!(parse_pin(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn a_self_signed_certificate_is_read_for_the_report() {
        let mut params = rcgen::CertificateParams::new(vec!["mail.example.com".into(), "127.0.0.1".into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "mail.example.com");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let info = PeerCertificate::from_der(cert.der());
        assert_eq!(info.sha256, fingerprint(cert.der()));
        assert_eq!(info.sha256.len(), 64);
        assert_eq!(info.subject, "CN=mail.example.com");
        assert_eq!(info.issuer, info.subject);
        assert!(info.self_signed && info.ca);
        assert_eq!(
            info.names,
            vec!["mail.example.com".to_string(), "127.0.0.1".to_string()]
        );
        assert!(info.not_after > info.not_before, "{info:?}");
    }
}
