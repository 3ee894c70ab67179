//! `sign-url` and `sign-post-policy`: the offline signer, for every protocol (`--protocol
//! gcs|s3|azure`, GCS by default).

use crate::signing::azure::permissions_for;
use crate::signing::{
    AzureCredentials, AzureSigner, BlobEndpoint, BlobSasRequest, BucketName, Condition, Endpoint,
    Expiry, HostPort, Method, ObjectName, PostKey, PostPolicy, PostPolicyRequest, S3Credentials,
    S3Signer, SasKey, Scheme, UrlRequest, UrlSigner, UrlStyle, load_signer,
};
use clap::{Args, ValueEnum};
use std::io::Write;
use std::path::PathBuf;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Where URLs point, shared by both commands.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// URL scheme, unless --endpoint or --bucket-bound-hostname carries one.
    #[arg(long, default_value = "https", value_parser = parse_scheme)]
    scheme: Scheme,
    /// How the bucket appears in the URL.
    #[arg(long, value_enum)]
    url_style: Option<StyleArg>,
    /// Host (and port) of a CDN or custom domain bound to the bucket; implies --url-style bucket-bound.
    #[arg(long, value_name = "H")]
    bucket_bound_hostname: Option<String>,
    /// Custom storage endpoint, e.g. http://localhost:4443 for an emulator; `host` is signed without the port.
    #[arg(long, value_name = "URL", conflicts_with = "universe_domain")]
    endpoint: Option<String>,
    /// Universe domain: URLs go to storage.D.
    #[arg(long, value_name = "D")]
    universe_domain: Option<String>,
}

/// The storage protocol to sign for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
enum Protocol {
    /// GCS V4 (GOOG4-RSA-SHA256 or GOOG4-HMAC-SHA256).
    #[default]
    Gcs,
    /// S3 SigV4 (AWS4-HMAC-SHA256), for any S3-compatible store.
    S3,
    /// Azure Blob SAS (`sr=b`).
    Azure,
}

