//! `sign-url` and `sign-post-policy`: the offline signer.

use crate::signing::{
    BucketName, Condition, Endpoint, Expiry, HostPort, Method, ObjectName, PostKey,
    PostPolicyRequest, Scheme, UrlRequest, UrlSigner, UrlStyle, load_signer,
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

#[derive(Clone, Copy, Debug, ValueEnum)]
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
    target: TargetArgs,
}

/// Runs `sign-url`.
pub fn sign_url(args: SignUrlArgs) -> Result<(), String> {
    let signer = url_signer(&args.credentials, &args.target)?;
    let object = args
        .object
        .as_deref()
        .map(ObjectName::parse)
        .transpose()
        .map_err(|e| e.to_string())?;
    let request = UrlRequest {
        method: args.method,
        bucket: BucketName::parse(&args.bucket).map_err(|e| e.to_string())?,
        object,
        expiry: Expiry::from_secs(args.expires).map_err(|e| e.to_string())?,
        headers: args.headers,
        query: args.query,
    };
    let at = args.at.unwrap_or_else(OffsetDateTime::now_utc);
    let signed = signer.sign(&request, at).map_err(|e| e.to_string())?;
    print_line(&signed.url)
}

/// Runs `sign-post-policy`.
pub fn sign_post_policy(args: SignPostPolicyArgs) -> Result<(), String> {
    let signer = url_signer(&args.credentials, &args.target)?;
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
    let policy = signer
        .post_policy(&request, at)
        .map_err(|e| e.to_string())?;
    let fields: serde_json::Map<String, serde_json::Value> = policy
        .fields
        .into_iter()
        .map(|(name, value)| (name, value.into()))
        .collect();
    let out = serde_json::json!({ "url": policy.url, "fields": fields });
    print_line(&out.to_string())
}

fn url_signer(credentials: &std::path::Path, target: &TargetArgs) -> Result<UrlSigner, String> {
    let endpoint = match (&target.endpoint, &target.universe_domain) {
        (Some(endpoint), _) => Endpoint::custom(endpoint, target.scheme),
        (None, Some(domain)) => Endpoint::universe(domain, target.scheme),
        (None, None) => Endpoint::universe("googleapis.com", target.scheme),
    }
    .map_err(|e| e.to_string())?;
    let style = match (target.url_style, &target.bucket_bound_hostname) {
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
    };
    let signer = load_signer(credentials).map_err(|e| e.to_string())?;
    Ok(UrlSigner::new(signer, endpoint, style))
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
