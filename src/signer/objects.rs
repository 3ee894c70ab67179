//! [`ObjectUrl`]: one object URL to sign, as the API plans it, and how each protocol writes it —
//! which headers and query parameters bind the request, and which the client must only send.

use crate::signing::{BlobSasRequest, BucketName, Expiry, Method, ObjectName, UrlRequest};
use time::OffsetDateTime;

/// What a URL lets its holder do to one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectMethod {
    Get,
    Head,
    Put,
    Delete,
    /// GCS's resumable upload start: a POST with `x-goog-resumable: start`.
    Resumable,
    /// A POST to the object: S3's CreateMultipartUpload and CompleteMultipartUpload.
    Post,
}

impl ObjectMethod {
    /// The HTTP method the URL is signed for.
    pub fn http(self) -> Method {
        match self {
            Self::Get => Method::Get,
            Self::Head => Method::Head,
            Self::Put => Method::Put,
            Self::Delete => Method::Delete,
            Self::Resumable | Self::Post => Method::Post,
        }
    }
}

/// What an upload is bound to. Each protocol binds what it can sign; the API refuses before
/// signing what a backend would silently drop.
#[derive(Clone, Debug, Default)]
pub struct Upload {
    pub content_type: Option<String>,
    pub content_md5: Option<String>,
    /// The exact size the client declared.
    pub size: Option<u64>,
    /// The largest size allowed, when no exact size is declared.
    pub max_size: Option<u64>,
    /// Custom metadata, keys already checked.
    pub metadata: Vec<(String, String)>,
}

/// One object URL to sign, in the backend's bucket and object names.
#[derive(Clone, Debug)]
pub struct ObjectUrl {
    pub method: ObjectMethod,
    pub bucket: BucketName,
    pub object: ObjectName,
    pub expiry: Expiry,
    pub upload: Upload,
    pub response_content_type: Option<String>,
    pub response_content_disposition: Option<String>,
    /// Sub-resource parameters, signed as given (S3 multipart: `uploads`, `uploadId`,
    /// `partNumber`).
    pub query: Vec<(String, String)>,
    /// Seconds of the read reuse window (0: a fresh URL every time). A plain GET or HEAD asked
    /// for again in the same window is the same URL; anything else ignores it.
    pub reuse_window: u32,
}

impl ObjectUrl {
    /// A URL with no upload fields and no response overrides.
    pub fn new(
        method: ObjectMethod,
        bucket: BucketName,
        object: ObjectName,
        expiry: Expiry,
    ) -> Self {
        Self {
            method,
            bucket,
            object,
            expiry,
            upload: Upload::default(),
            response_content_type: None,
            response_content_disposition: None,
            query: Vec::new(),
            reuse_window: 0,
        }
    }

    /// The request the V4 signers sign, with the upload headers written by `prefix`
    /// (`x-goog-` or `x-amz-`).
    fn v4(&self, meta_prefix: &str) -> UrlRequest {
        let mut request = UrlRequest::new(
            self.method.http(),
            self.bucket.clone(),
            Some(self.object.clone()),
            self.expiry,
        );
        let upload = &self.upload;
        if let Some(ct) = &upload.content_type {
            request = request.header("content-type", ct.as_str());
        }
        if let Some(md5) = &upload.content_md5 {
            request = request.header("content-md5", md5.as_str());
        }
        for (key, value) in &upload.metadata {
            request = request.header(format!("{meta_prefix}meta-{key}"), value.as_str());
        }
        request.query.extend(self.query.iter().cloned());
        if let Some(ct) = &self.response_content_type {
            request = request.query("response-content-type", ct.as_str());
        }
        if let Some(cd) = &self.response_content_disposition {
            request = request.query("response-content-disposition", cd.as_str());
        }
        request
    }

