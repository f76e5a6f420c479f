//! The HTTP transport of webhook and chat-robot channels: the request each
//! kind expects (body, signature, headers), sent once without following
//! redirects, to addresses the network policy permits, and the answer read as
//! a stage, an HTTP status, the robot's own error code, a class and a hint
//! from `robots`. Whoever calls decides what to do with it (the delivery
//! worker retries, the channel test reports).

pub mod sign;

use crate::catalog::Class;
use crate::i18n::Locale;
use crate::netguard::{GuardedResolver, NetPolicy, Refused, Unresolved};
use crate::robots::{Answer, RobotHint};
use crate::secrets::Secret;
use crate::status::ChannelKind;
use serde::Serialize;
use serde_json::{Value, json};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How long a request may take in all; connecting has its own, shorter bound.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of an answer read; the rest is not needed to understand it.
const BODY_READ: usize = 64 * 1024;
/// Characters of an answer kept in the log and the report.
pub const BODY_EXCERPT: usize = 500;
/// What replaces a secret in anything shown.
pub const MASK: &str = "••••";

/// Where and how a channel's requests go; the URL, secret and header values
/// are secrets.
#[derive(Debug, Clone)]
pub struct Target {
    pub kind: ChannelKind,
    pub url: Secret,
    pub secret: Option<Secret>,
    pub headers: Vec<(String, Secret)>,
}

/// What to say.
#[derive(Debug, Clone)]
pub struct Payload<'a> {
    /// The delivery id: the same on every retry, so receivers drop duplicates.
    pub id: &'a str,
    pub subject: &'a str,
    pub text: &'a str,
    /// The event, sent whole to a webhook.
    pub event: Option<&'a Value>,
    /// `message.notification`, or the event's type.
    pub kind: &'a str,
}

/// A request ready to go.
#[derive(Debug)]
pub struct Request {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// How far a request got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Dns,
    Connect,
    Tls,
    Request,
    Response,
    Done,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Dns => "dns",
            Stage::Connect => "connect",
            Stage::Tls => "tls",
            Stage::Request => "request",
            Stage::Response => "response",
            Stage::Done => "done",
        }
    }
}

/// What a request came to.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub ok: bool,
    pub stage: Stage,
    /// The HTTP status, when an answer came.
    pub status: Option<u16>,
    /// The answer's start, secrets masked.
    pub body: Option<String>,
    /// The robot's own error code (`errcode` …), when it gave one.
    pub code: Option<String>,
    pub class: Option<Class>,
    pub hint: Option<&'static RobotHint>,
    /// What went wrong, in a line (secrets masked); none when it went through.
    pub error: Option<String>,
    /// How long the receiver asks to be left alone (429 `Retry-After`, a robot's rate limit).
    pub retry_after_ms: Option<i64>,
    /// The address was refused by the network policy.
    pub refused: bool,
    pub elapsed_ms: u64,
}

/// The channel report: the test's answer, the same shape as the test email's.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub ok: bool,
    pub stage: Stage,
    /// The HTTP status.
    pub status: Option<u16>,
    /// The answer's start, secrets masked.
    pub body: Option<String>,
    /// The robot's own error code, when it gave one.
    pub code: Option<String>,
    pub class: Option<Class>,
    pub error: Option<String>,
    pub hint: Option<String>,
    pub elapsed_ms: u64,
}

impl Outcome {
    pub fn report(&self, locale: Locale) -> Report {
        Report {
            ok: self.ok,
            stage: self.stage,
            status: self.status,
            body: self.body.clone(),
            code: self.code.clone(),
            class: self.class,
            error: self.error.clone(),
            hint: self.hint.map(|h| locale.pick(&h.en, &h.zh).to_string()),
            elapsed_ms: self.elapsed_ms,
        }
    }

    /// One line for the delivery log's `last_error`.
    pub fn summary(&self, locale: Locale) -> String {
        let mut s = match (self.status, &self.error) {
            (Some(st), Some(e)) => format!("HTTP {st}: {e}"),
            (Some(st), None) => format!("HTTP {st}"),
            (None, Some(e)) => format!("{}: {e}", self.stage.as_str()),
            (None, None) => self.stage.as_str().to_string(),
        };
        if let Some(h) = self.hint {
            s.push_str(" — ");
            s.push_str(locale.pick(&h.en, &h.zh));
        }
        s
    }
}

