//! System email templates: the built-in ones (compiled in from `templates/`,
//! one TOML file per template with its English and Chinese variants, its
//! variables and sample values), per-tenant overrides, and rendering with
//! MiniJinja (Jinja2 syntax).
//!
//! The HTML body is autoescaped, the subject and the text body are not. An
//! undefined variable renders empty; a syntax or runtime error is refused
//! with the line it is on, and a fuel limit stops runaway templates. An
//! override is rendered with the sample values before it is saved, so a
//! template that does not render is refused then, not at delivery.
//!
//! | template | variables |
//! |---|---|
//! | `activation` | `name` (optional), `product`, `link`, `expires_in_hours` (optional) |
//! | `password_reset` | `name` (optional), `product`, `link`, `code` (optional) |
//! | `test_email` | `account_name`, `host`, `sent_at` (optional, RFC 3339) |
//! | `authorization_expired` | `account_name`, `tenant_name` (optional), `reauthorize_url` (optional) |
//! | `event_notification` | `event` {`type`, `severity`, `source`, `title`, `message`, `data`}, `suppressed` (events the throttle held back; a sentence only when > 0), `rule_name` |

use crate::error::{Error, FieldError, Result};
use crate::i18n::Locale;
use crate::store::Store;
use crate::store::templates::TemplateRow;
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// The built-in templates, by name.
pub const BUILTIN: &[&str] = &[
    "activation",
    "password_reset",
    "test_email",
    "authorization_expired",
    "event_notification",
];

/// The locales every built-in template comes in.
pub const LOCALES: &[Locale] = &[Locale::En, Locale::ZhCn];

/// The data files, in the order of `BUILTIN`.
const FILES: [&str; 5] = [
    include_str!("../templates/activation.toml"),
    include_str!("../templates/password_reset.toml"),
    include_str!("../templates/test_email.toml"),
    include_str!("../templates/authorization_expired.toml"),
    include_str!("../templates/event_notification.toml"),
];

/// Instructions one rendering may execute: plenty for an event with a large
/// `data`, a hard stop for a loop that would run for minutes.
const FUEL: u64 = 100_000;
/// The most one rendered part may be.
const MAX_OUTPUT: usize = 512 * 1024;
/// The most a template's subject source may be.
const MAX_SUBJECT_SOURCE: usize = 2_000;
/// The most a template's text or HTML source may be.
const MAX_BODY_SOURCE: usize = 256 * 1024;

/// A rendered email: a one-line subject, a text body and maybe an HTML body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
}

/// The source of one template in one locale, built in or a tenant's override.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateSource {
    pub subject: String,
    pub text: String,
    #[serde(default)]
    pub html: Option<String>,
}

/// A tenant's replacement for a built-in template (all parts are replaced:
/// an override without `html` sends text only).
pub type TemplateOverride = TemplateSource;

/// A variable a template uses, as documented in its data file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variable {
    pub name: String,
    pub description: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    variables: Vec<Variable>,
    sample: serde_json::Value,
    en: TemplateSource,
    #[serde(rename = "zh-CN")]
    zh_cn: TemplateSource,
}

/// One built-in template: its variables, sample values and both locales.
pub struct Builtin {
    pub variables: Vec<Variable>,
    pub sample: serde_json::Value,
    en: TemplateSource,
    zh_cn: TemplateSource,
}

impl Builtin {
    pub fn source(&self, locale: Locale) -> &TemplateSource {
        match locale {
            Locale::En => &self.en,
            Locale::ZhCn => &self.zh_cn,
        }
    }
}

fn builtins() -> &'static BTreeMap<&'static str, Builtin> {
    static ALL: OnceLock<BTreeMap<&'static str, Builtin>> = OnceLock::new();
    ALL.get_or_init(|| {
        BUILTIN
            .iter()
            .zip(FILES)
            .map(|(&name, text)| {
                let f: File = toml::from_str(text).unwrap_or_else(|e| panic!("templates/{name}.toml: {e}"));
                let b = Builtin {
                    variables: f.variables,
                    sample: f.sample,
                    en: f.en,
                    zh_cn: f.zh_cn,
                };
                (name, b)
            })
            .collect()
    })
}