/// What only some protocols take.
#[derive(Debug, Args)]
pub struct ProtocolArgs {
    /// gcs (default), s3 or azure. --credentials is a service-account or HMAC key for gcs,
    /// {"access_key_id", "secret_access_key", "session_token"?} for s3, {"account", "key"} for azure.
    #[arg(long, value_enum, default_value_t)]
    protocol: Protocol,
    /// S3: the region of the credential scope (`auto` for R2). Required with --protocol s3.
    #[arg(long, value_name = "R")]
    region: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum StyleArg {
    Path,
    VirtualHosted,
    BucketBound,
}

/// Arguments of `sign-url`.
#[derive(Debug, Args)]
pub struct SignUrlArgs {
    /// Service-account key JSON (RSA) or `gcloud storage hmac create --format=json` output.
    #[arg(long, value_name = "FILE")]
    credentials: PathBuf,
    /// GET, HEAD, PUT, DELETE or POST (POST with `x-goog-resumable: start` starts a resumable upload).
    #[arg(long, value_parser = parse_method)]
    method: Method,
    #[arg(long, value_name = "B")]
    bucket: String,
    /// Object name; without it the URL is for the bucket (listing).
    #[arg(long, value_name = "O")]
    object: Option<String>,
    /// Lifetime in seconds, 1..=604800.
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    expires: i64,
    /// Signing time, RFC 3339 (default: now).
    #[arg(long, value_name = "T", value_parser = parse_time)]
    at: Option<OffsetDateTime>,
    /// A header the client will send, bound by the signature: 'Name: value'. Repeatable.
    #[arg(long = "header", value_name = "'Name: value'", value_parser = parse_header)]
    headers: Vec<(String, String)>,
    /// An extra query parameter: name=value. Repeatable.
    #[arg(long = "query", value_name = "name=value", value_parser = parse_pair)]
    query: Vec<(String, String)>,
    /// Downloads: the Content-Disposition storage answers with (GCS and S3
    /// `response-content-disposition`, Azure `rscd`).
    #[arg(long, value_name = "V")]
    response_content_disposition: Option<String>,
    /// Downloads: the Content-Type storage answers with (GCS and S3 `response-content-type`,
    /// Azure `rsct`).
    #[arg(long, value_name = "V")]
    response_content_type: Option<String>,
    /// Azure: the SAS start time `st`, RFC 3339 (default: none, valid from its signing).
    #[arg(long, value_name = "T", value_parser = parse_time)]
    start: Option<OffsetDateTime>,
    #[command(flatten)]
    protocol: ProtocolArgs,
    #[command(flatten)]
    target: TargetArgs,
}

/// Arguments of `sign-post-policy`.
#[derive(Debug, Args)]
pub struct SignPostPolicyArgs {
    /// Service-account key JSON (RSA) or `gcloud storage hmac create --format=json` output.
    #[arg(long, value_name = "FILE")]
    credentials: PathBuf,
    #[arg(long, value_name = "B")]
    bucket: String,
    #[arg(long, value_name = "O")]
    object: String,
    /// Lifetime in seconds, 1..=604800.
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    expires: i64,
    /// Signing time, RFC 3339 (default: now).
    #[arg(long, value_name = "T", value_parser = parse_time)]
    at: Option<OffsetDateTime>,
    /// A form field the upload must carry exactly, e.g. content-type=image/png. Repeatable.
    #[arg(long = "field", value_name = "name=value", value_parser = parse_pair)]
    fields: Vec<(String, String)>,
    /// A field that must start with a prefix, e.g. content-type=image/. Repeatable.
    #[arg(long = "starts-with", value_name = "field=prefix", value_parser = parse_pair)]
    starts_with: Vec<(String, String)>,
    /// Allowed upload size in bytes: MIN,MAX.
    #[arg(long, value_name = "MIN,MAX", value_parser = parse_range)]
    content_length_range: Option<(u64, u64)>,
    #[command(flatten)]
    protocol: ProtocolArgs,
    #[command(flatten)]
    target: TargetArgs,
}

/// Runs `sign-url`.
pub fn sign_url(args: SignUrlArgs) -> Result<(), String> {
    let at = args.at.unwrap_or_else(OffsetDateTime::now_utc);
    if args.protocol.protocol != Protocol::Azure && args.start.is_some() {
        return Err("--start applies to --protocol azure only".into());
    }
    if args.protocol.protocol == Protocol::Azure {
        return print_line(&azure_url(&args, at)?);
    }
    let object = args
        .object
        .as_deref()
        .map(ObjectName::parse)
        .transpose()
        .map_err(|e| e.to_string())?;
    let mut query = args.query;
    for (name, value) in [
        (
            "response-content-disposition",
            args.response_content_disposition,
        ),
        ("response-content-type", args.response_content_type),
    ] {
        if let Some(value) = value {
            query.push((name.to_owned(), value));
        }
    }
    let request = UrlRequest {
        method: args.method,
        bucket: BucketName::parse(&args.bucket).map_err(|e| e.to_string())?,
        object,
        expiry: Expiry::from_secs(args.expires).map_err(|e| e.to_string())?,
        headers: args.headers,
        query,
    };
    let signed = match args.protocol.protocol {
        Protocol::S3 => {
            s3_signer(&args.credentials, &args.protocol, &args.target)?.sign(&request, at)
        }
        _ => {
            gcs_only(&args.protocol)?;
            url_signer(&args.credentials, &args.target)?.sign(&request, at)
        }
    }
    .map_err(|e| e.to_string())?;
    print_line(&signed.url)
}

/// `sign-url --protocol azure`: a blob SAS with the permissions the method needs.
fn azure_url(args: &SignUrlArgs, at: OffsetDateTime) -> Result<String, String> {
    let target = &args.target;
    if args.protocol.region.is_some() {
        return Err("--region applies to --protocol s3 only".into());
    }
    if target.url_style.is_some() || target.bucket_bound_hostname.is_some() {
        return Err(
            "--url-style and --bucket-bound-hostname do not apply to --protocol azure".into(),
        );
    }
    if target.universe_domain.is_some() {
        return Err("--universe-domain applies to --protocol gcs only".into());
    }
    if !args.headers.is_empty() || !args.query.is_empty() {
        return Err(
            "--header and --query do not apply to --protocol azure (a SAS binds neither)".into(),
        );
    }
    let permissions =
        permissions_for(args.method).ok_or("--protocol azure signs GET, HEAD, PUT and DELETE")?;
    let blob = args
        .object
        .clone()
        .ok_or("--protocol azure signs one blob: give --object")?;
    let credentials = AzureCredentials::load(&args.credentials).map_err(|e| e.to_string())?;
    let endpoint = match &target.endpoint {
        Some(endpoint) => BlobEndpoint::parse(endpoint),
        None => BlobEndpoint::public(&credentials.account),
    }
    .map_err(|e| e.to_string())?;
    let expiry = Expiry::from_secs(args.expires).map_err(|e| e.to_string())?;
    let request = BlobSasRequest {
        container: args.bucket.clone(),
        blob,
        permissions: permissions.to_owned(),
        start: args.start,
        expiry: at + time::Duration::seconds(i64::from(expiry.as_secs())),
        protocols: None,
        content_disposition: args.response_content_disposition.clone(),
        content_type: args.response_content_type.clone(),
        delegated_user_oid: None,
    };
    let signer = AzureSigner::new(SasKey::Account(credentials), endpoint);
    Ok(signer.sign(&request).map_err(|e| e.to_string())?.url)
}

/// Runs `sign-post-policy`.
pub fn sign_post_policy(args: SignPostPolicyArgs) -> Result<(), String> {
    let mut conditions: Vec<Condition> = args
        .starts_with
        .into_iter()
        .map(|(field, prefix)| Condition::StartsWith { field, prefix })
        .collect();
    if let Some((min, max)) = args.content_length_range {
        conditions.push(Condition::ContentLengthRange { min, max });
    }
    let request = PostPolicyRequest {
        bucket: BucketName::parse(&args.bucket).map_err(|e| e.to_string())?,
        key: PostKey::Exact(ObjectName::parse(&args.object).map_err(|e| e.to_string())?),
        expiry: Expiry::from_secs(args.expires).map_err(|e| e.to_string())?,
        fields: args.fields,
        conditions,
    };
    let at = args.at.unwrap_or_else(OffsetDateTime::now_utc);
    let policy: PostPolicy = match args.protocol.protocol {
        Protocol::Azure => {
            return Err(
                "Azure Blob has no POST policies: sign a PUT with sign-url --protocol azure".into(),
            );
        }
        Protocol::S3 => {
            s3_signer(&args.credentials, &args.protocol, &args.target)?.post_policy(&request, at)
        }
        Protocol::Gcs => {
            gcs_only(&args.protocol)?;
            url_signer(&args.credentials, &args.target)?.post_policy(&request, at)
        }
    }
    .map_err(|e| e.to_string())?;
    let fields: serde_json::Map<String, serde_json::Value> = policy
        .fields
        .into_iter()
        .map(|(name, value)| (name, value.into()))
        .collect();
    let out = serde_json::json!({ "url": policy.url, "fields": fields });
    print_line(&out.to_string())
}

fn gcs_only(protocol: &ProtocolArgs) -> Result<(), String> {
    if protocol.region.is_some() {
        return Err("--region applies to --protocol s3 only".into());
    }
    Ok(())
}

/// An S3 signer from the command line: the region is required, the endpoint defaults to AWS's
/// for the region (`s3.amazonaws.com` for us-east-1, as botocore's legacy global endpoint).
fn s3_signer(
    credentials: &std::path::Path,
    protocol: &ProtocolArgs,
    target: &TargetArgs,
) -> Result<S3Signer, String> {
    let region = protocol
        .region
        .as_deref()
        .ok_or("--protocol s3 needs --region (e.g. us-east-1, or auto for R2)")?;
    crate::signing::s3::check_region(region).map_err(|e| e.to_string())?;
    if target.universe_domain.is_some() {
        return Err("--universe-domain applies to --protocol gcs only".into());
    }
    let endpoint = match &target.endpoint {
        Some(endpoint) => Endpoint::custom(endpoint, target.scheme),
        None => Endpoint::aws(region, target.scheme),
    }
    .map_err(|e| e.to_string())?;
    let style = url_style(target)?;
    let credentials = S3Credentials::load(credentials).map_err(|e| e.to_string())?;
    S3Signer::new(credentials, region, endpoint, style).map_err(|e| e.to_string())
}

fn url_signer(credentials: &std::path::Path, target: &TargetArgs) -> Result<UrlSigner, String> {
    let endpoint = match (&target.endpoint, &target.universe_domain) {
        (Some(endpoint), _) => Endpoint::custom(endpoint, target.scheme),
        (None, Some(domain)) => Endpoint::universe(domain, target.scheme),
        (None, None) => Endpoint::universe("googleapis.com", target.scheme),
    }
    .map_err(|e| e.to_string())?;
    let style = url_style(target)?;
    let signer = load_signer(credentials).map_err(|e| e.to_string())?;
    Ok(UrlSigner::new(signer, endpoint, style))
}

fn url_style(target: &TargetArgs) -> Result<UrlStyle, String> {
    Ok(match (target.url_style, &target.bucket_bound_hostname) {
        (None | Some(StyleArg::Path), None) => UrlStyle::Path,
        (Some(StyleArg::VirtualHosted), None) => UrlStyle::VirtualHosted,
        (None | Some(StyleArg::BucketBound), Some(host)) => {
            UrlStyle::BucketBound(HostPort::parse(host).map_err(|e| e.to_string())?)
        }
        (Some(StyleArg::BucketBound), None) => {
            return Err("--url-style bucket-bound needs --bucket-bound-hostname".into());
        }
        (Some(_), Some(_)) => {
            return Err("--bucket-bound-hostname goes only with --url-style bucket-bound".into());
        }
    })
}

fn print_line(text: &str) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .map_err(|e| format!("cannot write output: {e}"))
}

fn parse_method(s: &str) -> Result<Method, String> {
    s.parse()
}

fn parse_scheme(s: &str) -> Result<Scheme, String> {
    s.parse()
}

fn parse_time(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|e| format!("expected an RFC 3339 time such as 2019-02-01T09:00:00Z ({e})"))
}

fn parse_header(s: &str) -> Result<(String, String), String> {
    let (name, value) = s.split_once(':').ok_or("expected 'Name: value'")?;
    Ok((name.trim().to_owned(), value.to_owned()))
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    let (name, value) = s.split_once('=').ok_or("expected name=value")?;
    Ok((name.to_owned(), value.to_owned()))
}

fn parse_range(s: &str) -> Result<(u64, u64), String> {
    let bad = || "expected MIN,MAX in bytes, MIN <= MAX".to_owned();
    let (min, max) = s.split_once(',').ok_or_else(bad)?;
    let (min, max) = (
        min.trim().parse().map_err(|_| bad())?,
        max.trim().parse().map_err(|_| bad())?,
    );
    if min > max {
        return Err(bad());
    }
    Ok((min, max))
}
