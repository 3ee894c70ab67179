//! Who issues the tokens the broker accepts: `BROKER_OIDC_*`, `BROKER_JWKS_*`,
//! `BROKER_CLEARANCE_CLAIM`.

use super::ConfigError;
use super::settings::{Settings, bad, check_http_url};
use crate::identity::parse_algorithm;
use jsonwebtoken::Algorithm;
use std::time::Duration;

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

pub(super) fn oidc<F: Fn(&str) -> Option<String>>(
    s: &Settings<F>,
) -> Result<OidcConfig, ConfigError> {
    let issuer = check_http_url("BROKER_OIDC_ISSUER", s.required("BROKER_OIDC_ISSUER")?)?;
    let jwks_url = s
        .get("BROKER_OIDC_JWKS_URL")
        .map(|url| check_http_url("BROKER_OIDC_JWKS_URL", url))
        .transpose()?;
    let audiences: Vec<String> = s
        .required("BROKER_OIDC_AUDIENCE")?
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
    let algorithms = s
        .get("BROKER_OIDC_ALGORITHMS")
        .unwrap_or_else(|| "RS256,ES256,EdDSA".into())
        .split(',')
        .map(parse_algorithm)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("BROKER_OIDC_ALGORITHMS", e))?;
    let client_id = s
        .get("BROKER_OIDC_CLIENT_ID")
        .or_else(|| audiences.first().cloned());
    Ok(OidcConfig {
        issuer: issuer.trim_end_matches('/').to_owned(),
        jwks_url,
        audiences,
        algorithms,
        client_id,
        leeway_seconds: s.number("BROKER_OIDC_LEEWAY_SECONDS", 30, 300)?,
        refetch_interval: Duration::from_secs(s.number("BROKER_JWKS_REFETCH_SECONDS", 10, 3600)?),
        refresh_interval: Duration::from_secs(
            s.number("BROKER_JWKS_REFRESH_SECONDS", 300, 86_400)?.max(1),
        ),
        clearance_claim: s.get("BROKER_CLEARANCE_CLAIM"),
    })
}