fn names() -> String {
    BUILTIN.join(", ")
}

/// The built-in template of that name; an unknown name is refused on the
/// field `template`.
pub fn builtin(name: &str) -> Result<&'static Builtin> {
    builtins()
        .get(name)
        .ok_or_else(|| Error::field("template", format!("'{name}' is not one of {}", names())))
}

/// Values to render a template with when none are given (previews, checks).
pub fn sample_vars(name: &str) -> Result<serde_json::Value> {
    Ok(builtin(name)?.sample.clone())
}

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html") {
                AutoEscape::Html
            } else {
                AutoEscape::None
            }
        });
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        env.set_fuel(Some(FUEL));
        // Block tags on their own line leave no blank line behind.
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_keep_trailing_newline(true);
        env.set_formatter(format_value);
        env
    })
}

/// Prints a value: null as nothing (like an undefined value), and in HTML
/// escapes `& < > " '` (not `/`, so links stay readable in the source).
fn format_value(
    out: &mut minijinja::Output,
    state: &minijinja::State,
    value: &minijinja::Value,
) -> std::result::Result<(), minijinja::Error> {
    if value.is_none() {
        return Ok(());
    }
    if state.auto_escape() != AutoEscape::Html || value.is_safe() {
        return minijinja::escape_formatter(out, state, value);
    }
    let text = value.to_string();
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    out.write_str(&escaped).map_err(minijinja::Error::from)
}

/// Which part of a template, and how its problems are named: `template.text`
/// when a message is rendered, `text` when an override's body is checked.
#[derive(Clone, Copy)]
enum Part {
    Subject,
    Text,
    Html,
}

impl Part {
    fn key(self) -> &'static str {
        match self {
            Part::Subject => "subject",
            Part::Text => "text",
            Part::Html => "html",
        }
    }

    /// The name the engine knows the part by: `.html` turns autoescaping on.
    fn file(self) -> &'static str {
        match self {
            Part::Subject => "subject.txt",
            Part::Text => "text.txt",
            Part::Html => "body.html",
        }
    }
}

/// What the engine said, with the line it is about.
fn describe(e: &minijinja::Error) -> String {
    let what = match (e.kind(), e.detail()) {
        (ErrorKind::SyntaxError, Some(d)) => d.to_string(),
        (kind, Some(d)) => format!("{kind}: {d}"),
        (kind, None) => kind.to_string(),
    };
    match e.line() {
        Some(line) => format!("line {line}: {what}"),
        None => what,
    }
}

fn render_part(part: Part, source: &str, ctx: &minijinja::Value, prefix: &str) -> Result<String, FieldError> {
    let field = format!("{prefix}{}", part.key());
    let out = env()
        .render_named_str(part.file(), source, ctx)
        .map_err(|e| FieldError::new(&field, describe(&e)))?;
    if out.len() > MAX_OUTPUT {
        return Err(FieldError::new(
            field,
            format!("renders to more than {} KiB", MAX_OUTPUT / 1024),
        ));
    }
    Ok(out)
}

/// Renders every part, reporting all problems at once. `prefix` names the
/// fields (`template.` for a message, empty for an override being saved).
fn render_source(source: &TemplateSource, vars: &serde_json::Value, prefix: &str) -> Result<Rendered> {
    let vars = match vars {
        serde_json::Value::Null => serde_json::Value::Object(Default::default()),
        serde_json::Value::Object(_) => vars.clone(),
        _ => return Err(Error::field("vars", "must be a JSON object")),
    };
    let ctx = minijinja::Value::from_serialize(&vars);
    let mut problems = Vec::new();
    let mut keep = |r: std::result::Result<String, FieldError>| match r {
        Ok(s) => Some(s),
        Err(e) => {
            problems.push(e);
            None
        }
    };
    let subject = keep(render_part(Part::Subject, &source.subject, &ctx, prefix));
    let text = keep(render_part(Part::Text, &source.text, &ctx, prefix));
    let html = match &source.html {
        Some(h) => keep(render_part(Part::Html, h, &ctx, prefix)).map(Some),
        None => Some(None),
    };
    let subject = subject.and_then(|s| {
        let s = s.trim();
        if s.contains(['\r', '\n']) {
            problems.push(FieldError::new(
                "subject",
                "renders to more than one line: a subject must be a single line",
            ));
            return None;
        }
        match crate::domain::HeaderText::parse(s) {
            Ok(h) => Some(h.as_str().to_string()),
            Err(m) => {
                problems.push(FieldError::new("subject", format!("renders to a value that {m}")));
                None
            }
        }
    });
    match (subject, text, html) {
        (Some(subject), Some(text), Some(html)) if problems.is_empty() => Ok(Rendered { subject, text, html }),
        _ => Err(Error::Invalid(problems)),
    }
}

