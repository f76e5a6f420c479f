//! The delivery log: messages by status, account and time, paged; a
//! message's every attempt; retry and cancel, one or all of a filter.

use super::pages::notice;
use super::render::{Ctx, Form, Page, see_other, urlencode};
use crate::status::MessageStatus;
use crate::store::console::WindowFilter;
use axum::extract::{Path, Query};
use minijinja::context;
use serde::Deserialize;

const PAGE: i64 = 50;

#[derive(Deserialize, Default, Clone)]
pub struct LogQuery {
    status: Option<String>,
    account: Option<String>,
    /// `1h`, `24h`, `7d`, `30d`; all time otherwise.
    window: Option<String>,
    page: Option<i64>,
    done: Option<String>,
    n: Option<u64>,
}

fn window_ms(w: Option<&str>) -> Option<i64> {
    let hours = match w? {
        "1h" => 1,
        "24h" => 24,
        "7d" => 24 * 7,
        "30d" => 24 * 30,
        _ => return None,
    };
    Some(crate::now_ms() - hours * 3_600_000)
}

fn filter_of(q: &LogQuery) -> WindowFilter {
    WindowFilter {
        status: q.status.clone().filter(|s| MessageStatus::parse(s).is_some()),
        account_id: q.account.clone().filter(|a| !a.is_empty()),
        since: window_ms(q.window.as_deref()),
        until: None,
        offset: (q.page.unwrap_or(1).max(1) - 1) * PAGE,
        limit: PAGE + 1,
    }
}

/// The log's query string for a filter (paging keeps it).
fn query_of(q: &LogQuery) -> String {
    let mut parts = Vec::new();
    for (k, v) in [("status", &q.status), ("account", &q.account), ("window", &q.window)] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            parts.push(format!("{k}={}", urlencode(v)));
        }
    }
    parts.join("&")
}

pub async fn list(ctx: Ctx, Query(q): Query<LogQuery>) -> Page {
    let filter = filter_of(&q);
    let rows = match ctx.app.console_users.messages_in_window(ctx.tenant(), &filter).await {
        Ok(r) => r,
        Err(e) => return ctx.error(e),
    };
    let more = rows.len() as i64 > PAGE;
    let messages: Vec<_> = rows
        .iter()
        .take(PAGE as usize)
        .map(|r| ctx.app.outbox.message_view(r, Vec::new()))
        .collect();
    let accounts = ctx.app.accounts.list_accounts(ctx.tenant()).await.unwrap_or_default();
    let names: std::collections::BTreeMap<String, String> =
        accounts.iter().map(|a| (a.id.clone(), a.name.clone())).collect();
    let page = q.page.unwrap_or(1).max(1);
    let mut note = notice(&ctx, q.done.as_deref());
    if let Some(n) = q.n
        && note.is_some()
    {
        note = note.map(|t| t.replace("{n}", &n.to_string()));
    }
    ctx.page(
        "messages.html",
        "messages",
        context! {
            messages => messages,
            accounts => accounts,
            names => names,
            statuses => MessageStatus::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            f => context! { status => q.status.clone(), account => q.account.clone(), window => q.window.clone() },
            query => query_of(&q),
            page => page,
            more => more,
            notice => note,
        },
    )
}

pub async fn show(ctx: Ctx, Path(id): Path<String>, Query(q): Query<LogQuery>) -> Page {
    let m = match ctx.app.outbox.get_message(ctx.tenant(), &id).await {
        Ok(m) => m,
        Err(e) => return ctx.error(e),
    };
    let accounts = ctx.app.accounts.list_accounts(ctx.tenant()).await.unwrap_or_default();
    let names: std::collections::BTreeMap<String, String> =
        accounts.iter().map(|a| (a.id.clone(), a.name.clone())).collect();
    let can_retry = matches!(m.status.as_str(), "failed" | "deferred" | "held" | "cancelled");
    let can_cancel = matches!(m.status.as_str(), "queued" | "deferred" | "held");
    let notice = notice(&ctx, q.done.as_deref());
    ctx.page(
        "message.html",
        "messages",
        context! { m => m, names => names, can_retry => can_retry, can_cancel => can_cancel, notice => notice },
    )
}

pub async fn retry(Path(id): Path<String>, form: Form) -> Page {
    let Form { ctx, .. } = form;
    match ctx.app.outbox.retry_message(ctx.tenant(), &id).await {
        Ok(m) => see_other(&format!("/messages/{}?done=done_retried", m.id)),
        Err(e) => ctx.error(e),
    }
}

pub async fn cancel(Path(id): Path<String>, form: Form) -> Page {
    let Form { ctx, .. } = form;
    match ctx.app.outbox.cancel_message(ctx.tenant(), &id).await {
        Ok(m) => see_other(&format!("/messages/{}?done=done_cancelled", m.id)),
        Err(e) => ctx.error(e),
    }
}

/// Retries (or cancels) every message of the filter that can be: the failed
/// and held ones, for a retry; the queued, deferred and held ones, for a cancel.
pub async fn bulk(form: Form) -> Page {
    let Form { ctx, fields } = form;
    let q = LogQuery {
        status: fields.opt("status"),
        account: fields.opt("account"),
        window: fields.opt("window"),
        ..Default::default()
    };
    let retry = fields.get("action") == "retry";
    let eligible: &[&str] = if retry {
        &["failed", "held"]
    } else {
        &["queued", "deferred", "held"]
    };
    let mut done = 0u64;
    for status in eligible {
        if q.status.as_deref().is_some_and(|s| s != *status) {
            continue;
        }
        let mut filter = filter_of(&q);
        filter.status = Some(status.to_string());
        filter.limit = 10_000;
        let rows = match ctx.app.console_users.messages_in_window(ctx.tenant(), &filter).await {
            Ok(r) => r,
            Err(e) => return ctx.error(e),
        };
        for r in rows {
            let ok = if retry {
                ctx.app.outbox.retry_message(ctx.tenant(), &r.id).await.is_ok()
            } else {
                ctx.app.outbox.cancel_message(ctx.tenant(), &r.id).await.is_ok()
            };
            done += ok as u64;
        }
    }
    let key = if retry {
        "done_bulk_retried"
    } else {
        "done_bulk_cancelled"
    };
    let query = query_of(&q);
    let sep = if query.is_empty() { "" } else { "&" };
    see_other(&format!("/messages?{query}{sep}done={key}&n={done}"))
}
