//! `storage-broker dev`: the whole service on a laptop in one command — a throwaway PostgreSQL
//! (or `DATABASE_URL`), migrations, a signing key made for this run, a dev token issuer, and the
//! broker built exactly as `serve` builds it. `storage-broker dev token NAME` asks the running
//! stack for a token.

mod backend;
mod emulator;
mod issuer;
mod postgres;
mod shim;

use crate::app::{Application, shutdown_signal};
use crate::cli::runtime;
use crate::config::Config;
use crate::policy::Policies;
use backend::DevBackend;
use clap::{Args, Subcommand};
use issuer::{AUDIENCE, DevIssuer, TokenRequest};
use std::path::{Path, PathBuf};

/// The policies shipped in `policies/`, used when `BROKER_POLICIES_DIR` is not set.
const ROLES: &str = include_str!("../../../policies/roles.toml");
const CLASSES: &str = include_str!("../../../policies/classes.toml");
const DEV_LISTEN: &str = "127.0.0.1:8080";
/// What the printed example uploads.
const EXAMPLE_TEXT: &str = "hello from storage-broker dev";
const DEV_SERVICE_ACCOUNT: &str = "dev-signer@storage-broker-dev.iam.gserviceaccount.com";

/// `dev` and its one subcommand.
#[derive(Debug, Args)]
pub struct DevArgs {
    #[command(subcommand)]
    command: Option<DevCommand>,
    /// Which storage every bucket class is on: gcs (fake-gcs-server, started by dev), s3 or
    /// azure (an emulator you start: dev says how).
    #[arg(long, value_enum, default_value = "gcs")]
    backend: DevBackend,
    /// Where the s3 or azure emulator listens (default http://127.0.0.1:8333 for s3,
    /// http://127.0.0.1:10000/devstoreaccount1 for azure).
    #[arg(long)]
    storage_endpoint: Option<String>,
}

#[derive(Debug, Subcommand)]
enum DevCommand {
    /// Print an access token from the running dev stack's issuer.
    Token(TokenArgs),
}

#[derive(Debug, Args)]
struct TokenArgs {
    /// The user (subject and username).
    sub: String,
    /// Group paths, e.g. `--groups /vision,/lab` (repeatable).
    #[arg(long, value_delimiter = ',')]
    groups: Vec<String>,
    /// Realm roles, e.g. `--roles storage-admin` (repeatable).
    #[arg(long, value_delimiter = ',')]
    roles: Vec<String>,
    /// Lifetime in seconds (at most 43200).
    #[arg(long, default_value_t = 3600)]
    ttl: i64,
    /// The dev broker; default from BROKER_LISTEN, else http://127.0.0.1:8080.
    #[arg(long)]
    broker: Option<String>,
}

/// Runs `dev` or `dev token`.
pub fn dev(args: DevArgs) -> Result<(), String> {
    match args.command {
        None => run_stack(args.backend, args.storage_endpoint),
        Some(DevCommand::Token(args)) => print_token(args),
    }
}

/// The address clients of this machine reach the broker at.
fn local_url(listen: &str) -> String {
    let local = listen
        .strip_prefix("0.0.0.0:")
        .or_else(|| listen.strip_prefix("[::]:"))
        .map_or_else(|| listen.to_owned(), |port| format!("127.0.0.1:{port}"));
    format!("http://{local}")
}

fn print_token(args: TokenArgs) -> Result<(), String> {
    let broker = args.broker.unwrap_or_else(|| {
        local_url(&std::env::var("BROKER_LISTEN").unwrap_or_else(|_| DEV_LISTEN.into()))
    });
    let broker = broker.trim_end_matches('/');
    // `--broker 127.0.0.1:8080` means the dev stack there, over HTTP.
    let broker = if broker.contains("://") {
        broker.to_owned()
    } else {
        format!("http://{broker}")
    };
    runtime()?.block_on(async {
        let response = reqwest::Client::new()
            .get(format!("{broker}/dev/token"))
            .query(&[
                ("sub", args.sub.as_str()),
                ("groups", &args.groups.join(",")),
                ("roles", &args.roles.join(",")),
                ("ttl", &args.ttl.to_string()),
            ])
            .send()
            .await
            .map_err(|e| {
                format!("no dev stack answers at {broker} ({e}); start `storage-broker dev` first, or pass --broker")
            })?;
        let status = response.status();
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|_| format!("{broker} is not a dev stack (it answered {status} without JSON)"))?;
        match body["access_token"].as_str() {
            Some(token) => {
                println!("{token}");
                Ok(())
            }
            None => Err(format!(
                "{broker} refused: {}",
                body["detail"].as_str().unwrap_or("no token (is it a `storage-broker dev` stack?)")
            )),
        }
    })
}