/// Renders the template `name` in `locale` with `vars` (a JSON object),
/// from the tenant's override when there is one, else the built-in.
pub fn render(
    name: &str,
    locale: Locale,
    vars: &serde_json::Value,
    override_: Option<&TemplateOverride>,
) -> Result<Rendered> {
    let b = builtin(name)?;
    let source = override_.unwrap_or_else(|| b.source(locale));
    render_source(source, vars, "template.")
}

/// Checks an override before it is saved: sizes, then a rendering with the
/// template's sample values, so a syntax error (or a runtime error the
/// samples reach) is refused now, naming `subject`, `text` or `html` and the
/// line. Answers the sample rendering.
pub fn check(name: &str, source: &TemplateOverride) -> Result<Rendered> {
    let b = builtin(name)?;
    let mut problems = Vec::new();
    if source.subject.trim().is_empty() {
        problems.push(FieldError::new("subject", "is empty"));
    }
    if source.text.trim().is_empty() {
        problems.push(FieldError::new("text", "is empty"));
    }
    let sizes = [
        ("subject", source.subject.len(), MAX_SUBJECT_SOURCE),
        ("text", source.text.len(), MAX_BODY_SOURCE),
        ("html", source.html.as_deref().map_or(0, str::len), MAX_BODY_SOURCE),
    ];
    for (field, len, max) in sizes {
        if len > max {
            problems.push(FieldError::new(field, format!("is longer than {max} bytes")));
        }
    }
    if !problems.is_empty() {
        return Err(Error::Invalid(problems));
    }
    render_source(source, &b.sample, "")
}

/// A template as it is used for a tenant: its override, else the built-in.
#[derive(Debug, Serialize)]
pub struct TemplateView {
    pub name: &'static str,
    pub locale: &'static str,
    pub overridden: bool,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    /// When the override was saved; null for a built-in.
    pub updated_at: Option<String>,
    pub variables: Vec<Variable>,
}

fn row_source(r: &TemplateRow) -> TemplateSource {
    TemplateSource {
        subject: r.subject.clone(),
        text: r.text.clone(),
        html: r.html.clone(),
    }
}

