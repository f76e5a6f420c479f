//! The languages Herald speaks: English and Simplified Chinese.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Locale {
    #[default]
    #[serde(rename = "en")]
    En,
    #[serde(rename = "zh-CN")]
    ZhCn,
}

impl Locale {
    /// Accepts `en`, `zh-CN` and the usual spellings of both (`zh`, `zh_CN`,
    /// `zh-Hans`, an Accept-Language list).
    pub fn parse(s: &str) -> Option<Locale> {
        let first = s.split(',').next().unwrap_or("").split(';').next().unwrap_or("").trim();
        let lower = first.to_ascii_lowercase().replace('_', "-");
        if lower == "en" || lower.starts_with("en-") {
            Some(Locale::En)
        } else if lower == "zh"
            || lower == "zh-cn"
            || lower == "zh-hans"
            || lower.starts_with("zh-hans-")
            || lower == "zh-sg"
        {
            Some(Locale::ZhCn)
        } else {
            None
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::ZhCn => "zh-CN",
        }
    }

    /// Picks the English or the Chinese text.
    pub fn pick<'a>(self, en: &'a str, zh: &'a str) -> &'a str {
        match self {
            Locale::En => en,
            Locale::ZhCn => zh,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_spellings() {
        assert_eq!(Locale::parse("zh-CN"), Some(Locale::ZhCn));
        assert_eq!(Locale::parse("zh_cn"), Some(Locale::ZhCn));
        assert_eq!(Locale::parse("zh-Hans"), Some(Locale::ZhCn));
        assert_eq!(Locale::parse("en-US,en;q=0.9"), Some(Locale::En));
        assert_eq!(Locale::parse("fr"), None);
    }
}
