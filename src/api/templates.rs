//! `/api/v1/templates`: the system email templates, built in or overridden by
//! the caller's tenant; overrides are checked (rendered with sample values)
//! before they are saved.

use super::{Caller, Json};
use crate::app::App;
use crate::error::{Error, Result};
use crate::i18n::Locale;
use crate::store::templates::TemplateRow;
use crate::templates::{self, Rendered, TemplateSource, Variable};
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};

type Out<T> = axum::Json<T>;

/// A template as it is used for the tenant: its override, else the built-in.
#[derive(Serialize)]
pub struct TemplateView {
    name: &'static str,
    locale: &'static str,
    overridden: bool,
    subject: String,
    text: String,
    html: Option<String>,
    /// When the override was saved; null for a built-in.
    updated_at: Option<String>,
    variables: Vec<Variable>,
}

fn view(name: &'static str, locale: Locale, row: Option<&TemplateRow>) -> TemplateView {
    let b = templates::builtin(name).expect("a built-in name");
    let (source, updated_at) = match row {
        Some(r) => (r.source(), Some(crate::rfc3339(r.updated_at))),
        None => (b.source(locale).clone(), None),
    };
    TemplateView {
        name,
        locale: locale.as_str(),
        overridden: row.is_some(),
        subject: source.subject,
        text: source.text,
        html: source.html,
        updated_at,
        variables: b.variables.clone(),
    }
}

/// The template name and locale of a path, or 404.
fn target(name: &str, locale: &str) -> Result<(&'static str, Locale)> {
    let name = templates::BUILTIN.iter().copied().find(|n| *n == name).ok_or_else(|| {
        Error::NotFound(format!(
            "template '{name}' (templates: {})",
            templates::BUILTIN.join(", ")
        ))
    })?;
    let locale =
        Locale::parse(locale).ok_or_else(|| Error::NotFound(format!("locale '{locale}' (locales: en, zh-CN)")))?;
    Ok((name, locale))
}

pub async fn list(caller: Caller, State(app): State<App>) -> Result<Out<Vec<TemplateView>>> {
    let rows = app.store.list_templates(&caller.tenant).await?;
    let mut out = Vec::new();
    for &name in templates::BUILTIN {
        for &locale in templates::LOCALES {
            let row = rows.iter().find(|r| r.name == name && r.locale == locale.as_str());
            out.push(view(name, locale, row));
        }
    }
    Ok(axum::Json(out))
}

pub async fn show(
    caller: Caller,
    State(app): State<App>,
    Path((name, locale)): Path<(String, String)>,
) -> Result<Out<TemplateView>> {
    let (name, locale) = target(&name, &locale)?;
    let row = app.store.get_template(&caller.tenant, name, locale.as_str()).await?;
    Ok(axum::Json(view(name, locale, row.as_ref())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateInput {
    subject: String,
    text: String,
    #[serde(default)]
    html: Option<String>,
}

/// Checks the override (422 naming the part and the line if it does not
/// render with the template's sample values), then saves it.
pub async fn save(
    caller: Caller,
    State(app): State<App>,
    Path((name, locale)): Path<(String, String)>,
    Json(input): Json<TemplateInput>,
) -> Result<Out<TemplateView>> {
    let (name, locale) = target(&name, &locale)?;
    let source = TemplateSource {
        subject: input.subject,
        text: input.text,
        html: input.html.filter(|h| !h.trim().is_empty()),
    };
    templates::check(name, &source)?;
    let row = TemplateRow {
        tenant_id: caller.tenant.clone(),
        name: name.to_string(),
        locale: locale.as_str().to_string(),
        subject: source.subject,
        text: source.text,
        html: source.html,
        updated_at: crate::now_ms(),
    };
    app.store.put_template(&row).await?;
    tracing::info!(tenant = %caller.tenant, template = name, locale = locale.as_str(), "template override saved");
    Ok(axum::Json(view(name, locale, Some(&row))))
}

/// Removes the tenant's override and answers the built-in it goes back to
/// (also when there was no override).
pub async fn remove(
    caller: Caller,
    State(app): State<App>,
    Path((name, locale)): Path<(String, String)>,
) -> Result<Out<TemplateView>> {
    let (name, locale) = target(&name, &locale)?;
    if app.store.delete_template(&caller.tenant, name, locale.as_str()).await? {
        tracing::info!(tenant = %caller.tenant, template = name, locale = locale.as_str(), "template override removed");
    }
    Ok(axum::Json(view(name, locale, None)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PreviewInput {
    #[serde(default)]
    vars: Option<serde_json::Value>,
}

/// Renders the template as the tenant would send it, with the given
/// variables or, without any, the template's sample values.
pub async fn preview(
    caller: Caller,
    State(app): State<App>,
    Path((name, locale)): Path<(String, String)>,
    Json(input): Json<PreviewInput>,
) -> Result<Out<Rendered>> {
    let (name, locale) = target(&name, &locale)?;
    let vars = match input.vars {
        Some(v) => v,
        None => templates::sample_vars(name)?,
    };
    Ok(axum::Json(
        app.render_template(&caller.tenant, name, locale, &vars).await?,
    ))
}
