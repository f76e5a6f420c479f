//! The test email: a real message through the account, synchronously, and a
//! report that says what happened and what to do about it.

use crate::accounts::Accounts;
use crate::catalog::Catalog;
use crate::compose::{self, Draft};
use crate::connect::Connector;
use crate::diagnosis::{Failure, Report};
use crate::domain::{EmailAddress, HeaderText};
use crate::error::{Error, Result};
use crate::health::{self, Health, Observation};
use crate::i18n::Locale;
use crate::metrics::Metrics;
use crate::smtp::{Envelope, Transcript};
use crate::templates::Templates;
use std::sync::Arc;
use std::time::Instant;

/// How long a failed test email waits for the sender domain's MX records.
const MX_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// The test email of an account.
#[derive(Clone)]
pub struct TestMail {
    accounts: Accounts,
    templates: Templates,
    connector: Connector,
    health: Health,
    metrics: Arc<Metrics>,
}

impl TestMail {
    /// The service that sends test emails through `connector`.
    pub fn new(
        accounts: Accounts,
        templates: Templates,
        connector: Connector,
        health: Health,
        metrics: Arc<Metrics>,
    ) -> TestMail {
        TestMail {
            accounts,
            templates,
            connector,
            health,
            metrics,
        }
    }

    /// Sends a test email through the account and records the outcome on it:
    /// `ready` on success, `failing` with the report as last error otherwise.
    pub async fn test_account(&self, tenant: &str, id_or_name: &str, to: &str, locale: Locale) -> Result<Report> {
        let row = self.accounts.find_account(tenant, id_or_name).await?;
        let to = EmailAddress::parse(to).map_err(|m| Error::field("to", m))?;
        let provider = Catalog::get().provider_of(&row.provider, &row.host);
        let from = row.from_address.clone();
        let from_name = row.from_name.as_deref().and_then(|n| HeaderText::parse(n).ok());
        // The tenant's own test_email template if it has one; the built-in otherwise.
        let vars =
            serde_json::json!({"account_name": row.name, "host": row.host, "sent_at": crate::rfc3339(crate::now_ms())});
        let rendered = self
            .templates
            .render_template(tenant, "test_email", locale, &vars)
            .await?;
        let subject = HeaderText::parse(&rendered.subject).map_err(|m| Error::field("template.subject", m))?;
        let message_id = compose::new_message_id(&from);
        let recipients = [to.clone()];
        let content = compose::render(&Draft {
            from: &from,
            from_name: from_name.as_ref(),
            to: &recipients,
            cc: &[],
            subject: &subject,
            text: Some(&rendered.text),
            html: rendered.html.as_deref(),
            message_id: &message_id,
        });
        let content = self.connector.sign(&row, content).await;

        let started = Instant::now();
        let transcript = Transcript::default();
        let envelope = Envelope { from, to: vec![to] };
        let outcome: std::result::Result<_, Failure> = async {
            let mut session = self.connector.open_session(&row, &transcript).await?;
            let sent = session.send(&envelope, &content).await;
            session.quit().await;
            sent
        }
        .await;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        let oauth = row.auth_method.uses_tokens();
        let report = match &outcome {
            Ok(sent) => Report::success(Some(&sent.reply), transcript.lines(), elapsed_ms),
            Err(f) => {
                // Typed in by hand on a host the catalog does not know: the
                // sender domain's MX may still say who the provider is.
                let by_mx = match provider {
                    Some(_) => None,
                    None => crate::discovery::provider_by_mx(row.from_address.ascii_domain(), MX_TIMEOUT).await,
                };
                let provider = provider.or_else(|| by_mx.and_then(|id| Catalog::get().provider(&id)));
                Report::failure(f, provider, oauth, locale, transcript.lines(), elapsed_ms)
            }
        };
        self.metrics.record_test(report.ok);
        let report_json = serde_json::to_string(&report).map_err(anyhow::Error::from)?;
        let reauthorize = report.class == Some(crate::catalog::Class::Reauthorize);
        let observation = if report.ok {
            Observation::TestPassed { report: report_json }
        } else {
            // A revoked grant says so in the words users know, in their language.
            let message = match (reauthorize, locale) {
                (true, Locale::En) => health::EXPIRED_MESSAGE.to_string(),
                (true, Locale::ZhCn) => health::EXPIRED_MESSAGE_ZH.to_string(),
                (false, _) => format!("{} — {}", report.summary(), report.hint.clone().unwrap_or_default()),
            };
            Observation::TestFailed {
                reauthorize,
                message,
                report: report_json,
            }
        };
        self.health.observe(&row, observation).await?;
        tracing::info!(account = %row.id, ok = report.ok, stage = report.stage.as_str(), code = ?report.code, elapsed_ms, "test email");
        Ok(report)
    }
}