fn view(name: &'static str, locale: Locale, row: Option<&TemplateRow>) -> TemplateView {
    let b = builtin(name).expect("a built-in name");
    let (source, updated_at) = match row {
        Some(r) => (row_source(r), Some(crate::rfc3339(r.updated_at))),
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

/// The built-in template and locale a path names, or 404.
pub fn target(name: &str, locale: &str) -> Result<(&'static str, Locale)> {
    let name = BUILTIN
        .iter()
        .copied()
        .find(|n| *n == name)
        .ok_or_else(|| Error::NotFound(format!("template '{name}' (templates: {})", BUILTIN.join(", "))))?;
    let locale =
        Locale::parse(locale).ok_or_else(|| Error::NotFound(format!("locale '{locale}' (locales: en, zh-CN)")))?;
    Ok((name, locale))
}

/// Templates as each tenant uses them, and its overrides.
#[derive(Clone)]
pub struct Templates {
    store: Store,
}

impl Templates {
    /// The service over the store's overrides.
    pub fn new(store: Store) -> Templates {
        Templates { store }
    }

    /// The template `name` in `locale` for a tenant: its override, else the built-in.
    pub async fn template_source(&self, tenant: &str, name: &str, locale: Locale) -> Result<Option<TemplateOverride>> {
        builtin(name)?;
        Ok(self
            .store
            .get_template(tenant, name, locale.as_str())
            .await?
            .map(|row| row_source(&row)))
    }

    /// Renders a template for a message of a tenant, with its override if it has one.
    pub async fn render_template(
        &self,
        tenant: &str,
        name: &str,
        locale: Locale,
        vars: &serde_json::Value,
    ) -> Result<Rendered> {
        let over = self.template_source(tenant, name, locale).await?;
        render(name, locale, vars, over.as_ref())
    }

    /// Every template in every locale, as the tenant uses it.
    pub async fn list(&self, tenant: &str) -> Result<Vec<TemplateView>> {
        let rows = self.store.list_templates(tenant).await?;
        let mut out = Vec::new();
        for &name in BUILTIN {
            for &locale in LOCALES {
                let row = rows.iter().find(|r| r.name == name && r.locale == locale.as_str());
                out.push(view(name, locale, row));
            }
        }
        Ok(out)
    }

    /// One template as the tenant uses it.
    pub async fn show(&self, tenant: &str, name: &'static str, locale: Locale) -> Result<TemplateView> {
        let row = self.store.get_template(tenant, name, locale.as_str()).await?;
        Ok(view(name, locale, row.as_ref()))
    }

    /// Checks an override (422 naming the part and the line if it does not
    /// render with the template's sample values), then saves it.
    pub async fn save(
        &self,
        tenant: &str,
        name: &'static str,
        locale: Locale,
        source: TemplateSource,
    ) -> Result<TemplateView> {
        check(name, &source)?;
        let row = TemplateRow {
            tenant_id: tenant.to_string(),
            name: name.to_string(),
            locale: locale.as_str().to_string(),
            subject: source.subject,
            text: source.text,
            html: source.html,
            updated_at: crate::now_ms(),
        };
        self.store.put_template(&row).await?;
        tracing::info!(
            tenant,
            template = name,
            locale = locale.as_str(),
            "template override saved"
        );
        Ok(view(name, locale, Some(&row)))
    }

    /// Removes the tenant's override and answers the built-in it goes back to.
    pub async fn reset(&self, tenant: &str, name: &'static str, locale: Locale) -> Result<TemplateView> {
        if self.store.delete_template(tenant, name, locale.as_str()).await? {
            tracing::info!(
                tenant,
                template = name,
                locale = locale.as_str(),
                "template override removed"
            );
        }
        Ok(view(name, locale, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field_errors(e: Error) -> Vec<FieldError> {
        match e {
            Error::Invalid(list) => list,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    fn source(subject: &str, text: &str, html: Option<&str>) -> TemplateSource {
        TemplateSource {
            subject: subject.into(),
            text: text.into(),
            html: html.map(Into::into),
        }
    }

    #[test]
    fn every_builtin_renders_in_both_locales_with_its_samples() {
        for name in BUILTIN {
            let b = builtin(name).unwrap();
            assert!(!b.variables.is_empty(), "{name} documents its variables");
            for &locale in LOCALES {
                let r = render(name, locale, &b.sample, None).unwrap_or_else(|e| panic!("{name} {locale:?}: {e}"));
                assert!(!r.subject.is_empty() && !r.subject.contains('\n'), "{name}: {r:?}");
                assert!(!r.text.contains("{{") && !r.text.contains("{%"), "{name}: {}", r.text);
                let html = r.html.unwrap_or_else(|| panic!("{name} {locale:?} has an HTML body"));
                assert!(html.contains("<html"), "{name}");
                // No blank-line runs left behind by block tags.
                assert!(!r.text.contains("\n\n\n"), "{name} {locale:?}:\n{}", r.text);
                // And it passes the check an override must pass before it is saved.
                check(name, b.source(locale)).unwrap();
            }
        }
    }

    #[test]
    fn builtins_say_the_key_sentences() {
        let test = |l| render("test_email", l, &sample_vars("test_email").unwrap(), None).unwrap();
        let en = test(Locale::En);
        assert!(
            en.text
                .contains("Congratulations! Your mail service is configured successfully.")
        );
        assert!(en.text.contains("\"Ops mail\" (smtp.example.com)"));
        let zh = test(Locale::ZhCn);
        assert!(zh.text.contains("恭喜!您的邮件服务已经配置成功。"), "{}", zh.text);
        assert!(zh.html.unwrap().contains("恭喜!您的邮件服务已经配置成功。"));

        let vars = json!({"account_name": "Gmail ops", "tenant_name": "Acme"});
        let en = render("authorization_expired", Locale::En, &vars, None).unwrap();
        assert!(en.text.contains(crate::health::EXPIRED_MESSAGE));
        assert!(en.text.contains("\"Gmail ops\""));
        assert!(en.subject.contains("Gmail ops"));
        assert!(en.text.contains("console"), "no URL: says where to go instead");
        assert!(en.html.unwrap().contains(crate::health::EXPIRED_MESSAGE));
        let zh = render("authorization_expired", Locale::ZhCn, &vars, None).unwrap();
        assert!(zh.text.contains(crate::health::EXPIRED_MESSAGE_ZH));
        assert!(zh.text.contains("“Gmail ops”"));
        let with_url = json!({"account_name": "Gmail ops", "reauthorize_url": "https://h.example/r?a=1&b=2"});
        let r = render("authorization_expired", Locale::En, &with_url, None).unwrap();
        assert!(r.text.contains("https://h.example/r?a=1&b=2"));
        assert!(r.html.unwrap().contains("href=\"https://h.example/r?a=1&amp;b=2\""));

        let vars = json!({"name": "Bo", "product": "Acme", "link": "https://a.example/x"});
        let r = render("activation", Locale::En, &vars, None).unwrap();
        assert_eq!(r.subject, "Activate your Acme account");
        assert!(r.text.starts_with("Hello Bo,\n"));
        assert!(!r.text.contains("expires"), "optional sentence left out: {}", r.text);
        let r = render(
            "activation",
            Locale::ZhCn,
            &json!({"product": "Acme", "link": "x"}),
            None,
        )
        .unwrap();
        assert!(r.text.starts_with("您好："), "{}", r.text);
        let r = render(
            "password_reset",
            Locale::ZhCn,
            &sample_vars("password_reset").unwrap(),
            None,
        )
        .unwrap();
        assert_eq!(r.subject, "重置您的 Acme Cloud 密码");
        assert!(r.text.contains("验证码：482913"));
    }

    #[test]
    fn event_notification_mentions_suppressed_only_when_some_were() {
        let mut vars = sample_vars("event_notification").unwrap();
        let r = render("event_notification", Locale::En, &vars, None).unwrap();
        assert_eq!(r.subject, "[CRITICAL] Disk almost full (and 3 more)");
        assert!(r.text.contains("3 more events like this"));
        assert!(r.text.contains("used_percent: 97"));
        assert!(r.text.contains("rule \"Disk alerts\""));
        let zh = render("event_notification", Locale::ZhCn, &vars, None).unwrap();
        assert_eq!(zh.subject, "[严重] Disk almost full（另有 3 条）");
        assert!(zh.text.contains("另有 3 条同类事件"));
        vars["suppressed"] = json!(0);
        let r = render("event_notification", Locale::En, &vars, None).unwrap();
        assert_eq!(r.subject, "[CRITICAL] Disk almost full");
        assert!(!r.text.contains("more event"), "{}", r.text);
        let r = render(
            "event_notification",
            Locale::ZhCn,
            &json!({"event": {"type": "x.y"}}),
            None,
        )
        .unwrap();
        assert_eq!(r.subject, "[信息] x.y");
        assert!(!r.text.contains("另有"));
    }

    #[test]
    fn html_is_escaped_and_text_is_not() {
        let vars = json!({"name": "<script>alert(1)</script>", "product": "A&B", "link": "https://x.example/"});
        let r = render("activation", Locale::En, &vars, None).unwrap();
        let html = r.html.unwrap();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{html}");
        assert!(html.contains("A&amp;B"));
        assert!(r.text.contains("Hello <script>alert(1)</script>,"), "{}", r.text);
        assert_eq!(r.subject, "Activate your A&B account");
    }

    #[test]
    fn undefined_variables_render_empty() {
        let over = source("Hi {{ nobody }}{{ a.b.c }}", "x{{ missing.deep }}y", None);
        let r = render("activation", Locale::En, &json!({}), Some(&over)).unwrap();
        assert_eq!(r.subject, "Hi");
        assert_eq!(r.text, "xy");
        assert_eq!(r.html, None, "an override without html sends text only");
        let over = source("s", "[{{ code }}]", Some("<a href=\"{{ link }}\">{{ code }}</a>"));
        let r = render(
            "activation",
            Locale::En,
            &json!({"code": null, "link": "x\" onclick=\"y"}),
            Some(&over),
        )
        .unwrap();
        assert_eq!(r.text, "[]", "null renders empty too");
        assert_eq!(r.html.unwrap(), "<a href=\"x&quot; onclick=&quot;y\"></a>");
    }

    #[test]
    fn a_syntax_error_names_the_part_and_the_line() {
        let over = source("ok", "line one\nline two\n{% if x %}\nnever closed\n", None);
        let errors = field_errors(render("activation", Locale::En, &json!({}), Some(&over)).unwrap_err());
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].field, "template.text");
        assert!(errors[0].message.starts_with("line "), "{}", errors[0].message);
        assert!(
            errors[0].message.contains("expected end of block"),
            "{}",
            errors[0].message
        );

        let over = source("{{ x", "fine", Some("<p>\n{{ 1 + }}</p>"));
        let errors = field_errors(check("activation", &over).unwrap_err());
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["subject", "html"], "{errors:?}");
        assert!(errors[0].message.starts_with("line 1: "), "{}", errors[0].message);
        assert!(errors[1].message.starts_with("line 2: "), "{}", errors[1].message);
    }

    #[test]
    fn a_runtime_error_names_the_line() {
        let over = source("ok", "a\nb\n{{ \"a\" + 1 }}", None);
        let errors = field_errors(render("activation", Locale::En, &json!({}), Some(&over)).unwrap_err());
        assert_eq!(errors[0].field, "template.text");
        assert!(errors[0].message.starts_with("line 3: "), "{}", errors[0].message);
        let over = source("ok", "{{ name|nosuchfilter }}", None);
        let errors = field_errors(check("activation", &over).unwrap_err());
        assert_eq!(errors[0].field, "text");
        assert!(errors[0].message.contains("nosuchfilter"), "{}", errors[0].message);
    }

    #[test]
    fn a_runaway_loop_runs_out_of_fuel() {
        let over = source(
            "ok",
            "{% for i in range(100000) %}{% for j in range(100000) %}.{% endfor %}{% endfor %}",
            None,
        );
        let started = std::time::Instant::now();
        let errors = field_errors(render("activation", Locale::En, &json!({}), Some(&over)).unwrap_err());
        assert_eq!(errors[0].field, "template.text");
        assert!(errors[0].message.contains("fuel"), "{}", errors[0].message);
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn a_subject_must_be_one_line() {
        let over = source("Hello\n{{ name }}", "body", None);
        let errors = field_errors(render("activation", Locale::En, &json!({"name": "x"}), Some(&over)).unwrap_err());
        assert_eq!(errors[0].field, "subject");
        assert!(errors[0].message.contains("one line"), "{}", errors[0].message);
        // A variable cannot smuggle a header in either.
        let errors = field_errors(
            render(
                "activation",
                Locale::En,
                &json!({"product": "x\r\nBcc: victim@example.com", "link": "l"}),
                None,
            )
            .unwrap_err(),
        );
        assert_eq!(errors[0].field, "subject");
        // A trailing newline is trimmed, not refused.
        let over = source("Hello {{ name }}\n", "body", None);
        let r = render("activation", Locale::En, &json!({"name": "x"}), Some(&over)).unwrap();
        assert_eq!(r.subject, "Hello x");
    }

    #[test]
    fn unknown_names_and_bad_vars_are_refused() {
        let errors = field_errors(render("welcome", Locale::En, &json!({}), None).unwrap_err());
        assert_eq!(errors[0].field, "template");
        assert!(
            errors[0].message.contains("one of activation, password_reset"),
            "{}",
            errors[0].message
        );
        let errors = field_errors(render("activation", Locale::En, &json!([1]), None).unwrap_err());
        assert_eq!(errors[0].field, "vars");
        let errors = field_errors(check("activation", &source(" ", "", None)).unwrap_err());
        assert_eq!(errors.len(), 2);
    }
}
