//! The test email: a real message through the account, synchronously, and a
//! report that says what happened and what to do about it.

use crate::accounts::{self, status};
use crate::app::App;
use crate::catalog::Catalog;
use crate::compose::{self, Draft};
use crate::diagnosis::{Failure, Report};
use crate::domain::{EmailAddress, HeaderText};
use crate::error::{Error, Result};
use crate::i18n::Locale;
use crate::smtp::{Envelope, Transcript};
use std::time::Instant;

/// Subject and body of the test email, in the requested language.
fn test_content(locale: Locale, account_name: &str, host: &str) -> (String, String) {
    let when = crate::rfc3339(crate::now_ms());
    match locale {
        Locale::En => (
            "Herald test email".to_string(),
            format!(
                "Congratulations! Your mail service is configured successfully.\r\n\r\n\
                 This test email was sent by Herald through the account \"{account_name}\" ({host}) at {when}.\r\n\
                 Messages from your platform will now be delivered through this mail service.\r\n"
            ),
        ),
        Locale::ZhCn => (
            "Herald 测试邮件".to_string(),
            format!(
                "恭喜!您的邮件服务已经配置成功。\r\n\r\n\
                 这封测试邮件由 Herald 于 {when} 通过帐户“{account_name}”({host})发送。\r\n\
                 今后平台的邮件将通过此邮件服务发送。\r\n"
            ),
        ),
    }
}

impl App {
    /// Sends a test email through the account and records the outcome on it:
    /// `ready` on success, `failing` with the report as last error otherwise.
    pub async fn test_account(&self, tenant: &str, id_or_name: &str, to: &str, locale: Locale) -> Result<Report> {
        let row = self.find_account(tenant, id_or_name).await?;
        let to = EmailAddress::parse(to).map_err(|m| Error::field("to", m))?;
        let provider = Catalog::get().provider(&row.provider);
        let from = EmailAddress::parse(&row.from_address).map_err(|m| Error::field("from.address", m))?;
        let from_name = row.from_name.as_deref().and_then(|n| HeaderText::parse(n).ok());
        let (subject, body) = test_content(locale, &row.name, &row.host);
        let subject = HeaderText::parse(&subject).expect("fixed subject is one line");
        let message_id = compose::new_message_id(&from);
        let recipients = [to.clone()];
        let content = compose::render(&Draft {
            from: &from,
            from_name: from_name.as_ref(),
            to: &recipients,
            cc: &[],
            subject: &subject,
            text: Some(&body),
            html: None,
            message_id: &message_id,
        });

        let started = Instant::now();
        let transcript = Transcript::default();
        let envelope = Envelope { from, to: vec![to] };
        let outcome: std::result::Result<_, Failure> = async {
            let mut session = self.open_session(&row, &transcript).await?;
            let sent = session.send(&envelope, &content).await;
            session.quit().await;
            sent
        }
        .await;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        let oauth = row.auth_method == "oauth2";
        let report = match &outcome {
            Ok(sent) => Report::success(Some(&sent.reply), transcript.lines(), elapsed_ms),
            Err(f) => Report::failure(f, provider, oauth, locale, transcript.lines(), elapsed_ms),
        };
        self.metrics.record_test(report.ok);
        let report_json = serde_json::to_string(&report).map_err(anyhow::Error::from)?;
        // A revoked grant says so in the words users know, in their language.
        if !report.ok && report.class == Some(crate::catalog::Class::Reauthorize) {
            let message = match locale {
                Locale::En => accounts::EXPIRED_MESSAGE,
                Locale::ZhCn => accounts::EXPIRED_MESSAGE_ZH,
            };
            self.store
                .set_account_status(
                    &row.id,
                    status::AUTHORIZATION_EXPIRED,
                    Some(message),
                    Some(&report_json),
                )
                .await?;
        } else if report.ok {
            self.store
                .set_account_status(&row.id, status::READY, None, Some(&report_json))
                .await?;
        } else {
            let message = format!("{} — {}", report.summary(), report.hint.clone().unwrap_or_default());
            self.store
                .set_account_status(&row.id, status::FAILING, Some(&message), Some(&report_json))
                .await?;
        }
        tracing::info!(account = %row.id, ok = report.ok, stage = report.stage.as_str(), code = ?report.code, elapsed_ms, "test email");
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_says_configured_in_both_languages() {
        let (s, b) = test_content(Locale::En, "Ops", "smtp.example.com");
        assert!(s.contains("test"));
        assert!(b.contains("configured successfully"));
        let (s, b) = test_content(Locale::ZhCn, "Ops", "smtp.example.com");
        assert!(s.contains("测试"));
        assert!(b.contains("邮件服务已经配置成功"));
    }
}