/// Query parameters and path segments that carry a token, per kind.
fn token_query_names() -> &'static [&'static str] {
    &[
        "access_token",
        "token",
        "key",
        "sig",
        "signature",
        "secret",
        "password",
        "apikey",
        "api_key",
        "code",
        "auth",
    ]
}

/// The URL with every token in it masked: the query parameters that carry one
/// (DingTalk `access_token`, WeCom `key`, Teams `sig` …), a password in it,
/// and the path's capability for Slack (`/services/T…/B…/<token>`) and
/// Feishu / Lark (`/hook/<id>`).
pub fn display_url(kind: ChannelKind, url: &str) -> String {
    let Ok(mut u) = reqwest::Url::parse(url) else {
        return MASK.to_string();
    };
    if u.password().is_some() {
        let _ = u.set_password(Some(MASK));
    }
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .map(|(k, v)| {
            let secret = token_query_names().contains(&k.to_ascii_lowercase().as_str());
            (k.into_owned(), if secret { MASK.to_string() } else { v.into_owned() })
        })
        .collect();
    if !pairs.is_empty() {
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    let mask_tail = match kind {
        ChannelKind::Slack => true,
        ChannelKind::Feishu => true,
        ChannelKind::Webhook | ChannelKind::Teams => false,
        ChannelKind::Dingtalk | ChannelKind::Wecom => false,
    };
    if mask_tail {
        let path = u.path().to_string();
        if let Some((head, tail)) = path.rsplit_once('/')
            && !tail.is_empty()
        {
            u.set_path(&format!("{head}/{MASK}"));
        }
    }
    // The mask is shown as it is, not percent-encoded.
    u.to_string().replace("%E2%80%A2", "•")
}

/// The secrets of a target as they could appear in an answer or an error: the
/// URL's token values and path, the signing secret, the header values.
fn secret_texts(t: &Target) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(u) = reqwest::Url::parse(t.url.expose()) {
        for (k, v) in u.query_pairs() {
            if token_query_names().contains(&k.to_ascii_lowercase().as_str()) && v.len() >= 4 {
                out.push(v.into_owned());
            }
        }
        if let Some(p) = u.password() {
            out.push(p.to_string());
        }
        if let Some(last) = u.path_segments().and_then(|mut s| s.next_back())
            && last.len() >= 8
        {
            out.push(last.to_string());
        }
    }
    if let Some(s) = &t.secret {
        out.push(s.expose().to_string());
    }
    for (_, v) in &t.headers {
        if v.expose().len() >= 4 {
            out.push(v.expose().to_string());
        }
    }
    out
}

/// `text` with every secret of the target masked.
pub fn mask(t: &Target, text: &str) -> String {
    let mut s = text.to_string();
    for secret in secret_texts(t) {
        s = s.replace(&secret, MASK);
    }
    s
}

