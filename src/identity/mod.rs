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

/// The token parsing a request goes through before any key is involved: the JWT header, then the
/// claims (from the token's payload, and the bytes themselves) made into a principal. For the
/// fuzz targets (`crate::fuzz`).
pub fn fuzz_token(data: &[u8]) {
    use base64::Engine;
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = jsonwebtoken::decode_header(text);
    let payload = text.split('.').nth(1).and_then(|p| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(p)
            .ok()
    });
    for bytes in [payload.as_deref(), Some(data)].into_iter().flatten() {
        if let Ok(claims) = serde_json::from_slice::<principal::Claims>(bytes) {
            let principal = claims.into_principal(Some("storage-broker"), Some("clearance"));
            let _ = principal.grant_principals();
            let _ = principal.member_keys();
        }
    }
}
