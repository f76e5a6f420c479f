//! The proxy an account's traffic goes through: the account's own
//! (`proxy` on the account), else the platform default (`proxy` in the
//! platform's settings), else none. The same proxy carries the SMTP session
//! (`smtp::ProxyDialer`) and the account's OAuth2 token requests (a reqwest
//! proxy). Its password is write-only: sealed at rest, shown as
//! `secret_set`, masked in transcripts.

use crate::domain::{Account, Hostname};
use crate::error::Problems;
use crate::netguard::NetPolicy;
use crate::secrets::{Keyring, Secret};
use crate::smtp::{ProxyDialer, ProxyKind};
use crate::store::{PLATFORM, Store};
use serde::{Deserialize, Serialize};

/// A proxy as the API takes and shows it (the same shape both ways: what a
/// GET returned can be sent back; `secret_set` is ignored on input, and a
/// masked or absent `secret` keeps the stored one).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyDoc {
    /// `http` (HTTP CONNECT), `socks5`, or `none` (on an account: connect
    /// directly even when the platform has a default proxy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Write-only: the proxy password; never shown.
    #[serde(default, skip_serializing)]
    pub secret: Option<String>,
    /// Read-only: whether a password is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_set: Option<bool>,
}

/// A checked proxy, as stored (JSON) beside its sealed password.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProxySettings {
    /// `http`, `socks5` or `none`.
    pub kind: String,
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub port: u16,
    #[serde(default)]
    pub username: Option<String>,
}

impl ProxySettings {
    /// The stored JSON, read back (a row Herald did not write reads as none).
    pub fn from_stored(json: Option<&str>) -> Option<ProxySettings> {
        json.and_then(|j| serde_json::from_str(j).ok())
    }

    pub fn to_stored(&self) -> String {
        serde_json::to_string(self).expect("serializable")
    }

    /// As the API shows it.
    pub fn view(&self, secret_set: bool) -> ProxyDoc {
        let direct = self.kind == "none";
        ProxyDoc {
            kind: Some(self.kind.clone()),
            host: (!direct).then(|| self.host.clone()),
            port: (!direct).then_some(self.port),
            username: self.username.clone(),
            secret: None,
            secret_set: (!direct).then_some(secret_set),
        }
    }
}

/// What an input does to the stored password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretChange {
    Keep,
    Clear,
    Set(String),
}

/// Whether a secret is only the mask Herald shows (`********`).
fn is_mask(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b == b'*')
}

