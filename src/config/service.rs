//! The service itself: `BROKER_LISTEN`, `DATABASE_URL` and the pool, policies, the admin
//! role, rate limits, CORS, migrations, shutdown.

use super::ConfigError;
use super::settings::{Settings, bad};
use std::net::SocketAddr;

pub(super) fn listen<F: Fn(&str) -> Option<String>>(
    s: &Settings<F>,
) -> Result<SocketAddr, ConfigError> {
    let listen = s
        .get("BROKER_LISTEN")
        .unwrap_or_else(|| "0.0.0.0:8080".into());
    listen.parse().map_err(|_| {
        bad(
            "BROKER_LISTEN",
            format!("{listen:?} is not host:port, e.g. 0.0.0.0:8080"),
        )
    })
}

pub(super) fn database_url<F: Fn(&str) -> Option<String>>(
    s: &Settings<F>,
) -> Result<String, ConfigError> {
    postgres_url("DATABASE_URL", s.required("DATABASE_URL")?)
}

/// `DATABASE_DIRECT_URL`: set when `DATABASE_URL` is a transaction-mode pooler.
pub(super) fn database_direct_url<F: Fn(&str) -> Option<String>>(
    s: &Settings<F>,
) -> Result<Option<String>, ConfigError> {
    s.get("DATABASE_DIRECT_URL")
        .map(|url| postgres_url("DATABASE_DIRECT_URL", url))
        .transpose()
}

fn postgres_url(setting: &'static str, url: String) -> Result<String, ConfigError> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(bad(
            setting,
            "must start with postgres:// or postgresql://".into(),
        ));
    }
    Ok(url)
}

/// Requests per second and burst per subject; `None`: no limit.
pub(super) fn rate_limit<F: Fn(&str) -> Option<String>>(
    s: &Settings<F>,
) -> Result<Option<(u32, u32)>, ConfigError> {
    let per_second = s.number("BROKER_RATE_LIMIT_PER_SECOND", 100, 1_000_000)? as u32;
    let burst = s.number(
        "BROKER_RATE_LIMIT_BURST",
        u64::from(per_second) * 2,
        10_000_000,
    )? as u32;
    Ok((per_second > 0).then_some((per_second, burst.max(1))))
}

/// Origins of browser apps allowed to call the API directly.
pub(super) fn cors_origins<F: Fn(&str) -> Option<String>>(
    s: &Settings<F>,
) -> Result<Vec<String>, ConfigError> {
    let mut origins = Vec::new();
    for origin in s
        .get("BROKER_CORS_ORIGINS")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
    {
        // An origin is scheme://host[:port], nothing after it; `*` is refused because each
        // allowed app should be named.
        let valid = (origin.starts_with("https://") || origin.starts_with("http://"))
            && origin.split_once("://").is_some_and(|(_, rest)| {
                !rest.is_empty() && !rest.contains('/') && !rest.contains('*')
            })
            && axum::http::HeaderValue::from_str(origin).is_ok();
        if !valid {
            return Err(bad(
                "BROKER_CORS_ORIGINS",
                format!("{origin:?} is not an origin like https://app.example.com"),
            ));
        }
        origins.push(origin.to_owned());
    }
    Ok(origins)
}