    /// GCS V4: the size bound as `x-goog-content-length-range` (exactly, when declared).
    pub fn for_gcs(&self) -> UrlRequest {
        let mut request = self.v4("x-goog-");
        let range = match (self.upload.size, self.upload.max_size) {
            (Some(size), _) => Some(format!("{size},{size}")),
            (None, Some(max)) => Some(format!("0,{max}")),
            (None, None) => None,
        };
        if let Some(range) = range {
            request = request.header("x-goog-content-length-range", range);
        }
        if self.method == ObjectMethod::Resumable {
            request = request.header("x-goog-resumable", "start");
        }
        request
    }

    /// S3 SigV4: a presigned PUT binds only an exact `Content-Length`, so a size limit needs
    /// the declared size (the API asks for it); resumable uploads are GCS's alone.
    pub fn for_s3(&self) -> Result<UrlRequest, crate::signing::SigningError> {
        if self.method == ObjectMethod::Resumable {
            return Err(unsupported(
                "RESUMABLE is a GCS upload; on S3 use a multipart upload",
            ));
        }
        let mut request = self.v4("x-amz-");
        match (self.upload.size, self.upload.max_size) {
            (Some(size), _) => request = request.header("content-length", size.to_string()),
            (None, Some(_)) => {
                return Err(unsupported(
                    "an S3 upload binds its size only as an exact Content-Length: give size",
                ));
            }
            (None, None) => {}
        }
        Ok(request)
    }

    /// An Azure blob SAS, valid from `at` for the expiry. A SAS binds the permissions, the
    /// blob and the response overrides; upload headers are only sent (see [`Self::azure_headers`]).
    pub fn for_azure(
        &self,
        at: OffsetDateTime,
    ) -> Result<BlobSasRequest, crate::signing::SigningError> {
        let permissions = match self.method {
            ObjectMethod::Get | ObjectMethod::Head => "r",
            // Create and write: Put Blob, and Put Block + Put Block List for large uploads.
            ObjectMethod::Put => "cw",
            ObjectMethod::Delete => "d",
            ObjectMethod::Resumable => {
                return Err(unsupported(
                    "RESUMABLE is a GCS upload; on Azure upload blocks with the PUT URL (Put Block, Put Block List)",
                ));
            }
            ObjectMethod::Post => {
                return Err(unsupported(
                    "Azure blobs take no POST: upload with a PUT URL",
                ));
            }
        };
        if !self.query.is_empty() {
            return Err(unsupported("an Azure SAS signs no sub-resource parameters"));
        }
        Ok(BlobSasRequest {
            container: self.bucket.as_str().to_owned(),
            blob: self.object.as_str().to_owned(),
            permissions: permissions.to_owned(),
            start: None,
            expiry: at + time::Duration::seconds(i64::from(self.expiry.as_secs())),
            protocols: None,
            content_disposition: self.response_content_disposition.clone(),
            content_type: self.response_content_type.clone(),
            delegated_user_oid: None,
        })
    }

    /// The headers an Azure upload must send: the blob type, and the content type, MD5 and
    /// metadata asked for (Azure stores and checks them; the SAS does not bind them).
    pub fn azure_headers(&self) -> Vec<(String, String)> {
        if self.method != ObjectMethod::Put {
            return Vec::new();
        }
        let upload = &self.upload;
        let mut headers = vec![("x-ms-blob-type".to_owned(), "BlockBlob".to_owned())];
        headers.extend(
            upload
                .content_type
                .iter()
                .map(|ct| ("content-type".to_owned(), ct.clone())),
        );
        headers.extend(
            upload
                .content_md5
                .iter()
                .map(|md5| ("content-md5".to_owned(), md5.clone())),
        );
        headers.extend(
            upload
                .metadata
                .iter()
                .map(|(key, value)| (format!("x-ms-meta-{key}"), value.clone())),
        );
        headers
    }
}

fn unsupported(why: &str) -> crate::signing::SigningError {
    crate::signing::SigningError::UnsupportedByBackend(why.to_owned())
}
