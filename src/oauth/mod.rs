//! OAuth2 for XOAUTH2 accounts: the settings (Google, Microsoft or any
//! OAuth2 server), the authorization-code flow with state and PKCE, and the
//! callback that stores the tokens. Tokens are refreshed by `tokens`.
//!
//! A state is single-use, expires, and is bound to one account and to that
//! account's OAuth settings as they were when the authorization began: a code
//! meant for another account or another client cannot complete this one.
//! A redirect that names its issuer (RFC 9207 `iss`) must name the account's
//! authorization server, so a response from another server is refused (mix-up).

mod authorize;
pub mod service_account;
pub mod tokens;

pub use authorize::Authorizations;

use crate::catalog::{Catalog, OAuthPreset};
use crate::domain::Account;
use crate::error::{Error, Problems, Result};
use crate::netguard::{AllowList, GuardedResolver, NetPolicy, Refused};
use crate::secrets::{Keyring, Secret};
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    ClientId, ClientSecret, EndpointNotSet, EndpointSet, ExtraTokenFields, RedirectUrl, StandardRevocableToken,
    StandardTokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// How long a started authorization may take before its state expires.
const STATE_TTL_MS: i64 = 15 * 60 * 1000;

/// The issuers Google and Microsoft name in their authorization responses
/// and discovery documents, for accounts on their preset endpoints.
const GOOGLE_ISSUER: &str = "https://accounts.google.com";
const MICROSOFT_ISSUER: &str = "https://login.microsoftonline.com/{tenant}/v2.0";
/// Microsoft's multi-tenant endpoints answer for the user's own directory:
/// this stands for any one directory id in the issuer.
const ANY_TENANT: &str = "{tenantid}";
/// The directory of personal Microsoft accounts (tenant `consumers`).
const CONSUMERS_TENANT: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flow {
    /// A person signs in once; Herald keeps a refresh token.
    AuthorizationCode,
    /// App-only (Microsoft): a new token is requested with the client's own credentials.
    ClientCredentials,
}

/// An account's OAuth2 settings, stored as JSON beside the account. The
/// client secret is sealed separately and never part of this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthSettings {
    /// `google`, `microsoft` or `custom`.
    pub provider: String,
    pub flow: Flow,
    pub client_id: String,
    /// Microsoft's directory (tenant) id; `common` when absent.
    pub tenant_id: Option<String>,
    pub authorize_url: String,
    pub token_url: String,
    pub scope: String,
    /// Extra authorize parameters from the preset (`access_type=offline` …).
    #[serde(default)]
    pub authorize_params: Vec<(String, String)>,
    /// The authorization server's issuer identifier, checked against the `iss`
    /// of the redirect (RFC 9207): configured, or the preset's, or the
    /// authorize URL's origin. Absent in settings stored before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
}

impl OAuthSettings {
    /// Whether `iss` from an authorization response names this account's
    /// authorization server: simple string comparison (RFC 9207 §2.4), where
    /// Microsoft's `{tenantid}` matches one directory id.
    pub fn issued_by(&self, iss: &str) -> bool {
        let Some(expected) = self.issuer.as_deref() else {
            return false;
        };
        match expected.split_once(ANY_TENANT) {
            None => expected == iss,
            Some((head, tail)) => iss
                .strip_prefix(head)
                .and_then(|rest| rest.strip_suffix(tail))
                .is_some_and(|tenant| !tenant.is_empty() && !tenant.contains('/')),
        }
    }
}

/// The OAuth part of an account input; on an edit, absent fields keep their value.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthInput {
    pub provider: Option<String>,
    pub flow: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub tenant_id: Option<String>,
    pub authorize_url: Option<String>,
    pub token_url: Option<String>,
    pub scope: Option<String>,
    /// The issuer identifier; empty derives it again from the endpoints.
    pub issuer: Option<String>,
}

/// The OAuth part of an account as shown: no secret, no token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OAuthView {
    pub provider: String,
    pub flow: Flow,
    pub client_id: String,
    pub client_secret_set: bool,
    pub tenant_id: Option<String>,
    pub authorize_url: String,
    pub token_url: String,
    pub scope: String,
    /// The issuer a redirect's `iss` must name.
    pub issuer: Option<String>,
    /// True once tokens are stored (or, for client credentials, can be requested).
    pub authorized: bool,
    /// When the cached access token expires.
    pub access_token_expires_at: Option<String>,
    /// When the refresh token expires, if the provider said so.
    pub refresh_token_expires_at: Option<String>,
    /// Set when the refresh token expires within 7 days: reauthorize before then.
    pub warning: Option<String>,
}

