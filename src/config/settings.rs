//! Reading settings: each one trimmed, empty meaning unset, and a bad value named in the error.

use super::ConfigError;

/// The environment (or a test's map), read one setting at a time.
pub(super) struct Settings<F> {
    lookup: F,
}

impl<F: Fn(&str) -> Option<String>> Settings<F> {
    pub(super) fn new(lookup: F) -> Self {
        Self { lookup }
    }

    /// The value, trimmed; `None` when unset or empty.
    pub(super) fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    pub(super) fn required(&self, setting: &'static str) -> Result<String, ConfigError> {
        self.get(setting)
            .ok_or_else(|| bad(setting, "required, not set".into()))
    }

    /// A whole number from `min` to `max`; the message gives the range accepted.
    pub(super) fn number_from(
        &self,
        setting: &'static str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<u64, ConfigError> {
        match self.get(setting) {
            None => Ok(default),
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| {
                    bad(
                        setting,
                        format!("{v:?} is not a whole number from {min} to {max}"),
                    )
                }),
        }
    }

    /// A whole number from 0 to `max`.
    pub(super) fn number(
        &self,
        setting: &'static str,
        default: u64,
        max: u64,
    ) -> Result<u64, ConfigError> {
        self.number_from(setting, default, 0, max)
    }

    /// An http(s) URL, or `default`.
    pub(super) fn http_url(
        &self,
        setting: &'static str,
        default: &str,
    ) -> Result<String, ConfigError> {
        let value = self.get(setting).unwrap_or_else(|| default.to_owned());
        check_http_url(setting, value)
    }

    /// `true`/`1` or `false`/`0`.
    pub(super) fn flag(&self, setting: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(setting).as_deref() {
            None => Ok(default),
            Some("false") | Some("0") => Ok(false),
            Some("true") | Some("1") => Ok(true),
            Some(other) => Err(bad(setting, format!("{other:?}: use true or false"))),
        }
    }
}

/// `value`, if it is an http(s) URL.
pub(super) fn check_http_url(setting: &'static str, value: String) -> Result<String, ConfigError> {
    if value.starts_with("http://") || value.starts_with("https://") {
        Ok(value)
    } else {
        Err(bad(setting, format!("{value:?} is not an http(s) URL")))
    }
}

pub(super) fn bad(setting: &'static str, message: String) -> ConfigError {
    ConfigError { setting, message }
}
