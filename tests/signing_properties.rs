//! Properties over arbitrary input: signing never panics, every URL it makes parses back to
//! what was asked for, and every RSA signature verifies with the key's public half.

use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use proptest::prelude::*;
use std::path::Path;
use std::sync::{Arc, LazyLock};
use storage_broker::signing::{
    BucketName, Endpoint, Expiry, HostPort, Method, ObjectName, RsaSigner, Scheme, UrlRequest,
    UrlSigner, UrlStyle, load_signer, rsa_key_from_pem,
};
use time::OffsetDateTime;

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

static RSA: LazyLock<Arc<RsaSigner>> = LazyLock::new(|| {
    let doc: serde_json::Value = serde_json::from_slice(
        &std::fs::read(fixture("test-service-account.json")).expect("fixture"),
    )
    .expect("json");
    let key = rsa_key_from_pem(doc["private_key"].as_str().expect("pem")).expect("rsa key");
    Arc::new(RsaSigner::new(
        doc["client_email"].as_str().expect("email").to_owned(),
        key,
    ))
});

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::Get),
        Just(Method::Head),
        Just(Method::Put),
        Just(Method::Delete),
        Just(Method::Post)
    ]
}

fn style() -> impl Strategy<Value = (Option<String>, UrlStyle)> {
    prop_oneof![
        Just((None, UrlStyle::Path)),
        Just((None, UrlStyle::VirtualHosted)),
        Just((Some("http://localhost:4443".to_owned()), UrlStyle::Path)),
        Just((
            None,
            UrlStyle::BucketBound(HostPort::parse("cdn.example.com").expect("host"))
        )),
    ]
}

/// Names drawn from everything, and from the characters that need care.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "([ -~é日😀/%&=+?#\\t]|/\\.\\./|/\\./){0,40}"
    ]
}

fn time() -> impl Strategy<Value = OffsetDateTime> {
    (0i64..253_402_300_799).prop_map(|s| OffsetDateTime::from_unix_timestamp(s).expect("in range"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any input, valid or not, gives a URL or a typed error: never a panic.
    #[test]
    fn signing_never_panics(
        bucket in text(), object in proptest::option::of(text()), expires in any::<i64>(),
        headers in proptest::collection::vec((text(), text()), 0..4),
        query in proptest::collection::vec((text(), text()), 0..4),
        method in method(), (endpoint, style) in style(), at in time(), endpoint_text in text(),
    ) {
        let _ = Endpoint::custom(&endpoint_text, Scheme::Https);
        let _ = HostPort::parse(&endpoint_text);
        let parsed = (
            BucketName::parse(&bucket),
            object.as_deref().map(ObjectName::parse).transpose(),
            Expiry::from_secs(expires),
        );
        if let (Ok(bucket), Ok(object), Ok(expiry)) = parsed {
            let endpoint = endpoint.map_or_else(|| Ok(Endpoint::default()), |e| Endpoint::custom(&e, Scheme::Https)).expect("endpoint");
            let signer = UrlSigner::new(RSA.clone(), endpoint, style);
            let request = UrlRequest { method, bucket, object, expiry, headers, query };
            let _ = signer.sign(&request, at);
        }
    }

    /// Every URL parses, with the object, the query and the signature where they belong, and
    /// its RSA signature verifies with the public key.
    #[test]
    fn urls_parse_and_signatures_verify(
        bucket in "[a-z0-9][a-z0-9-]{1,20}[a-z0-9]", object in text(),
        query in proptest::collection::vec(("[a-zA-Z][ -~é]{0,10}", text()), 0..4),
        headers in proptest::collection::vec(("x-goog-meta-[a-z]{1,5}", "[ -~é]{0,20}"), 0..3),
        expires in 1i64..=604_800, method in method(), (endpoint, style) in style(), at in time(),
    ) {
        prop_assume!(ObjectName::parse(&object).is_ok());
        // The bucket rules are BucketName's (no `goog`, `google`, `xn--`…), not a copy of them.
        prop_assume!(BucketName::parse(&bucket).is_ok());
        let endpoint = endpoint.map_or_else(|| Ok(Endpoint::default()), |e| Endpoint::custom(&e, Scheme::Https)).expect("endpoint");
        let signer = UrlSigner::new(RSA.clone(), endpoint, style.clone());
        let request = UrlRequest {
            method,
            bucket: BucketName::parse(&bucket).expect("valid bucket"),
            object: Some(ObjectName::parse(&object).expect("valid object")),
            expiry: Expiry::from_secs(expires).expect("valid expiry"),
            headers,
            query: query.clone(),
        };
        let prepared = signer.prepare(&request, at).expect("valid request signs");
        let string_to_sign = prepared.string_to_sign().to_owned();
        let signed = signer.sign(&request, at).expect("valid request signs");

        let url = url::Url::parse(&signed.url).expect("URL parses");
        // The raw path: URL parsers (browsers too) resolve `.` and `..` segments.
        let after_scheme = &signed.url[signed.url.find("://").expect("scheme") + 3..];
        let raw_path = &after_scheme[after_scheme.find('/').expect("path")..after_scheme.find('?').expect("query")];
        let path = percent_decode(raw_path);
        let expected_path = match style {
            UrlStyle::Path => format!("/{bucket}/{object}"),
            _ => format!("/{object}"),
        };
        prop_assert_eq!(path, expected_path);
        let params: Vec<(String, String)> = url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        for pair in &query {
            prop_assert!(params.contains(pair), "query {:?} missing from {:?}", pair, params);
        }
        let expires_text = expires.to_string();
        prop_assert!(params.contains(&("X-Goog-Expires".to_owned(), expires_text)));
        let signature = params.iter().find(|(k, _)| k == "X-Goog-Signature").map(|(_, v)| v.clone()).expect("signature");
        prop_assert_eq!(params.last().map(|(k, _)| k.as_str()), Some("X-Goog-Signature"));
        let signature = hex::decode(signature).expect("hex");
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, RSA.public_key_der())
            .verify(string_to_sign.as_bytes(), &signature)
            .expect("signature verifies");
    }
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .expect("UTF-8")
        .into_owned()
}

#[test]
fn hmac_and_rsa_fixtures_load() {
    for name in ["test-service-account.json", "test-hmac-key.json"] {
        load_signer(&fixture(name)).expect(name);
    }
}