/// The preset for an OAuth provider name: the account's own catalog entry if
/// it offers that provider, else the first catalog entry that does.
fn preset(account_provider: &str, oauth_provider: &str) -> Option<&'static OAuthPreset> {
    let catalog = Catalog::get();
    catalog
        .provider(account_provider)
        .and_then(|p| p.oauth.as_ref())
        .filter(|o| o.provider == oauth_provider)
        .or_else(|| {
            catalog
                .providers
                .iter()
                .filter_map(|p| p.oauth.as_ref())
                .find(|o| o.provider == oauth_provider)
        })
}

fn check_url(p: &mut Problems, field: &str, url: &str) -> Option<String> {
    match reqwest::Url::parse(url) {
        Ok(u) if u.scheme() == "https" || (u.scheme() == "http" && is_loopback(&u)) => Some(url.to_string()),
        Ok(_) => {
            p.add(
                field,
                "must be an https:// URL (http:// only for a server on this machine)",
            );
            None
        }
        Err(e) => {
            p.add(field, format!("is not a URL ({e})"));
            None
        }
    }
}

fn is_loopback(u: &reqwest::Url) -> bool {
    matches!(u.host_str(), Some("localhost") | Some("127.0.0.1") | Some("[::1]"))
}

/// The issuer of a preset's authorization server for this directory tenant.
fn preset_issuer(oauth_provider: &str, tenant: &str) -> Option<String> {
    match oauth_provider {
        "google" => Some(GOOGLE_ISSUER.to_string()),
        "microsoft" => Some(MICROSOFT_ISSUER.replace(
            "{tenant}",
            match tenant {
                "common" | "organizations" => ANY_TENANT,
                "consumers" => CONSUMERS_TENANT,
                t => t,
            },
        )),
        _ => None,
    }
}

/// The issuer when none is configured: the preset's while the authorize URL
/// is the preset's, else the authorize URL's origin (`https://host[:port]`).
fn default_issuer(preset: Option<&OAuthPreset>, tenant: &str, authorize_url: &str) -> Option<String> {
    preset
        .filter(|o| o.authorize_url.replace("{tenant}", tenant) == authorize_url)
        .and_then(|o| preset_issuer(&o.provider, tenant))
        .or_else(|| {
            reqwest::Url::parse(authorize_url)
                .ok()
                .map(|u| u.origin())
                .filter(|o| o.is_tuple())
                .map(|o| o.ascii_serialization())
        })
}

