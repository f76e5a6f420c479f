//! DKIM: a key per sending domain of a tenant (RSA-2048 by default, Ed25519
//! on request), the TXT record to publish, a DNS check that it is published
//! and matches, and the signature on every message from that domain
//! (mail-auth, relaxed/relaxed). The private key is sealed at rest. The
//! newest key of a domain signs: a new key with a new selector rotates, and
//! the old one stays listed (and published) until deleted.

use crate::domain::{EmailAddress, Hostname};
use crate::error::{Error, Problems, Result};
use crate::secrets::{Keyring, Secret};
use crate::store::Store;
use crate::store::dkim::DkimRow;
use base64::Engine;
use mail_auth::common::crypto::{DkimKey, Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The headers signed when present (RFC 6376 §5.4.1's recommendations).
const SIGNED_HEADERS: [&str; 9] = [
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "MIME-Version",
    "Content-Type",
];
/// How long a node trusts its cached signing key of a domain: a key added or
/// deleted on another node signs (or stops signing) here within this.
const CACHE_TTL: Duration = Duration::from_secs(30);
/// How long the DNS check waits for an answer.
const DNS_TIMEOUT: Duration = Duration::from_secs(5);

/// The signature algorithm of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Algorithm {
    #[serde(rename = "rsa-sha256")]
    RsaSha256,
    #[serde(rename = "ed25519-sha256")]
    Ed25519Sha256,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::RsaSha256 => "rsa-sha256",
            Algorithm::Ed25519Sha256 => "ed25519-sha256",
        }
    }

    pub fn parse(s: &str) -> Option<Algorithm> {
        match s.trim().to_ascii_lowercase().as_str() {
            "rsa-sha256" | "rsa" => Some(Algorithm::RsaSha256),
            "ed25519-sha256" | "ed25519" => Some(Algorithm::Ed25519Sha256),
            _ => None,
        }
    }

    /// The `k=` tag of the key record.
    fn key_type(self) -> &'static str {
        match self {
            Algorithm::RsaSha256 => "rsa",
            Algorithm::Ed25519Sha256 => "ed25519",
        }
    }
}

/// What the last DNS check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The TXT record carries this key.
    Published,
    /// No TXT record at the name.
    Missing,
    /// A record is there, with another key (or none, or revoked).
    Mismatch,
    /// Never checked, or the last check got no answer.
    Unchecked,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Published => "published",
            Status::Missing => "missing",
            Status::Mismatch => "mismatch",
            Status::Unchecked => "unchecked",
        }
    }

    fn from_stored(s: &str) -> Status {
        match s {
            "published" => Status::Published,
            "missing" => Status::Missing,
            "mismatch" => Status::Mismatch,
            _ => Status::Unchecked,
        }
    }
}

/// A key to create.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkimInput {
    /// The sending domain (the part after @ of the accounts' sender addresses).
    pub domain: Option<String>,
    /// The selector; absent: `herald` and today's date, e.g. `herald20261129`.
    pub selector: Option<String>,
    /// `rsa-sha256` (default, 2048 bits) or `ed25519-sha256`.
    pub algorithm: Option<String>,
}

/// A hint in both languages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hint {
    pub en: String,
    #[serde(rename = "zh-CN")]
    pub zh_cn: String,
}

/// A key as the API shows it: the record to publish, never the private key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DkimView {
    pub id: String,
    pub domain: String,
    pub selector: String,
    pub algorithm: Algorithm,
    /// Where to publish the TXT record: `selector._domainkey.domain`.
    pub dns_name: String,
    /// The TXT record's value: `v=DKIM1; k=rsa; p=…`.
    pub dns_value: String,
    pub status: Status,
    /// What the last check found and what to do, when not published.
    pub hint: Option<Hint>,
    /// True for the key that signs the domain's mail (the newest).
    pub signing: bool,
    pub checked_at: Option<String>,
    pub created_at: String,
}

/// The record name of a key.
pub fn dns_name(selector: &str, domain: &str) -> String {
    format!("{selector}._domainkey.{domain}")
}

