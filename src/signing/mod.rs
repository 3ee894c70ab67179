//! Signing for every storage protocol, pure and synchronous (no I/O once a key is loaded): GCS
//! V4 signed URLs and POST policies for RSA service-account keys and HMAC keys (this module's
//! root), S3 SigV4 presigned URLs and POST policies ([`s3`]), which share the V4 canonical
//! request with GCS, and Azure blob SAS ([`azure`]).
//!
//! Signing is split in three so that any [`Signer`] (a local key now, IAM `signBlob` later) can
//! sign what canonicalisation produced: [`prepare_url`] → [`Signer::sign`] → [`PreparedUrl::finish`].
//! [`UrlSigner`] does the three in one call for local keys:
//!
//! ```
//! use storage_broker::signing::*;
//! # fn main() -> Result<(), SigningError> {
//! let key = load_signer("tests/fixtures/test-hmac-key.json".as_ref())?;
//! let signer = UrlSigner::new(key, Endpoint::default(), UrlStyle::Path);
//! let request = UrlRequest::new(
//!     Method::Put,
//!     BucketName::parse("my-bucket")?,
//!     Some(ObjectName::parse("users/alice/cat.png")?),
//!     Expiry::from_secs(600)?,
//! )
//! .header("Content-Type", "image/png");
//! let signed = signer.sign(&request, time::OffsetDateTime::now_utc())?;
//! assert!(signed.url.starts_with("https://storage.googleapis.com/my-bucket/users/alice/cat.png?"));
//! assert_eq!(signed.headers, [("content-type".to_owned(), "image/png".to_owned())]);
//! # Ok(()) }
//! ```

pub mod azure;
mod credentials;
mod encoding;
mod endpoint;
mod error;
mod expiry;
mod names;
mod post_policy;
pub mod s3;
mod signer;
mod url;
mod v4;

pub use azure::{AzureCredentials, AzureSigner, BlobEndpoint, BlobSasRequest, SasKey};
pub use credentials::{KeyFiles, LoadedKey, load_signer, rsa_key_from_pem, signer_from_json};
pub use endpoint::{Endpoint, HostPort, Scheme, UrlStyle};
pub use error::SigningError;
pub use expiry::{Expiry, rfc3339_seconds};
pub use names::{BucketName, MAX_OBJECT_NAME_BYTES, ObjectName};
pub use post_policy::{
    Condition, PostKey, PostPolicy, PostPolicyRequest, PreparedPostPolicy, prepare_post_policy,
};
pub use s3::{S3Credentials, S3Signer};
pub use signer::{Algorithm, HmacSigner, RsaSigner, Signer, SigningIdentity};
pub use url::{Method, PreparedUrl, SignedUrl, UrlRequest, prepare_url};

use rayon::prelude::*;
use std::sync::Arc;
use time::OffsetDateTime;

/// A local key with the endpoint and URL style its URLs use.
#[derive(Clone, Debug)]
pub struct UrlSigner {
    signer: Arc<dyn Signer>,
    endpoint: Endpoint,
    style: UrlStyle,
}

impl UrlSigner {
    /// Signs with `signer` for `endpoint`, addressing buckets in `style`.
    pub fn new(signer: Arc<dyn Signer>, endpoint: Endpoint, style: UrlStyle) -> Self {
        Self {
            signer,
            endpoint,
            style,
        }
    }

    /// Who signs.
    pub fn identity(&self) -> &SigningIdentity {
        self.signer.identity()
    }

    /// The key that signs.
    pub fn key(&self) -> Arc<dyn Signer> {
        self.signer.clone()
    }

    /// The same endpoint and URL style with another key.
    pub fn with_key(&self, signer: Arc<dyn Signer>) -> Self {
        Self {
            signer,
            endpoint: self.endpoint.clone(),
            style: self.style.clone(),
        }
    }

    /// Canonicalises `request` without signing it.
    pub fn prepare(
        &self,
        request: &UrlRequest,
        at: OffsetDateTime,
    ) -> Result<PreparedUrl, SigningError> {
        prepare_url(
            self.signer.identity(),
            &self.endpoint,
            &self.style,
            request,
            at,
        )
    }

    /// Signs one URL.
    pub fn sign(
        &self,
        request: &UrlRequest,
        at: OffsetDateTime,
    ) -> Result<SignedUrl, SigningError> {
        let prepared = self.prepare(request, at)?;
        let signature = self
            .signer
            .sign(prepared.date(), prepared.string_to_sign().as_bytes())?;
        Ok(prepared.finish(&signature))
    }

    /// Signs many URLs on all cores of the current rayon pool; results keep the input's order.
    /// Blocking: call it from a thread that may block, never from an async task.
    pub fn sign_all(
        &self,
        requests: &[UrlRequest],
        at: OffsetDateTime,
    ) -> Vec<Result<SignedUrl, SigningError>> {
        requests
            .par_iter()
            .with_min_len(32)
            .map(|request| self.sign(request, at))
            .collect()
    }

    /// Signs a POST policy for an HTML form upload.
    pub fn post_policy(
        &self,
        request: &PostPolicyRequest,
        at: OffsetDateTime,
    ) -> Result<PostPolicy, SigningError> {
        let prepared = prepare_post_policy(
            self.signer.identity(),
            &self.endpoint,
            &self.style,
            request,
            at,
        )?;
        let signature = self
            .signer
            .sign(prepared.date(), prepared.string_to_sign().as_bytes())?;
        Ok(prepared.finish(&signature))
    }
}
