//! Azure Blob on Azurite, which checks every SAS, Shared Key signature and bearer token. Our
//! SAS moves bytes (signed PUT and GET, hostile names, response overrides, a large blob by Put
//! Block and Put Block List on one SAS), and the refusals come from Azurite itself: a tampered
//! signature, an expired SAS, another blob, the wrong method for the permissions, `spr=https`
//! over HTTP. The control plane ([`AzureControl`]) lists every page to the end, after a name,
//! within a prefix and not its siblings, deletes a prefix, and reports a missing container and
//! a wrong key as such. Keyless, user-delegation keys fetched with an Entra ID token (from a
//! token endpoint on loopback that checks the federated assertion) sign URLs Azurite takes, and
//! are renewed.

use crate::azurite::Azurite;
use crate::helpers::b64;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Form, Json, Router};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use storage_broker::backends::azure::{AzureAuth, AzureControl};
use storage_broker::backends::{ObjectInfo, StorageError};
use storage_broker::cloud::{DelegationKey, DelegationKeys, EntraTokens, WorkloadIdentity};
use storage_broker::signing::{
    AzureCredentials, AzureSigner, BlobEndpoint, BlobSasRequest, SasKey,
};

/// The control plane on `azurite` with the account key.
fn control(azurite: &Azurite) -> AzureControl {
    AzureControl::new(
        AzureAuth::SharedKey(azurite.credentials()),
        azurite.blob_endpoint(),
        azurite.client(),
    )
}

/// Every page of the listing of `prefix` after `start_after`, and how many pages it took.
async fn list_all(
    control: &AzureControl,
    container: &str,
    prefix: &str,
    start_after: Option<&str>,
) -> (Vec<ObjectInfo>, usize) {
    let (mut items, mut pages, mut token) = (Vec::new(), 0, None::<String>);
    loop {
        let page = control
            .list(container, prefix, start_after, token.as_deref())
            .await
            .expect("list");
        pages += 1;
        assert!(page.items.len() <= 1000);
        items.extend(page.items);
        match page.next_page_token {
            Some(next) => token = Some(next),
            None => return (items, pages),
        }
    }
}

