//! Settings: defaults, then the config file, then the environment. Every
//! setting is checked at start-up, and a bad one is reported by its name.

use anyhow::{Context, bail};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Herald's settings, validated: each names its variable in an error.
#[derive(Debug, Clone)]
pub struct Config {
    /// `HERALD_LISTEN`: where the HTTP server listens.
    pub listen: SocketAddr,
    /// `HERALD_DATA_DIR`: the database (SQLite default) and the secret key.
    pub data_dir: PathBuf,
    /// `HERALD_DATABASE_URL`: `sqlite://…` or `postgres://…`; defaults to
    /// `sqlite://<data_dir>/herald.db`.
    pub database_url: String,
    /// `HERALD_PUBLIC_URL`: the base URL people reach Herald at (OAuth2 redirects, links).
    pub public_url: String,
    /// `HERALD_ADMIN_TOKEN`: when set, accepted as the platform admin's token.
    pub admin_token: Option<String>,
    /// `HERALD_RETRY_MIN_SECS` / `HERALD_RETRY_MAX_SECS`: backoff bounds.
    pub retry_min_secs: u64,
    /// See `retry_min_secs`.
    pub retry_max_secs: u64,
    /// `HERALD_MESSAGE_MAX_AGE_SECS`: a message still undelivered after this fails.
    pub message_max_age_secs: u64,
    /// `HERALD_LEASE_SECS`: how long a worker's claim on a message holds; a
    /// node that died leaves its messages to the others after this. It must
    /// outlast the slowest send, or a message could go out twice.
    pub lease_secs: u64,
    /// `HERALD_LOG_FORMAT`: `text` (default) or `json`.
    pub log_json: bool,
    /// `HERALD_SECRET_KEY`: base64 of 32 bytes, instead of the data directory's
    /// key file; nodes sharing a database must share it.
    pub secret_key: Option<String>,
    /// `HERALD_DNS_SERVER`: the DNS server (`ip:port`) the DKIM check asks,
    /// instead of the system's (resolv.conf).
    pub dns_server: Option<SocketAddr>,
    /// `HERALD_ALLOW_NETWORKS`: networks (CIDR) and host names a tenant's
    /// servers may be on besides public addresses, comma-separated.
    pub allow_networks: std::sync::Arc<crate::netguard::AllowList>,
}

/// The config file's keys: the environment variables' names in lower case
/// without the `HERALD_` prefix.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<String>,
    database_url: Option<String>,
    public_url: Option<String>,
    admin_token: Option<String>,
    retry_min_secs: Option<u64>,
    retry_max_secs: Option<u64>,
    message_max_age_secs: Option<u64>,
    lease_secs: Option<u64>,
    log_format: Option<String>,
    secret_key: Option<String>,
    dns_server: Option<String>,
    allow_networks: Option<String>,
}

/// Where the settings come from; tests pass their own environment.
pub struct Sources<'a> {
    /// A `herald.toml` to read, if any.
    pub config_file: Option<&'a Path>,
    /// The environment: a variable's value by name.
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

