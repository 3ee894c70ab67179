//! Token verification with every rule pinned: algorithm, key, issuer, audience, time.

use super::jwks::KeyStore;
use super::principal::{Claims, Principal};
use aws_lc_rs::digest;
use jsonwebtoken::{Algorithm, Validation, decode, decode_header};
use std::sync::Arc;
use std::time::Duration;

/// Why a token was refused: for the log, never for the caller (who is told 401 and no more).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("malformed token: {0}")]
    Malformed(jsonwebtoken::errors::Error),
    #[error("algorithm {0:?} is not allowed")]
    AlgorithmNotAllowed(Algorithm),
    #[error("token names no key (kid)")]
    NoKeyId,
    #[error("unknown key id {0:?}")]
    UnknownKey(String),
    #[error("token algorithm {algorithm:?} does not match key {kid:?}")]
    KeyMismatch { algorithm: Algorithm, kid: String },
    /// Signature, issuer, expiry, not-before or a required claim.
    #[error("token rejected: {0}")]
    Rejected(jsonwebtoken::errors::Error),
    #[error("token is not for this audience")]
    WrongAudience,
    #[error("empty subject")]
    EmptySubject,
    /// Expired since it was verified (and cached).
    #[error("token expired")]
    Expired,
}

/// What a valid token must satisfy.
#[derive(Clone, Debug)]
pub struct TokenRules {
    pub issuer: String,
    /// Accepted in `aud`, or as `azp` (Keycloak access tokens carry the client there).
    pub audiences: Vec<String>,
    /// Asymmetric algorithms only; `none` and HS* can never be configured.
    pub algorithms: Vec<Algorithm>,
    /// Whose `resource_access.<client>.roles` count as roles.
    pub client_id: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway: u64,
    /// A claim naming the caller's classification level(s), read beside realm roles.
    pub clearance_claim: Option<String>,
}

/// Verifies bearer tokens against the issuer's keys.
pub struct TokenVerifier {
    rules: TokenRules,
    keys: KeyStore,
    /// SHA-256 of a token that verified → its caller and `exp`. Apps send the same token many
    /// times; this spares the signature check and the parsing. Held at most a minute, so a key
    /// the issuer withdraws stops working soon even for tokens seen before.
    verified: moka::sync::Cache<[u8; 32], Arc<(Principal, i64)>>,
}

/// How long a verified token is remembered at most.
const VERIFIED_TTL: Duration = Duration::from_secs(60);

impl TokenVerifier {
    pub fn new(rules: TokenRules, keys: KeyStore) -> Self {
        let verified = moka::sync::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(VERIFIED_TTL)
            .build();
        Self {
            rules,
            keys,
            verified,
        }
    }

    /// The key store (readiness, refresh).
    pub fn keys(&self) -> &KeyStore {
        &self.keys
    }

    /// The caller a token names, if it is valid in every respect.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let mut digest_bytes = [0u8; 32];
        digest_bytes.copy_from_slice(digest::digest(&digest::SHA256, token.as_bytes()).as_ref());
        if let Some(hit) = self.verified.get(&digest_bytes) {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            if hit.1 + self.rules.leeway as i64 > now {
                return Ok(hit.0.clone());
            }
            self.verified.invalidate(&digest_bytes);
            return Err(AuthError::Expired);
        }
        let (principal, exp) = self.verify_uncached(token).await?;
        self.verified
            .insert(digest_bytes, Arc::new((principal.clone(), exp)));
        Ok(principal)
    }

    async fn verify_uncached(&self, token: &str) -> Result<(Principal, i64), AuthError> {
        let unverified_header = decode_header(token).map_err(AuthError::Malformed)?;
        let alg = unverified_header.alg;
        if !self.rules.algorithms.contains(&alg) {
            return Err(AuthError::AlgorithmNotAllowed(alg));
        }
        let kid = unverified_header.kid.ok_or(AuthError::NoKeyId)?;
        let key = self
            .keys
            .key(&kid)
            .await
            .ok_or_else(|| AuthError::UnknownKey(kid.clone()))?;
        if key.algorithm != alg {
            return Err(AuthError::KeyMismatch {
                algorithm: alg,
                kid,
            });
        }
        let mut validation = Validation::new(alg);
        validation.leeway = self.rules.leeway;
        validation.validate_nbf = true;
        validation.validate_aud = false; // checked below, where `azp` may stand in for `aud`
        validation.set_issuer(&[&self.rules.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        let claims = decode::<Claims>(token, &key.key, &validation)
            .map_err(AuthError::Rejected)?
            .claims;
        let audience_ok = self
            .rules
            .audiences
            .iter()
            .any(|a| claims.aud.contains(a) || claims.azp.as_deref() == Some(a.as_str()));
        if !audience_ok {
            return Err(AuthError::WrongAudience);
        }
        if claims.sub.is_empty() {
            return Err(AuthError::EmptySubject);
        }
        let exp = claims.exp;
        Ok((
            claims.into_principal(
                self.rules.client_id.as_deref(),
                self.rules.clearance_claim.as_deref(),
            ),
            exp,
        ))
    }
}

/// Parses an algorithm name for configuration, refusing symmetric ones.
pub fn parse_algorithm(name: &str) -> Result<Algorithm, String> {
    let alg = match name.trim() {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        other => {
            return Err(format!(
                "{other:?} is not an allowed algorithm (RS*, PS*, ES256, ES384, EdDSA)"
            ));
        }
    };
    Ok(alg)
}
