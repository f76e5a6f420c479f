//! The web console: pages rendered on the server (minijinja, autoescaped),
//! served by `herald serve` at `/`, in English and 简体中文. Every page
//! calls the same services as the API; the console's own users and sessions
//! live in `console_users`. Templates, translations and assets are embedded
//! in the binary (`console/`).

mod accounts;
mod auth;
mod channels;
mod dkim;
mod i18n;
mod messages;
mod pages;
mod render;
mod rules;

use crate::services::Services;
use axum::Router;
use axum::routing::{get, post};

/// The console's routes, merged into the server's router next to the API.
pub fn router() -> Router<Services> {
    Router::new()
        .route("/", get(pages::overview))
        .route("/signin", get(auth::signin_page).post(auth::signin))
        .route("/signout", post(auth::signout))
        .route("/setup/{token}", get(auth::setup_page).post(auth::setup))
        .route("/language", post(auth::language))
        .route("/accounts", get(accounts::list))
        .route("/accounts/new", get(accounts::new_page).post(accounts::create))
        .route("/accounts/{id}", get(accounts::show).post(accounts::edit))
        .route(
            "/accounts/{id}/delete",
            get(accounts::delete_page).post(accounts::delete),
        )
        .route("/accounts/{id}/test", post(accounts::test))
        .route("/accounts/{id}/authorize", post(accounts::authorize))
        .route("/accounts/{id}/trust", post(accounts::trust))
        .route("/dkim", get(dkim::list).post(dkim::create))
        .route("/dkim/{id}/check", post(dkim::check))
        .route("/dkim/{id}/delete", get(dkim::delete_page).post(dkim::delete))
        .route("/channels", get(channels::list))
        .route("/channels/new", get(channels::new_page).post(channels::create))
        .route("/channels/{id}", get(channels::show).post(channels::edit))
        .route(
            "/channels/{id}/delete",
            get(channels::delete_page).post(channels::delete),
        )
        .route("/channels/{id}/test", post(channels::test))
        .route("/messages", get(messages::list))
        .route("/messages/bulk", post(messages::bulk))
        .route("/messages/{id}", get(messages::show))
        .route("/messages/{id}/retry", post(messages::retry))
        .route("/messages/{id}/cancel", post(messages::cancel))
        .route("/rules", get(rules::list))
        .route("/rules/new", get(rules::new_page).post(rules::create))
        .route("/rules/{id}", get(rules::show).post(rules::edit))
        .route("/rules/{id}/toggle", post(rules::toggle))
        .route("/rules/{id}/dry-run", post(rules::dry_run))
        .route("/settings", get(pages::settings).post(pages::save_settings))
        .route("/tenants", get(pages::tenants).post(pages::create_tenant))
        .route("/tenants/{id}/delete", post(pages::delete_tenant))
        .route(
            "/tenants/{id}/settings",
            get(pages::tenant_settings).post(pages::save_tenant_settings),
        )
        .route("/templates", get(pages::templates))
        .route(
            "/templates/{name}/{locale}",
            get(pages::template).post(pages::save_template),
        )
        .route("/capture", get(pages::capture))
        .route("/assets/{file}", get(render::asset))
        .layer(axum::middleware::map_response(render::security_headers))
}
