//! Google's GCS V4 signing conformance vectors (googleapis/conformance-tests, storage/v1), read
//! from `../shared/conformance/gcs-v4` (or `$GCS_V4_CONFORMANCE_DIR`): 29 signed-URL cases and 11
//! POST-policy cases, each its own test. Without the folder the run says so and reports a
//! skipped (ignored) test, never a pass; with `GCS_V4_CONFORMANCE_REQUIRED=1` (CI) it fails.

mod support;

use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use storage_broker::signing::{
    BucketName, Condition, Endpoint, Expiry, HostPort, ObjectName, PostKey, PostPolicyRequest,
    Scheme, Signer, UrlRequest, UrlSigner, UrlStyle, load_signer, prepare_post_policy,
};
use support::{expect_eq, expect_same_fields, pairs, str_field};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The case whose `expectedCanonicalRequest` is known to be wrong upstream (see the folder's README):
/// its path says `/test-bucket/test-object`, while its string-to-sign and URL use `/test-object`.
const CANONICAL_REQUEST_QUIRK: &str = "Universe domain with virtual hosted style";

fn main() {
    let args = Arguments::from_args();
    let dir = std::env::var_os("GCS_V4_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/gcs-v4")
        });
    let trials = match load(&dir) {
        Ok(trials) => trials,
        Err(why) => {
            eprintln!("\n!!! GCS V4 CONFORMANCE VECTORS NOT FOUND: {why}");
            eprintln!(
                "!!! the 40 conformance cases are SKIPPED, not passed: put the vectors at {}",
                dir.display()
            );
            eprintln!("!!! or point GCS_V4_CONFORMANCE_DIR at them\n");
            let required = std::env::var("GCS_V4_CONFORMANCE_REQUIRED").is_ok_and(|v| v == "1");
            let missing = Trial::test("conformance_vectors_missing", move || Err(why.into()));
            vec![missing.with_ignored_flag(!required)]
        }
    };
    libtest_mimic::run(&args, trials).exit();
}

fn load(dir: &std::path::Path) -> Result<Vec<Trial>, String> {
    let vectors = dir.join("v4_signatures.json");
    let text =
        std::fs::read_to_string(&vectors).map_err(|e| format!("{}: {e}", vectors.display()))?;
    let doc: Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", vectors.display()))?;
    let key = dir.join("test_service_account.not-a-test.json");
    let signer = load_signer(&key).map_err(|e| e.to_string())?;
    let mut trials = Vec::new();
    for (i, case) in doc["signingV4Tests"]
        .as_array()
        .ok_or("no signingV4Tests")?
        .iter()
        .enumerate()
    {
        let (case, signer) = (case.clone(), signer.clone());
        trials.push(Trial::test(
            name("signed_url", i, &case["description"]),
            move || signed_url_case(&case, signer),
        ));
    }
    for (i, case) in doc["postPolicyV4Tests"]
        .as_array()
        .ok_or("no postPolicyV4Tests")?
        .iter()
        .enumerate()
    {
        let (case, signer) = (case.clone(), signer.clone());
        trials.push(Trial::test(
            name("post_policy", i, &case["description"]),
            move || post_policy_case(&case, signer),
        ));
    }
    Ok(trials)
}

fn name(kind: &str, index: usize, description: &Value) -> String {
    let slug: String = description
        .as_str()
        .unwrap_or("")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("{kind}::{index:02}_{slug}")
}

fn signed_url_case(case: &Value, signer: Arc<dyn Signer>) -> Result<(), Failed> {
    let scheme = scheme(case)?;
    // Precedence as in the client libraries: hostname, then the client's endpoint, then the emulator.
    let endpoint = ["hostname", "clientEndpoint", "emulatorHostname"]
        .iter()
        .find_map(|k| case[*k].as_str());
    let endpoint = match (endpoint, case["universeDomain"].as_str()) {
        (Some(endpoint), _) => Endpoint::custom(endpoint, scheme),
        (None, Some(domain)) => Endpoint::universe(domain, scheme),
        (None, None) => Endpoint::universe("googleapis.com", scheme),
    }
    .map_err(|e| e.to_string())?;
    let signer = UrlSigner::new(signer, endpoint, style(case)?);
    let object = case["object"]
        .as_str()
        .map(ObjectName::parse)
        .transpose()
        .map_err(|e| e.to_string())?;
    let request = UrlRequest {
        method: str_field(case, "method")?.parse()?,
        bucket: BucketName::parse(str_field(case, "bucket")?).map_err(|e| e.to_string())?,
        object,
        expiry: Expiry::from_secs(case["expiration"].as_i64().ok_or("no expiration")?)
            .map_err(|e| e.to_string())?,
        headers: pairs(&case["headers"]),
        query: pairs(&case["queryParameters"]),
    };
    let at = timestamp(case)?;
    let prepared = signer.prepare(&request, at).map_err(|e| e.to_string())?;
    if case["description"].as_str() != Some(CANONICAL_REQUEST_QUIRK) {
        expect_eq(
            "canonical request",
            str_field(case, "expectedCanonicalRequest")?,
            prepared.canonical_request(),
        )?;
    }
    if let Some(expected) = case["expectedStringToSign"].as_str() {
        expect_eq("string to sign", expected, prepared.string_to_sign())?;
    }
    let signed = signer.sign(&request, at).map_err(|e| e.to_string())?;
    expect_eq("URL", str_field(case, "expectedUrl")?, &signed.url)
}