/// A directory of this run's own, removed when dropped.
struct RunDir(PathBuf);

impl RunDir {
    fn make() -> Result<Self, String> {
        let random: u64 = rand_u64();
        let dir = std::env::temp_dir().join(format!("storage-broker-dev-{random:016x}"));
        std::fs::create_dir(&dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
        Ok(Self(dir))
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rand_u64() -> u64 {
    let mut bytes = [0u8; 8];
    // An unpredictable name keeps two runs (and other users) apart; fall back to the pid.
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        return u64::from(std::process::id());
    }
    u64::from_le_bytes(bytes)
}

/// Writes a service-account key file holding a new RSA-2048 key, readable by its owner only.
fn write_dev_key(path: &Path) -> Result<(), String> {
    use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
    let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
        .map_err(|_| "cannot make a dev signing key".to_owned())?;
    let der: Pkcs8V1Der<'static> = key
        .as_der()
        .map_err(|_| "cannot encode the dev signing key".to_owned())?;
    let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_ref().to_vec()));
    let file = serde_json::json!({
        "type": "service_account",
        "project_id": "storage-broker-dev",
        "private_key_id": "dev",
        "private_key": pem,
        "client_email": DEV_SERVICE_ACCOUNT,
    });
    write_private(path, file.to_string().as_bytes())
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    options
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Makes the backend buckets the policies name in an emulator, so dev URLs work end to end.
async fn create_emulator_buckets(endpoint: &str, policies: &Policies) -> Result<(), String> {
    let client = reqwest::Client::new();
    let mut names: Vec<&str> = policies
        .classes
        .iter()
        .map(|c| c.backend_bucket.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        let response = client
            .post(format!("{}/storage/v1/b", endpoint.trim_end_matches('/')))
            .query(&[("project", "storage-broker-dev")])
            .json(&serde_json::json!({ "name": name }))
            .send()
            .await
            .map_err(|e| format!("BROKER_STORAGE_ENDPOINT: cannot reach {endpoint}: {e}"))?;
        // 409: it exists already.
        if !response.status().is_success() && response.status() != 409 {
            return Err(format!(
                "BROKER_STORAGE_ENDPOINT: cannot create bucket {name}: {}",
                response.status()
            ));
        }
    }
    Ok(())
}

/// A `curl` that uploads a line of text with a URL the running broker signs for `sign_body`
/// (a PUT), and one that downloads it with a signed GET: asked of the broker over HTTP like any
/// client's request, so they are authorized and audited as such.
async fn example_transfers(
    base: &str,
    token: &str,
    sign_body: &serde_json::Value,
) -> Result<(String, String), String> {
    let client = reqwest::Client::new();
    let sign = |body: serde_json::Value| {
        let request = client
            .post(format!("{base}/v1/sign"))
            .bearer_auth(token)
            .json(&body)
            .send();
        async move {
            let answer: serde_json::Value = request
                .await
                .map_err(|e| format!("the dev broker does not answer: {e}"))?
                .json()
                .await
                .map_err(|e| format!("the dev broker answered no JSON: {e}"))?;
            if answer["url"].is_string() {
                Ok(answer)
            } else {
                Err(format!("the dev broker refused to sign: {answer}"))
            }
        }
    };
    let put = sign(sign_body.clone()).await?;
    let mut get_body = sign_body.clone();
    get_body["method"] = "GET".into();
    if let Some(body) = get_body.as_object_mut() {
        body.remove("content_type");
        body.remove("size");
    }
    let get = sign(get_body).await?;
    let mut upload = String::from("curl -sS -X PUT");
    if let Some(headers) = put["headers"].as_object() {
        for (name, value) in headers {
            upload.push_str(&format!(" -H '{name}: {}'", value.as_str().unwrap_or("")));
        }
    }
    upload.push_str(&format!(
        " --data-binary '{EXAMPLE_TEXT}' '{}'",
        put["url"].as_str().unwrap_or("")
    ));
    let download = format!("curl -sS '{}'", get["url"].as_str().unwrap_or(""));
    Ok((upload, download))
}

fn run_stack(backend: DevBackend, endpoint: Option<String>) -> Result<(), String> {
    if backend == DevBackend::Gcs && endpoint.is_some() {
        return Err(
            "--storage-endpoint is for --backend s3 or azure; for GCS set BROKER_STORAGE_ENDPOINT"
                .into(),
        );
    }
    let other_storage = endpoint.or_else(|| backend.default_endpoint().map(str::to_owned));
    let _traces = crate::cli::service::init_logging();
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let run_dir = RunDir::make()?;
    let (database_url, throwaway) = match env("DATABASE_URL") {
        Some(url) => (url, None),
        None => {
            let pg = postgres::Postgres::start(&run_dir.0.join("postgres"))?;
            (pg.url.clone(), Some(pg))
        }
    };
    let key_file = match env("BROKER_SIGNING_CREDENTIALS") {
        Some(path) => PathBuf::from(path),
        None => {
            let path = run_dir.0.join("dev-signing-key.json");
            write_dev_key(&path)?;
            path
        }
    };
    let policies_dir = match env("BROKER_POLICIES_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let dir = run_dir.0.join("policies");
            let classes = match &other_storage {
                Some(endpoint) => backend.classes(CLASSES, endpoint, &run_dir.0)?,
                None => CLASSES.to_owned(),
            };
            std::fs::create_dir(&dir)
                .and_then(|()| std::fs::write(dir.join("roles.toml"), ROLES))
                .and_then(|()| std::fs::write(dir.join("classes.toml"), classes))
                .map_err(|e| format!("cannot write the dev policies: {e}"))?;
            dir
        }
    };
    let listen = env("BROKER_LISTEN").unwrap_or_else(|| DEV_LISTEN.into());

