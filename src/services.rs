//! The services, built once from the configuration and wired together. The
//! edges (`api`, `cli`) reach each service through this struct: axum
//! extracts the one a handler needs (`State<Accounts>` …) through `FromRef`.

use crate::accounts::Accounts;
use crate::channels::Channels;
use crate::config::Config;
use crate::console_users::ConsoleUsers;
use crate::delivery::Worker;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::oauth::Authorizations;
use crate::oauth::tokens::Tokens;
use crate::outbox::Outbox;
use crate::rules::Rules;
use crate::secrets::Keyring;
use crate::settings::SettingsBook;
use crate::store::{PLATFORM, Store};
use crate::templates::Templates;
use crate::tenants::Tenants;
use crate::testmail::TestMail;
use anyhow::Context;
use axum::extract::FromRef;
use std::sync::Arc;
use tokio::sync::Notify;

/// The services, wired once. Handlers extract the one they need
/// (`State<Accounts>` …) through `FromRef`; the CLI calls the same services.
///
/// A clone is one reference count: axum clones its state into every route of
/// every connection, and the services by value are kilobytes.
#[derive(Clone)]
pub struct Services(Arc<Wired>);

/// The services themselves; `Services` derefs to them.
pub struct Wired {
    pub(crate) config: Arc<Config>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) accounts: Accounts,
    pub(crate) outbox: Outbox,
    pub(crate) rules: Rules,
    pub(crate) templates: Templates,
    pub(crate) tenants: Tenants,
    pub(crate) settings: SettingsBook,
    pub(crate) authorizations: Authorizations,
    pub(crate) test_mail: TestMail,
    pub(crate) worker: Worker,
    pub(crate) channels: Channels,
    pub(crate) dkim: crate::dkim::Dkim,
    pub(crate) console_users: ConsoleUsers,
    /// Closed at shutdown; the services hold clones of it.
    store: Store,
}

/// Lets axum extract each service from the wiring (`State<Accounts>` …).
macro_rules! extract {
    ($($field:ident: $ty:ty),+ $(,)?) => {
        $(impl FromRef<Services> for $ty {
            fn from_ref(s: &Services) -> $ty {
                s.$field.clone()
            }
        })+
    };
}

extract!(
    config: Arc<Config>,
    metrics: Arc<Metrics>,
    accounts: Accounts,
    outbox: Outbox,
    rules: Rules,
    templates: Templates,
    tenants: Tenants,
    settings: SettingsBook,
    authorizations: Authorizations,
    test_mail: TestMail,
    worker: Worker,
    channels: Channels,
    dkim: crate::dkim::Dkim,
    console_users: ConsoleUsers,
);

impl std::ops::Deref for Services {
    type Target = Wired;

    fn deref(&self) -> &Wired {
        &self.0
    }
}

impl Services {
    /// Opens the data directory and the database, creating both on first use,
    /// and builds the services.
    pub async fn open(config: Config) -> anyhow::Result<Services> {
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!(
                "creating the data directory {} (HERALD_DATA_DIR)",
                config.data_dir.display()
            )
        })?;
        let keys = Keyring::load_or_create(&config.data_dir, config.secret_key.as_deref())?;
        let store = Store::connect(&config.database_url).await?;
        restrict_database_files(&config.database_url);
        let config = Arc::new(config);
        let metrics = Arc::new(Metrics::default());
        // Wakes the delivery worker when a message is queued or released.
        let wake = Arc::new(Notify::new());
        // Wakes the rules' event feed when an account event was written.
        let events = Arc::new(Notify::new());
        let http = crate::oauth::TokenHttp::new(config.allow_networks.clone());

        let health = Health::new(store.clone(), events.clone(), wake.clone());
        let tokens = Tokens::new(store.clone(), keys.clone(), http.clone(), health.clone());
        let dkim = crate::dkim::Dkim::new(store.clone(), keys.clone(), config.dns_server);
        let connector = crate::connect::Connector::new(
            store.clone(),
            keys.clone(),
            tokens,
            health.clone(),
            config.allow_networks.clone(),
            dkim.clone(),
        );
        let templates = Templates::new(store.clone());
        let outbox = Outbox::new(store.clone(), metrics.clone(), wake.clone(), templates.clone());
        let rules = Rules::new(store.clone(), outbox.clone(), templates.clone(), events);
        let accounts = Accounts::new(store.clone(), keys.clone(), config.redirect_uri(), health.clone());
        // Webhooks and robots: a tenant's requests only to addresses the network policy permits.
        let channel_http =
            crate::webhook::Client::new(crate::netguard::NetPolicy::restricted(config.allow_networks.clone()));
        let channels = Channels::new(store.clone(), keys.clone(), channel_http.clone(), metrics.clone());
        let app = Services(Arc::new(Wired {
            tenants: Tenants::new(store.clone(), rules.clone(), config.admin_token.clone()),
            settings: SettingsBook::new(store.clone(), keys.clone(), config.public_url.clone()),
            authorizations: Authorizations::new(
                store.clone(),
                keys.clone(),
                http,
                config.redirect_uri(),
                health.clone(),
            ),
            test_mail: TestMail::new(
                accounts.clone(),
                templates.clone(),
                connector.clone(),
                health.clone(),
                metrics.clone(),
            ),
            worker: Worker::new(store.clone(), config.clone(), connector, health, metrics.clone(), wake)
                .with_channels(keys.clone(), channel_http),
            channels,
            dkim,
            console_users: ConsoleUsers::new(store.clone(), config.public_url.clone()),
            accounts,
            outbox,
            rules,
            templates,
            metrics,
            config,
            store,
        }));
        app.rules.ensure_system_rules(PLATFORM).await?;
        Ok(app)
    }

    /// Closes the database: the last step of a command or of `serve`.
    pub async fn close(&self) {
        self.store.close().await;
    }
}

/// The SQLite file holds message contents and sealed secrets: owner only.
/// (SQLite gives its -wal and -shm files the database file's mode.)
fn restrict_database_files(url: &str) {
    #[cfg(unix)]
    if let Some(path) = url.strip_prefix("sqlite://") {
        use std::os::unix::fs::PermissionsExt;
        let path = path.split('?').next().unwrap_or(path);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::set_permissions(format!("{path}{suffix}"), std::fs::Permissions::from_mode(0o600));
        }
    }
}