/// The record value of a key.
pub fn dns_value(algorithm: Algorithm, public_key: &str) -> String {
    format!("v=DKIM1; k={}; p={public_key}", algorithm.key_type())
}

fn view(row: &DkimRow, signing: bool) -> DkimView {
    let algorithm = Algorithm::parse(&row.algorithm).unwrap_or(Algorithm::RsaSha256);
    let status = Status::from_stored(&row.status);
    DkimView {
        id: row.id.clone(),
        domain: row.domain.clone(),
        selector: row.selector.clone(),
        algorithm,
        dns_name: dns_name(&row.selector, &row.domain),
        dns_value: dns_value(algorithm, &row.public_key),
        status,
        hint: row
            .status_detail
            .as_deref()
            .and_then(|d| serde_json::from_str::<Hint>(d).ok()),
        signing,
        checked_at: row.checked_at.map(crate::rfc3339),
        created_at: crate::rfc3339(row.created_at),
    }
}

fn key_context(id: &str) -> String {
    format!("dkim:{id}:key")
}

/// A selector: DNS labels of letters, digits and hyphens, dot-separated.
fn check_selector(s: &str) -> std::result::Result<String, String> {
    let s = s.trim().to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if s.is_empty() || s.len() > 120 || !s.split('.').all(label_ok) {
        return Err(format!(
            "'{s}' is not a selector: use letters, digits and hyphens (DNS labels), e.g. herald2026"
        ));
    }
    Ok(s)
}

/// The domain in A-labels, lower case.
fn check_domain(d: &str) -> std::result::Result<String, String> {
    let d = d.trim().trim_end_matches('.');
    let host = Hostname::parse(d).map_err(|e| format!("is not a domain: {e}"))?;
    let ascii = idna::domain_to_ascii(host.as_str()).map_err(|_| format!("'{d}' is not a domain name"))?;
    if !ascii.contains('.') {
        return Err(format!(
            "'{d}' is not a sending domain: give the part after @ of the sender address, e.g. example.com"
        ));
    }
    Ok(ascii.to_ascii_lowercase())
}

/// A new key pair: the private key's DER (PKCS#1 for RSA, PKCS#8 for
/// Ed25519) and the `p=` value (SubjectPublicKeyInfo for RSA, the raw key
/// for Ed25519, RFC 8463).
fn generate(algorithm: Algorithm) -> Result<(Vec<u8>, String)> {
    use mail_auth::dkim::generate::DkimKeyPair;
    let b64 = base64::engine::general_purpose::STANDARD;
    let pair = match algorithm {
        Algorithm::RsaSha256 => DkimKeyPair::generate_rsa(2048),
        Algorithm::Ed25519Sha256 => DkimKeyPair::generate_ed25519(),
    }
    .map_err(|e| Error::Internal(anyhow::anyhow!("generating a DKIM key: {e}")))?;
    let (private, public) = pair.into_inner();
    let p = match algorithm {
        Algorithm::RsaSha256 => b64.encode(rsa_spki(&public)),
        Algorithm::Ed25519Sha256 => b64.encode(&public),
    };
    Ok((private, p))
}

/// DER length octets.
fn der_len(n: usize, out: &mut Vec<u8>) {
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
}

fn der(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    der_len(body.len(), &mut out);
    out.extend_from_slice(body);
    out
}

/// A PKCS#1 RSAPublicKey wrapped as the SubjectPublicKeyInfo a DKIM record
/// usually carries (what `openssl rsa -pubout` writes).
fn rsa_spki(pkcs1: &[u8]) -> Vec<u8> {
    // SEQUENCE { OID 1.2.840.113549.1.1.1, NULL }
    const RSA_ALGORITHM: [u8; 15] = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bits = vec![0u8];
    bits.extend_from_slice(pkcs1);
    let mut body = RSA_ALGORITHM.to_vec();
    body.extend(der(0x03, &bits));
    der(0x30, &body)
}

/// The signing key of a stored row.
fn signing_key(algorithm: Algorithm, der: &[u8]) -> std::result::Result<DkimKey, String> {
    match algorithm {
        Algorithm::RsaSha256 => RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(der)))
            .map(DkimKey::Rsa)
            .map_err(|e| e.to_string()),
        Algorithm::Ed25519Sha256 => Ed25519Key::from_pkcs8_der(der)
            .map(DkimKey::Ed25519)
            .map_err(|e| e.to_string()),
    }
}

