//! Configuration from the environment. Every setting is checked at start; a bad one stops the
//! start with a message naming it.

use crate::identity::parse_algorithm;
use jsonwebtoken::Algorithm;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A setting that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{setting}: {message}")]
pub struct ConfigError {
    pub setting: &'static str,
    pub message: String,
}

/// A value never printed: database URLs carry passwords.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The value itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// OIDC settings.
#[derive(Clone, Debug)]
pub struct OidcConfig {
    pub issuer: String,
    pub jwks_url: Option<String>,
    pub audiences: Vec<String>,
    pub algorithms: Vec<Algorithm>,
    pub client_id: Option<String>,
    pub leeway_seconds: u64,
    pub refetch_interval: Duration,
    pub refresh_interval: Duration,
    /// A claim naming the caller's classification clearance.
    pub clearance_claim: Option<String>,
}

/// Keyless signing through IAM `signBlob`.
#[derive(Clone, Debug)]
pub struct KeylessConfig {
    pub metadata_url: String,
    pub iam_credentials_url: String,
    /// Sign as this service account instead of the workload's own (needs Token Creator on it).
    pub service_account: Option<String>,
    /// signBlob calls in flight at most, across all requests.
    pub concurrency: usize,
    /// How long the start waits for the metadata server to name the service account (on a
    /// fresh GKE node it may answer late).
    pub metadata_wait: std::time::Duration,
}

