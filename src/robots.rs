//! The webhook and chat-robot presets, compiled in from `catalog/robots.toml`
//! like the SMTP provider catalog: each kind's published rate limit and the
//! hints for its answers (DingTalk's `errcode`, Feishu's `code`, Slack's error
//! words …), in English and Chinese, so reviewers change data, not code.

use crate::catalog::{Class, Localized};
use crate::status::ChannelKind;
use serde::Deserialize;
use std::sync::OnceLock;

const ROBOTS_TOML: &str = include_str!("../catalog/robots.toml");

/// A hint for an answer: every key it sets must match.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RobotHint {
    /// `dns`, `connect`, `tls`, `request`, `response`.
    pub stage: Option<String>,
    /// The HTTP status.
    pub status: Option<u16>,
    /// Inclusive bounds of the HTTP status.
    pub status_range: Option<(u16, u16)>,
    /// The robot's own error code (`errcode`, `code`, Slack's body word, Teams' `error.code`).
    pub code: Option<String>,
    /// Words in the body (case-insensitive).
    pub contains: Option<String>,
    pub class: Class,
    pub en: String,
    pub zh: String,
}

/// One kind of channel.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Robot {
    pub kind: ChannelKind,
    /// The service's name in both languages (for the console's kind picker).
    #[allow(dead_code)]
    pub name: Localized,
    /// Messages a minute the service accepts (0: no published limit).
    pub per_minute: u32,
    #[serde(default)]
    pub hints: Vec<RobotHint>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    robot: Vec<Robot>,
    generic: Vec<RobotHint>,
}

/// What a request came to, as the hints look at it.
#[derive(Debug, Clone, Copy)]
pub struct Answer<'a> {
    pub stage: &'a str,
    pub status: Option<u16>,
    pub code: Option<&'a str>,
    pub body: &'a str,
}

impl RobotHint {
    fn matches(&self, a: &Answer<'_>) -> bool {
        self.stage.as_deref().is_none_or(|s| s == a.stage)
            && self.status.is_none_or(|s| Some(s) == a.status)
            && self
                .status_range
                .is_none_or(|(lo, hi)| a.status.is_some_and(|s| (lo..=hi).contains(&s)))
            && self.code.as_deref().is_none_or(|c| Some(c) == a.code)
            && self
                .contains
                .as_deref()
                .is_none_or(|w| a.body.to_lowercase().contains(&w.to_lowercase()))
    }
}

fn file() -> &'static File {
    static FILE: OnceLock<File> = OnceLock::new();
    FILE.get_or_init(|| toml::from_str(ROBOTS_TOML).expect("catalog/robots.toml is valid (tested)"))
}

/// The preset of a kind.
pub fn robot(kind: ChannelKind) -> &'static Robot {
    file()
        .robot
        .iter()
        .find(|r| r.kind == kind)
        .expect("every kind has a preset (tested)")
}

/// The hint for an answer: the kind's own first, then the generic ones.
pub fn hint(kind: ChannelKind, answer: &Answer<'_>) -> Option<&'static RobotHint> {
    robot(kind)
        .hints
        .iter()
        .chain(&file().generic)
        .find(|h| h.matches(answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_preset_and_hints_parse() {
        for k in ChannelKind::ALL {
            assert_eq!(robot(*k).kind, *k);
        }
        for h in file().robot.iter().flat_map(|r| &r.hints).chain(&file().generic) {
            assert!(!h.en.is_empty() && !h.zh.is_empty(), "{h:?}");
        }
    }

    #[test]
    fn robot_errors_find_their_hints() {
        let a = |stage, status, code, body| Answer {
            stage,
            status,
            code,
            body,
        };
        let h = hint(
            ChannelKind::Dingtalk,
            &a(
                "response",
                Some(200),
                Some("310000"),
                "{\"errmsg\":\"keywords not in content\"}",
            ),
        )
        .unwrap();
        assert!(h.en.contains("keywords"), "{}", h.en);
        let h = hint(
            ChannelKind::Dingtalk,
            &a("response", Some(200), Some("310000"), "{\"errmsg\":\"sign not match\"}"),
        )
        .unwrap();
        assert!(h.en.contains("signature"), "{}", h.en);
        assert!(
            hint(ChannelKind::Feishu, &a("response", Some(200), Some("19021"), ""))
                .unwrap()
                .zh
                .contains("签名")
        );
        assert_eq!(
            hint(ChannelKind::Wecom, &a("response", Some(200), Some("93000"), ""))
                .unwrap()
                .class,
            Class::Configuration
        );
        assert!(
            hint(
                ChannelKind::Slack,
                &a("response", Some(403), Some("invalid_token"), "invalid_token")
            )
            .is_some()
        );
        let h = hint(ChannelKind::Webhook, &a("response", Some(503), None, "")).unwrap();
        assert_eq!(h.class, Class::Transient);
    }
}