/// Resolves OAuth input over the current settings (if any): presets fill the
/// endpoints and scope, explicit values override them. All problems at once.
pub fn resolve(account_provider: &str, current: Option<&OAuthSettings>, input: &OAuthInput) -> Result<OAuthSettings> {
    let mut p = Problems::default();
    let provider = input
        .provider
        .clone()
        .or_else(|| current.map(|c| c.provider.clone()))
        .or_else(|| {
            Catalog::get()
                .provider(account_provider)
                .and_then(|c| c.oauth.as_ref())
                .map(|o| o.provider.clone())
        })
        .unwrap_or_else(|| "custom".into());
    if !["google", "microsoft", "custom"].contains(&provider.as_str()) {
        p.add(
            "auth.oauth.provider",
            format!("'{provider}' is not one of google, microsoft, custom"),
        );
    }
    let provider_changed = current.is_some_and(|c| c.provider != provider);
    let keep = |f: fn(&OAuthSettings) -> &str| current.filter(|_| !provider_changed).map(|c| f(c).to_string());
    let flow = match input.flow.as_deref() {
        Some("authorization_code") => Flow::AuthorizationCode,
        Some("client_credentials") => Flow::ClientCredentials,
        Some(other) => {
            p.add(
                "auth.oauth.flow",
                format!("'{other}' is not one of authorization_code, client_credentials"),
            );
            Flow::AuthorizationCode
        }
        None => current.map(|c| c.flow).unwrap_or(Flow::AuthorizationCode),
    };
    let client_id = input
        .client_id
        .clone()
        .or_else(|| keep(|c| &c.client_id))
        .unwrap_or_default()
        .trim()
        .to_string();
    if client_id.is_empty() {
        p.add(
            "auth.oauth.client_id",
            "is required: the client (application) id from the provider's developer console",
        );
    }
    let tenant_id = input
        .tenant_id
        .clone()
        .or_else(|| current.filter(|_| !provider_changed).and_then(|c| c.tenant_id.clone()))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
    if let Some(t) = &tenant_id
        && !t.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        p.add(
            "auth.oauth.tenant_id",
            "must be a directory id (a GUID), a domain, or common / organizations",
        );
    }
    let preset = (provider != "custom")
        .then(|| preset(account_provider, &provider))
        .flatten();
    let tenant = tenant_id.clone().unwrap_or_else(|| "common".into());
    let fill = |url: &str| url.replace("{tenant}", &tenant);
    let authorize_url = input
        .authorize_url
        .clone()
        .or_else(|| keep(|c| &c.authorize_url).filter(|_| input.tenant_id.is_none()))
        .or_else(|| preset.map(|o| fill(&o.authorize_url)))
        .unwrap_or_default();
    let token_url = input
        .token_url
        .clone()
        .or_else(|| keep(|c| &c.token_url).filter(|_| input.tenant_id.is_none()))
        .or_else(|| preset.map(|o| fill(&o.token_url)))
        .unwrap_or_default();
    let default_scope = preset.map(|o| match flow {
        Flow::ClientCredentials => o.client_credentials_scope.clone().unwrap_or_else(|| o.scope.clone()),
        Flow::AuthorizationCode => o.scope.clone(),
    });
    let flow_changed = current.is_some_and(|c| c.flow != flow);
    let scope = input
        .scope
        .clone()
        .or_else(|| keep(|c| &c.scope).filter(|_| !flow_changed))
        .or(default_scope)
        .unwrap_or_default();
    if flow == Flow::AuthorizationCode {
        if authorize_url.is_empty() {
            p.add(
                "auth.oauth.authorize_url",
                "is required for a custom OAuth2 server: its authorization endpoint",
            );
        } else {
            check_url(&mut p, "auth.oauth.authorize_url", &authorize_url);
        }
    }
    if token_url.is_empty() {
        p.add(
            "auth.oauth.token_url",
            "is required for a custom OAuth2 server: its token endpoint",
        );
    } else {
        check_url(&mut p, "auth.oauth.token_url", &token_url);
    }
    if scope.trim().is_empty() {
        p.add(
            "auth.oauth.scope",
            "is required: the scope that grants SMTP sending (e.g. https://mail.google.com/)",
        );
    }
    // Configured, else kept while the authorization server stays the same,
    // else derived again.
    let issuer = match input.issuer.as_deref().map(str::trim) {
        Some("") => None,
        Some(i) => check_url(&mut p, "auth.oauth.issuer", i),
        None => current
            .filter(|_| !provider_changed && input.tenant_id.is_none() && input.authorize_url.is_none())
            .and_then(|c| c.issuer.clone()),
    }
    .or_else(|| default_issuer(preset, &tenant, &authorize_url));
    if flow == Flow::ClientCredentials && provider == "google" {
        p.add(
            "auth.oauth.flow",
            "Google does not offer client credentials for SMTP: use authorization_code",
        );
    }
    p.into_result()?;
    Ok(OAuthSettings {
        provider,
        flow,
        client_id,
        tenant_id,
        authorize_url,
        token_url,
        scope: scope.trim().to_string(),
        authorize_params: preset.map(|o| o.authorize_params.clone()).unwrap_or_default(),
        issuer,
    })
}

/// The account's OAuth settings; settings stored before the issuer existed
/// get the one their endpoints imply.
pub fn settings_of(row: &Account) -> Option<OAuthSettings> {
    let mut s: OAuthSettings = row.oauth.as_deref().and_then(|j| serde_json::from_str(j).ok())?;
    if s.issuer.is_none() {
        let tenant = s.tenant_id.as_deref().unwrap_or("common");
        let preset = (s.provider != "custom")
            .then(|| preset(&row.provider, &s.provider))
            .flatten();
        s.issuer = default_issuer(preset, tenant, &s.authorize_url);
    }
    Some(s)
}

pub fn client_secret_context(account_id: &str) -> String {
    format!("account:{account_id}:oauth_client_secret")
}

pub fn token_context(account_id: &str, kind: &str) -> String {
    format!("account:{account_id}:oauth_{kind}")
}

/// Identifies the settings a state was issued under: provider, client,
/// endpoints, scope and the sealed client secret.
pub fn fingerprint(row: &Account) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(row.oauth.as_deref().unwrap_or("").as_bytes());
    h.update(row.oauth_client_secret.as_deref().unwrap_or(&[]));
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The token response with the fields Microsoft and others add.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Extra {
    pub refresh_token_expires_in: Option<u64>,
}
impl ExtraTokenFields for Extra {}
pub type Tokens = StandardTokenResponse<Extra, BasicTokenType>;

type TokenClient = oauth2::Client<
    BasicErrorResponse,
    Tokens,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// A client for the token endpoint, with the secret sent in the request body