    runtime()?.block_on(async {
        // Storage: the endpoint given, else an emulator of our own when one can be found.
        let (storage_endpoint, emulator) = match env("BROKER_STORAGE_ENDPOINT") {
            Some(url) => (Some(url), None),
            None if backend != DevBackend::Gcs => (None, None),
            None => match emulator::find() {
                Some(binary) => {
                    let emulator = emulator::Emulator::start(&binary).await?;
                    (Some(shim::start(&emulator.url).await?), Some(emulator))
                }
                None => (None, None),
            },
        };
        let issuer = DevIssuer::start().await?;
        let config = Config::from_lookup(|name| match name {
            "BROKER_LISTEN" => Some(listen.clone()),
            "DATABASE_URL" => Some(database_url.clone()),
            "BROKER_OIDC_ISSUER" => Some(issuer.issuer().to_owned()),
            "BROKER_OIDC_AUDIENCE" => Some(AUDIENCE.to_owned()),
            "BROKER_OIDC_JWKS_URL" | "BROKER_OIDC_CLIENT_ID" => None,
            "BROKER_OIDC_ALGORITHMS" => Some("ES256".to_owned()),
            "BROKER_SIGNING_CREDENTIALS" => Some(key_file.display().to_string()),
            "BROKER_POLICIES_DIR" => Some(policies_dir.display().to_string()),
            "BROKER_MIGRATE" => Some("true".to_owned()),
            "BROKER_STORAGE_ENDPOINT" => storage_endpoint.clone(),
            other => std::env::var(other).ok(),
        })
        .map_err(|e| e.to_string())?;
        let policies = Policies::load(&config.policies_dir).map_err(|e| e.to_string())?;
        if let Some(storage) = &config.storage_endpoint {
            create_emulator_buckets(&storage.url, &policies).await?;
        }
        if let Some(endpoint) = &other_storage {
            // Only the classes on this kind of backend: with BROKER_POLICIES_DIR the policies
            // say which classes are where, and dev does not move them.
            let on_it: Vec<_> = policies
                .classes
                .iter()
                .filter(|c| backend.kind() == Some(c.backend_kind))
                .collect();
            if on_it.is_empty() {
                return Err(format!(
                    "BROKER_POLICIES_DIR: no class is on an {backend:?} backend, so --backend has nothing to run on; add one (see the README's storage backends) or leave BROKER_POLICIES_DIR unset"
                ));
            }
            if backend.kind() != Some(policies.classes.personal().backend_kind) {
                tracing::warn!("BROKER_POLICIES_DIR: the personal class is not on the --backend emulator; dev's example uses it");
            }
            for class in on_it {
                backend.create_bucket(endpoint, &class.backend_bucket).await?;
            }
        }
        let app = Application::build(&config)
            .await
            .map_err(|e| e.to_string())?
            .with_routes(issuer.routes());
        let base = local_url(&app.local_addr().map_err(|e| e.to_string())?.to_string());
        if !config.listen.ip().is_loopback() {
            tracing::warn!(listen = %config.listen, "dev hands out tokens to anyone who asks; it should listen on loopback only");
        }
        let state = app.state();
        let class = state.policies.classes.personal();
        let level = &state.policies.classes.levels[class.classification];
        let (alice, _) = state
            .store
            .ensure_personal_bucket("alice", Some("alice"), class, level)
            .await
            .map_err(|e| format!("DATABASE_URL: {e}"))?;
        let token = issuer.token(&TokenRequest {
            sub: "alice".into(),
            ..Default::default()
        })?;
        let database_line = if throwaway.is_some() {
            format!("{database_url} (throwaway: removed when dev stops)")
        } else {
            "DATABASE_URL".to_owned()
        };
        let storage_line = match (&emulator, &config.storage_endpoint) {
            _ if other_storage.is_some() => format!(
                "{} ({backend:?} emulator you started; every bucket class is on it)",
                other_storage.as_deref().unwrap_or_default()
            ),
            (Some(emulator), _) => format!(
                "fake-gcs-server started by dev at {} (in memory; URLs work against it)",
                emulator.url
            ),
            (None, Some(storage)) => format!("{} (BROKER_STORAGE_ENDPOINT)", storage.url),
            (None, None) => "https://storage.googleapis.com".to_owned(),
        };
        let signer = state.signers.gcs().identity().credential_id.clone();
        let server = tokio::spawn(app.run_until(shutdown_signal()));
        let bucket = alice.name;
        let object = "hello.txt";
        // With its size: an S3 upload binds it as Content-Length where a class limits sizes.
        let sign_body = serde_json::json!({
            "bucket": bucket, "object": object, "method": "PUT", "content_type": "text/plain",
            "size": EXAMPLE_TEXT.len(),
        });
        println!(
            "storage-broker dev: listening on {base}\n\
             \x20 console   {base}/console/ (sign in as anyone)\n\
             \x20 database  {database_line}\n\
             \x20 issuer    {} (ES256; more tokens: storage-broker dev token NAME --groups /g --roles storage-admin)\n\
             \x20 signing   {signer} with a key made for this run\n\
             \x20 storage   {storage_line}\n\
             \n\
             A token for alice, valid for an hour:\n\
             export TOKEN={token}\n\
             \n\
             Ask for a signed upload URL in alice's bucket {bucket}:\n\
             curl -s {base}/v1/sign -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' -d '{sign_body}'",
            issuer.issuer(),
        );
        if config.storage_endpoint.is_some() || other_storage.is_some() {
            let (upload, download) = example_transfers(&base, &token, &sign_body).await?;
            println!(
                "\n\
                 Upload {object} straight to storage with the URL it gives (here one signed just now):\n\
                 {upload}\n\
                 \n\
                 Download it:\n\
                 {download}"
            );
        } else {
            println!("\nstorage: {}", emulator::INSTALL_HINT);
        }
        println!("\nStop with Ctrl-C.");
        let served = server
            .await
            .map_err(|e| format!("server failed: {e}"))?
            .map_err(|e| format!("server failed: {e}"));
        drop(emulator);
        served
    })?;
    drop(throwaway);
    drop(run_dir);
    Ok(())
}
