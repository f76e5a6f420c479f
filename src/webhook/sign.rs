//! The signatures each kind of receiver checks, exactly as documented:
//! Standard Webhooks (`webhook-signature: v1,<base64 HMAC-SHA256 of
//! "id.timestamp.body">` keyed by the bytes of `whsec_<base64>`), DingTalk
//! (`timestamp` in ms and `sign` = base64 HMAC-SHA256 of "timestamp\nsecret"
//! keyed by the secret, as query parameters) and Feishu / Lark (`timestamp` in
//! seconds and `sign` = base64 HMAC-SHA256 of nothing, keyed by
//! "timestamp\nsecret", in the body).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The prefix of a Standard Webhooks secret.
pub const WHSEC: &str = "whsec_";

/// A new Standard Webhooks secret: `whsec_` and 32 random bytes in base64.
pub fn new_webhook_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{WHSEC}{}", B64.encode(bytes))
}

/// The key bytes of a `whsec_<base64>` secret, or why it is not one.
pub fn webhook_key(secret: &str) -> Result<Vec<u8>, String> {
    let b64 = secret.strip_prefix(WHSEC).unwrap_or(secret);
    let key = B64
        .decode(b64.trim())
        .map_err(|_| "must be whsec_ followed by base64 (as Standard Webhooks receivers expect)".to_string())?;
    if !(24..=64).contains(&key.len()) {
        return Err(format!(
            "holds {} bytes; Standard Webhooks secrets hold 24 to 64 (leave it out and Herald makes one)",
            key.len()
        ));
    }
    Ok(key)
}

/// `v1,<signature>` for the `webhook-signature` header.
pub fn webhook_signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut signed = format!("{id}.{timestamp}.").into_bytes();
    signed.extend_from_slice(body);
    format!("v1,{}", B64.encode(hmac_sha256(key, &signed)))
}

/// DingTalk's `sign` (before URL encoding) for `timestamp_ms`.
pub fn dingtalk_sign(secret: &str, timestamp_ms: i64) -> String {
    B64.encode(hmac_sha256(
        secret.as_bytes(),
        format!("{timestamp_ms}\n{secret}").as_bytes(),
    ))
}

/// Feishu / Lark's `sign` for `timestamp_secs`.
pub fn feishu_sign(secret: &str, timestamp_secs: i64) -> String {
    B64.encode(hmac_sha256(format!("{timestamp_secs}\n{secret}").as_bytes(), b""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_webhooks_reference_vector() {
        // The test vector of the Standard Webhooks reference libraries.
        let key = webhook_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            webhook_signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn secrets_are_checked_and_generated() {
        let s = new_webhook_secret();
        assert!(s.starts_with("whsec_"));
        assert_eq!(webhook_key(&s).unwrap().len(), 32);
        assert!(webhook_key("whsec_not base64!").is_err());
        assert!(webhook_key("whsec_AAAA").is_err(), "too short");
    }

    #[test]
    fn robot_signatures_are_base64_hmacs() {
        assert_eq!(dingtalk_sign("SECxyz", 1_700_000_000_000).len(), 44);
        assert_eq!(feishu_sign("abc", 1_700_000_000).len(), 44);
        assert_ne!(feishu_sign("abc", 1), feishu_sign("abd", 1));
    }
}
