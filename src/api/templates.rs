//! `/api/v1/templates`: the system email templates, built in or overridden by
//! the caller's tenant; overrides are checked (rendered with sample values)
//! before they are saved.

use super::{Caller, Json};
use crate::error::Result;
use crate::templates::{self, Rendered, TemplateSource, TemplateView, Templates, target};
use axum::extract::{Path, State};
use serde::Deserialize;

type Out<T> = axum::Json<T>;

pub async fn list(caller: Caller, State(templates): State<Templates>) -> Result<Out<Vec<TemplateView>>> {
    Ok(axum::Json(templates.list(&caller.tenant).await?))
}

pub async fn show(
    caller: Caller,
    State(templates): State<Templates>,
    Path((name, locale)): Path<(String, String)>,
) -> Result<Out<TemplateView>> {
    let (name, locale) = target(&name, &locale)?;
    Ok(axum::Json(templates.show(&caller.tenant, name, locale).await?))
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
    State(templates): State<Templates>,
    Path((name, locale)): Path<(String, String)>,
    Json(input): Json<TemplateInput>,
) -> Result<Out<TemplateView>> {
    let (name, locale) = target(&name, &locale)?;
    let source = TemplateSource {
        subject: input.subject,
        text: input.text,
        html: input.html.filter(|h| !h.trim().is_empty()),
    };
    Ok(axum::Json(templates.save(&caller.tenant, name, locale, source).await?))
}

/// Removes the tenant's override and answers the built-in it goes back to
/// (also when there was no override).
pub async fn remove(
    caller: Caller,
    State(templates): State<Templates>,
    Path((name, locale)): Path<(String, String)>,
) -> Result<Out<TemplateView>> {
    let (name, locale) = target(&name, &locale)?;
    Ok(axum::Json(templates.reset(&caller.tenant, name, locale).await?))
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
    State(templates): State<Templates>,
    Path((name, locale)): Path<(String, String)>,
    Json(input): Json<PreviewInput>,
) -> Result<Out<Rendered>> {
    let (name, locale) = target(&name, &locale)?;
    let vars = match input.vars {
        Some(v) => v,
        None => templates::sample_vars(name)?,
    };
    Ok(axum::Json(
        templates.render_template(&caller.tenant, name, locale, &vars).await?,
    ))
}