/// Checks a proxy input at `field` (`proxy`), over the current settings on
/// an edit (absent fields keep their values). Problems are added to `p`.
pub fn check(
    field: &str,
    input: &ProxyDoc,
    current: Option<&ProxySettings>,
    has_secret: bool,
    p: &mut Problems,
) -> Option<(ProxySettings, SecretChange)> {
    let kind = input
        .kind
        .clone()
        .or_else(|| current.map(|c| c.kind.clone()))
        .unwrap_or_default();
    let secret = match input.secret.as_deref() {
        None => SecretChange::Keep,
        Some(s) if is_mask(s) => SecretChange::Keep,
        Some("") => SecretChange::Clear,
        Some(s) => SecretChange::Set(s.to_string()),
    };
    match kind.as_str() {
        "none" => {
            return Some((
                ProxySettings {
                    kind,
                    host: String::new(),
                    port: 0,
                    username: None,
                },
                SecretChange::Clear,
            ));
        }
        "http" | "socks5" => {}
        "" => {
            p.add(
                format!("{field}.kind"),
                "is required: http (HTTP CONNECT proxy), socks5, or none (connect directly)",
            );
            return None;
        }
        other => {
            p.add(
                format!("{field}.kind"),
                format!("'{other}' is not one of http (HTTP CONNECT proxy), socks5, none (connect directly)"),
            );
            return None;
        }
    }
    let same_kind = current.is_some_and(|c| c.kind != "none");
    let host = input
        .host
        .as_deref()
        .map(str::trim)
        .map(str::to_string)
        .or_else(|| current.filter(|_| same_kind).map(|c| c.host.clone()))
        .filter(|h| !h.is_empty());
    let host = match host {
        None => {
            p.add(
                format!("{field}.host"),
                "is required: the proxy's host name or IP address, e.g. proxy.corp.example",
            );
            None
        }
        Some(h) => p.check(
            &format!("{field}.host"),
            Hostname::parse(&h).map(|h| h.as_str().to_string()),
        ),
    };
    let port = input.port.or_else(|| current.filter(|_| same_kind).map(|c| c.port));
    let port = match port {
        None => {
            p.add(
                format!("{field}.port"),
                "is required: the proxy's port, e.g. 3128 or 8080 for HTTP, 1080 for SOCKS5",
            );
            None
        }
        Some(0) => {
            p.add(format!("{field}.port"), "must be between 1 and 65535");
            None
        }
        Some(port) => Some(port),
    };
    let username = match input.username.as_deref() {
        Some(u) => Some(u.trim().to_string()),
        None => current.filter(|_| same_kind).and_then(|c| c.username.clone()),
    }
    .filter(|u| !u.is_empty());
    if let Some(u) = &username {
        if u.contains(['\r', '\n', '\0']) {
            p.add(format!("{field}.username"), "contains a line break or NUL");
        }
        if kind == "socks5" && u.len() > 255 {
            p.add(format!("{field}.username"), "is longer than SOCKS5 allows (255 bytes)");
        }
        if kind == "http" && u.contains(':') {
            p.add(
                format!("{field}.username"),
                "contains ':', which HTTP Basic authentication cannot carry in a username",
            );
        }
    }
    if let SecretChange::Set(s) = &secret {
        if username.is_none() {
            p.add(
                format!("{field}.secret"),
                format!("is given without {field}.username: give the proxy username too"),
            );
        }
        if kind == "socks5" && s.len() > 255 {
            p.add(format!("{field}.secret"), "is longer than SOCKS5 allows (255 bytes)");
        }
    }
    let will_have_secret = match &secret {
        SecretChange::Set(_) => true,
        SecretChange::Clear => false,
        SecretChange::Keep => has_secret,
    };
    if username.is_some() && !will_have_secret {
        p.add(
            format!("{field}.secret"),
            format!(
                "is required with {field}.username: the proxy password (write-only: it is stored encrypted and never shown again)"
            ),
        );
    }
    let secret = if username.is_none() {
        SecretChange::Clear
    } else {
        secret
    };
    Some((
        ProxySettings {
            kind,
            host: host?,
            port: port?,
            username,
        },
        secret,
    ))
}

/// The context an account's proxy password is sealed under.
pub fn account_secret_context(account_id: &str) -> String {
    format!("account:{account_id}:proxy_secret")
}

/// The context a tenant's default proxy password is sealed under.
pub fn settings_secret_context(tenant_id: &str) -> String {
    format!("settings:{tenant_id}:proxy_secret")
}

/// Whose proxy an account uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The account's own: a tenant's, held to the tenant's network policy.
    Account,
    /// The platform's default: the platform admin's choice.
    Platform,
}

/// A proxy with its password opened, ready to dial or to hand to reqwest.
#[derive(Debug, Clone)]
pub struct Route {
    pub dialer: ProxyDialer,
    pub source: Source,
}

fn dialer(s: &ProxySettings, password: Option<Secret>) -> Option<ProxyDialer> {
    Some(ProxyDialer {
        kind: ProxyKind::parse(&s.kind)?,
        host: s.host.clone(),
        port: s.port,
        username: s.username.clone(),
        password,
        // Unrestricted until the caller applies the account's policy.
        net: NetPolicy::unrestricted(),
    })
}