/// The request the target's kind expects for the payload, signed, at `now_ms`.
pub fn build(t: &Target, p: &Payload<'_>, now_ms: i64) -> Result<Request, String> {
    let mut url = t.url.expose().to_string();
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    let body: Value = match t.kind {
        ChannelKind::Webhook => {
            let secs = now_ms / 1000;
            let body = json!({
                "type": p.kind,
                "timestamp": crate::rfc3339(now_ms),
                "data": {
                    "id": p.id,
                    "subject": p.subject,
                    "text": p.text,
                    "event": p.event,
                }
            });
            let bytes = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
            let secret = t.secret.as_ref().ok_or("a webhook channel needs its signing secret")?;
            let key = sign::webhook_key(secret.expose()).map_err(|e| format!("secret {e}"))?;
            headers.push(("webhook-id".into(), p.id.to_string()));
            headers.push(("webhook-timestamp".into(), secs.to_string()));
            headers.push((
                "webhook-signature".into(),
                sign::webhook_signature(&key, p.id, secs, &bytes),
            ));
            for (k, v) in &t.headers {
                headers.push((k.clone(), v.expose().to_string()));
            }
            return Ok(Request {
                url,
                headers,
                body: bytes,
            });
        }
        ChannelKind::Slack => json!({
            "text": format!("*{}*\n{}", slack_escape(p.subject), slack_escape(p.text)),
            "mrkdwn": true,
        }),
        ChannelKind::Teams => json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": null,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [
                        {"type": "TextBlock", "text": p.subject, "weight": "Bolder", "size": "Medium", "wrap": true},
                        {"type": "TextBlock", "text": p.text, "wrap": true}
                    ]
                }
            }]
        }),
        ChannelKind::Dingtalk => {
            if let Some(secret) = &t.secret {
                let sign = sign::dingtalk_sign(secret.expose(), now_ms);
                let mut u = reqwest::Url::parse(&url).map_err(|e| e.to_string())?;
                u.query_pairs_mut()
                    .append_pair("timestamp", &now_ms.to_string())
                    .append_pair("sign", &sign);
                url = u.to_string();
            }
            json!({
                "msgtype": "markdown",
                "markdown": {"title": p.subject, "text": format!("#### {}\n\n{}", p.subject, p.text)}
            })
        }
        ChannelKind::Feishu => {
            let mut body = json!({
                "msg_type": "interactive",
                "card": {
                    "header": {"title": {"tag": "plain_text", "content": p.subject}},
                    "elements": [{"tag": "markdown", "content": p.text}]
                }
            });
            if let Some(secret) = &t.secret {
                let secs = now_ms / 1000;
                body["timestamp"] = json!(secs.to_string());
                body["sign"] = json!(sign::feishu_sign(secret.expose(), secs));
            }
            body
        }
        ChannelKind::Wecom => {
            let mut content = format!("**{}**\n{}", p.subject, p.text);
            // WeCom takes at most 4096 bytes of markdown.
            while content.len() > 4000 {
                content.pop();
            }
            json!({"msgtype": "markdown", "markdown": {"content": content}})
        }
    };
    for (k, v) in &t.headers {
        headers.push((k.clone(), v.expose().to_string()));
    }
    Ok(Request {
        url,
        headers,
        body: serde_json::to_vec(&body).map_err(|e| e.to_string())?,
    })
}

/// Slack's three control characters, escaped as its docs ask.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The HTTP clients of channels: one for the platform (unrestricted), one
/// for tenants (the network policy). Redirects are never followed.
#[derive(Clone)]
pub struct Client {
    platform: reqwest::Client,
    tenants: reqwest::Client,
    tenant_policy: NetPolicy,
}

fn client(policy: NetPolicy) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(crate::smtp::tls::https_client_config())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .no_proxy()
        .dns_resolver(std::sync::Arc::new(GuardedResolver::new(policy)))
        .user_agent(concat!("herald/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the HTTP client builds")
}

impl Client {
    /// Clients under `tenant_policy` for tenants, unrestricted for the platform.
    pub fn new(tenant_policy: NetPolicy) -> Client {
        Client {
            platform: client(NetPolicy::unrestricted()),
            tenants: client(tenant_policy.clone()),
            tenant_policy,
        }
    }

    /// Sends the payload to the target once and reads the answer.
    pub async fn send(&self, platform: bool, t: &Target, p: &Payload<'_>) -> Outcome {
        let started = Instant::now();
        let mut out = match build(t, p, crate::now_ms()) {
            Ok(req) => self.send_request(platform, t, req).await,
            Err(e) => failed(Stage::Request, Class::Configuration, mask(t, &e)),
        };
        out.elapsed_ms = started.elapsed().as_millis() as u64;
        if out.hint.is_none() {
            out.hint = crate::robots::hint(
                t.kind,
                &Answer {
                    stage: out.stage.as_str(),
                    status: out.status,
                    code: out.code.as_deref(),
                    body: &format!(
                        "{} {}",
                        out.body.as_deref().unwrap_or(""),
                        out.error.as_deref().unwrap_or("")
                    ),
                },
            );
            if !out.ok
                && let Some(h) = out.hint
                && out.class.is_none()
            {
                out.class = Some(h.class);
            }
        }
        out
    }