/// The tags of a TXT record (`v=DKIM1; k=rsa; p=…`), whitespace removed
/// from values (a long `p=` is often folded).
fn tags(record: &str) -> HashMap<String, String> {
    record
        .split(';')
        .filter_map(|t| t.split_once('='))
        .map(|(k, v)| {
            (
                k.trim().to_ascii_lowercase(),
                v.chars().filter(|c| !c.is_whitespace()).collect(),
            )
        })
        .collect()
}

/// What the TXT records at a key's name say about it.
pub fn judge(records: &[String], algorithm: Algorithm, public_key: &str, name: &str) -> (Status, Option<Hint>) {
    let value = dns_value(algorithm, public_key);
    let keys: Vec<HashMap<String, String>> = records
        .iter()
        .map(|r| tags(r))
        .filter(|t| t.contains_key("p") || t.get("v").is_some_and(|v| v.eq_ignore_ascii_case("DKIM1")))
        .collect();
    let matches = |t: &HashMap<String, String>| {
        t.get("p").map(String::as_str) == Some(public_key)
            && t.get("k").map(|k| k.to_ascii_lowercase()).as_deref().unwrap_or("rsa") == algorithm.key_type()
    };
    if keys.iter().any(matches) {
        return (Status::Published, None);
    }
    if records.is_empty() {
        return (
            Status::Missing,
            Some(Hint {
                en: format!(
                    "No TXT record at {name}: publish a TXT record there with the value {value} (at your DNS host), then check again; changes can take up to the record's TTL to appear."
                ),
                zh_cn: format!(
                    "{name} 没有 TXT 记录：请在域名的 DNS 服务商处添加该 TXT 记录，值为 {value}，然后再次检查；新记录可能需要等待 TTL 时间才能生效。"
                ),
            }),
        );
    }
    let revoked = keys.iter().any(|t| t.get("p").is_some_and(String::is_empty));
    let why_en = if keys.is_empty() {
        "the TXT record there is not a DKIM key record"
    } else if revoked {
        "the record there revokes the key (empty p=)"
    } else {
        "the record there holds a different key"
    };
    let why_zh = if keys.is_empty() {
        "该处的 TXT 记录不是 DKIM 公钥记录"
    } else if revoked {
        "该处的记录已吊销此密钥（p= 为空）"
    } else {
        "该处的记录是另一个公钥"
    };
    (
        Status::Mismatch,
        Some(Hint {
            en: format!(
                "{name}: {why_en}. Replace it with exactly {value} (one TXT record; long values may be split into several quoted strings), then check again. Receivers fail the signatures until it matches."
            ),
            zh_cn: format!(
                "{name}：{why_zh}。请把它改为 {value}（一条 TXT 记录；过长的值可拆成多个带引号的字符串），然后再次检查。记录一致之前，收件方会判定签名无效。"
            ),
        }),
    )
}

type SignerCache = HashMap<(String, String), (Instant, Option<Arc<DkimSigner<DkimKey, Done>>>)>;

/// DKIM keys of every tenant: managed through the API and CLI, used by the
/// email channel and the test email to sign.
#[derive(Clone)]
pub struct Dkim {
    store: Store,
    keys: Keyring,
    dns_server: Option<SocketAddr>,
    /// The signer of each (tenant, domain), or none, as of when it was read.
    cache: Arc<Mutex<SignerCache>>,
}

impl Dkim {
    /// Keys sealed with `keys`; the DNS check asks `dns_server` when set.
    pub fn new(store: Store, keys: Keyring, dns_server: Option<SocketAddr>) -> Dkim {
        Dkim {
            store,
            keys,
            dns_server,
            cache: Arc::default(),
        }
    }

    fn forget(&self, tenant: &str, domain: &str) {
        self.cache
            .lock()
            .expect("dkim cache")
            .remove(&(tenant.to_string(), domain.to_string()));
    }

