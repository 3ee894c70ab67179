//! Configuration from the environment. Every setting is checked at start; a bad one stops the
//! start with a message naming it.

mod audit;
mod oidc;
mod service;
mod settings;
mod signing;

pub use audit::{AuditConfig, AuditExportTarget};
pub use oidc::OidcConfig;
pub use signing::{KeylessConfig, StorageEndpoint};

use settings::Settings;
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

/// Everything `serve` needs.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub database_url: Secret,
    /// Straight to PostgreSQL when `database_url` is a transaction-mode pooler (PgBouncer).
    pub database_direct_url: Option<Secret>,
    pub db_max_connections: u32,
    pub oidc: OidcConfig,
    /// Key files, the signing one first (two during a rotation); none means keyless signing.
    pub signing_credentials: Vec<PathBuf>,
    /// Seconds between re-reads of the key files.
    pub signing_reload: Duration,
    /// Seconds of the read reuse window: a GET or HEAD URL asked for again within it is the
    /// same URL (0: off).
    pub read_reuse: u32,
    /// Keyless signing: where Workload Identity's tokens and IAM `signBlob` are.
    pub keyless: KeylessConfig,
    /// An emulator's endpoint instead of Google's.
    pub storage_endpoint: Option<StorageEndpoint>,
    pub policies_dir: PathBuf,
    pub admin_role: String,
    /// Requests per second and burst allowed per subject; `None`: no limit.
    pub rate_limit: Option<(u32, u32)>,
    /// Origins of browser apps that may call the API directly (CORS); none by default.
    pub cors_origins: Vec<String>,
    pub migrate_on_start: bool,
    pub shutdown_timeout: Duration,
    /// Retention and export of the audit's days (`audit maintain`).
    pub audit: AuditConfig,
}

impl Config {
    /// The URL for session-level work (migrations): straight to PostgreSQL, past any pooler.
    pub fn session_database_url(&self) -> &str {
        self.database_direct_url
            .as_ref()
            .unwrap_or(&self.database_url)
            .expose()
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (tests pass a map), section by section.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let s = Settings::new(lookup);
        let listen = service::listen(&s)?;
        let database_url = service::database_url(&s)?;
        let oidc = oidc::oidc(&s)?;
        let signing = signing::signing(&s)?;
        Ok(Self {
            listen,
            database_url: Secret::new(database_url),
            database_direct_url: service::database_direct_url(&s)?.map(Secret::new),
            db_max_connections: s.number_from("BROKER_DB_MAX_CONNECTIONS", 16, 1, 1000)? as u32,
            oidc,
            signing_credentials: signing.credentials,
            signing_reload: signing.reload,
            read_reuse: signing.read_reuse,
            keyless: signing.keyless,
            storage_endpoint: signing.storage_endpoint,
            policies_dir: PathBuf::from(
                s.get("BROKER_POLICIES_DIR")
                    .unwrap_or_else(|| "./policies".into()),
            ),
            admin_role: s
                .get("BROKER_ADMIN_ROLE")
                .unwrap_or_else(|| "storage-admin".into()),
            rate_limit: service::rate_limit(&s)?,
            cors_origins: service::cors_origins(&s)?,
            migrate_on_start: s.flag("BROKER_MIGRATE", false)?,
            shutdown_timeout: Duration::from_secs(s.number(
                "BROKER_SHUTDOWN_TIMEOUT_SECONDS",
                20,
                3600,
            )?),
            audit: audit::audit(&s)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::Algorithm;
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
            ("BROKER_IAM_CONCURRENCY", "0"),
            ("BROKER_IAM_QUOTA_PER_MINUTE", "10"),
            ("BROKER_KEYLESS_HMAC", "maybe"),
            ("BROKER_KEYLESS_HMAC_ROTATION_SECONDS", "5"),
            ("BROKER_READ_REUSE_SECONDS", "151201"),
            ("BROKER_READ_REUSE_SECONDS", "-1"),
            ("BROKER_SIGNING_RELOAD_SECONDS", "-5"),
            ("BROKER_STORAGE_ENDPOINT", "http://[::1"),
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
