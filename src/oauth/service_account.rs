//! Google service accounts with domain-wide delegation: the JSON key (checked
//! when saved), and the JWT-bearer grant (RFC 7523) that obtains an access
//! token for the sender (`sub`) with the scope `https://mail.google.com/`,
//! signed RS256 with the key (ring). `tokens` caches and refreshes the token
//! single-flight like any other.

use super::tokens::TokenProblem;
use crate::secrets::Secret;
use base64::Engine;
use serde::Deserialize;
use std::time::Duration;

/// The scope that lets XOAUTH2 send mail as the user.
pub const GMAIL_SCOPE: &str = "https://mail.google.com/";
/// Google's token endpoint, when a key names none.
const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// The grant type of RFC 7523.
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Lifetime asked for the assertion (Google accepts at most an hour).
const ASSERTION_SECS: i64 = 3600;

/// The fields of a service account's JSON key Herald uses.
#[derive(Clone, Deserialize)]
pub struct ServiceAccountKey {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub client_email: String,
    #[serde(default)]
    pub private_key_id: Option<String>,
    pub private_key: String,
    #[serde(default)]
    pub token_uri: Option<String>,
}

impl std::fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("private_key", &"********")
            .finish()
    }
}

impl ServiceAccountKey {
    /// Parses and checks a JSON key; the error says what is wrong with it.
    pub fn parse(json: &str) -> Result<ServiceAccountKey, String> {
        let key: ServiceAccountKey = serde_json::from_str(json).map_err(|e| {
            format!(
                "is not a service account's JSON key ({e}): paste the whole file downloaded from Google Cloud console → IAM & Admin → Service Accounts → Keys → Add key → JSON"
            )
        })?;
        if key.kind.as_deref().is_some_and(|k| k != "service_account") {
            return Err(format!(
                "is a key of type '{}', not 'service_account': create a JSON key of the service account",
                key.kind.as_deref().unwrap_or("")
            ));
        }
        if !key.client_email.contains('@') {
            return Err("has no client_email: paste the service account's JSON key as downloaded".into());
        }
        key.key_pair()?;
        let uri = key.token_uri();
        match reqwest::Url::parse(uri) {
            Ok(u)
                if u.scheme() == "https"
                    || (u.scheme() == "http" && matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"))) => {}
            _ => return Err(format!("has token_uri '{uri}', which is not an https:// URL")),
        }
        Ok(key)
    }

    /// The endpoint the assertion is sent to (and its audience).
    pub fn token_uri(&self) -> &str {
        self.token_uri
            .as_deref()
            .filter(|u| !u.is_empty())
            .unwrap_or(GOOGLE_TOKEN_URI)
    }

    fn key_pair(&self) -> Result<ring::rsa::KeyPair, String> {
        use rustls_pki_types::PrivatePkcs8KeyDer;
        use rustls_pki_types::pem::PemObject;
        let der = PrivatePkcs8KeyDer::from_pem_slice(self.private_key.as_bytes())
            .map_err(|_| "has a private_key that is not a PKCS#8 PEM key (-----BEGIN PRIVATE KEY-----)".to_string())?;
        ring::rsa::KeyPair::from_pkcs8(der.secret_pkcs8_der())
            .map_err(|e| format!("has a private_key that is not a usable RSA key ({e})"))
    }

    /// The signed assertion: `iss` the service account, `sub` the mailbox to
    /// act as, `scope`, `aud` the token endpoint, `iat`/`exp` now and in an hour.
    pub fn assertion(&self, sub: &str, now_secs: i64) -> Result<String, String> {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = &self.private_key_id {
            header["kid"] = kid.clone().into();
        }
        let claims = serde_json::json!({
            "iss": self.client_email,
            "sub": sub,
            "scope": GMAIL_SCOPE,
            "aud": self.token_uri(),
            "iat": now_secs,
            "exp": now_secs + ASSERTION_SECS,
        });
        let signing_input = format!("{}.{}", b64.encode(header.to_string()), b64.encode(claims.to_string()));
        let pair = self.key_pair()?;
        let mut sig = vec![0u8; pair.public().modulus_len()];
        pair.sign(
            &ring::signature::RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            signing_input.as_bytes(),
            &mut sig,
        )
        .map_err(|_| "signing the assertion failed".to_string())?;
        Ok(format!("{signing_input}.{}", b64.encode(sig)))
    }
}

/// A token endpoint's error sorted for a service account: no person can sign
/// in again, so every refusal is a setting to fix, worded with where.
fn problem(code: &str, description: Option<&str>, client_email: &str, sub: &str) -> TokenProblem {
    let detail = match description {
        Some(d) => format!("{code}: {d}"),
        None => code.to_string(),
    };
    match code {
        "unauthorized_client" | "access_denied" => TokenProblem::Configuration(format!(
            "{detail} — {client_email} may not act as {sub}: grant domain-wide delegation for the scope {GMAIL_SCOPE} (Google Admin console → Security → Access and data control → API controls → Manage Domain Wide Delegation)"
        )),
        "invalid_grant" => TokenProblem::Configuration(format!(
            "{detail} — the service account key of {client_email} was refused (deleted or disabled key or account, or {sub} is not a user of the Workspace domain): Google Cloud console → IAM & Admin → Service Accounts → Keys"
        )),
        "invalid_client" | "invalid_scope" | "invalid_request" | "unsupported_grant_type" => {
            TokenProblem::Configuration(format!("{detail} — check auth.service_account_key"))
        }
        _ => TokenProblem::Unavailable(detail),
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    expires_in: Option<u64>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Requests an access token to act as `sub`; the token and its lifetime.
pub async fn request(
    http: &reqwest::Client,
    key: &ServiceAccountKey,
    sub: &str,
) -> Result<(Secret, Duration), TokenProblem> {
    let assertion = key
        .assertion(sub, crate::now_ms() / 1000)
        .map_err(|e| TokenProblem::Configuration(format!("auth.service_account_key {e}")))?;
    let response = http
        .post(key.token_uri())
        .header("accept", "application/json")
        .form(&[("grant_type", JWT_BEARER), ("assertion", assertion.as_str())])
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| {
            let mut msg = e.to_string();
            let mut refused = false;
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg = format!("{msg}: {s}");
                refused |= s.is::<crate::netguard::Refused>();
                src = s.source();
            }
            if refused {
                // Waiting will not help: the endpoint's name points inside the platform.
                return TokenProblem::Configuration(format!("the token endpoint was not called: {msg}"));
            }
            TokenProblem::Unavailable(format!("the token endpoint could not be reached: {msg}"))
        })?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| TokenProblem::Unavailable(format!("the token endpoint's answer was cut: {e}")))?;
    let answer: Option<TokenAnswer> = serde_json::from_slice(&body).ok();
    match answer {
        Some(TokenAnswer {
            access_token: Some(t),
            expires_in,
            ..
        }) if status.is_success() => Ok((Secret::new(t), Duration::from_secs(expires_in.unwrap_or(3600)))),
        Some(TokenAnswer {
            error: Some(code),
            error_description,
            ..
        }) => Err(problem(&code, error_description.as_deref(), &key.client_email, sub)),
        _ => {
            let text: String = String::from_utf8_lossy(&body).chars().take(120).collect();
            Err(TokenProblem::Unavailable(format!(
                "the token endpoint answered HTTP {status} without a token: {text}"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_key_says_what_is_wrong() {
        assert!(ServiceAccountKey::parse("nope").unwrap_err().contains("JSON key"));
        let e = ServiceAccountKey::parse(
            r#"{"type":"service_account","client_email":"a@b.iam.gserviceaccount.com","private_key":"x"}"#,
        )
        .unwrap_err();
        assert!(e.contains("PKCS#8"), "{e}");
        let e = ServiceAccountKey::parse(r#"{"type":"authorized_user","client_email":"a@b","private_key":"x"}"#)
            .unwrap_err();
        assert!(e.contains("authorized_user"), "{e}");
    }

    #[test]
    fn refusals_name_the_fix() {
        let p = problem("unauthorized_client", Some("Client is unauthorized"), "sa@x", "u@y");
        assert!(matches!(&p, TokenProblem::Configuration(m) if m.contains("Domain Wide Delegation")));
        let p = problem("invalid_grant", Some("Invalid JWT Signature."), "sa@x", "u@y");
        assert!(matches!(&p, TokenProblem::Configuration(m) if m.contains("Invalid JWT Signature")));
        assert!(matches!(
            problem("internal_failure", None, "a", "b"),
            TokenProblem::Unavailable(_)
        ));
    }
}