fn names(items: &[ObjectInfo]) -> Vec<&str> {
    items.iter().map(|o| o.name.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_control_plane_lists_pages_to_the_end_and_deletes_a_prefix() {
    let azurite = Azurite::start().await;
    azurite.create_container("listing").await;
    let many: Vec<String> = (0..1003).map(|i| format!("many/{i:04}")).collect();
    azurite.put_many("listing", many.clone()).await;
    let odd = [
        "a",
        "a/x",
        "ab/y",
        "a/é t+é/x&y=z%20 ✓ 😀.txt",
        " a/leading space",
    ];
    for name in odd {
        azurite
            .put_blob("listing", name, b"twelve bytes", "text/plain")
            .await;
    }
    let control = control(&azurite);

    // More than a page: every name once, in order, over two pages.
    let (items, pages) = list_all(&control, "listing", "many/", None).await;
    assert_eq!(pages, 2);
    assert_eq!(names(&items), many);
    assert_eq!(items[0].size, Some(1));
    assert_eq!(
        items[0].content_type.as_deref(),
        Some("application/octet-stream")
    );
    let updated = items[0].updated.as_deref().expect("last modified");
    assert!(
        time::OffsetDateTime::parse(updated, &time::format_description::well_known::Rfc3339)
            .is_ok(),
        "{updated}"
    );

    // After a name, never the name itself, also across a page boundary.
    let (after, _) = list_all(&control, "listing", "many/", Some("many/0997")).await;
    assert_eq!(names(&after), many[998..]);
    let (after, pages) = list_all(&control, "listing", "many/", Some("many/0001")).await;
    assert_eq!((after.len(), pages), (1001, 2));
    assert_eq!(after[0].name, "many/0002");
    let (after, _) = list_all(&control, "listing", "many/", Some("many/0001x")).await;
    assert_eq!(after[0].name, "many/0002");

    // A prefix lists what is under it, not its siblings; names come back as stored.
    let (under_a, _) = list_all(&control, "listing", "a/", None).await;
    assert_eq!(names(&under_a), ["a/x", "a/é t+é/x&y=z%20 ✓ 😀.txt"]);
    assert_eq!(under_a[0].size, Some(12));
    assert_eq!(under_a[0].content_type.as_deref(), Some("text/plain"));
    let (everything, _) = list_all(&control, "listing", "", None).await;
    assert_eq!(everything.len(), 1003 + odd.len());
    assert_eq!(everything[0].name, " a/leading space");

    // Deleting a prefix deletes what is under it, more than a page, and nothing beside it.
    assert_eq!(
        control
            .delete_prefix("listing", "a/")
            .await
            .expect("delete"),
        2
    );
    assert_eq!(
        control
            .delete_prefix("listing", "many/")
            .await
            .expect("delete"),
        1003
    );
    assert_eq!(
        control
            .delete_prefix("listing", "many/")
            .await
            .expect("again"),
        0
    );
    let (left, _) = list_all(&control, "listing", "", None).await;
    assert_eq!(names(&left), [" a/leading space", "a", "ab/y"]);
    control
        .check_listable("listing", "a/")
        .await
        .expect("listable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_control_plane_reports_a_missing_container_and_a_wrong_key() {
    let azurite = Azurite::start().await;
    azurite.create_container("present").await;
    let control = control(&azurite);
    let missing = control
        .check_listable("absent", "")
        .await
        .expect_err("no such container");
    assert!(missing.is_not_found(), "{missing}");
    let listed = control.list("absent", "", None, None).await;
    assert!(
        matches!(listed, Err(ref e) if e.is_not_found()),
        "{listed:?}"
    );

    // The right account with another key: Azurite refuses the signature.
    let wrong = AzureControl::new(
        AzureAuth::SharedKey(
            AzureCredentials::new("devstoreaccount1", "d3Jvbmcga2V5").expect("creds"),
        ),
        azurite.blob_endpoint(),
        azurite.client(),
    );
    let denied = wrong
        .check_listable("present", "")
        .await
        .expect_err("wrong key");
    assert!(denied.is_denied(), "{denied}");
    let denied = wrong
        .delete_prefix("present", "p/")
        .await
        .expect_err("wrong key");
    assert!(denied.is_denied(), "{denied}");

    // Nothing listening: neither a 404 nor a refusal.
    let closed = AzureControl::new(
        AzureAuth::SharedKey(azurite.credentials()),
        BlobEndpoint::parse("http://127.0.0.1:9/devstoreaccount1").expect("endpoint"),
        reqwest::Client::new(),
    );
    let unreachable = closed
        .check_listable("present", "")
        .await
        .expect_err("closed");
    assert!(
        matches!(unreachable, StorageError::Other(_)),
        "{unreachable}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_delete_refuses_names_a_url_would_resolve_to_another_blob() {
    let azurite = Azurite::start().await;
    azurite.create_container("dots").await;
    let control = control(&azurite);
    for name in ["p/../x", "p/./x", "p/..", "."] {
        let refused = control.delete("dots", name).await.expect_err(name);
        assert!(matches!(refused, StorageError::Other(_)), "{refused}");
    }
    // Dots inside a segment are ordinary.
    azurite
        .put_blob("dots", "p/..x/.y.", b"1", "text/plain")
        .await;
    assert!(control.delete("dots", "p/..x/.y.").await.expect("deleted"));
    assert!(!control.delete("dots", "p/..x/.y.").await.expect("gone"));
}

/// A tiny Entra ID token endpoint: answers the client-credentials grant of Azure Workload
/// Identity with an unsigned JWT that Azurite's `--oauth basic` takes (it checks issuer,
/// audience and times, not signatures), after checking the request carried the federated
/// assertion.
struct TokenEndpoint {
    /// `http://127.0.0.1:PORT/`: what `AZURE_AUTHORITY_HOST` would be.
    authority: String,
    issued: Arc<AtomicUsize>,
    /// While set, the endpoint answers 503.
    down: Arc<AtomicBool>,
}

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT: &str = "6d8c6f2e-1c7a-4d1b-9c55-0f3a2b7e9d11";
const OID: &str = "11059fcc-5514-4800-b5f8-49808b9cfab6";

impl TokenEndpoint {
    async fn start(assertion: &str) -> Self {
        let issued = Arc::new(AtomicUsize::new(0));
        let down = Arc::new(AtomicBool::new(false));
        let (count, outage, assertion) = (issued.clone(), down.clone(), assertion.to_owned());
        let app = Router::new().route(
            &format!("/{TENANT}/oauth2/v2.0/token"),
            post(move |Form(form): Form<HashMap<String, String>>| {
                let (count, outage, assertion) = (count.clone(), outage.clone(), assertion.clone());
                async move {
                    if outage.load(Ordering::SeqCst) {
                        return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({}))).into_response();
                    }
                    let field = |name: &str| form.get(name).map(String::as_str);
                    assert_eq!(field("grant_type"), Some("client_credentials"));
                    assert_eq!(field("client_id"), Some(CLIENT));
                    assert_eq!(field("scope"), Some("https://storage.azure.com/.default"));
                    assert_eq!(
                        field("client_assertion_type"),
                        Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
                    );
                    if field("client_assertion") != Some(assertion.as_str()) {
                        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "invalid_client"})))
                            .into_response();
                    }
                    count.fetch_add(1, Ordering::SeqCst);
                    let now = time::OffsetDateTime::now_utc().unix_timestamp();
                    let claims = json!({
                        "aud": "https://storage.azure.com", "iss": format!("https://sts.windows.net/{TENANT}/"),
                        "iat": now, "nbf": now - 60, "exp": now + 3600, "oid": OID, "tid": TENANT,
                        "appid": CLIENT,
                    });
                    let token = format!(
                        "{}.{}.",
                        b64(json!({"alg": "none", "typ": "JWT"}).to_string().as_bytes()),
                        b64(claims.to_string().as_bytes())
                    );
                    Json(json!({"token_type": "Bearer", "expires_in": 3599, "access_token": token}))
                        .into_response()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let authority = format!("http://{}/", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            authority,
            issued,
            down,
        }
    }
}

/// A federated token file holding `content`, removed with the returned guard's directory.
fn federated_token_file(content: &str) -> (std::path::PathBuf, TempDir) {
    let dir = TempDir(
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("azure-wi-{}", uuid::Uuid::new_v4().simple())),
    );
    std::fs::create_dir_all(&dir.0).expect("dir");
    let file = dir.0.join("token");
    std::fs::write(&file, content).expect("token file");
    (file, dir)
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A user-delegation SAS for `blob` in `container` with `key`, valid for five minutes or until
/// the key expires, whichever is first.
fn delegated_url(
    azurite: &Azurite,
    key: &DelegationKey,
    container: &str,
    blob: &str,
    permissions: &str,
) -> String {
    let expiry = (time::OffsetDateTime::now_utc() + time::Duration::minutes(5)).min(key.expires_at);
    AzureSigner::new(key.sas_key(), azurite.blob_endpoint())
        .sign(&BlobSasRequest {
            container: container.into(),
            blob: blob.into(),
            permissions: permissions.into(),
            start: None,
            expiry,
            protocols: None,
            content_disposition: None,
            content_type: None,
            delegated_user_oid: None,
        })
        .expect("signed")
        .url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_user_delegation_keys_sign_urls_azurite_takes_and_are_renewed() {
    let azurite = Azurite::start_https_oauth().await;
    azurite.create_container("delegated").await;
    let assertion = format!("federated-{}", uuid::Uuid::new_v4().simple());
    let endpoint = TokenEndpoint::start(&assertion).await;
    let (token_file, _dir) = federated_token_file(&format!("{assertion}\n"));
    let tokens = Arc::new(EntraTokens::new(
        WorkloadIdentity::new(TENANT, CLIENT, token_file.clone(), &endpoint.authority),
        azurite.client(),
    ));
    let lifetime = std::time::Duration::from_secs(6);
    let (keys, renewing) = DelegationKeys::start(
        "devstoreaccount1",
        azurite.blob_endpoint(),
        tokens.clone(),
        azurite.client(),
        lifetime,
    )
    .await
    .expect("first key");
    let first = keys.current().expect("a key");
    assert_eq!(first.key.signed_oid, OID);
    assert_eq!(first.key.signed_tid, TENANT);
    let left = first.expires_at - time::OffsetDateTime::now_utc();
    assert!(
        left <= time::Duration::seconds(6) && left > time::Duration::seconds(3),
        "{left}"
    );
    // The key's value is in no Debug output.
    let debug = format!("{first:?} {keys:?}");
    assert!(debug.contains(OID) && !debug.contains("value"), "{debug}");

    // A user-delegation SAS signed with it moves bytes through Azurite, which checks it.
    let client = azurite.client();
    let blob = "udk/été + & % x.bin";
    let body: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let put = client
        .put(delegated_url(&azurite, &first, "delegated", blob, "cw"))
        .header("x-ms-blob-type", "BlockBlob")
        .body(body.clone())
        .send()
        .await
        .expect("put");
    assert_eq!(
        put.status(),
        201,
        "{}",
        put.text().await.unwrap_or_default()
    );
    let url = delegated_url(&azurite, &first, "delegated", blob, "r");
    assert!(
        url.contains("skoid=") && url.contains("sv=2026-10-06"),
        "{url}"
    );
    let get = client.get(&url).send().await.expect("get");
    assert_eq!(get.status(), 200);
    assert_eq!(get.bytes().await.expect("bytes").to_vec(), body);
    // Another tenant's key claims: the signature no longer matches.
    let forged = url.replace(
        &format!("sktid={TENANT}"),
        "sktid=00000000-0000-4000-8000-000000000000",
    );
    assert_eq!(client.get(&forged).send().await.expect("get").status(), 403);

    // The control plane authorizes with the same tokens.
    let control = AzureControl::new(
        AzureAuth::Entra(tokens.clone()),
        azurite.blob_endpoint(),
        azurite.client(),
    );
    let page = control
        .list("delegated", "udk/", None, None)
        .await
        .expect("list");
    assert_eq!(names(&page.items), [blob]);
    assert_eq!(page.items[0].size, Some(70_000));
    // One token served the key and the listing.
    assert_eq!(endpoint.issued.load(Ordering::SeqCst), 1);

    // Half way through its life the key is replaced by one that works too.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let second = loop {
        let now = keys.current().expect("a key");
        if now.key.signed_expiry != first.key.signed_expiry {
            break now;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no renewal within 10 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(second.expires_at > first.expires_at);
    let get = client
        .get(delegated_url(&azurite, &second, "delegated", blob, "r"))
        .send()
        .await
        .expect("get");
    assert_eq!(get.status(), 200);

    // A failed renewal keeps the key in hand; past its expiry there is none to sign with.
    endpoint.down.store(true, Ordering::SeqCst);
    tokens.forget_token().await;
    assert!(keys.renew().await.is_err());
    assert_eq!(
        keys.current().expect("still valid").key.signed_expiry,
        second.key.signed_expiry
    );
    renewing.abort();
    let until_expiry = second.expires_at - time::OffsetDateTime::now_utc();
    tokio::time::sleep(until_expiry.try_into().unwrap_or_default()).await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(keys.current().is_none(), "an expired key is not handed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_delegation_keys_refuse_to_start_without_a_token_or_beyond_seven_days() {
    let azurite = Azurite::start_https_oauth().await;
    let endpoint = TokenEndpoint::start("the-right-assertion").await;
    let (wrong, _dir) = federated_token_file("another-assertion");
    let start = |file: std::path::PathBuf, lifetime: std::time::Duration| {
        let tokens = Arc::new(EntraTokens::new(
            WorkloadIdentity::new(TENANT, CLIENT, file, &endpoint.authority),
            azurite.client(),
        ));
        DelegationKeys::start(
            "devstoreaccount1",
            azurite.blob_endpoint(),
            tokens,
            azurite.client(),
            lifetime,
        )
    };
    let refused = start(wrong.clone(), std::time::Duration::from_secs(3600))
        .await
        .expect_err("the token endpoint refuses the assertion");
    assert!(refused.0.contains("401"), "{refused}");
    let missing = start(
        wrong.with_extension("absent"),
        std::time::Duration::from_secs(3600),
    )
    .await
    .expect_err("no token file");
    assert!(missing.0.contains("federated token file"), "{missing}");
    let too_long = start(wrong, std::time::Duration::from_secs(7 * 24 * 3600 + 1))
        .await
        .expect_err("longer than seven days");
    assert!(too_long.0.contains("seven days"), "{too_long}");
    assert_eq!(endpoint.issued.load(Ordering::SeqCst), 0);

    // Shared Key cannot ask for a user-delegation key: Azurite wants a bearer token.
    let response = azurite
        .shared_key_request(
            reqwest::Method::POST,
            &format!("{}/?restype=service&comp=userdelegationkey", azurite.endpoint),
            &[("content-type", "application/xml")],
            b"<KeyInfo><Start>2026-01-01T00:00:00Z</Start><Expiry>2026-01-02T00:00:00Z</Expiry></KeyInfo>"
                .to_vec(),
        )
        .await;
    assert_eq!(response.status(), 403);
}

/// A service SAS (the account key) for `blob` in `container`, expiring at `expiry`.
fn sas(
    azurite: &Azurite,
    container: &str,
    blob: &str,
    permissions: &str,
    expiry: time::OffsetDateTime,
    protocols: Option<&str>,
) -> String {
    AzureSigner::new(
        SasKey::Account(azurite.credentials()),
        azurite.blob_endpoint(),
    )
    .sign(&BlobSasRequest {
        container: container.into(),
        blob: blob.into(),
        permissions: permissions.into(),
        start: None,
        expiry,
        protocols: protocols.map(str::to_owned),
        content_disposition: None,
        content_type: None,
        delegated_user_oid: None,
    })
    .expect("signed")
    .url
}

fn in_five_minutes() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() + time::Duration::minutes(5)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_sas_moves_bytes_and_azurite_refuses_what_was_not_signed() {
    let azurite = Azurite::start().await;
    azurite.create_container("sas").await;
    let client = azurite.client();
    let soon = in_five_minutes();
    let stored = [
        "plain.txt",
        "docs/été 2024/日本語 ✓ 😀.txt",
        "a b/c+d&e=f%20g%.txt",
        "/leading/slash",
        "q?x#y;z,@!$'()*[]{}|^`~.bin",
    ];
    for name in stored {
        let body = format!("bytes of {name}").into_bytes();
        let put = client
            .put(sas(&azurite, "sas", name, "cw", soon, None))
            .header("x-ms-blob-type", "BlockBlob")
            .header("content-type", "text/x-test")
            .body(body.clone())
            .send()
            .await
            .expect("put");
        assert_eq!(
            put.status(),
            201,
            "{name}: {}",
            put.text().await.unwrap_or_default()
        );
        let get = client
            .get(sas(&azurite, "sas", name, "r", soon, None))
            .send()
            .await
            .expect("get");
        assert_eq!(get.status(), 200, "{name}");
        assert_eq!(get.headers()["content-type"], "text/x-test");
        assert_eq!(get.bytes().await.expect("bytes").to_vec(), body, "{name}");
    }
    // Stored under exactly those names.
    let control = control(&azurite);
    let (listed, _) = list_all(&control, "sas", "", None).await;
    let mut expected = stored.to_vec();
    expected.sort_unstable();
    assert_eq!(names(&listed), expected);

    // Response overrides are signed and honoured.
    let overridden = AzureSigner::new(
        SasKey::Account(azurite.credentials()),
        azurite.blob_endpoint(),
    )
    .sign(&BlobSasRequest {
        container: "sas".into(),
        blob: "plain.txt".into(),
        permissions: "r".into(),
        start: None,
        expiry: soon,
        protocols: None,
        // ASCII, as header values should be: Azurite (node) writes other characters as one
        // byte each, mangled.
        content_disposition: Some("attachment; filename*=UTF-8''r%C3%A9.txt".into()),
        content_type: Some("application/x-override".into()),
        delegated_user_oid: None,
    })
    .expect("signed")
    .url;
    let get = client.get(&overridden).send().await.expect("get");
    assert_eq!(get.status(), 200);
    assert_eq!(get.headers()["content-type"], "application/x-override");
    assert_eq!(
        get.headers()["content-disposition"],
        "attachment; filename*=UTF-8''r%C3%A9.txt"
    );
    let head = client
        .head(sas(&azurite, "sas", "plain.txt", "r", soon, None))
        .send()
        .await
        .expect("head");
    assert_eq!(head.status(), 200);

    // What Azurite refuses, each with 403.
    let read = sas(&azurite, "sas", "plain.txt", "r", soon, None);
    let signature_at = read.find("sig=").expect("sig") + 4;
    let mut tampered = read.clone();
    let flipped = if &read[signature_at..=signature_at] == "A" {
        "B"
    } else {
        "A"
    };
    tampered.replace_range(signature_at..=signature_at, flipped);
    let write = sas(&azurite, "sas", "plain.txt", "cw", soon, None);
    let past = time::OffsetDateTime::now_utc() - time::Duration::minutes(1);
    let refusals = [
        ("a tampered signature", client.get(&tampered)),
        (
            "an expired SAS",
            client.get(sas(&azurite, "sas", "plain.txt", "r", past, None)),
        ),
        (
            "another blob's SAS",
            client.get(read.replace("/plain.txt?", "/docs/x?")),
        ),
        (
            "a read SAS used to write",
            client
                .put(&read)
                .header("x-ms-blob-type", "BlockBlob")
                .body("overwritten"),
        ),
        ("a write SAS used to delete", client.delete(&write)),
        ("a read SAS used to delete", client.delete(&read)),
        ("a write SAS used to read", client.get(&write)),
        (
            "an HTTPS-only SAS over HTTP",
            client.get(sas(&azurite, "sas", "plain.txt", "r", soon, Some("https"))),
        ),
    ];
    for (what, request) in refusals {
        let response = request.send().await.expect("answer");
        assert_eq!(response.status(), 403, "{what}");
    }
    // Nothing above changed the blob; a delete SAS deletes it.
    let get = client.get(&read).send().await.expect("get");
    assert_eq!(
        get.bytes().await.expect("bytes").as_ref(),
        b"bytes of plain.txt"
    );
    let delete = client
        .delete(sas(&azurite, "sas", "plain.txt", "d", soon, None))
        .send()
        .await
        .expect("delete");
    assert_eq!(delete.status(), 202);
    assert_eq!(client.get(&read).send().await.expect("get").status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_sas_uploads_a_large_blob_block_by_block() {
    use base64::Engine;
    let azurite = Azurite::start().await;
    azurite.create_container("blocks").await;
    let client = azurite.client();
    let name = "large/été blocks+1.bin";
    // One SAS with create and write permissions for every block and the list.
    let url = sas(&azurite, "blocks", name, "cw", in_five_minutes(), None);
    let block = 4 * 1024 * 1024;
    let body: Vec<u8> = (0..3 * block + 12_345)
        .map(|i| (i % 251) as u8 ^ (i / 4096) as u8)
        .collect();
    let mut ids = Vec::new();
    for (n, chunk) in body.chunks(block).enumerate() {
        let id = base64::engine::general_purpose::STANDARD.encode(format!("block-{n:06}"));
        let put = client
            .put(format!("{url}&comp=block&blockid={}", urlencoding(&id)))
            .body(chunk.to_vec())
            .send()
            .await
            .expect("put block");
        assert_eq!(
            put.status(),
            201,
            "block {n}: {}",
            put.text().await.unwrap_or_default()
        );
        ids.push(id);
    }
    // Nothing is readable before the list commits the blocks.
    let read = sas(&azurite, "blocks", name, "r", in_five_minutes(), None);
    assert_eq!(client.get(&read).send().await.expect("get").status(), 404);
    let list: String = ids
        .iter()
        .map(|id| format!("<Latest>{id}</Latest>"))
        .collect();
    let commit = client
        .put(format!("{url}&comp=blocklist"))
        .header("content-type", "application/xml")
        .body(format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>{list}</BlockList>"
        ))
        .send()
        .await
        .expect("put block list");
    assert_eq!(
        commit.status(),
        201,
        "{}",
        commit.text().await.unwrap_or_default()
    );
    let get = client.get(&read).send().await.expect("get");
    assert_eq!(get.status(), 200);
    let got = get.bytes().await.expect("bytes");
    assert_eq!(got.len(), body.len());
    assert!(
        got.as_ref() == body.as_slice(),
        "the blob differs from what was uploaded"
    );

    // A read SAS cannot stage a block.
    let refused = client
        .put(format!(
            "{read}&comp=block&blockid={}",
            urlencoding(&ids[0])
        ))
        .body("x")
        .send()
        .await
        .expect("put block");
    assert_eq!(refused.status(), 403);
}

/// `s` percent-encoded for a query value.
fn urlencoding(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}