fn post_policy_case(case: &Value, signer: Arc<dyn Signer>) -> Result<(), Failed> {
    let input = &case["policyInput"];
    let output = &case["policyOutput"];
    let mut conditions = Vec::new();
    if let Some([field, prefix]) = input["conditions"]["startsWith"]
        .as_array()
        .map(Vec::as_slice)
    {
        let (field, prefix) = (
            field.as_str().ok_or("field")?,
            prefix.as_str().ok_or("prefix")?,
        );
        conditions.push(Condition::StartsWith {
            field: field.to_owned(),
            prefix: prefix.to_owned(),
        });
    }
    if let Some([min, max]) = input["conditions"]["contentLengthRange"]
        .as_array()
        .map(Vec::as_slice)
    {
        let (min, max) = (min.as_u64().ok_or("min")?, max.as_u64().ok_or("max")?);
        conditions.push(Condition::ContentLengthRange { min, max });
    }
    let request = PostPolicyRequest {
        bucket: BucketName::parse(str_field(input, "bucket")?).map_err(|e| e.to_string())?,
        key: PostKey::Exact(
            ObjectName::parse(str_field(input, "object")?).map_err(|e| e.to_string())?,
        ),
        expiry: Expiry::from_secs(input["expiration"].as_i64().ok_or("no expiration")?)
            .map_err(|e| e.to_string())?,
        fields: pairs(&input["fields"]),
        conditions,
    };
    let endpoint =
        Endpoint::universe("googleapis.com", scheme(input)?).map_err(|e| e.to_string())?;
    let style = style(input)?;
    let at = timestamp(input)?;
    let prepared = prepare_post_policy(signer.identity(), &endpoint, &style, &request, at)
        .map_err(|e| e.to_string())?;
    let decoded = base64_decode(prepared.string_to_sign())?;
    expect_eq(
        "decoded policy",
        str_field(output, "expectedDecodedPolicy")?,
        &unescape_unicode(&decoded)?,
    )?;

    let policy = UrlSigner::new(signer, endpoint, style)
        .post_policy(&request, at)
        .map_err(|e| e.to_string())?;
    expect_eq("URL", str_field(output, "url")?, &policy.url)?;
    expect_same_fields(pairs(&output["fields"]), policy.fields)
}

fn scheme(case: &Value) -> Result<Scheme, Failed> {
    Ok(case["scheme"]
        .as_str()
        .unwrap_or("https")
        .parse::<Scheme>()?)
}

fn style(case: &Value) -> Result<UrlStyle, Failed> {
    Ok(match case["urlStyle"].as_str() {
        None | Some("PATH_STYLE") => UrlStyle::Path,
        Some("VIRTUAL_HOSTED_STYLE") => UrlStyle::VirtualHosted,
        Some("BUCKET_BOUND_HOSTNAME") => UrlStyle::BucketBound(
            HostPort::parse(str_field(case, "bucketBoundHostname")?).map_err(|e| e.to_string())?,
        ),
        Some(other) => return Err(format!("unknown urlStyle {other}").into()),
    })
}

fn timestamp(case: &Value) -> Result<OffsetDateTime, Failed> {
    OffsetDateTime::parse(str_field(case, "timestamp")?, &Rfc3339)
        .map_err(|e| Failed::from(e.to_string()))
}

fn base64_decode(text: &str) -> Result<String, Failed> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|e| Failed::from(e.to_string()))
}

/// Turns `\uXXXX` escapes (and surrogate pairs) back into characters, leaving every other JSON
/// escape as it is: the form the vectors' `expectedDecodedPolicy` is written in.
fn unescape_unicode(text: &str) -> Result<String, Failed> {
    let mut units: Vec<u16> = Vec::new();
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("\\u") {
        // An escaped backslash before `u` would be `\\u`: the vectors contain none, and we refuse it.
        if rest[..pos].ends_with('\\') {
            return Err("ambiguous \\\\u in policy".into());
        }
        out.push_str(&rest[..pos]);
        let hex = rest.get(pos + 2..pos + 6).ok_or("short \\u escape")?;
        units.push(u16::from_str_radix(hex, 16).map_err(|e| e.to_string())?);
        rest = &rest[pos + 6..];
        if !rest.starts_with("\\u") {
            out.push_str(&String::from_utf16(&units).map_err(|e| e.to_string())?);
            units.clear();
        }
    }
    out.push_str(rest);
    Ok(out)
}
