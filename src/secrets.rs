//! Secrets at rest: AES-256-GCM under a key kept in the data directory
//! (mode 0600), a fresh nonce per encryption, and the record and field bound
//! as associated data so a ciphertext cannot be moved to another account.
//!
//! `Secret` wraps a clear secret in memory: its Debug and Display print a
//! mask, so a secret cannot leak through a log line by accident.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use anyhow::{Context, bail};
use std::fmt;
use std::path::Path;

const KEY_FILE: &str = "secret.key";
const NONCE_LEN: usize = 12;
/// Version byte in front of every ciphertext, for key rotation later.
const FORMAT_V1: u8 = 1;

/// A secret in clear, in memory only.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The clear text, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(********)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("********")
    }
}

/// The data directory's key.
#[derive(Clone)]
pub struct Keyring {
    cipher: Aes256Gcm,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Keyring(..)")
    }
}

impl Keyring {
    /// Reads `HERALD_SECRET_KEY` (base64, for nodes sharing PostgreSQL) or the
    /// data directory's key file, creating it (0600) on first use.
    pub fn load_or_create(data_dir: &Path, configured: Option<&str>) -> anyhow::Result<Keyring> {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        if let Some(v) = configured {
            let key = b64.decode(v.trim()).context("HERALD_SECRET_KEY is not base64")?;
            return Keyring::from_bytes(&key).context("HERALD_SECRET_KEY");
        }
        let path = data_dir.join(KEY_FILE);
        if path.exists() {
            check_private(&path)?;
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            let key = b64
                .decode(text.trim())
                .with_context(|| format!("{} is not base64", path.display()))?;
            return Keyring::from_bytes(&key).with_context(|| path.display().to_string());
        }
        std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
        let key: [u8; 32] = rand::random();
        write_private(&path, b64.encode(key).as_bytes())?;
        Keyring::from_bytes(&key)
    }

    pub fn from_bytes(key: &[u8]) -> anyhow::Result<Keyring> {
        if key.len() != 32 {
            bail!("the secret key must be 32 bytes, found {}", key.len());
        }
        let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| anyhow::anyhow!("bad key length"))?;
        Ok(Keyring { cipher })
    }

    /// Encrypts `secret` for the record and field named by `context`.
    pub fn seal(&self, context: &str, secret: &Secret) -> Vec<u8> {
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce_bytes),
                Payload {
                    msg: secret.0.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .expect("AES-GCM encryption does not fail for in-memory buffers");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        out.push(FORMAT_V1);
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&ct);
        out
    }

    pub fn open(&self, context: &str, sealed: &[u8]) -> anyhow::Result<Secret> {
        if sealed.len() < 1 + NONCE_LEN || sealed[0] != FORMAT_V1 {
            bail!("stored secret has an unknown format");
        }
        let (nonce, ct) = sealed[1..].split_at(NONCE_LEN);
        let clear = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| anyhow::anyhow!("stored secret cannot be decrypted with this data directory's key"))?;
        Ok(Secret(String::from_utf8(clear).context("stored secret is not UTF-8")?))
    }
}

/// Writes a file readable by its owner only.
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

fn check_private(path: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            bail!(
                "{} is readable by others (mode {mode:o}): run chmod 600 on it",
                path.display()
            );
        }
    }
    Ok(())
}

/// A random token for API access: 32 bytes, URL-safe base64, with a prefix
/// that makes it recognisable in a leaked-secrets scan.
pub fn new_token() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    format!("hrd_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Tokens are stored as SHA-256 hashes: they are long and random, so a slow
/// hash adds nothing but latency to every request.
pub fn token_hash(token: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(token.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_roundtrip_and_binding() {
        let k = Keyring::from_bytes(&[7u8; 32]).unwrap();
        let s = Secret::new("hunter2");
        let sealed = k.seal("account:1:secret", &s);
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(k.open("account:1:secret", &sealed).unwrap(), s);
        assert!(k.open("account:2:secret", &sealed).is_err(), "bound to its record");
        assert_ne!(sealed, k.seal("account:1:secret", &s), "fresh nonce each time");
    }

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?} {s}").contains("hunter2"));
    }

    #[test]
    fn key_file_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let k1 = Keyring::load_or_create(dir.path(), None).unwrap();
        let k2 = Keyring::load_or_create(dir.path(), None).unwrap();
        let sealed = k1.seal("c", &Secret::new("x"));
        assert_eq!(k2.open("c", &sealed).unwrap().expose(), "x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
