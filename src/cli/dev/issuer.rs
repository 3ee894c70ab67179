//! The dev token issuer: an ES256 key made at start, OIDC discovery and JWKS served on a loopback
//! port of its own (the broker finds its keys there as it finds Keycloak's), and tokens shaped
//! like Keycloak's access tokens (`preferred_username`, `groups`, `realm_access.roles`).

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// The audience dev tokens carry and the dev broker accepts.
pub const AUDIENCE: &str = "storage-broker";
const KEY_ID: &str = "dev-1";
/// Longest lifetime of a dev token: a working day.
const MAX_TTL_SECONDS: i64 = 12 * 3600;

/// What a dev token says about its holder.
#[derive(Debug, Default, Deserialize)]
pub struct TokenRequest {
    /// The subject (and username).
    pub sub: String,
    /// Group paths, comma-separated (`/vision,/lab`).
    #[serde(default)]
    pub groups: String,
    /// Realm roles, comma-separated (`storage-admin`).
    #[serde(default)]
    pub roles: String,
    /// Lifetime in seconds, default one hour.
    pub ttl: Option<i64>,
}

/// Mints dev tokens; shared by the issuer's routes and the broker's `/dev/token`.
#[derive(Clone)]
pub struct DevIssuer {
    inner: Arc<Inner>,
}

struct Inner {
    issuer: String,
    key: EncodingKey,
    jwks: JwkSet,
}

impl DevIssuer {
    /// Makes a fresh key and serves discovery and JWKS on a free loopback port.
    pub async fn start() -> Result<Self, String> {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| "cannot make the dev issuer's key".to_owned())?;
        let key = EncodingKey::from_ec_der(pkcs8.as_ref());
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::ES256)
            .map_err(|e| format!("cannot describe the dev issuer's key: {e}"))?;
        jwk.common.key_id = Some(KEY_ID.to_owned());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("cannot listen for the dev issuer: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("dev issuer: {e}"))?;
        let issuer = Self {
            inner: Arc::new(Inner {
                issuer: format!("http://{addr}"),
                key,
                jwks: JwkSet { keys: vec![jwk] },
            }),
        };
        let routes = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .with_state(issuer.clone());
        tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, routes).await {
                tracing::error!(error = %err, "the dev issuer stopped");
            }
        });
        Ok(issuer)
    }

    /// The issuer URL (`iss`).
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// A signed access token for `request`.
    pub fn token(&self, request: &TokenRequest) -> Result<String, String> {
        let sub = request.sub.trim();
        if sub.is_empty() {
            return Err("a token needs a subject".into());
        }
        let ttl = request.ttl.unwrap_or(3600);
        if !(1..=MAX_TTL_SECONDS).contains(&ttl) {
            return Err(format!("ttl must be 1 to {MAX_TTL_SECONDS} seconds"));
        }
        let list = |text: &str| -> Vec<String> {
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = json!({
            "iss": self.inner.issuer,
            "sub": sub,
            "aud": AUDIENCE,
            "azp": "storage-broker-dev",
            "iat": now,
            "exp": now + ttl,
            "preferred_username": sub,
            "email": format!("{sub}@dev.localhost"),
            "groups": list(&request.groups),
            "realm_access": { "roles": list(&request.roles) },
        });
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(KEY_ID.to_owned());
        jsonwebtoken::encode(&header, &claims, &self.inner.key)
            .map_err(|e| format!("cannot sign a dev token: {e}"))
    }

    /// `GET /dev/token?sub=alice&groups=/vision&roles=storage-admin&ttl=3600` on the dev broker:
    /// `{access_token, token_type, expires_in}`, as a token endpoint answers.
    pub fn routes(&self) -> Router {
        Router::new()
            .route("/dev/token", get(mint))
            .with_state(self.clone())
    }
}

async fn discovery(State(issuer): State<DevIssuer>) -> Json<Value> {
    Json(json!({
        "issuer": issuer.issuer(),
        "jwks_uri": format!("{}/jwks", issuer.issuer()),
        "id_token_signing_alg_values_supported": ["ES256"],
    }))
}

async fn jwks(State(issuer): State<DevIssuer>) -> Json<JwkSet> {
    Json(issuer.inner.jwks.clone())
}

async fn mint(
    State(issuer): State<DevIssuer>,
    Query(request): Query<TokenRequest>,
) -> Result<Json<Value>, crate::api::ApiError> {
    let token = issuer
        .token(&request)
        .map_err(|detail| crate::api::ApiError::BadRequest {
            code: "invalid-token-request",
            detail,
        })?;
    Ok(Json(json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": request.ttl.unwrap_or(3600),
    })))
}
