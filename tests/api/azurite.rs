//! Azurite (the Azure Blob Storage emulator) on a free loopback port, in memory, stopped when
//! dropped: over plain HTTP with the well-known account key, or over HTTPS with `--oauth basic`
//! (bearer tokens, hence user-delegation keys), its self-signed certificate handed to clients.
//! The binary comes from the npm package `azurite`, which `scripts/test` installs
//! (`scripts/azurite`) and points `AZURITE` at.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use storage_broker::signing::azure::{REST_VERSION, http_date};
use storage_broker::signing::{AzureCredentials, BlobEndpoint};
use time::OffsetDateTime;

/// The emulator's one account.
pub const ACCOUNT: &str = "devstoreaccount1";
/// Its well-known key (public: printed in Microsoft's documentation).
pub const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A running Azurite blob service.
pub struct Azurite {
    /// `http(s)://127.0.0.1:PORT/devstoreaccount1`: the account's blob endpoint, path style.
    pub endpoint: String,
    /// The PEM certificate an HTTPS emulator presents (self-signed for `127.0.0.1`).
    pub certificate: Option<Vec<u8>>,
    /// Built once: building a client loads the system's roots, some 30 ms.
    client: reqwest::Client,
    child: Child,
    dir: PathBuf,
}

impl Azurite {
    /// Over HTTP; requests authorize with the account key (Shared Key or SAS).
    pub async fn start() -> Self {
        Self::start_with(false).await
    }

    /// Over HTTPS with `--oauth basic`, which also takes bearer tokens (it checks their issuer,
    /// audience and times, not their signature): what Get User Delegation Key needs.
    pub async fn start_https_oauth() -> Self {
        Self::start_with(true).await
    }

    async fn start_with(https: bool) -> Self {
        let binary = std::env::var("AZURITE").unwrap_or_default();
        assert!(
            !binary.is_empty(),
            "AZURITE is not set: run the tests with scripts/test, which installs Azurite from npm \
             (or export AZURITE=$(scripts/azurite))"
        );
        // A port taken between choosing it and Azurite binding it makes Azurite exit: start
        // again on another.
        for _ in 0..5 {
            if let Some(started) = Self::launch(&binary, https).await {
                return started;
            }
        }
        panic!("Azurite did not start (five tries; logs under target/tmp/azurite-*)");
    }

