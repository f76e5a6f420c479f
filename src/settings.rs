//! Settings of the platform and of each tenant: the default account, the
//! sender display name, the locale, whether the tenant may fall back to the
//! platform sender, who its admins are; and for the platform, how many
//! messages a day each tenant may send through the platform's account.

use crate::domain::{EmailAddress, HeaderText};
use crate::error::{Problems, Result};
use crate::i18n::Locale;
use crate::store::PLATFORM;
use crate::store::Store;
use crate::store::settings::SettingsRow;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Id or name of the account that sends when a message names none.
    pub default_account: Option<String>,
    /// Display name on messages sent for this tenant by the platform sender.
    pub from_name: Option<String>,
    pub locale: Option<String>,
    /// Read-only: HERALD_PUBLIC_URL.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Whether a tenant without an account of its own may use the platform's.
    pub fallback_to_platform: Option<bool>,
    /// Who is told when an account needs attention (authorization expired, failing).
    #[serde(default)]
    pub admin_emails: Option<Vec<String>>,
    /// Platform only: messages per tenant per 24 h through the platform's account.
    #[serde(default)]
    pub tenant_daily_cap: Option<i64>,
    /// Platform only: the proxy every account without one of its own goes
    /// through (SMTP and OAuth2 token requests); its `secret` is write-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<crate::proxy::ProxyDoc>,
}

/// The settings of each tenant and of the platform.
#[derive(Clone)]
pub struct SettingsBook {
    store: Store,
    /// Seals the default proxy's password.
    keys: crate::secrets::Keyring,
    /// HERALD_PUBLIC_URL, shown read-only.
    public_url: String,
}

impl SettingsBook {
    /// The service over the store.
    pub fn new(store: Store, keys: crate::secrets::Keyring, public_url: String) -> SettingsBook {
        SettingsBook {
            store,
            keys,
            public_url,
        }
    }

    fn settings_view(&self, s: &SettingsRow) -> Settings {
        Settings {
            default_account: s.default_account.clone(),
            from_name: s.from_name.clone(),
            locale: Some(s.locale.clone().unwrap_or_else(|| "en".into())),
            public_url: Some(self.public_url.clone()),
            fallback_to_platform: Some(s.fallback_to_platform != 0),
            admin_emails: Some(admin_emails(s)),
            tenant_daily_cap: s.tenant_daily_cap,
            proxy: crate::proxy::ProxySettings::from_stored(s.proxy.as_deref())
                .map(|p| p.view(s.proxy_secret.is_some())),
        }
    }

    /// The tenant's settings (defaults where none were saved).
    pub async fn settings(&self, tenant: &str) -> Result<Settings> {
        Ok(self.settings_view(&self.store.get_settings(tenant).await?))
    }

    /// Replaces the tenant's settings, every field checked.
    pub async fn put_settings(&self, tenant: &str, input: Settings) -> Result<Settings> {
        let mut p = Problems::default();
        let default_account = match input
            .default_account
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            None => None,
            Some(a) => match self.store.find_account(tenant, a).await? {
                Some(row) => Some(row.id),
                None => {
                    p.add(
                        "default_account",
                        format!("no account '{a}' in this tenant: give an id or name from GET /api/v1/accounts"),
                    );
                    None
                }
            },
        };
        let from_name = match input.from_name.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some(n) => p
                .check("from_name", HeaderText::parse(n))
                .map(|h| h.as_str().to_string()),
        };
        let locale = match input.locale.as_deref() {
            None => None,
            Some(l) => p.check(
                "locale",
                Locale::parse(l)
                    .map(|l| l.as_str().to_string())
                    .ok_or_else(|| format!("'{l}' is not one of en, zh-CN")),
            ),
        };
        if let Some(u) = &input.public_url
            && u.trim_end_matches('/') != self.public_url
        {
            p.add(
                "public_url",
                "is set by the server (HERALD_PUBLIC_URL), not through the API",
            );
        }
        let admins: Vec<String> = input
            .admin_emails
            .unwrap_or_default()
            .iter()
            .enumerate()
            .filter_map(|(i, a)| {
                p.check(&format!("admin_emails[{i}]"), EmailAddress::parse(a))
                    .map(|a| a.as_str().to_string())
            })
            .collect();
        if input.tenant_daily_cap.is_some() && tenant != PLATFORM {
            p.add(
                "tenant_daily_cap",
                "is a platform setting: only the platform admin sets it",
            );
        }
        if input.tenant_daily_cap.is_some_and(|c| c < 1) {
            p.add("tenant_daily_cap", "must be at least 1, or left out for no cap");
        }
        let stored = self.store.get_settings(tenant).await?;
        let current_proxy = crate::proxy::ProxySettings::from_stored(stored.proxy.as_deref());
        let proxy = match &input.proxy {
            None => None,
            Some(_) if tenant != PLATFORM => {
                p.add(
                    "proxy",
                    "is a platform setting: only the platform admin sets the default proxy (a tenant sets one per account)",
                );
                None
            }
            Some(doc) => crate::proxy::check(
                "proxy",
                doc,
                current_proxy.as_ref(),
                stored.proxy_secret.is_some(),
                &mut p,
            ),
        };
        if let Some((s, _)) = &proxy
            && s.kind == "none"
        {
            p.add(
                "proxy.kind",
                "none is for an account (connect directly despite the default); leave proxy out for no default proxy",
            );
        }
        p.into_result()?;
        let proxy_secret = match &proxy {
            Some((s, change)) if s.username.is_some() => match change {
                crate::proxy::SecretChange::Set(secret) => Some(self.keys.seal(
                    &crate::proxy::settings_secret_context(tenant),
                    &crate::secrets::Secret::new(secret.as_str()),
                )),
                crate::proxy::SecretChange::Keep => stored.proxy_secret.clone(),
                crate::proxy::SecretChange::Clear => None,
            },
            _ => None,
        };
        let row = SettingsRow {
            tenant_id: tenant.to_string(),
            default_account,
            from_name,
            locale,
            fallback_to_platform: input.fallback_to_platform.unwrap_or(true) as i64,
            updated_at: crate::now_ms(),
            admin_emails: Some(serde_json::to_string(&admins).expect("serializable")),
            tenant_daily_cap: input.tenant_daily_cap,
            proxy: proxy.as_ref().map(|(s, _)| s.to_stored()),
            proxy_secret,
        };
        self.store.put_settings(&row).await?;
        Ok(self.settings_view(&row))
    }
}

/// Who is told when an account needs attention.
pub fn admin_emails(s: &SettingsRow) -> Vec<String> {
    s.admin_emails
        .as_deref()
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_default()
}