    async fn send_request(&self, platform: bool, t: &Target, req: Request) -> Outcome {
        let url = match reqwest::Url::parse(&req.url) {
            Ok(u) => u,
            Err(e) => {
                return failed(
                    Stage::Request,
                    Class::Configuration,
                    format!("the URL is not valid: {e}"),
                );
            }
        };
        // reqwest does not resolve an address written in the URL: checked here.
        if !platform && let Some(host) = url.host_str() {
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            if let Ok(ip) = bare.parse::<IpAddr>()
                && let Err(r) = self.tenant_policy.check(bare, ip)
            {
                return refused(&r);
            }
        }
        let http = if platform { &self.platform } else { &self.tenants };
        let mut rb = http.post(url);
        for (k, v) in &req.headers {
            rb = rb.header(k.as_str(), v.as_str());
        }
        let resp = match rb.body(req.body).send().await {
            Ok(r) => r,
            Err(e) => return transport_error(t, e),
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(|l| mask(t, l));
        let mut resp = resp;
        let mut bytes = Vec::new();
        let mut read_error = None;
        loop {
            match resp.chunk().await {
                Ok(Some(c)) => {
                    bytes.extend_from_slice(&c);
                    if bytes.len() >= BODY_READ {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    read_error = Some(mask(t, &e.without_url().to_string()));
                    break;
                }
            }
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = excerpt(&mask(t, &text));
        let mut out = read_answer(t.kind, status, &text);
        out.body = Some(body);
        out.status = Some(status);
        if (300..400).contains(&status) {
            out.ok = false;
            out.class = Some(Class::Configuration);
            out.error = Some(format!(
                "the receiver answered with a redirect{}, which Herald does not follow",
                location.map(|l| format!(" to {l}")).unwrap_or_default()
            ));
        }
        if out.retry_after_ms.is_none() {
            out.retry_after_ms = retry_after;
        }
        if out.ok && read_error.is_some() {
            // The receiver said 2xx; a cut-off body does not undo that.
            read_error = None;
        }
        if let Some(e) = read_error {
            out.error.get_or_insert(e);
        }
        out
    }
}

/// The start of an answer, on a character boundary.
pub fn excerpt(s: &str) -> String {
    let s = s.trim();
    match s.char_indices().nth(BODY_EXCERPT) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

fn failed(stage: Stage, class: Class, error: String) -> Outcome {
    Outcome {
        ok: false,
        stage,
        status: None,
        body: None,
        code: None,
        class: Some(class),
        hint: None,
        error: Some(error),
        retry_after_ms: None,
        refused: false,
        elapsed_ms: 0,
    }
}

fn refused(r: &Refused) -> Outcome {
    let mut o = failed(
        Stage::Dns,
        Class::Configuration,
        format!("{r}: this tenant may not reach it"),
    );
    o.refused = true;
    o
}

/// A request that got no answer: which stage it stopped at, from the error's causes.
fn transport_error(t: &Target, e: reqwest::Error) -> Outcome {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    let mut texts = Vec::new();
    let mut stage = None;
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<Refused>() {
            return refused(r);
        }
        if s.downcast_ref::<Unresolved>().is_some() {
            stage = Some(Stage::Dns);
        }
        if s.downcast_ref::<rustls::Error>().is_some() {
            stage.get_or_insert(Stage::Tls);
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && io.get_ref().is_some_and(|inner| inner.is::<rustls::Error>())
        {
            stage.get_or_insert(Stage::Tls);
        }
        texts.push(s.to_string());
        source = s.source();
    }
    let stage = stage.unwrap_or(if e.is_connect() { Stage::Connect } else { Stage::Request });
    let mut seen = Vec::new();
    for t in texts.iter().skip(1) {
        if !seen.contains(t) {
            seen.push(t.clone());
        }
    }
    let what = if e.is_timeout() {
        "timed out".to_string()
    } else if seen.is_empty() {
        e.without_url().to_string()
    } else {
        seen.join(": ")
    };
    let class = match stage {
        Stage::Tls => Class::Configuration,
        _ => Class::Transient,
    };
    failed(stage, class, mask(t, &what))
}

/// Seconds (`120`) or an HTTP date, as milliseconds from now.
pub fn parse_retry_after(v: &str) -> Option<i64> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<i64>() {
        return Some(secs.clamp(0, 24 * 3600) * 1000);
    }
    let at = http_date_secs(v)?;
    let ms = at * 1000 - crate::now_ms();
    Some(ms.clamp(0, 24 * 3600 * 1000))
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110 IMF-fixdate) in
/// seconds since the epoch.
fn http_date_secs(v: &str) -> Option<i64> {
    let parts: Vec<&str> = v.split_whitespace().collect();
    let [_, day, month, year, clock, "GMT"] = parts.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| m == month)? as u8 + 1;
    let date = time::Date::from_calendar_date(
        year.parse().ok()?,
        time::Month::try_from(month).ok()?,
        day.parse().ok()?,
    )
    .ok()?;
    let hms: Vec<u8> = clock.split(':').filter_map(|p| p.parse().ok()).collect();
    let [h, m, s] = hms.as_slice() else { return None };
    let t = time::Time::from_hms(*h, *m, *s).ok()?;
    Some(date.with_time(t).assume_utc().unix_timestamp())
}

/// Robot error codes that mean "too fast": retried after a minute.
const RATE_CODES: &[&str] = &["130101", "45009", "11232", "9499", "rate_limited"];

/// An answer with its status and body, as the kind's receiver means it.
pub fn read_answer(kind: ChannelKind, status: u16, body: &str) -> Outcome {
    let json: Option<Value> = serde_json::from_str(body).ok();
    let num = |v: Option<&Value>| -> Option<String> {
        match v? {
            Value::Number(n) if n.as_i64() != Some(0) => Some(n.to_string()),
            Value::String(s) if s != "0" && !s.is_empty() => Some(s.clone()),
            _ => None,
        }
    };
    let code = match kind {
        ChannelKind::Dingtalk | ChannelKind::Wecom => json.as_ref().and_then(|j| num(j.get("errcode"))),
        ChannelKind::Feishu => json
            .as_ref()
            .and_then(|j| num(j.get("code")).or_else(|| num(j.get("StatusCode")))),
        ChannelKind::Slack if status >= 300 || body.trim() != "ok" && !body.trim().is_empty() => {
            let w = body.trim();
            (w.len() <= 64 && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')).then(|| w.to_string())
        }
        ChannelKind::Teams if status >= 400 => json
            .as_ref()
            .and_then(|j| j.pointer("/error/code").and_then(|c| c.as_str()).map(str::to_string)),
        _ => None,
    };
    let mut out = Outcome {
        ok: false,
        stage: Stage::Response,
        status: Some(status),
        body: None,
        code: code.clone(),
        class: None,
        hint: None,
        error: None,
        retry_after_ms: None,
        refused: false,
        elapsed_ms: 0,
    };
    let hint = |out: &Outcome| {
        crate::robots::hint(
            kind,
            &Answer {
                stage: "response",
                status: out.status,
                code: out.code.as_deref(),
                body,
            },
        )
    };
    if (200..300).contains(&status) && code.is_none() {
        out.ok = true;
        out.stage = Stage::Done;
        return out;
    }
    out.hint = hint(&out);
    let rate = status == 429 || code.as_deref().is_some_and(|c| RATE_CODES.contains(&c));
    out.class = Some(if rate || status >= 500 {
        Class::Transient
    } else {
        match out.hint.map(|h| h.class) {
            // Only a rate limit or the receiver's own trouble is for later.
            Some(Class::Transient) | None => Class::Permanent,
            Some(c) => c,
        }
    });
    if rate && code.is_some() {
        out.retry_after_ms = Some(60_000);
    }
    let errmsg = json.as_ref().and_then(|j| {
        ["errmsg", "msg", "message"]
            .iter()
            .find_map(|k| j.get(*k).and_then(|m| m.as_str()))
            .or_else(|| j.pointer("/error/message").and_then(|m| m.as_str()))
            .map(str::to_string)
    });
    out.error = Some(match (&code, errmsg) {
        (Some(c), Some(m)) => format!("the receiver answered error {c}: {m}"),
        (Some(c), None) => format!("the receiver answered error {c}"),
        (None, Some(m)) => format!("the receiver refused the request: {m}"),
        (None, None) => format!("the receiver answered HTTP {status}"),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(kind: ChannelKind, url: &str, secret: Option<&str>) -> Target {
        Target {
            kind,
            url: Secret::new(url),
            secret: secret.map(Secret::new),
            headers: vec![],
        }
    }

    #[test]
    fn urls_with_tokens_are_masked() {
        let cases = [
            (
                ChannelKind::Dingtalk,
                "https://oapi.dingtalk.com/robot/send?access_token=abcdef123456",
                "abcdef123456",
            ),
            (
                ChannelKind::Wecom,
                "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7xxx",
                "693a91f6",
            ),
            (
                ChannelKind::Slack,
                "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXX",
                "XXXXXXXXXXXXXXXX",
            ),
            (
                ChannelKind::Feishu,
                "https://open.feishu.cn/open-apis/bot/v2/hook/2f1e-hook-id-99",
                "2f1e-hook-id-99",
            ),
            (
                ChannelKind::Teams,
                "https://prod-1.westus.logic.azure.com/workflows/1/triggers/manual/paths/invoke?api-version=2016-06-01&sp=x&sv=1.0&sig=SIGSIGSIG",
                "SIGSIGSIG",
            ),
            (
                ChannelKind::Webhook,
                "https://user:hunter22@example.com/hook",
                "hunter22",
            ),
        ];
        for (kind, url, token) in cases {
            let shown = display_url(kind, url);
            assert!(!shown.contains(token), "{shown}");
            assert!(shown.contains(MASK), "{shown}");
            let t = target(kind, url, None);
            assert!(!mask(&t, &format!("echo {url}")).contains(token));
        }
        assert_eq!(
            display_url(ChannelKind::Webhook, "https://example.com/hook?x=1"),
            "https://example.com/hook?x=1"
        );
    }

    #[test]
    fn robot_answers_are_read() {
        let ok = read_answer(ChannelKind::Dingtalk, 200, r#"{"errcode":0,"errmsg":"ok"}"#);
        assert!(ok.ok);
        let kw = read_answer(
            ChannelKind::Dingtalk,
            200,
            r#"{"errcode":310000,"errmsg":"keywords not in content"}"#,
        );
        assert!(!kw.ok);
        assert_eq!(kw.code.as_deref(), Some("310000"));
        assert_eq!(kw.class, Some(Class::Configuration));
        let fast = read_answer(
            ChannelKind::Wecom,
            200,
            r#"{"errcode":45009,"errmsg":"api freq out of limit"}"#,
        );
        assert_eq!(fast.class, Some(Class::Transient));
        assert_eq!(fast.retry_after_ms, Some(60_000));
        let fs = read_answer(
            ChannelKind::Feishu,
            200,
            r#"{"code":19021,"msg":"sign match fail or timestamp is not within one hour from current time"}"#,
        );
        assert_eq!(fs.code.as_deref(), Some("19021"));
        assert!(
            read_answer(
                ChannelKind::Feishu,
                200,
                r#"{"StatusCode":0,"StatusMessage":"success","code":0}"#
            )
            .ok
        );
        let slack = read_answer(ChannelKind::Slack, 410, "channel_is_archived");
        assert_eq!(slack.code.as_deref(), Some("channel_is_archived"));
        assert_eq!(slack.class, Some(Class::Configuration));
        assert!(read_answer(ChannelKind::Slack, 200, "ok").ok);
        assert_eq!(read_answer(ChannelKind::Webhook, 503, "").class, Some(Class::Transient));
        assert_eq!(read_answer(ChannelKind::Webhook, 429, "").class, Some(Class::Transient));
        assert_eq!(read_answer(ChannelKind::Webhook, 400, "").class, Some(Class::Permanent));
        assert!(read_answer(ChannelKind::Teams, 202, "").ok);
    }

    #[test]
    fn retry_after_in_seconds_or_a_date() {
        assert_eq!(parse_retry_after("3"), Some(3000));
        assert_eq!(parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(http_date_secs("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784111777));
    }

    #[test]
    fn requests_are_signed_per_kind() {
        let p = Payload {
            id: "msg_1",
            subject: "Disk full",
            text: "volume 2",
            event: None,
            kind: "disk.full",
        };
        let t = target(
            ChannelKind::Webhook,
            "https://example.com/h",
            Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        );
        let r = build(&t, &p, 1_700_000_000_123).unwrap();
        let h = |n: &str| r.headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        assert_eq!(h("webhook-id").as_deref(), Some("msg_1"));
        assert_eq!(h("webhook-timestamp").as_deref(), Some("1700000000"));
        assert!(h("webhook-signature").unwrap().starts_with("v1,"));
        let d = build(
            &target(
                ChannelKind::Dingtalk,
                "https://oapi.dingtalk.com/robot/send?access_token=t",
                Some("SECx"),
            ),
            &p,
            1_700_000_000_123,
        )
        .unwrap();
        assert!(d.url.contains("timestamp=1700000000123&sign="), "{}", d.url);
        let f = build(
            &target(
                ChannelKind::Feishu,
                "https://open.feishu.cn/open-apis/bot/v2/hook/x",
                Some("s"),
            ),
            &p,
            1_700_000_000_123,
        )
        .unwrap();
        let body: Value = serde_json::from_slice(&f.body).unwrap();
        assert_eq!(body["timestamp"], "1700000000");
        assert_eq!(body["sign"], sign::feishu_sign("s", 1_700_000_000));
    }
}