    async fn launch(binary: &str, https: bool) -> Option<Self> {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("azurite-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("azurite dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let mut command = Command::new(binary);
        command
            .current_dir(&dir)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .args(["--inMemoryPersistence", "--silent", "--disableTelemetry"])
            .args(["--extentMemoryLimit", "256"]);
        let certificate = if https {
            let (cert, key) = self_signed_certificate(&dir);
            command
                .arg("--cert")
                .arg(&cert)
                .arg("--key")
                .arg(&key)
                .args(["--oauth", "basic"]);
            Some(std::fs::read(&cert).expect("certificate"))
        } else {
            None
        };
        let log = std::fs::File::create(dir.join("azurite.log")).expect("log");
        let mut child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start azurite-blob");
        let scheme = if https { "https" } else { "http" };
        let endpoint = format!("{scheme}://127.0.0.1:{port}/{ACCOUNT}");
        let client = client_trusting(certificate.as_deref());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            if child.try_wait().ok().flatten().is_some() {
                let _ = std::fs::remove_dir_all(&dir);
                return None;
            }
            // Any HTTP answer (an authorization failure, without credentials) means it serves.
            if client.get(&endpoint).send().await.is_ok() {
                return Some(Self {
                    endpoint,
                    certificate,
                    client,
                    child,
                    dir,
                });
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "Azurite did not answer at {endpoint} within 60 s; see {}",
            dir.join("azurite.log").display()
        );
    }

    /// A client that trusts this emulator's certificate, if it has one.
    pub fn client(&self) -> reqwest::Client {
        self.client.clone()
    }

    /// `http(s)://127.0.0.1:PORT`, without the account.
    pub fn origin(&self) -> &str {
        self.endpoint
            .strip_suffix(&format!("/{ACCOUNT}"))
            .expect("endpoint ends with the account")
    }

    /// The account and its key.
    pub fn credentials(&self) -> AzureCredentials {
        AzureCredentials::new(ACCOUNT, KEY).expect("well-known key")
    }

    /// The blob endpoint, for signers and the control plane.
    pub fn blob_endpoint(&self) -> BlobEndpoint {
        BlobEndpoint::parse(&self.endpoint).expect("endpoint")
    }

    /// Sends `request` (to this emulator) authorized with the account key (Shared Key, at
    /// [`REST_VERSION`]), with `headers` besides the date and version.
    pub async fn shared_key_request(
        &self,
        method: reqwest::Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> reqwest::Response {
        let url = reqwest::Url::parse(url).expect("url");
        let date = http_date(OffsetDateTime::now_utc());
        let length = body.len().to_string();
        let mut signed = vec![
            ("x-ms-date", date.as_str()),
            ("x-ms-version", REST_VERSION),
            ("content-length", length.as_str()),
        ];
        signed.extend_from_slice(headers);
        let authorization = self
            .credentials()
            .shared_key(method.as_str(), &url, &signed)
            .expect("shared key");
        let mut request = self.client.request(method, url).body(body);
        for (name, value) in signed {
            request = request.header(name, value);
        }
        request
            .header("authorization", authorization.header)
            .send()
            .await
            .expect("request to Azurite")
    }

    /// The URL of blob `name` in `container` (its name percent-encoded, `/` kept).
    pub fn blob_url(&self, container: &str, name: &str) -> String {
        const PATH: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
            .remove(b'-')
            .remove(b'.')
            .remove(b'_')
            .remove(b'~')
            .remove(b'/');
        format!(
            "{}/{container}/{}",
            self.endpoint,
            percent_encoding::utf8_percent_encode(name, PATH)
        )
    }

    /// Stores a block blob directly (test setup), authorized with the account key.
    pub async fn put_blob(&self, container: &str, name: &str, body: &[u8], content_type: &str) {
        let response = self
            .shared_key_request(
                reqwest::Method::PUT,
                &self.blob_url(container, name),
                &[
                    ("content-type", content_type),
                    ("x-ms-blob-type", "BlockBlob"),
                ],
                body.to_vec(),
            )
            .await;
        let status = response.status();
        assert_eq!(
            status,
            201,
            "put {name}: {}",
            response.text().await.unwrap_or_default()
        );
    }

    /// Stores `names` (one byte each), 32 at a time.
    pub async fn put_many(&self, container: &str, names: Vec<String>) {
        use futures::StreamExt;
        futures::stream::iter(names)
            .for_each_concurrent(32, |name| async move {
                self.put_blob(container, &name, b"x", "application/octet-stream")
                    .await;
            })
            .await;
    }

    /// Creates `name`, authorized with the account key.
    pub async fn create_container(&self, name: &str) {
        let response = self
            .shared_key_request(
                reqwest::Method::PUT,
                &format!("{}/{name}?restype=container", self.endpoint),
                &[],
                Vec::new(),
            )
            .await;
        let status = response.status();
        assert_eq!(
            status,
            201,
            "create container {name}: {}",
            response.text().await.unwrap_or_default()
        );
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A client trusting only `certificate` (PEM) when given one: the emulator's is self-signed.
fn client_trusting(certificate: Option<&[u8]>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder();
    if let Some(pem) = certificate {
        builder = builder.tls_certs_only([reqwest::Certificate::from_pem(pem).expect("pem")]);
    }
    builder.build().expect("client")
}

/// A key and a self-signed certificate for `127.0.0.1` in `dir`, made by openssl. Not a CA
/// (`CA:FALSE`): rustls refuses a CA certificate presented as a server's.
fn self_signed_certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let output = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl (needed for Azurite over HTTPS)");
    assert!(
        output.status.success(),
        "openssl req: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    (cert, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azurite_serves_http_with_the_account_key_and_https_with_its_certificate() {
    for azurite in [Azurite::start().await, Azurite::start_https_oauth().await] {
        azurite.create_container("smoke").await;
        // Without credentials: an answer from Azurite itself, over the trusted TLS when HTTPS.
        let anonymous = azurite
            .client()
            .get(format!("{}/smoke?restype=container", azurite.endpoint))
            .send()
            .await
            .expect("answer");
        assert!(
            [401, 403, 404].contains(&anonymous.status().as_u16()),
            "{}",
            anonymous.status()
        );
        assert_eq!(
            azurite.certificate.is_some(),
            azurite.origin().starts_with("https:")
        );
        assert_eq!(azurite.blob_endpoint().base(), azurite.endpoint);
        assert_eq!(azurite.credentials().account, ACCOUNT);
        let dir = azurite.dir.clone();
        drop(azurite);
        assert!(!dir.exists(), "cleaned up");
    }
}
