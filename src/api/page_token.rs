//! Opaque page tokens. A listing's `next_page_token` is storage's own token sealed with
//! AES-256-GCM together with the bucket, the prefix and the caller it was issued for: it
//! reveals nothing (storage's tokens may be object names a caller may not see), and a token
//! used for another bucket, prefix or caller, or altered, is refused. The key is the broker's,
//! kept in the database and shared by every replica (`broker_secrets`).

use super::ApiError;
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The name of the key in `broker_secrets`.
pub const KEY_NAME: &str = "page-token-key";
/// AES-256.
pub const KEY_LEN: usize = 32;

/// Seals and opens page tokens.
pub struct PageTokens {
    key: LessSafeKey,
}

/// What a token is bound to.
#[derive(serde::Serialize, serde::Deserialize, PartialEq, Eq)]
struct Sealed {
    bucket: String,
    prefix: String,
    caller: String,
    backend: String,
}

fn invalid() -> ApiError {
    ApiError::bad_request(
        "invalid_page_token",
        "page_token: not one this listing (bucket, prefix and caller) gave",
    )
}

impl PageTokens {
    /// With a 32-byte key.
    pub fn new(key: &[u8]) -> Result<Self, String> {
        let key = UnboundKey::new(&AES_256_GCM, key)
            .map_err(|_| "a page-token key is 32 bytes".to_owned())?;
        Ok(Self {
            key: LessSafeKey::new(key),
        })
    }

    /// The opaque token for storage's `backend` token of this listing.
    pub fn seal(
        &self,
        bucket: &str,
        prefix: &str,
        caller: &str,
        backend: &str,
    ) -> Result<String, ApiError> {
        let sealed = Sealed {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            caller: caller.to_owned(),
            backend: backend.to_owned(),
        };
        let mut data = serde_json::to_vec(&sealed).map_err(|_| ApiError::Internal)?;
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| ApiError::Internal)?;
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut data)
            .map_err(|_| ApiError::Internal)?;
        let mut token = nonce.to_vec();
        token.extend_from_slice(&data);
        Ok(URL_SAFE_NO_PAD.encode(token))
    }

    /// Storage's token inside `token`, if it was issued for this bucket, prefix and caller.
    pub fn open(
        &self,
        token: &str,
        bucket: &str,
        prefix: &str,
        caller: &str,
    ) -> Result<String, ApiError> {
        let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
        if raw.len() < NONCE_LEN {
            return Err(invalid());
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| invalid())?;
        let mut sealed = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::empty(), &mut sealed)
            .map_err(|_| invalid())?;
        let sealed: Sealed = serde_json::from_slice(plain).map_err(|_| invalid())?;
        if sealed.bucket != bucket || sealed.prefix != prefix || sealed.caller != caller {
            return Err(invalid());
        }
        Ok(sealed.backend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_opaque_and_bound() {
        let tokens = PageTokens::new(&[7u8; KEY_LEN]).expect("key");
        let token = tokens
            .seal("b", "shared/", "alice", "private/secret-name.pdf")
            .expect("seal");
        assert!(!token.contains("private") && !token.contains("secret"));
        assert_eq!(
            tokens.open(&token, "b", "shared/", "alice").expect("open"),
            "private/secret-name.pdf"
        );
        for (bucket, prefix, caller) in [
            ("c", "shared/", "alice"),
            ("b", "", "alice"),
            ("b", "shared/", "bob"),
        ] {
            assert!(tokens.open(&token, bucket, prefix, caller).is_err());
        }
        // Altered, truncated, or from another key: refused.
        let mut altered = URL_SAFE_NO_PAD.decode(&token).expect("b64");
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert!(
            tokens
                .open(&URL_SAFE_NO_PAD.encode(&altered), "b", "shared/", "alice")
                .is_err()
        );
        assert!(tokens.open("abc", "b", "shared/", "alice").is_err());
        assert!(tokens.open("", "b", "shared/", "alice").is_err());
        let other = PageTokens::new(&[8u8; KEY_LEN]).expect("key");
        assert!(other.open(&token, "b", "shared/", "alice").is_err());
        // Two seals of the same token differ (a fresh nonce each).
        let again = tokens
            .seal("b", "shared/", "alice", "private/secret-name.pdf")
            .expect("seal");
        assert_ne!(token, again);
    }
}