/// Everything `serve` needs.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub database_url: Secret,
    pub db_max_connections: u32,
    pub oidc: OidcConfig,
    /// Key files, the signing one first (two during a rotation); none means keyless signing.
    pub signing_credentials: Vec<PathBuf>,
    /// Seconds between re-reads of the key files.
    pub signing_reload: Duration,
    /// Keyless signing: where Workload Identity's tokens and IAM `signBlob` are.
    pub keyless: KeylessConfig,
    pub storage_endpoint: Option<String>,
    pub policies_dir: PathBuf,
    pub admin_role: String,
    /// Requests per second and burst allowed per subject; `None`: no limit.
    pub rate_limit: Option<(u32, u32)>,
    /// Origins of browser apps that may call the API directly (CORS); none by default.
    pub cors_origins: Vec<String>,
    pub migrate_on_start: bool,
    pub shutdown_timeout: Duration,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let required = |setting: &'static str| {
            get(setting).ok_or_else(|| ConfigError {
                setting,
                message: "required, not set".into(),
            })
        };
        let bad = |setting: &'static str, message: String| ConfigError { setting, message };

        let listen = get("BROKER_LISTEN").unwrap_or_else(|| "0.0.0.0:8080".into());
        let listen = listen.parse().map_err(|_| {
            bad(
                "BROKER_LISTEN",
                format!("{listen:?} is not host:port, e.g. 0.0.0.0:8080"),
            )
        })?;

        let database_url = required("DATABASE_URL")?;
        if !(database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")) {
            return Err(bad(
                "DATABASE_URL",
                "must start with postgres:// or postgresql://".into(),
            ));
        }

        let issuer = required("BROKER_OIDC_ISSUER")?;
        if !(issuer.starts_with("https://") || issuer.starts_with("http://")) {
            return Err(bad(
                "BROKER_OIDC_ISSUER",
                format!("{issuer:?} is not an http(s) URL"),
            ));
        }
        let jwks_url = get("BROKER_OIDC_JWKS_URL");
        if let Some(url) = &jwks_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            {
                return Err(bad(
                    "BROKER_OIDC_JWKS_URL",
                    format!("{url:?} is not an http(s) URL"),
                ));
            }
        }
        let audiences: Vec<String> = required("BROKER_OIDC_AUDIENCE")?
            .split(',')
            .map(|a| a.trim().to_owned())
            .filter(|a| !a.is_empty())
            .collect();
        if audiences.is_empty() {
            return Err(bad(
                "BROKER_OIDC_AUDIENCE",
                "name at least one audience".into(),
            ));
        }
        let algorithms = get("BROKER_OIDC_ALGORITHMS")
            .unwrap_or_else(|| "RS256,ES256,EdDSA".into())
            .split(',')
            .map(parse_algorithm)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad("BROKER_OIDC_ALGORITHMS", e))?;
        let client_id = get("BROKER_OIDC_CLIENT_ID").or_else(|| audiences.first().cloned());
        // A whole number from `min` to `max`; the message gives the range accepted.
        let number_from =
            |setting: &'static str, default: u64, min: u64, max: u64| -> Result<u64, ConfigError> {
                match get(setting) {
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
            };
        let number =
            |setting: &'static str, default: u64, max: u64| number_from(setting, default, 0, max);
        let oidc = OidcConfig {
            issuer: issuer.trim_end_matches('/').to_owned(),
            jwks_url,
            audiences,
            algorithms,
            client_id,
            leeway_seconds: number("BROKER_OIDC_LEEWAY_SECONDS", 30, 300)?,
            refetch_interval: Duration::from_secs(number("BROKER_JWKS_REFETCH_SECONDS", 10, 3600)?),
            refresh_interval: Duration::from_secs(
                number("BROKER_JWKS_REFRESH_SECONDS", 300, 86_400)?.max(1),
            ),
            clearance_claim: get("BROKER_CLEARANCE_CLAIM"),
        };

        let signing_credentials: Vec<PathBuf> = get("BROKER_SIGNING_CREDENTIALS")
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(PathBuf::from)
                    .collect()
            })
            .unwrap_or_default();
        if signing_credentials.len() > 2 {
            return Err(bad(
                "BROKER_SIGNING_CREDENTIALS",
                "at most two key files: the new one first, the old one second".into(),
            ));
        }
        let signing_reload =
            Duration::from_secs(number("BROKER_SIGNING_RELOAD_SECONDS", 60, 86_400)?.max(1));
        let http_url = |setting: &'static str, default: &str| {
            let value = get(setting).unwrap_or_else(|| default.to_owned());
            if value.starts_with("http://") || value.starts_with("https://") {
                Ok(value)
            } else {
                Err(bad(setting, format!("{value:?} is not an http(s) URL")))
            }
        };
        let keyless = KeylessConfig {
            metadata_url: http_url("BROKER_METADATA_URL", "http://metadata.google.internal")?,
            iam_credentials_url: http_url(
                "BROKER_IAM_CREDENTIALS_URL",
                "https://iamcredentials.googleapis.com",
            )?,
            service_account: get("BROKER_SIGNING_SERVICE_ACCOUNT"),
            concurrency: number("BROKER_IAM_CONCURRENCY", 16, 256)?.max(1) as usize,
            metadata_wait: std::time::Duration::from_secs(number(
                "BROKER_METADATA_WAIT_SECONDS",
                10,
                600,
            )?),
        };
        let storage_endpoint = get("BROKER_STORAGE_ENDPOINT");
        let policies_dir =
            PathBuf::from(get("BROKER_POLICIES_DIR").unwrap_or_else(|| "./policies".into()));
        let admin_role = get("BROKER_ADMIN_ROLE").unwrap_or_else(|| "storage-admin".into());
        let per_second = number("BROKER_RATE_LIMIT_PER_SECOND", 100, 1_000_000)? as u32;
        let burst = number(
            "BROKER_RATE_LIMIT_BURST",
            u64::from(per_second) * 2,
            10_000_000,
        )? as u32;
        let rate_limit = (per_second > 0).then_some((per_second, burst.max(1)));
        let mut cors_origins = Vec::new();
        for origin in get("BROKER_CORS_ORIGINS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
        {
            // An origin is scheme://host[:port], nothing after it; `*` is refused because
            // each allowed app should be named.
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
            cors_origins.push(origin.to_owned());
        }
        let migrate_on_start = match get("BROKER_MIGRATE").as_deref() {
            None | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(other) => {
                return Err(bad(
                    "BROKER_MIGRATE",
                    format!("{other:?}: use true or false"),
                ));
            }
        };
        let db_max_connections = number_from("BROKER_DB_MAX_CONNECTIONS", 16, 1, 1000)? as u32;
        let shutdown_timeout =
            Duration::from_secs(number("BROKER_SHUTDOWN_TIMEOUT_SECONDS", 20, 3600)?);
        Ok(Self {
            listen,
            database_url: Secret::new(database_url),
            db_max_connections,
            oidc,
            signing_credentials,
            signing_reload,
            keyless,
            storage_endpoint,
            policies_dir,
            admin_role,
            cors_origins,
            rate_limit,
            migrate_on_start,
            shutdown_timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut env: HashMap<String, String> = [
            ("DATABASE_URL", "postgres://u:pw@localhost/db"),
            ("BROKER_OIDC_ISSUER", "https://id.example.com/realms/r"),
            ("BROKER_OIDC_AUDIENCE", "storage-broker"),
            ("BROKER_SIGNING_CREDENTIALS", "/keys/sa.json"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        for (k, v) in pairs {
            env.insert((*k).to_owned(), (*v).to_owned());
        }
        Config::from_lookup(|name| env.get(name).cloned())
    }

    #[test]
    fn defaults() {
        let c = config(&[]).expect("valid");
        assert_eq!(c.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(c.admin_role, "storage-admin");
        assert_eq!(c.oidc.client_id.as_deref(), Some("storage-broker"));
        assert_eq!(
            c.oidc.algorithms,
            [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA]
        );
        assert!(
            !format!("{c:?}").contains("pw"),
            "the database password never shows"
        );
    }

    #[test]
    fn bad_settings_are_named() {
        for (setting, value) in [
            ("BROKER_LISTEN", "nowhere"),
            ("DATABASE_URL", "mysql://x"),
            ("DATABASE_URL", ""),
            ("BROKER_OIDC_ISSUER", "id.example.com"),
            ("BROKER_OIDC_AUDIENCE", " , "),
            ("BROKER_OIDC_ALGORITHMS", "RS256,HS256"),
            ("BROKER_OIDC_ALGORITHMS", "none"),
            ("BROKER_MIGRATE", "yes please"),
            ("BROKER_DB_MAX_CONNECTIONS", "0"),
            ("BROKER_OIDC_LEEWAY_SECONDS", "-1"),
            ("BROKER_OIDC_JWKS_URL", "ftp://x"),
            ("BROKER_CORS_ORIGINS", "https://app.example.com/path"),
            ("BROKER_CORS_ORIGINS", "*"),
            ("BROKER_SIGNING_CREDENTIALS", "/a.json,/b.json,/c.json"),
            ("BROKER_METADATA_URL", "metadata.google.internal"),
            ("BROKER_IAM_CONCURRENCY", "lots"),
            ("BROKER_SIGNING_RELOAD_SECONDS", "-5"),
        ] {
            let err = config(&[(setting, value)]).expect_err(setting);
            assert_eq!(err.setting, setting, "{value:?}: {err}");
        }
    }

    /// The message gives the range that is accepted: 0 connections is refused, so the range
    /// starts at 1.
    #[test]
    fn db_max_connections_range_is_the_one_stated() {
        for value in ["0", "zero", "1001", "-1"] {
            let err = config(&[("BROKER_DB_MAX_CONNECTIONS", value)]).expect_err(value);
            assert_eq!(err.setting, "BROKER_DB_MAX_CONNECTIONS");
            assert!(
                err.message.contains("from 1 to 1000"),
                "{value:?}: {}",
                err.message
            );
        }
        for (value, expected) in [("1", 1), ("1000", 1000), (" 16 ", 16)] {
            let c = config(&[("BROKER_DB_MAX_CONNECTIONS", value)]).expect(value);
            assert_eq!(c.db_max_connections, expected);
        }
        assert_eq!(config(&[]).expect("valid").db_max_connections, 16);
    }
}
