//! The console's words in English and 简体中文: flat keys in
//! `console/locales/en.toml` and `console/locales/zh-CN.toml`, the same keys
//! in both (a test checks), every visible string of every template from them.

use crate::i18n::Locale;
use std::collections::BTreeMap;
use std::sync::OnceLock;

const EN: &str = include_str!("../../console/locales/en.toml");
const ZH: &str = include_str!("../../console/locales/zh-CN.toml");

type Strings = BTreeMap<String, String>;

fn load(src: &str, name: &str) -> Strings {
    toml::from_str(src).unwrap_or_else(|e| panic!("console/locales/{name}: {e}"))
}

/// Every string of a language.
pub fn strings(locale: Locale) -> &'static Strings {
    static EN_S: OnceLock<Strings> = OnceLock::new();
    static ZH_S: OnceLock<Strings> = OnceLock::new();
    match locale {
        Locale::En => EN_S.get_or_init(|| load(EN, "en.toml")),
        Locale::ZhCn => ZH_S.get_or_init(|| load(ZH, "zh-CN.toml")),
    }
}

/// One string (its key when missing, which the tests rule out).
pub fn text(locale: Locale, key: &str) -> String {
    strings(locale).get(key).cloned().unwrap_or_else(|| key.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn both_languages_have_the_same_keys() {
        let en: BTreeSet<_> = strings(Locale::En).keys().collect();
        let zh: BTreeSet<_> = strings(Locale::ZhCn).keys().collect();
        let only_en: Vec<_> = en.difference(&zh).collect();
        let only_zh: Vec<_> = zh.difference(&en).collect();
        assert!(only_en.is_empty(), "keys missing from zh-CN.toml: {only_en:?}");
        assert!(only_zh.is_empty(), "keys missing from en.toml: {only_zh:?}");
        assert!(strings(Locale::ZhCn).values().all(|v| !v.trim().is_empty()));
    }

    /// Every `t.key` a template uses exists (a missing one would show nothing).
    #[test]
    fn templates_use_only_known_keys() {
        let en = strings(Locale::En);
        let mut missing = Vec::new();
        for (name, src) in super::super::render::template_sources() {
            let mut rest = src;
            while let Some(at) = rest.find("t.") {
                let before = rest[..at].chars().last();
                rest = &rest[at + 2..];
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.') {
                    continue;
                }
                let key: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !key.is_empty() && !en.contains_key(&key) {
                    missing.push(format!("{name}: t.{key}"));
                }
            }
        }
        assert!(missing.is_empty(), "templates use keys no locale file has: {missing:?}");
    }
}
