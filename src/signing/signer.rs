//! The signature itself: who signs, with which algorithm. Canonicalisation never looks inside a
//! [`Signer`]; it needs only its [`SigningIdentity`], so a remote backend (IAM `signBlob`) can
//! sign a [`PreparedUrl`](super::PreparedUrl)'s string-to-sign without changing it.

use super::SigningError;
use aws_lc_rs::{hmac, rand::SystemRandom, signature};
use std::fmt;

/// The V4 signing algorithm: RSA for service-account keys, HMAC for HMAC keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// `GOOG4-RSA-SHA256`.
    RsaSha256,
    /// `GOOG4-HMAC-SHA256`.
    HmacSha256,
}

impl Algorithm {
    /// The name written into URLs and strings-to-sign.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RsaSha256 => "GOOG4-RSA-SHA256",
            Self::HmacSha256 => "GOOG4-HMAC-SHA256",
        }
    }
}

/// What a signature is made with, as far as the signed text needs to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningIdentity {
    /// The algorithm the signer uses.
    pub algorithm: Algorithm,
    /// The service account's e-mail, or the HMAC key's access id.
    pub credential_id: String,
}

/// Signs a V4 string-to-sign. `date` is the credential scope's `YYYYMMDD`, which HMAC signing
/// derives its key from.
pub trait Signer: Send + Sync + fmt::Debug {
    /// The identity written into what is signed.
    fn identity(&self) -> &SigningIdentity;
    /// The raw signature of `string_to_sign`.
    fn sign(&self, date: &str, string_to_sign: &[u8]) -> Result<Vec<u8>, SigningError>;
}

/// Signs with a service account's RSA private key (RSASSA-PKCS1-v1_5 with SHA-256).
pub struct RsaSigner {
    identity: SigningIdentity,
    key: signature::RsaKeyPair,
    rng: SystemRandom,
}

impl RsaSigner {
    /// A signer for `client_email` with an RSA key pair.
    pub fn new(client_email: String, key: signature::RsaKeyPair) -> Self {
        Self {
            identity: SigningIdentity {
                algorithm: Algorithm::RsaSha256,
                credential_id: client_email,
            },
            key,
            rng: SystemRandom::new(),
        }
    }

    /// The public key as a DER `RSAPublicKey`, for verifying what this signer made.
    pub fn public_key_der(&self) -> &[u8] {
        use signature::KeyPair;
        self.key.public_key().as_ref()
    }
}

impl fmt::Debug for RsaSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RsaSigner")
            .field("client_email", &self.identity.credential_id)
            .finish_non_exhaustive()
    }
}

impl Signer for RsaSigner {
    fn identity(&self) -> &SigningIdentity {
        &self.identity
    }

    fn sign(&self, _date: &str, string_to_sign: &[u8]) -> Result<Vec<u8>, SigningError> {
        let mut out = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &self.rng,
                string_to_sign,
                &mut out,
            )
            .map_err(|_| SigningError::Backend("RSA signing failed".into()))?;
        Ok(out)
    }
}

/// Signs with a GCS HMAC key: the AWS SigV4 key derivation with `GOOG4` and `goog4_request`.
pub struct HmacSigner {
    identity: SigningIdentity,
    /// `GOOG4` followed by the secret; never printed.
    root: Vec<u8>,
    day_keys: super::v4::DayKeys,
}

impl HmacSigner {
    /// A signer for the HMAC key `access_id` with its `secret` (used as text, not decoded).
    pub fn new(access_id: String, secret: &str) -> Self {
        let mut root = Vec::with_capacity(5 + secret.len());
        root.extend_from_slice(b"GOOG4");
        root.extend_from_slice(secret.as_bytes());
        Self {
            identity: SigningIdentity {
                algorithm: Algorithm::HmacSha256,
                credential_id: access_id,
            },
            root,
            day_keys: super::v4::DayKeys::default(),
        }
    }

    /// The signing key for one day: HMAC chained over the date, `auto`, `storage`, `goog4_request`.
    fn day_key(&self, date: &str) -> hmac::Key {
        let mut key = hmac::Key::new(hmac::HMAC_SHA256, &self.root);
        for part in [date, "auto", "storage", "goog4_request"] {
            let tag = hmac::sign(&key, part.as_bytes());
            key = hmac::Key::new(hmac::HMAC_SHA256, tag.as_ref());
        }
        key
    }
}

impl fmt::Debug for HmacSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HmacSigner")
            .field("access_id", &self.identity.credential_id)
            .finish_non_exhaustive()
    }
}

impl Signer for HmacSigner {
    fn identity(&self) -> &SigningIdentity {
        &self.identity
    }

    fn sign(&self, date: &str, string_to_sign: &[u8]) -> Result<Vec<u8>, SigningError> {
        Ok(self
            .day_keys
            .mac(date, string_to_sign, || self.day_key(date))
            .as_ref()
            .to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let signer = HmacSigner::new("GOOG1EXAMPLE".into(), "s3cr3t-value");
        let shown = format!("{signer:?}");
        assert!(shown.contains("GOOG1EXAMPLE"));
        assert!(!shown.contains("s3cr3t"));
    }
}