    /// Generates a key for a domain of the tenant; it signs that domain's
    /// mail from now on (older keys stay listed until deleted).
    pub async fn add(&self, tenant: &str, input: DkimInput) -> Result<DkimView> {
        let mut p = Problems::default();
        let domain = match input.domain.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
            None => {
                p.add(
                    "domain",
                    "is required: the sending domain, the part after @ of the sender address, e.g. example.com",
                );
                None
            }
            Some(d) => p.check("domain", check_domain(d)),
        };
        let selector = match input.selector.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            Some(s) => p.check("selector", check_selector(s)),
            None => None,
        };
        let algorithm = match input.algorithm.as_deref() {
            None => Some(Algorithm::RsaSha256),
            Some(a) => p.check(
                "algorithm",
                Algorithm::parse(a).ok_or_else(|| format!("'{a}' is not one of rsa-sha256, ed25519-sha256")),
            ),
        };
        p.into_result()?;
        let (domain, algorithm) = (domain.expect("checked"), algorithm.expect("checked"));
        let existing = self.store.list_dkim(tenant).await?;
        let taken = |s: &str| existing.iter().any(|r| r.domain == domain && r.selector == s);
        let selector = match selector {
            Some(s) if taken(&s) => {
                return Err(Error::field(
                    "selector",
                    format!(
                        "'{s}' is in use for {domain} already: a new key needs a new selector (the old record stays published until you delete the old key)"
                    ),
                ));
            }
            Some(s) => s,
            None => {
                let today = time::OffsetDateTime::now_utc();
                let base = format!(
                    "herald{:04}{:02}{:02}",
                    today.year(),
                    u8::from(today.month()),
                    today.day()
                );
                let mut s = base.clone();
                let mut n = 2;
                while taken(&s) {
                    s = format!("{base}-{n}");
                    n += 1;
                }
                s
            }
        };
        // RSA generation takes a moment of CPU: off the async threads.
        let (private, public) = tokio::task::spawn_blocking(move || generate(algorithm))
            .await
            .map_err(|e| Error::Internal(anyhow::anyhow!("generating a DKIM key: {e}")))??;
        let b64 = base64::engine::general_purpose::STANDARD;
        let id = crate::store::new_id();
        let row = DkimRow {
            private_key: self.keys.seal(&key_context(&id), &Secret::new(b64.encode(&private))),
            id,
            tenant_id: tenant.to_string(),
            domain,
            selector,
            algorithm: algorithm.as_str().to_string(),
            public_key: public,
            status: Status::Unchecked.as_str().to_string(),
            status_detail: None,
            checked_at: None,
            // Strictly after any older key of the domain, so the newest signs.
            created_at: existing
                .iter()
                .map(|r| r.created_at + 1)
                .fold(crate::now_ms(), i64::max),
        };
        self.store.insert_dkim(&row).await.map_err(|e| match e {
            crate::store::StoreError::Duplicate { .. } => Error::field(
                "selector",
                format!(
                    "'{}' is in use for {} already: choose another selector",
                    row.selector, row.domain
                ),
            ),
            e => Error::from(e),
        })?;
        self.forget(tenant, &row.domain);
        tracing::info!(tenant, domain = %row.domain, selector = %row.selector, algorithm = %row.algorithm, "DKIM key created");
        Ok(view(&row, true))
    }

    /// The tenant's keys, newest first within a domain.
    pub async fn list(&self, tenant: &str) -> Result<Vec<DkimView>> {
        let rows = self.store.list_dkim(tenant).await?;
        let mut seen = std::collections::HashSet::new();
        Ok(rows.iter().map(|r| view(r, seen.insert(r.domain.clone()))).collect())
    }

    async fn row(&self, tenant: &str, id: &str) -> Result<DkimRow> {
        self.store
            .get_dkim(tenant, id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("DKIM key '{id}'")))
    }

    async fn is_signing(&self, row: &DkimRow) -> Result<bool> {
        Ok(self
            .store
            .signing_dkim(&row.tenant_id, &row.domain)
            .await?
            .is_some_and(|s| s.id == row.id))
    }

    pub async fn show(&self, tenant: &str, id: &str) -> Result<DkimView> {
        let row = self.row(tenant, id).await?;
        Ok(view(&row, self.is_signing(&row).await?))
    }

    /// Deletes a key; the next newest key of its domain signs from now on
    /// (none: that domain's mail goes out unsigned).
    pub async fn remove(&self, tenant: &str, id: &str) -> Result<()> {
        let row = self.row(tenant, id).await?;
        self.store.delete_dkim(tenant, id).await?;
        self.forget(tenant, &row.domain);
        tracing::info!(tenant, domain = %row.domain, selector = %row.selector, "DKIM key deleted");
        Ok(())
    }

    /// Looks the key's TXT record up and records what it found.
    pub async fn check(&self, tenant: &str, id: &str) -> Result<DkimView> {
        let row = self.row(tenant, id).await?;
        let algorithm = Algorithm::parse(&row.algorithm).unwrap_or(Algorithm::RsaSha256);
        let name = dns_name(&row.selector, &row.domain);
        let (status, hint) = match self.txt(&name).await {
            Ok(records) => judge(&records, algorithm, &row.public_key, &name),
            Err(e) => (
                Status::Unchecked,
                Some(Hint {
                    en: format!(
                        "The DNS lookup of {name} failed ({e}): check again later; if it keeps failing, check the DNS server Herald uses (HERALD_DNS_SERVER or /etc/resolv.conf)."
                    ),
                    zh_cn: format!(
                        "查询 {name} 的 DNS 失败（{e}）：请稍后再次检查；若一直失败，请检查 Herald 使用的 DNS 服务器（HERALD_DNS_SERVER 或 /etc/resolv.conf）。"
                    ),
                }),
            ),
        };
        let detail = hint.as_ref().map(|h| serde_json::to_string(h).expect("serializable"));
        let now = crate::now_ms();
        self.store
            .set_dkim_status(tenant, id, status.as_str(), detail.as_deref(), now)
            .await?;
        tracing::info!(tenant, record = %name, status = status.as_str(), "DKIM record checked");
        let row = DkimRow {
            status: status.as_str().to_string(),
            status_detail: detail,
            checked_at: Some(now),
            ..row
        };
        Ok(view(&row, self.is_signing(&row).await?))
    }

    /// The TXT strings at `name` (each record's strings joined); empty when
    /// there is no record.
    async fn txt(&self, name: &str) -> std::result::Result<Vec<String>, String> {
        use hickory_resolver::proto::rr::{RData, RecordType};
        let resolver = crate::discovery::dns::resolver_at(self.dns_server, DNS_TIMEOUT)?;
        match crate::discovery::dns::lookup(&resolver, name, RecordType::TXT, DNS_TIMEOUT).await {
            Ok(answers) => Ok(answers
                .iter()
                .filter_map(|d| match d {
                    RData::TXT(t) => Some(t.txt_data.iter().map(|s| String::from_utf8_lossy(s)).collect()),
                    _ => None,
                })
                .collect()),
            Err(e) if e == "no record" => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// The signer of the tenant's mail from `domain`, if it has a key.
    async fn signer(&self, tenant: &str, domain: &str) -> Result<Option<Arc<DkimSigner<DkimKey, Done>>>> {
        let key = (tenant.to_string(), domain.to_string());
        if let Some((at, s)) = self.cache.lock().expect("dkim cache").get(&key)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(s.clone());
        }
        let signer = match self.store.signing_dkim(tenant, domain).await? {
            None => None,
            Some(row) => {
                let algorithm = Algorithm::parse(&row.algorithm).unwrap_or(Algorithm::RsaSha256);
                let b64 = base64::engine::general_purpose::STANDARD;
                let der = self.keys.open(&key_context(&row.id), &row.private_key)?;
                let der = b64
                    .decode(der.expose())
                    .map_err(|e| Error::Internal(anyhow::anyhow!("stored DKIM key {}: {e}", row.id)))?;
                let k = signing_key(algorithm, &der)
                    .map_err(|e| Error::Internal(anyhow::anyhow!("stored DKIM key {}: {e}", row.id)))?;
                Some(Arc::new(
                    DkimSigner::from_key(k)
                        .domain(row.domain.clone())
                        .selector(row.selector.clone())
                        .headers(SIGNED_HEADERS)
                        .header_canonicalization(Canonicalization::Relaxed)
                        .body_canonicalization(Canonicalization::Relaxed),
                ))
            }
        };
        self.cache
            .lock()
            .expect("dkim cache")
            .insert(key, (Instant::now(), signer.clone()));
        Ok(signer)
    }

    /// `raw` with a DKIM-Signature in front when the tenant has a key for the
    /// sender's domain; unchanged otherwise. A key that cannot sign is
    /// logged, and the message goes out unsigned rather than not at all.
    pub async fn sign(&self, tenant: &str, from: &EmailAddress, raw: Vec<u8>) -> Vec<u8> {
        let domain = from.ascii_domain().to_ascii_lowercase();
        let signer = match self.signer(tenant, &domain).await {
            Ok(Some(s)) => s,
            Ok(None) => return raw,
            Err(e) => {
                tracing::error!(tenant, domain, error = %e, "the DKIM key could not be loaded; sending unsigned");
                return raw;
            }
        };
        match signer.sign(&raw) {
            Ok(sig) => {
                let mut out = sig.to_header().into_bytes();
                out.extend_from_slice(&raw);
                out
            }
            Err(e) => {
                tracing::error!(tenant, domain, error = %e, "DKIM signing failed; sending unsigned");
                raw
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_and_domains_are_checked() {
        assert_eq!(check_selector("Herald2026").unwrap(), "herald2026");
        assert_eq!(check_selector("s1.mail").unwrap(), "s1.mail");
        assert!(check_selector("bad selector").is_err());
        assert!(check_selector("-x").is_err());
        assert_eq!(check_domain("Bücher.example.").unwrap(), "xn--bcher-kva.example");
        assert!(check_domain("localhost").is_err());
    }

    #[test]
    fn the_check_tells_published_missing_and_mismatch() {
        let name = "s._domainkey.example.com";
        let (s, h) = judge(&[], Algorithm::RsaSha256, "AAA", name);
        assert_eq!(s, Status::Missing);
        assert!(h.unwrap().en.contains("v=DKIM1; k=rsa; p=AAA"));
        let folded = vec!["v=DKIM1; k=rsa;  p=AA A".to_string()];
        assert_eq!(judge(&folded, Algorithm::RsaSha256, "AAA", name).0, Status::Published);
        let other = vec!["v=DKIM1; k=rsa; p=BBB".to_string()];
        let (s, h) = judge(&other, Algorithm::RsaSha256, "AAA", name);
        assert_eq!(s, Status::Mismatch);
        assert!(h.unwrap().zh_cn.contains("另一个公钥"));
        let wrong_kind = vec!["v=DKIM1; k=rsa; p=AAA".to_string()];
        assert_eq!(
            judge(&wrong_kind, Algorithm::Ed25519Sha256, "AAA", name).0,
            Status::Mismatch
        );
        let revoked = vec!["v=DKIM1; p=".to_string()];
        assert!(
            judge(&revoked, Algorithm::RsaSha256, "AAA", name)
                .1
                .unwrap()
                .en
                .contains("revokes")
        );
    }

    #[test]
    fn generated_keys_sign() {
        for alg in [Algorithm::Ed25519Sha256, Algorithm::RsaSha256] {
            let (private, public) = generate(alg).unwrap();
            assert!(!public.is_empty());
            let key = signing_key(alg, &private).unwrap();
            let signer = DkimSigner::from_key(key)
                .domain("example.com")
                .selector("s")
                .headers(SIGNED_HEADERS)
                .header_canonicalization(Canonicalization::Relaxed)
                .body_canonicalization(Canonicalization::Relaxed);
            let sig = signer
                .sign(b"From: a@example.com\r\nSubject: hi\r\n\r\nbody\r\n")
                .unwrap()
                .to_header();
            assert!(sig.starts_with("DKIM-Signature:"), "{sig}");
            assert!(sig.contains(&format!("a={}", alg.as_str())), "{sig}");
            assert!(sig.contains("c=relaxed/relaxed"), "{sig}");
        }
    }
}
