//! DKIM keys per sending domain: the list with each key's TXT record to
//! publish and its last DNS check (hint in the page's language), adding a
//! key (RSA-2048 or Ed25519, optional selector), checking the record now,
//! and deleting with a confirmation page. The service is `crate::dkim`.

use super::pages::{Done, notice};
use super::render::{Ctx, Form, Page, field_errors, see_other};
use crate::dkim::{DkimInput, DkimView};
use crate::i18n::Locale;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use minijinja::{Value, context};
use std::collections::BTreeMap;

/// A key as the page shows it: the view, and its hint in the page's language.
fn shown(k: &DkimView, locale: Locale) -> Value {
    let hint = k.hint.as_ref().map(|h| locale.pick(&h.en, &h.zh_cn).to_string());
    context! {
        id => k.id.clone(),
        domain => k.domain.clone(),
        selector => k.selector.clone(),
        algorithm => k.algorithm.as_str(),
        dns_name => k.dns_name.clone(),
        dns_value => k.dns_value.clone(),
        status => k.status.as_str(),
        hint => hint,
        signing => k.signing,
        checked_at => k.checked_at.clone(),
        created_at => k.created_at.clone(),
    }
}

/// The list page with the add form; `extra` carries the form's values and
/// errors after a refused add, or the key just checked.
async fn list_page(ctx: &Ctx, status: StatusCode, extra: Value) -> Page {
    match ctx.app.dkim.list(ctx.tenant()).await {
        Ok(keys) => {
            let keys: Vec<Value> = keys.iter().map(|k| shown(k, ctx.locale)).collect();
            ctx.page_with(
                status,
                "dkim.html",
                "dkim",
                context! { ..extra, ..context! { keys => keys, v => BTreeMap::<String, String>::new() } },
            )
        }
        Err(e) => ctx.error(e),
    }
}

pub async fn list(ctx: Ctx, Query(q): Query<Done>) -> Page {
    let note = notice(&ctx, q.done.as_deref());
    list_page(&ctx, StatusCode::OK, context! { notice => note }).await
}

pub async fn create(form: Form) -> Page {
    let Form { ctx, fields } = form;
    let input = DkimInput {
        domain: Some(fields.get("domain")),
        selector: fields.opt("selector"),
        algorithm: fields.opt("algorithm"),
    };
    match ctx.app.dkim.add(ctx.tenant(), input).await {
        Ok(k) => see_other(&format!("/dkim?done=done_dkim_created#key-{}", k.id)),
        Err(e) => match field_errors(&e) {
            Some(errors) => {
                list_page(
                    &ctx,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    context! { errors => errors, v => fields.values(), adding => true },
                )
                .await
            }
            None => ctx.error(e),
        },
    }
}

/// Looks the record up now and shows the list with that key's result.
pub async fn check(Path(id): Path<String>, form: Form) -> Page {
    let Form { ctx, .. } = form;
    match ctx.app.dkim.check(ctx.tenant(), &id).await {
        Ok(k) => {
            let note = ctx.t(&format!("dkim_checked_{}", k.status.as_str()));
            list_page(&ctx, StatusCode::OK, context! { checked => k.id, notice => note }).await
        }
        Err(e) => ctx.error(e),
    }
}

pub async fn delete_page(ctx: Ctx, Path(id): Path<String>) -> Page {
    match ctx.app.dkim.show(ctx.tenant(), &id).await {
        Ok(k) => {
            // The key that would sign the domain's mail next, if any.
            let next = ctx
                .app
                .dkim
                .list(ctx.tenant())
                .await
                .unwrap_or_default()
                .into_iter()
                .find(|o| o.domain == k.domain && o.id != k.id)
                .map(|o| o.selector);
            ctx.page(
                "dkim_delete.html",
                "dkim",
                context! { k => shown(&k, ctx.locale), next => next },
            )
        }
        Err(e) => ctx.error(e),
    }
}

pub async fn delete(Path(id): Path<String>, form: Form) -> Page {
    let Form { ctx, .. } = form;
    match ctx.app.dkim.remove(ctx.tenant(), &id).await {
        Ok(()) => see_other("/dkim?done=done_deleted"),
        Err(e) => ctx.error(e),
    }
}
