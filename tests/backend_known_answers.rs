//! Known answers for the S3 and Azure signers, from implementations that share no code with
//! this crate: botocore (`S3SigV4QueryAuth`, `generate_presigned_post`) and azure-storage-blob
//! (`generate_blob_sas`). The cases in `tests/known_answers/backends.json` are named fixed
//! cases plus seeded random ones (unicode and reserved characters, leading slashes, dot
//! segments, every method, regions, expiries, headers, session tokens); each case's `made_by`
//! names the library and version (a failure prints it). Regenerate with
//! `scripts/make-backend-known-answers.sh`.

mod support;

use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;
use std::path::Path;
use storage_broker::signing::azure::UserDelegationKey;
use storage_broker::signing::{
    AzureCredentials, AzureSigner, BlobEndpoint, BlobSasRequest, BucketName, Condition, Endpoint,
    Expiry, ObjectName, PostKey, PostPolicyRequest, S3Credentials, S3Signer, SasKey, Scheme,
    UrlRequest, UrlStyle,
};
use support::{expect_eq, pairs, str_field};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

fn main() {
    let args = Arguments::from_args();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/known_answers/backends.json");
    let text = std::fs::read_to_string(&path).expect("backends.json");
    let cases: Vec<Value> = serde_json::from_str(&text).expect("backends.json is JSON");
    let trials = cases
        .into_iter()
        .map(|case| {
            let name = format!(
                "{}::{}",
                case["kind"].as_str().unwrap_or("?"),
                case["name"].as_str().unwrap_or("?")
            );
            Trial::test(name, move || {
                run(&case).map_err(|failed| {
                    let made_by = case["made_by"].as_str().unwrap_or("?");
                    Failed::from(format!(
                        "{}\n(expected value made by {made_by})",
                        failed.message().unwrap_or("")
                    ))
                })
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}

fn run(case: &Value) -> Result<(), Failed> {
    let input = &case["input"];
    let expected = &case["expected"];
    match str_field(case, "kind")? {
        "s3_url" => s3_url(input, expected),
        "s3_post_policy" => s3_post_policy(input, expected),
        "azure_sas" => azure_sas(input, expected),
        other => Err(format!("unknown kind {other}").into()),
    }
}

fn s3_signer(input: &Value) -> Result<S3Signer, Failed> {
    let creds = &input["credentials"];
    let credentials = S3Credentials::new(
        str_field(creds, "access_key_id")?,
        str_field(creds, "secret_access_key")?,
        creds["session_token"].as_str().map(str::to_owned),
    )?;
    let style = match str_field(input, "style")? {
        "path" => UrlStyle::Path,
        "virtual-hosted" => UrlStyle::VirtualHosted,
        other => return Err(format!("unknown style {other}").into()),
    };
    Ok(S3Signer::new(
        credentials,
        str_field(input, "region")?,
        Endpoint::custom(str_field(input, "endpoint")?, Scheme::Https)?,
        style,
    )?)
}

fn s3_url(input: &Value, expected: &Value) -> Result<(), Failed> {
    let signer = s3_signer(input)?;
    let at = OffsetDateTime::parse(str_field(input, "at")?, &Rfc3339)?;
    let request = UrlRequest {
        method: str_field(input, "method")?.parse()?,
        bucket: BucketName::parse(str_field(input, "bucket")?)?,
        object: input["object"]
            .as_str()
            .map(ObjectName::parse)
            .transpose()?,
        expiry: Expiry::from_secs(input["expires"].as_i64().ok_or("expires")?)?,
        headers: pairs(&input["headers"]),
        query: pairs(&input["query"]),
    };
    let prepared = signer.prepare(&request, at)?;
    if let Some(canonical) = expected["canonical_request"].as_str() {
        expect_eq("canonical request", canonical, prepared.canonical_request())?;
    }
    if let Some(string_to_sign) = expected["string_to_sign"].as_str() {
        expect_eq("string to sign", string_to_sign, prepared.string_to_sign())?;
    }
    expect_eq(
        "URL",
        str_field(expected, "url")?,
        &signer.sign(&request, at)?.url,
    )
}

fn s3_post_policy(input: &Value, expected: &Value) -> Result<(), Failed> {
    let signer = s3_signer(input)?;
    let at = OffsetDateTime::parse(str_field(input, "at")?, &Rfc3339)?;
    let key = match (input["key"].as_str(), input["key_prefix"].as_str()) {
        (Some(key), None) => PostKey::Exact(ObjectName::parse(key)?),
        (None, Some(prefix)) => PostKey::Prefix(prefix.to_owned()),
        _ => return Err("a case has key or key_prefix".into()),
    };
    let mut conditions = Vec::new();
    for condition in input["conditions"].as_array().into_iter().flatten() {
        let parts = condition.as_array().ok_or("a condition is an array")?;
        conditions.push(match parts.first().and_then(Value::as_str) {
            Some("content-length-range") => Condition::ContentLengthRange {
                min: parts[1].as_u64().ok_or("min")?,
                max: parts[2].as_u64().ok_or("max")?,
            },
            Some("starts-with") => Condition::StartsWith {
                field: parts[1].as_str().ok_or("field")?.to_owned(),
                prefix: parts[2].as_str().ok_or("prefix")?.to_owned(),
            },
            _ => return Err(format!("unknown condition {condition}").into()),
        });
    }
    let request = PostPolicyRequest {
        bucket: BucketName::parse(str_field(input, "bucket")?)?,
        key,
        expiry: Expiry::from_secs(input["expires"].as_i64().ok_or("expires")?)?,
        fields: pairs(&input["fields"]),
        conditions,
    };
    let policy = signer.post_policy(&request, at)?;
    let got_policy = policy
        .fields
        .iter()
        .find(|(name, _)| name == "policy")
        .map(|(_, value)| value.clone())
        .unwrap_or_default();
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD.decode(&got_policy)?;
    expect_eq(
        "policy document",
        str_field(expected, "policy_json")?,
        &String::from_utf8_lossy(&decoded),
    )?;
    expect_eq("URL", str_field(expected, "url")?, &policy.url)?;
    let fields = |list: &[(String, String)]| {
        list.iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    expect_eq(
        "fields, in order",
        &fields(&pairs(&expected["fields"])),
        &fields(&policy.fields),
    )
}

fn azure_sas(input: &Value, expected: &Value) -> Result<(), Failed> {
    let account = str_field(input, "account")?;
    let key = match input.get("user_delegation_key").filter(|k| !k.is_null()) {
        None => SasKey::Account(AzureCredentials::new(account, str_field(input, "key")?)?),
        Some(k) => SasKey::UserDelegation {
            account: account.to_owned(),
            key: UserDelegationKey::new(
                str_field(k, "signed_oid")?.to_owned(),
                str_field(k, "signed_tid")?.to_owned(),
                str_field(k, "signed_start")?.to_owned(),
                str_field(k, "signed_expiry")?.to_owned(),
                str_field(k, "signed_service")?.to_owned(),
                str_field(k, "signed_version")?.to_owned(),
                k["signed_delegated_user_tid"].as_str().map(str::to_owned),
                str_field(k, "value")?,
            )?,
        },
    };
    let signer = AzureSigner::new(key, BlobEndpoint::parse(str_field(input, "endpoint")?)?);
    let time = |name: &str| -> Result<Option<OffsetDateTime>, Failed> {
        input[name]
            .as_str()
            .map(|t| OffsetDateTime::parse(t, &Rfc3339))
            .transpose()
            .map_err(Failed::from)
    };
    let request = BlobSasRequest {
        container: str_field(input, "container")?.to_owned(),
        blob: str_field(input, "blob")?.to_owned(),
        permissions: str_field(input, "permission")?.to_owned(),
        start: time("start")?,
        expiry: time("expiry")?.ok_or("expiry")?,
        protocols: Some(str_field(input, "protocol")?.to_owned()),
        content_disposition: input["content_disposition"].as_str().map(str::to_owned),
        content_type: input["content_type"].as_str().map(str::to_owned),
        delegated_user_oid: input["user_delegation_oid"].as_str().map(str::to_owned),
    };
    let sas = signer.sign(&request)?;
    if let Some(string_to_sign) = expected["string_to_sign"].as_str() {
        expect_eq("string to sign", string_to_sign, &sas.string_to_sign)?;
    }
    expect_eq("token", str_field(expected, "token")?, &sas.token)?;
    expect_eq("URL", str_field(expected, "url")?, &sas.url)
}
