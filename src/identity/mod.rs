//! Who the caller is: the JWT from the gatekeeper, verified against the issuer's JWKS.

mod jwks;
mod principal;
mod verifier;

pub use jwks::{JwksSource, KeyStore, VerificationKey};
pub use principal::Principal;
pub use verifier::{AuthError, TokenRules, TokenVerifier, parse_algorithm};

use axum::http::HeaderMap;

/// The bearer token from `Authorization: Bearer`, `X-Auth-Token` (keycloak-gatekeeper) or
/// `X-Forwarded-Access-Token` (oauth2-proxy), in that order.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let (scheme, token) = value.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim())
            .filter(|t| !t.is_empty());
    }
    ["x-auth-token", "x-forwarded-access-token"]
        .iter()
        .find_map(|name| headers.get(*name).and_then(|v| v.to_str().ok()))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}
