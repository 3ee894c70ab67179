//! Reading signing keys: a service-account key JSON (RSA) or the JSON that
//! `gcloud storage hmac create --format=json` prints (HMAC).

use super::{HmacSigner, RsaSigner, Signer, SigningError};
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;

/// Reads a key file and makes the signer it describes.
pub fn load_signer(path: &Path) -> Result<Arc<dyn Signer>, SigningError> {
    signer_from_json(&read_key_file(path)?)
}

/// The bytes of a key or credentials file, or an error naming it.
pub(crate) fn read_key_file(path: &Path) -> Result<Vec<u8>, SigningError> {
    std::fs::read(path).map_err(|source| SigningError::KeyFileUnreadable {
        path: path.to_owned(),
        source,
    })
}

/// Makes a signer from the text of a key file.
pub fn signer_from_json(bytes: &[u8]) -> Result<Arc<dyn Signer>, SigningError> {
    let invalid = |msg: &str| SigningError::KeyFileInvalid(msg.to_owned());
    // serde_json's messages name a line and column, never the text itself.
    let doc: Value =
        serde_json::from_slice(bytes).map_err(|e| invalid(&format!("not JSON ({e})")))?;
    let Some(doc) = doc.as_object() else {
        return Err(invalid("expected a JSON object"));
    };
    if doc.contains_key("private_key") {
        if let Some(kind) = doc
            .get("type")
            .and_then(Value::as_str)
            .filter(|k| *k != "service_account")
        {
            return Err(SigningError::KeyFileInvalid(format!(
                "\"type\" is {kind:?}, expected \"service_account\""
            )));
        }
        let email = doc
            .get("client_email")
            .and_then(Value::as_str)
            .filter(|e| !e.is_empty())
            .ok_or_else(|| invalid("service-account key without \"client_email\""))?;
        let pem = doc
            .get("private_key")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("\"private_key\" is not a string"))?;
        let key = rsa_key_from_pem(pem)?;
        return Ok(Arc::new(RsaSigner::new(email.to_owned(), key)));
    }
    let access_id = doc
        .get("metadata")
        .and_then(|m| m.get("accessId"))
        .and_then(Value::as_str);
    let secret = doc.get("secret").and_then(Value::as_str);
    match (access_id, secret) {
        (Some(id), Some(secret)) if !id.is_empty() && !secret.is_empty() => {
            Ok(Arc::new(HmacSigner::new(id.to_owned(), secret)))
        }
        _ => Err(invalid(
            "expected a service-account key (client_email, private_key) or the output of \
             `gcloud storage hmac create --format=json` (metadata.accessId, secret)",
        )),
    }
}

/// Parses a PEM private key, telling a non-RSA key apart from a broken one.
pub fn rsa_key_from_pem(pem_text: &str) -> Result<RsaKeyPair, SigningError> {
    let block = pem::parse(pem_text)
        .map_err(|e| SigningError::KeyInvalid(format!("not a PEM block ({e})")))?;
    let der = block.contents();
    match block.tag() {
        "PRIVATE KEY" => RsaKeyPair::from_pkcs8(der).map_err(|rejected| {
            if let Some(kind) = non_rsa_pkcs8(der) {
                SigningError::KeyNotRsa(kind)
            } else {
                SigningError::KeyInvalid(format!("PKCS#8 key rejected ({rejected})"))
            }
        }),
        "RSA PRIVATE KEY" => RsaKeyPair::from_der(der).map_err(|rejected| {
            SigningError::KeyInvalid(format!("PKCS#1 key rejected ({rejected})"))
        }),
        "EC PRIVATE KEY" => Err(SigningError::KeyNotRsa("EC")),
        other => Err(SigningError::KeyInvalid(format!(
            "unexpected PEM block {other:?}"
        ))),
    }
}

fn non_rsa_pkcs8(der: &[u8]) -> Option<&'static str> {
    let ec = [
        (&signature::ECDSA_P256_SHA256_ASN1_SIGNING, "EC P-256"),
        (&signature::ECDSA_P384_SHA384_ASN1_SIGNING, "EC P-384"),
        (&signature::ECDSA_P521_SHA512_ASN1_SIGNING, "EC P-521"),
    ];
    for (alg, name) in ec {
        if EcdsaKeyPair::from_pkcs8(alg, der).is_ok() {
            return Some(name);
        }
    }
    Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
        .is_ok()
        .then_some("Ed25519")
}

/// A key loaded from one of the configured key files.
pub struct LoadedKey {
    pub signer: Arc<dyn Signer>,
    pub path: std::path::PathBuf,
    /// SHA-256 of the file, to tell a replaced file from an unchanged one.
    pub fingerprint: [u8; 32],
    /// A service-account key's OAuth token endpoint (`token_uri`), if the file names one.
    pub token_uri: Option<String>,
}

/// The key files of `BROKER_SIGNING_CREDENTIALS`: the one to sign with first and, during a
/// rotation, the one it replaces second.
#[derive(Clone, Debug)]
pub struct KeyFiles(Vec<std::path::PathBuf>);

impl KeyFiles {
    /// The files, in order of preference.
    pub fn new(paths: Vec<std::path::PathBuf>) -> Self {
        Self(paths)
    }

    fn load(path: &Path) -> Result<LoadedKey, SigningError> {
        let bytes = read_key_file(path)?;
        let signer = signer_from_json(&bytes).map_err(|e| match e {
            SigningError::KeyFileInvalid(why) => {
                SigningError::KeyFileInvalid(format!("{}: {why}", path.display()))
            }
            other => other,
        })?;
        let token_uri = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|doc| doc.get("token_uri")?.as_str().map(str::to_owned));
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bytes);
        let mut fingerprint = [0u8; 32];
        fingerprint.copy_from_slice(digest.as_ref());
        Ok(LoadedKey {
            signer,
            path: path.to_owned(),
            fingerprint,
            token_uri,
        })
    }

    /// At start: every file must load (a typo stops the start); the first signs.
    pub fn load_all(&self) -> Result<LoadedKey, SigningError> {
        let mut loaded = self
            .0
            .iter()
            .map(|p| Self::load(p))
            .collect::<Result<Vec<_>, _>>()?;
        if loaded.is_empty() {
            return Err(SigningError::KeyFileInvalid("no key file given".into()));
        }
        Ok(loaded.swap_remove(0))
    }

    /// At a reload: the first file that loads, with why each one before it did not.
    pub fn load_first(&self) -> (Option<LoadedKey>, Vec<SigningError>) {
        let mut errors = Vec::new();
        for path in &self.0 {
            match Self::load(path) {
                Ok(key) => return (Some(key), errors),
                Err(err) => errors.push(err),
            }
        }
        (None, errors)
    }
}