/// The proxy the account's traffic goes through, if any: its own, else
/// the platform's default; `none` on the account means direct.
pub async fn route_for(store: &Store, keys: &Keyring, row: &Account) -> anyhow::Result<Option<Route>> {
    if let Some(own) = ProxySettings::from_stored(row.proxy.as_deref()) {
        let password = match &row.proxy_secret {
            Some(sealed) => Some(keys.open(&account_secret_context(&row.id), sealed)?),
            None => None,
        };
        return Ok(dialer(&own, password).map(|dialer| Route {
            dialer,
            source: Source::Account,
        }));
    }
    let platform = store.get_settings(PLATFORM).await?;
    let Some(default) = ProxySettings::from_stored(platform.proxy.as_deref()) else {
        return Ok(None);
    };
    let password = match &platform.proxy_secret {
        Some(sealed) => Some(keys.open(&settings_secret_context(PLATFORM), sealed)?),
        None => None,
    };
    Ok(dialer(&default, password).map(|dialer| Route {
        dialer,
        source: Source::Platform,
    }))
}

/// The same proxy for reqwest (OAuth2 token requests): `http://` or
/// `socks5h://` (the proxy resolves the name, as for SMTP), with the
/// credentials in the URL's user part.
pub fn reqwest_proxy(d: &ProxyDialer) -> anyhow::Result<reqwest::Proxy> {
    let scheme = match d.kind {
        ProxyKind::Http => "http",
        ProxyKind::Socks5 => "socks5h",
    };
    let host = if d.host.contains(':') {
        format!("[{}]", d.host)
    } else {
        d.host.clone()
    };
    let mut url = reqwest::Url::parse(&format!("{scheme}://{host}:{}", d.port))?;
    if let Some(u) = &d.username {
        url.set_username(u)
            .map_err(|_| anyhow::anyhow!("the proxy username cannot be put in a URL"))?;
        url.set_password(d.password.as_ref().map(Secret::expose))
            .map_err(|_| anyhow::anyhow!("the proxy password cannot be put in a URL"))?;
    }
    Ok(reqwest::Proxy::all(url)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(kind: &str, host: &str, port: u16, user: Option<&str>, secret: Option<&str>) -> ProxyDoc {
        ProxyDoc {
            kind: Some(kind.into()),
            host: Some(host.into()),
            port: Some(port),
            username: user.map(str::to_string),
            secret: secret.map(str::to_string),
            secret_set: None,
        }
    }

    #[test]
    fn a_proxy_is_checked_field_by_field() {
        let mut p = Problems::default();
        assert!(check("proxy", &doc("ftp", "x", 1, None, None), None, false, &mut p).is_none());
        assert_eq!(p.0[0].field, "proxy.kind");
        let mut p = Problems::default();
        check("proxy", &doc("http", "", 0, Some("u"), None), None, false, &mut p);
        let fields: Vec<_> = p.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["proxy.host", "proxy.port", "proxy.secret"]);
        let mut p = Problems::default();
        let (s, secret) = check(
            "proxy",
            &doc("socks5", "proxy.corp.example", 1080, Some("u"), Some("pw")),
            None,
            false,
            &mut p,
        )
        .unwrap();
        assert!(p.0.is_empty());
        assert_eq!(
            (s.kind.as_str(), s.port, secret),
            ("socks5", 1080, SecretChange::Set("pw".into()))
        );
    }

    #[test]
    fn an_edit_keeps_what_it_does_not_name_and_a_mask_keeps_the_secret() {
        let current = ProxySettings {
            kind: "http".into(),
            host: "proxy.corp.example".into(),
            port: 3128,
            username: Some("u".into()),
        };
        let mut p = Problems::default();
        let edit = ProxyDoc {
            port: Some(8080),
            secret: Some("********".into()),
            ..Default::default()
        };
        let (s, secret) = check("proxy", &edit, Some(&current), true, &mut p).unwrap();
        assert!(p.0.is_empty(), "{:?}", p.0);
        assert_eq!(
            (s.host.as_str(), s.port, secret),
            ("proxy.corp.example", 8080, SecretChange::Keep)
        );
    }

    #[test]
    fn reqwest_gets_the_credentials_in_the_url() {
        let d = ProxyDialer {
            kind: ProxyKind::Socks5,
            host: "127.0.0.1".into(),
            port: 1080,
            username: Some("a b".into()),
            password: Some(Secret::new("p@ss")),
            net: NetPolicy::unrestricted(),
        };
        assert!(reqwest_proxy(&d).is_ok());
    }
}
