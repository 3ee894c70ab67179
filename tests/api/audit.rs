//! Reading the audit: `GET /v1/buckets/{bucket}/audit` for the bucket's admins, `GET /v1/audit`
//! for storage admins; newest first, filtered, paged with opaque tokens bound to the query.

use crate::helpers::{TestApp, expect_problem};
use serde_json::{Value, json};

async fn audit(app: &TestApp, path: &str, token: &str) -> Value {
    let response = app.get(path, token).await;
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.expect("json")
}

fn rows<'a>(page: &'a Value, field: &str) -> Vec<&'a str> {
    page["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e[field].as_str().unwrap_or(""))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_admin_reads_who_touched_what_newest_first() {
    let app = TestApp::spawn().await;
    let bucket = app.personal_bucket("alice").await;
    app.grant(&bucket, "shared/", "user:carol", "viewer", None)
        .await;
    let sign = |sub: &'static str, object: &'static str| {
        app.sign(
            sub,
            json!({ "bucket": bucket, "object": object, "method": "GET" }),
        )
    };
    assert_eq!(sign("alice", "mine.txt").await.status(), 200);
    assert_eq!(sign("carol", "shared/report.csv").await.status(), 200);
    expect_problem(sign("carol", "private/diary.txt").await, 403, "forbidden").await;
    let alice = app.idp.token("alice");
    let base = format!("/v1/buckets/{bucket}/audit");

    let all = audit(&app, &base, &alice).await;
    // Newest first: the read of the audit itself, then carol's refusal, her read, alice's sign.
    assert_eq!(rows(&all, "method")[0], "READ_AUDIT");
    let objects: Vec<&str> = rows(&all, "object");
    let carol_deny = objects
        .iter()
        .position(|o| *o == "private/diary.txt")
        .expect("carol's refusal");
    let carol_read = objects
        .iter()
        .position(|o| *o == "shared/report.csv")
        .expect("carol's read");
    let alice_sign = objects
        .iter()
        .position(|o| *o == "mine.txt")
        .expect("alice's sign");
    assert!(
        carol_deny < carol_read && carol_read < alice_sign,
        "{objects:?}"
    );
    let ids: Vec<i64> = all["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["id"].as_i64().expect("id"))
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] > w[1]),
        "not newest first: {ids:?}"
    );

    let carol = audit(&app, &format!("{base}?subject=carol"), &alice).await;
    assert_eq!(
        rows(&carol, "object"),
        ["private/diary.txt", "shared/report.csv"]
    );
    let refusals = audit(&app, &format!("{base}?decision=deny"), &alice).await;
    assert_eq!(rows(&refusals, "object"), ["private/diary.txt"]);
    assert_eq!(rows(&refusals, "subject"), ["carol"]);
    let shared = audit(
        &app,
        &format!("{base}?object_prefix=shared/&subject=carol"),
        &alice,
    )
    .await;
    assert_eq!(rows(&shared, "object"), ["shared/report.csv"]);
    let future = audit(&app, &format!("{base}?since=2999-01-01T00:00:00Z"), &alice).await;
    assert!(rows(&future, "object").is_empty());
    let past = audit(&app, &format!("{base}?until=2000-01-01T00:00:00Z"), &alice).await;
    assert!(rows(&past, "object").is_empty());

    // A viewer may not read it (403, and that refusal is audited); someone without access sees
    // no such bucket.
    expect_problem(
        app.get(&base, &app.idp.token("carol")).await,
        403,
        "forbidden",
    )
    .await;
    expect_problem(
        app.get(&base, &app.idp.token("mallory")).await,
        404,
        "not_found",
    )
    .await;
    let refusals = audit(&app, &format!("{base}?decision=deny&subject=carol"), &alice).await;
    assert_eq!(rows(&refusals, "method")[0], "READ_AUDIT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_pages_are_complete_and_their_tokens_bound_to_the_query() {
    let app = TestApp::spawn().await;
    let bucket = app.personal_bucket("alice").await;
    for i in 0..7 {
        let object = format!("f{i}.txt");
        let signed = app
            .sign(
                "alice",
                json!({ "bucket": bucket, "object": object, "method": "GET" }),
            )
            .await;
        assert_eq!(signed.status(), 200);
    }
    let alice = app.idp.token("alice");
    let base = format!("/v1/buckets/{bucket}/audit?subject=alice&object_prefix=f");
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &token {
            Some(t) => format!("{base}&limit=3&page_token={t}"),
            None => format!("{base}&limit=3"),
        };
        let page = audit(&app, &path, &alice).await;
        pages += 1;
        seen.extend(rows(&page, "object").into_iter().map(str::to_owned));
        match page["next_page_token"].as_str() {
            Some(next) => {
                // Sealed: neither the caller, the filters nor the cursor can be read from it.
                let raw = crate::helpers::b64_decode(next);
                let shows = |needle: &[u8]| raw.windows(needle.len()).any(|w| w == needle);
                assert!(
                    !raw.is_empty()
                        && !shows(b"alice")
                        && !shows(b"object_prefix")
                        && !shows(b"\"f\""),
                    "the token shows the query"
                );
                token = Some(next.to_owned());
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(
        seen,
        [
            "f6.txt", "f5.txt", "f4.txt", "f3.txt", "f2.txt", "f1.txt", "f0.txt"
        ]
    );

    // A token works only for the query, the bucket and the caller that got it.
    let first = audit(&app, &format!("{base}&limit=3"), &alice).await;
    let token = first["next_page_token"]
        .as_str()
        .expect("a next page")
        .to_owned();
    for (path, who) in [
        (
            format!("/v1/buckets/{bucket}/audit?subject=alice&limit=3&page_token={token}"),
            "alice",
        ),
        (
            format!("{base}&decision=allow&limit=3&page_token={token}"),
            "alice",
        ),
        (
            format!("/v1/audit?subject=alice&object_prefix=f&limit=3&page_token={token}"),
            "root",
        ),
        (format!("{base}&limit=3&page_token={token}x"), "alice"),
    ] {
        let caller = if who == "root" {
            app.idp.token_with(
                "root",
                json!({ "realm_access": { "roles": ["storage-admin"] } }),
            )
        } else {
            app.idp.token(who)
        };
        expect_problem(app.get(&path, &caller).await, 400, "invalid_page_token").await;
    }
    // Hostile filters are refused with a code, never passed on.
    for query in [
        "decision=maybe",
        "since=yesterday",
        "until=2026-13-45T00:00:00Z",
        "limit=0",
        "limit=100000",
    ] {
        let path = format!("/v1/buckets/{bucket}/audit?{query}");
        expect_problem(app.get(&path, &alice).await, 400, "invalid_filter").await;
    }
    // A query string that does not parse (a number past i64, a word for a number) is refused
    // as problem+json like any other bad input, on both audit routes (schemathesis found it).
    for query in ["limit=9223372036854775808", "limit=ten"] {
        for path in [
            format!("/v1/buckets/{bucket}/audit?{query}"),
            format!("/v1/audit?{query}"),
        ] {
            expect_problem(app.get(&path, &alice).await, 400, "invalid_request").await;
        }
    }
    let long = "x".repeat(2000);
    expect_problem(
        app.get(
            &format!("/v1/buckets/{bucket}/audit?subject={long}"),
            &alice,
        )
        .await,
        400,
        "invalid_filter",
    )
    .await;
    // A LIKE pattern is only a prefix: `%` matches nothing but a `%`.
    let wild = audit(
        &app,
        &format!("/v1/buckets/{bucket}/audit?object_prefix=%25"),
        &alice,
    )
    .await;
    assert!(rows(&wild, "object").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_audit_is_for_storage_admins() {
    let app = TestApp::spawn().await;
    let alice_bucket = app.personal_bucket("alice").await;
    let bob_bucket = app.personal_bucket("bob").await;
    for (sub, bucket) in [("alice", &alice_bucket), ("bob", &bob_bucket)] {
        let signed = app
            .sign(
                sub,
                json!({ "bucket": bucket, "object": "x.txt", "method": "GET" }),
            )
            .await;
        assert_eq!(signed.status(), 200);
    }
    expect_problem(
        app.get("/v1/audit", &app.idp.token("alice")).await,
        403,
        "forbidden",
    )
    .await;
    let root = app.idp.token_with(
        "root",
        json!({ "realm_access": { "roles": ["storage-admin"] } }),
    );
    let all = audit(&app, "/v1/audit", &root).await;
    let buckets = rows(&all, "bucket");
    assert!(buckets.contains(&alice_bucket.as_str()) && buckets.contains(&bob_bucket.as_str()));
    // Alice's refusal was audited, and the admin's own read too.
    let refused = audit(&app, "/v1/audit?decision=deny&subject=alice", &root).await;
    assert_eq!(rows(&refused, "method"), ["READ_AUDIT"]);
    let long = "b".repeat(2000);
    expect_problem(
        app.get(&format!("/v1/audit?bucket={long}"), &root).await,
        400,
        "invalid_filter",
    )
    .await;
    let bobs = audit(
        &app,
        &format!("/v1/audit?bucket={bob_bucket}&subject=bob"),
        &root,
    )
    .await;
    assert!(!rows(&bobs, "bucket").is_empty());
    assert!(rows(&bobs, "bucket").iter().all(|b| *b == bob_bucket));
}