/// (client_secret_post), which Google, Microsoft and most servers accept.
pub fn token_client(s: &OAuthSettings, secret: Option<&Secret>, redirect_uri: Option<&str>) -> Result<TokenClient> {
    let mut c = oauth2::Client::new(ClientId::new(s.client_id.clone()))
        .set_token_uri(
            TokenUrl::new(s.token_url.clone()).map_err(|e| Error::field("auth.oauth.token_url", e.to_string()))?,
        )
        .set_auth_type(oauth2::AuthType::RequestBody);
    if let Some(secret) = secret {
        c = c.set_client_secret(ClientSecret::new(secret.expose().to_string()));
    }
    if let Some(r) = redirect_uri {
        c = c.set_redirect_uri(RedirectUrl::new(r.to_string()).map_err(|e| anyhow::anyhow!("redirect URI: {e}"))?);
    }
    Ok(c)
}

/// HTTP for token endpoints: no redirects (a token endpoint never redirects,
/// and following one could leak the code), bounded time. `net` decides which
/// addresses the endpoint's name may resolve to.
fn http_client(net: NetPolicy) -> reqwest::Client {
    http_builder(net).build().expect("the HTTP client builds")
}

/// The same HTTP client through the account's proxy (`proxy`); `net`
/// decides which addresses the proxy's name may resolve to (the proxy
/// resolves the endpoint's). Header names go out title-cased
/// (`Proxy-Authorization`): some proxies (pproxy among them) read them
/// case-sensitively and answer 407 otherwise.
fn http_client_via(proxy: reqwest::Proxy, net: NetPolicy) -> reqwest::Result<reqwest::Client> {
    http_builder(net).proxy(proxy).http1_title_case_headers().build()
}

fn http_builder(net: NetPolicy) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .use_preconfigured_tls(crate::smtp::tls::https_client_config())
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(GuardedResolver::new(net)))
        .timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("herald/", env!("CARGO_PKG_VERSION")))
}

/// The HTTP clients for token endpoints: the platform's accounts may use an
/// internal authorization server; a tenant's token endpoint must be public
/// (or on the platform's allow list), checked on the address connected to.
#[derive(Clone)]
pub struct TokenHttp {
    platform: reqwest::Client,
    tenants: reqwest::Client,
    tenant_policy: NetPolicy,
}

impl TokenHttp {
    /// Clients for the platform and for tenants, whose hosts must be public or on `allow`.
    pub fn new(allow: Arc<AllowList>) -> TokenHttp {
        let tenant_policy = NetPolicy::restricted(allow);
        TokenHttp {
            platform: http_client(NetPolicy::unrestricted()),
            tenants: http_client(tenant_policy.clone()),
            tenant_policy,
        }
    }

    /// The client for `row`'s requests to `token_url`, or why the URL may not be used.
    pub(crate) fn for_account(&self, row: &Account, token_url: &str) -> std::result::Result<&reqwest::Client, Refused> {
        if row.tenant_id == crate::store::PLATFORM {
            return Ok(&self.platform);
        }
        self.tenant_policy.check_url(token_url)?;
        Ok(&self.tenants)
    }

    /// The client for `row`'s requests to `token_url`, through the account's
    /// proxy when it has one (its own, else the platform default), as its
    /// SMTP goes. A tenant's own proxy must be on an address it may reach.
    pub(crate) async fn for_account_via_proxy(
        &self,
        store: &crate::store::Store,
        keys: &Keyring,
        row: &Account,
        token_url: &str,
    ) -> std::result::Result<reqwest::Client, tokens::TokenProblem> {
        use tokens::TokenProblem;
        let direct = self
            .for_account(row, token_url)
            .map_err(|refused| TokenProblem::Configuration(format!("the token endpoint was not called: {refused}")))?;
        let route = crate::proxy::route_for(store, keys, row)
            .await
            .map_err(|e| TokenProblem::Unavailable(format!("the proxy settings could not be read: {e}")))?;
        let Some(route) = route else {
            return Ok(direct.clone());
        };
        let net = if route.source == crate::proxy::Source::Account && row.tenant_id != crate::store::PLATFORM {
            self.tenant_policy.clone()
        } else {
            NetPolicy::unrestricted()
        };
        let proxy = crate::proxy::reqwest_proxy(&route.dialer)
            .map_err(|e| TokenProblem::Configuration(format!("the proxy cannot be used: {e}")))?;
        http_client_via(proxy, net).map_err(|e| TokenProblem::Configuration(format!("the proxy cannot be used: {e}")))
    }
}

/// What `POST /accounts/{id}/authorize` answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Authorization {
    pub authorize_url: String,
    pub redirect_uri: String,
    pub expires_at: String,
}

