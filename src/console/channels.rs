//! Webhook and chat-robot channels: list, add (the kind's advice about where
//! the robot's URL and signing secret come from), edit with a write-only URL
//! and secret, delete (refused while a rule names the channel), and the test
//! notification with its report in the page's language.

use super::pages::{Done, notice};
use super::render::{Ctx, Fields, Form, Page, field_errors, see_other};
use crate::channels::{ChannelInput, ChannelView};
use crate::status::ChannelKind;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use minijinja::{Value, context};
use std::collections::BTreeMap;

/// The kinds as the form offers them: value, name, and the advice in the page's language.
fn kinds(ctx: &Ctx) -> Vec<Value> {
    ChannelKind::ALL
        .iter()
        .map(|k| {
            let id = k.as_str();
            context! {
                id => id,
                name => ctx.t(&format!("kind_{id}")),
                advice => ctx.t(&format!("channel_advice_{id}")),
                signed => matches!(k, ChannelKind::Webhook | ChannelKind::Dingtalk | ChannelKind::Feishu),
            }
        })
        .collect()
}

/// Kinds whose robots are not signed: the URL is their only secret.
fn unsigned(kind: &str) -> bool {
    matches!(
        ChannelKind::parse(kind),
        Some(ChannelKind::Slack | ChannelKind::Teams | ChannelKind::Wecom)
    )
}

/// The channel input a form describes. The URL and the secret are
/// write-only: empty keeps the stored ones on an edit (an unsigned kind
/// drops a stored secret, which it could not use).
fn input_of(f: &Fields, editing: bool) -> ChannelInput {
    let kind = f.opt("kind");
    let secret = match f.opt("secret") {
        Some(s) => Some(s),
        None if editing && kind.as_deref().is_some_and(unsigned) => Some(String::new()),
        None => None,
    };
    ChannelInput {
        name: Some(f.get("name")),
        kind,
        url: f.opt("url"),
        secret,
        headers: None,
        limits: None,
    }
}

/// The form's values, without the write-only fields.
fn values_of(c: &ChannelView) -> BTreeMap<String, String> {
    let mut v = BTreeMap::new();
    v.insert("name".to_string(), c.name.clone());
    v.insert("kind".to_string(), c.kind.clone());
    v
}

/// The values typed, without the write-only fields (never sent back to the browser).
fn typed(f: &Fields) -> BTreeMap<String, String> {
    let mut v = f.values();
    v.remove("url");
    v.remove("secret");
    v.remove("csrf");
    v
}

pub async fn list(ctx: Ctx, Query(q): Query<Done>) -> Page {
    match ctx.app.channels.list(ctx.tenant()).await {
        Ok(list) => {
            let notice = notice(&ctx, q.done.as_deref());
            ctx.page(
                "channels.html",
                "channels",
                context! { channels => list, notice => notice },
            )
        }
        Err(e) => ctx.error(e),
    }
}

fn form_page(ctx: &Ctx, status: StatusCode, v: BTreeMap<String, String>, extra: Value) -> Page {
    ctx.page_with(
        status,
        "channel_form.html",
        "channels",
        context! { v => v, kinds => kinds(ctx), ..extra },
    )
}

pub async fn new_page(ctx: Ctx) -> Page {
    let mut v = BTreeMap::new();
    v.insert("kind".to_string(), "webhook".to_string());
    form_page(&ctx, StatusCode::OK, v, context! {})
}

pub async fn create(form: Form) -> Page {
    let Form { ctx, fields } = form;
    match ctx.app.channels.create(ctx.tenant(), input_of(&fields, false)).await {
        // A generated webhook secret is shown on this answer only.
        Ok(c) if c.secret.is_some() => {
            let secret = c.secret.clone();
            channel_page(
                &ctx,
                &c.id,
                StatusCode::CREATED,
                context! { generated_secret => secret, notice => ctx.t("done_channel_created") },
            )
            .await
        }
        Ok(c) => see_other(&format!("/channels/{}?done=done_channel_created", c.id)),
        Err(e) => match field_errors(&e) {
            Some(errors) => form_page(
                &ctx,
                StatusCode::UNPROCESSABLE_ENTITY,
                typed(&fields),
                context! { errors => errors },
            ),
            None => ctx.error(e),
        },
    }
}

/// The channel's page: status, the test, the edit form.
async fn channel_page(ctx: &Ctx, id: &str, status: StatusCode, extra: Value) -> Page {
    let c = match ctx.app.channels.get(ctx.tenant(), id).await {
        Ok(c) => c,
        Err(e) => return ctx.error(e),
    };
    let values = values_of(&c);
    // What the handler passes (the form as typed, after a field error) wins.
    ctx.page_with(
        status,
        "channel.html",
        "channels",
        context! {
            ..extra,
            ..context! {
                c => c,
                v => values,
                kinds => kinds(ctx),
            }
        },
    )
}

pub async fn show(ctx: Ctx, Path(id): Path<String>, Query(q): Query<Done>) -> Page {
    let note = notice(&ctx, q.done.as_deref());
    channel_page(&ctx, &id, StatusCode::OK, context! { notice => note }).await
}

pub async fn edit(Path(id): Path<String>, form: Form) -> Page {
    let Form { ctx, fields } = form;
    match ctx.app.channels.edit(ctx.tenant(), &id, input_of(&fields, true)).await {
        Ok(c) => see_other(&format!("/channels/{}?done=done_saved", c.id)),
        Err(e) => match field_errors(&e) {
            Some(errors) => {
                channel_page(
                    &ctx,
                    &id,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    context! { errors => errors, v => typed(&fields) },
                )
                .await
            }
            None => ctx.error(e),
        },
    }
}

pub async fn delete_page(ctx: Ctx, Path(id): Path<String>) -> Page {
    match ctx.app.channels.get(ctx.tenant(), &id).await {
        Ok(c) => ctx.page("channel_delete.html", "channels", context! { c => c }),
        Err(e) => ctx.error(e),
    }
}

/// Deletes the channel; while a rule names it, the service's refusal is shown
/// on the confirmation page.
pub async fn delete(Path(id): Path<String>, form: Form) -> Page {
    let Form { ctx, .. } = form;
    match ctx.app.channels.delete(ctx.tenant(), &id).await {
        Ok(()) => see_other("/channels?done=done_deleted"),
        Err(crate::error::Error::Conflict(m)) => match ctx.app.channels.get(ctx.tenant(), &id).await {
            Ok(c) => ctx.page_with(
                StatusCode::CONFLICT,
                "channel_delete.html",
                "channels",
                context! { c => c, refused => m },
            ),
            Err(e) => ctx.error(e),
        },
        Err(e) => ctx.error(e),
    }
}

/// Sends the test notification and shows the report on the channel's page.
pub async fn test(Path(id): Path<String>, form: Form) -> Page {
    let Form { ctx, .. } = form;
    match ctx
        .app
        .channels
        .test(ctx.tenant(), &id, Some(ctx.locale.as_str()))
        .await
    {
        Ok(report) => channel_page(&ctx, &id, StatusCode::OK, context! { report => report }).await,
        Err(e) => ctx.error(e),
    }
}