impl Config {
    /// Loads from `HERALD_CONFIG` (or `./herald.toml` when present) and the process environment.
    pub fn from_env() -> anyhow::Result<Config> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let explicit = env("HERALD_CONFIG").map(PathBuf::from);
        let default_file = PathBuf::from("herald.toml");
        let file = explicit.or_else(|| default_file.exists().then_some(default_file));
        Config::load(Sources {
            config_file: file.as_deref(),
            env: &env,
        })
    }

    /// The settings from a file and an environment, the environment first.
    pub fn load(src: Sources<'_>) -> anyhow::Result<Config> {
        let file: FileConfig = match src.config_file {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).with_context(|| format!("reading config file {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("config file {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let pick = |var: &str, file: Option<String>| (src.env)(var).or(file);
        let num = |var: &str, file: Option<u64>, default: u64| -> anyhow::Result<u64> {
            match (src.env)(var) {
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .with_context(|| format!("{var}={v:?} is not a whole number of seconds")),
                None => Ok(file.unwrap_or(default)),
            }
        };

        let listen_raw = pick("HERALD_LISTEN", file.listen).unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen: SocketAddr = listen_raw
            .parse()
            .with_context(|| format!("HERALD_LISTEN={listen_raw:?} is not an address:port such as 127.0.0.1:8080"))?;
        let data_dir = PathBuf::from(pick("HERALD_DATA_DIR", file.data_dir).unwrap_or_else(|| "./herald-data".into()));
        let database_url = pick("HERALD_DATABASE_URL", file.database_url)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("herald.db").display()));
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            bail!("HERALD_DATABASE_URL={database_url:?} must start with sqlite:// or postgres://");
        }
        let public_url = pick("HERALD_PUBLIC_URL", file.public_url)
            .unwrap_or_else(|| format!("http://{listen}"))
            .trim_end_matches('/')
            .to_string();
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            bail!("HERALD_PUBLIC_URL={public_url:?} must be an http:// or https:// URL");
        }
        let admin_token = pick("HERALD_ADMIN_TOKEN", file.admin_token);
        if let Some(t) = &admin_token
            && t.len() < 16
        {
            bail!("HERALD_ADMIN_TOKEN is too short: use at least 16 random characters");
        }
        let retry_min_secs = num("HERALD_RETRY_MIN_SECS", file.retry_min_secs, 30)?;
        let retry_max_secs = num("HERALD_RETRY_MAX_SECS", file.retry_max_secs, 3600)?;
        let message_max_age_secs = num("HERALD_MESSAGE_MAX_AGE_SECS", file.message_max_age_secs, 3 * 24 * 3600)?;
        if retry_min_secs == 0 || retry_min_secs > retry_max_secs {
            bail!(
                "HERALD_RETRY_MIN_SECS ({retry_min_secs}) must be at least 1 and not above HERALD_RETRY_MAX_SECS ({retry_max_secs})"
            );
        }
        let lease_secs = num("HERALD_LEASE_SECS", file.lease_secs, 120)?;
        if lease_secs < 2 {
            bail!("HERALD_LEASE_SECS ({lease_secs}) must be at least 2: a claim must outlast the send it covers");
        }
        let log_format = pick("HERALD_LOG_FORMAT", file.log_format).unwrap_or_else(|| "text".into());
        let log_json = match log_format.as_str() {
            "text" => false,
            "json" => true,
            other => bail!("HERALD_LOG_FORMAT={other:?} must be text or json"),
        };
        let secret_key = pick("HERALD_SECRET_KEY", file.secret_key);
        let dns_server = match pick("HERALD_DNS_SERVER", file.dns_server) {
            None => None,
            Some(v) => Some(v.trim().parse::<SocketAddr>().or_else(|_| {
                v.trim()
                    .parse::<std::net::IpAddr>()
                    .map(|ip| SocketAddr::new(ip, 53))
                    .with_context(|| {
                        format!("HERALD_DNS_SERVER={v:?} is not an address such as 192.0.2.53 or 127.0.0.1:5353")
                    })
            })?),
        };
        let allow_raw = pick("HERALD_ALLOW_NETWORKS", file.allow_networks).unwrap_or_default();
        let allow_networks = crate::netguard::AllowList::parse(&allow_raw)
            .map_err(|e| anyhow::anyhow!("HERALD_ALLOW_NETWORKS: {e}; list networks and hosts separated by commas"))?;
        Ok(Config {
            dns_server,
            allow_networks: std::sync::Arc::new(allow_networks),
            secret_key,
            listen,
            data_dir,
            database_url,
            public_url,
            admin_token,
            retry_min_secs,
            retry_max_secs,
            message_max_age_secs,
            lease_secs,
            log_json,
        })
    }

    /// The redirect URI users register at Google or Microsoft.
    pub fn redirect_uri(&self) -> String {
        format!("{}/oauth2/callback", self.public_url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(vars: &[(&str, &str)]) -> anyhow::Result<Config> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let env = move |k: &str| map.get(k).cloned();
        Config::load(Sources {
            config_file: None,
            env: &env,
        })
    }

    #[test]
    fn defaults() {
        let c = load(&[]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.data_dir, PathBuf::from("./herald-data"));
        assert!(c.database_url.starts_with("sqlite://") && c.database_url.ends_with("herald.db"));
        assert_eq!(c.redirect_uri(), "http://127.0.0.1:8080/oauth2/callback");
    }

    #[test]
    fn bad_settings_are_named() {
        let e = load(&[("HERALD_LISTEN", "localhost")]).unwrap_err().to_string();
        assert!(e.contains("HERALD_LISTEN"), "{e}");
        let e = load(&[("HERALD_RETRY_MIN_SECS", "soon")]).unwrap_err().to_string();
        assert!(e.contains("HERALD_RETRY_MIN_SECS"), "{e}");
        let e = load(&[("HERALD_DATABASE_URL", "mysql://x")]).unwrap_err().to_string();
        assert!(e.contains("HERALD_DATABASE_URL"), "{e}");
        let e = load(&[("HERALD_ADMIN_TOKEN", "short")]).unwrap_err().to_string();
        assert!(e.contains("HERALD_ADMIN_TOKEN"), "{e}");
        let e = load(&[("HERALD_ALLOW_NETWORKS", "10.0.0.0/8, not a host")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("HERALD_ALLOW_NETWORKS") && e.contains("not a host"), "{e}");
        let e = load(&[("HERALD_LEASE_SECS", "1")]).unwrap_err().to_string();
        assert!(e.contains("HERALD_LEASE_SECS") && e.contains("at least 2"), "{e}");
        assert_eq!(load(&[]).unwrap().lease_secs, 120);
        let e = load(&[("HERALD_DNS_SERVER", "dns.example")]).unwrap_err().to_string();
        assert!(e.contains("HERALD_DNS_SERVER"), "{e}");
        let c = load(&[("HERALD_DNS_SERVER", "192.0.2.53")]).unwrap();
        assert_eq!(
            c.dns_server,
            Some("192.0.2.53:53".parse().unwrap()),
            "port 53 unless given"
        );
        assert_eq!(load(&[]).unwrap().dns_server, None);
    }
}