/// The outcome of a callback, for the page or the CLI.
#[derive(Debug, Clone, Serialize)]
pub struct Authorized {
    pub account_id: String,
    pub account_name: String,
    pub released_messages: u64,
}

fn client_secret(row: &Account, keys: &Keyring) -> Result<Option<Secret>> {
    match &row.oauth_client_secret {
        Some(sealed) => Ok(Some(keys.open(&client_secret_context(&row.id), sealed)?)),
        None => Ok(None),
    }
}

/// The OAuth view of an account, with token expiry and the warning.
pub async fn oauth_view(store: &crate::store::Store, row: &Account) -> Result<Option<OAuthView>> {
    let Some(s) = settings_of(row).filter(|_| row.auth_method == crate::status::AuthMethod::OAuth2) else {
        return Ok(None);
    };
    let tokens = store.get_tokens(&row.id).await?;
    let now = crate::now_ms();
    let refresh_exp = tokens.as_ref().and_then(|t| t.refresh_expires_at);
    let warning = refresh_exp.filter(|e| *e - now < 7 * 24 * 3600 * 1000).map(|e| {
        format!(
            "The refresh token expires on {}: reauthorize the account before then, or sending stops.",
            crate::rfc3339(e)
        )
    });
    Ok(Some(OAuthView {
        authorized: s.flow == Flow::ClientCredentials
            || tokens
                .as_ref()
                .is_some_and(|t| t.refresh_token.is_some() || t.access_token.is_some()),
        access_token_expires_at: tokens.as_ref().and_then(|t| t.access_expires_at).map(crate::rfc3339),
        refresh_token_expires_at: refresh_exp.map(crate::rfc3339),
        warning,
        client_secret_set: row.oauth_client_secret.is_some(),
        provider: s.provider,
        flow: s.flow,
        client_id: s.client_id,
        tenant_id: s.tenant_id,
        authorize_url: s.authorize_url,
        token_url: s.token_url,
        scope: s.scope,
        issuer: s.issuer,
    }))
}

#[cfg(test)]
mod tests {
    use super::{OAuthInput, resolve};

    fn issuer_of(account_provider: &str, input: OAuthInput) -> Option<String> {
        resolve(account_provider, None, &input).expect("valid settings").issuer
    }

    #[test]
    fn the_issuer_follows_the_authorization_server() {
        let google = OAuthInput {
            client_id: Some("c".into()),
            ..Default::default()
        };
        assert_eq!(
            issuer_of("gmail", google.clone()).as_deref(),
            Some("https://accounts.google.com")
        );
        let microsoft = |tenant: &str| OAuthInput {
            tenant_id: Some(tenant.into()),
            ..google.clone()
        };
        assert_eq!(
            issuer_of("office365", microsoft("contoso.onmicrosoft.com")).as_deref(),
            Some("https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0")
        );
        let custom = OAuthInput {
            provider: Some("custom".into()),
            authorize_url: Some("https://id.example.com:8443/oauth/authorize?x=1".into()),
            token_url: Some("https://id.example.com:8443/oauth/token".into()),
            scope: Some("smtp".into()),
            ..google.clone()
        };
        assert_eq!(
            issuer_of("custom", custom.clone()).as_deref(),
            Some("https://id.example.com:8443")
        );
        let configured = OAuthInput {
            issuer: Some("https://id.example.com/realms/mail".into()),
            ..custom
        };
        assert_eq!(
            issuer_of("custom", configured).as_deref(),
            Some("https://id.example.com/realms/mail")
        );
        // Google's preset client on another authorize URL (a proxy): that server's origin.
        let proxied = OAuthInput {
            authorize_url: Some("https://sso.example.org/authorize".into()),
            ..google
        };
        assert_eq!(issuer_of("gmail", proxied).as_deref(), Some("https://sso.example.org"));
    }

    #[test]
    fn iss_must_name_the_issuer() {
        let input = OAuthInput {
            client_id: Some("c".into()),
            ..Default::default()
        };
        let google = resolve("gmail", None, &input).unwrap();
        assert!(google.issued_by("https://accounts.google.com"));
        assert!(!google.issued_by("https://accounts.google.com/"));
        assert!(!google.issued_by("https://attacker.example"));
        let common = resolve("office365", None, &input).unwrap();
        assert!(common.issued_by("https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0"));
        assert!(!common.issued_by("https://login.microsoftonline.com/v2.0"));
        assert!(!common.issued_by("https://login.microsoftonline.com/a/b/v2.0"));
        assert!(!common.issued_by("https://login.example.com/72f988bf/v2.0"));
    }
}
