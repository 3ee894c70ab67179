//! Known answers for what Google's vectors miss: unicode and reserved characters in object names,
//! leading slashes, query names that are prefixes of one another, repeated headers, HMAC keys.
//! The expected values in `tests/known_answers/cases.json` come from implementations that share
//! no code with this crate; each case's `made_by` says which (and a failure prints it).
//! Regenerate with `scripts/make-known-answers.sh`.

mod support;

use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;
use std::path::Path;
use storage_broker::signing::{
    BucketName, Condition, Endpoint, Expiry, ObjectName, PostKey, PostPolicyRequest, UrlRequest,
    UrlSigner, UrlStyle, load_signer,
};
use support::{expect_eq, expect_same_fields, pairs, str_field};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

fn main() {
    let args = Arguments::from_args();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let text = std::fs::read_to_string(root.join("known_answers/cases.json")).expect("cases.json");
    let cases: Vec<Value> = serde_json::from_str(&text).expect("cases.json is JSON");
    let trials = cases
        .into_iter()
        .map(|case| {
            let name = format!(
                "{}::{}",
                case["kind"].as_str().unwrap_or("?"),
                case["name"].as_str().unwrap_or("?")
            );
            let root = root.clone();
            Trial::test(name, move || {
                run(&case, &root).map_err(|failed| {
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

fn run(case: &Value, root: &Path) -> Result<(), Failed> {
    let key = match str_field(case, "key")? {
        "rsa" => root.join("fixtures/test-service-account.json"),
        "hmac" => root.join("fixtures/test-hmac-key.json"),
        other => return Err(format!("unknown key {other}").into()),
    };
    let signer = UrlSigner::new(load_signer(&key)?, Endpoint::default(), UrlStyle::Path);
    let input = &case["input"];
    let expected = &case["expected"];
    let at = OffsetDateTime::parse(str_field(input, "at")?, &Rfc3339)?;
    let bucket = BucketName::parse(str_field(input, "bucket")?)?;
    let expiry = Expiry::from_secs(input["expires"].as_i64().ok_or("expires")?)?;
    match str_field(case, "kind")? {
        "url" => {
            let request = UrlRequest {
                method: str_field(input, "method")?.parse()?,
                bucket,
                object: input["object"]
                    .as_str()
                    .map(ObjectName::parse)
                    .transpose()?,
                expiry,
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
        "post_policy" => {
            let mut conditions: Vec<Condition> = pairs(&input["starts_with"])
                .into_iter()
                .map(|(field, prefix)| Condition::StartsWith { field, prefix })
                .collect();
            if let Some([min, max]) = input["content_length_range"].as_array().map(Vec::as_slice) {
                let (min, max) = (min.as_u64().ok_or("min")?, max.as_u64().ok_or("max")?);
                conditions.push(Condition::ContentLengthRange { min, max });
            }
            let request = PostPolicyRequest {
                bucket,
                key: PostKey::Exact(ObjectName::parse(str_field(input, "object")?)?),
                expiry,
                fields: pairs(&input["fields"]),
                conditions,
            };
            let policy = signer.post_policy(&request, at)?;
            expect_eq("URL", str_field(expected, "url")?, &policy.url)?;
            expect_same_fields(pairs(&expected["fields"]), policy.fields)
        }
        other => Err(format!("unknown kind {other}").into()),
    }
}
