//! The broker attacked as a hostile tenant would: each test is an attack that worked before the
//! hardening of issue 12, sent through the HTTP API (or, for the audit writer, just below it),
//! and the refusal it must get now. Identities are any string an identity provider could issue.

use crate::helpers::{Emulator, TestApp, expect_problem};
use serde_json::{Value, json};
use storage_broker::store::{AuditEvent, AuditLog};

fn in_hours(hours: i64) -> String {
    (time::OffsetDateTime::now_utc() + time::Duration::hours(hours))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("time")
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn created(response: reqwest::Response) -> Value {
    let status = response.status();
    let body: Value = response.json().await.expect("json");
    assert_eq!(status, 201, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exact_object_grant_never_acts_as_a_prefix() {
    let app = TestApp::spawn().await;
    let bucket = app.personal_bucket("alice").await;
    let (alice, bob) = (app.idp.token("alice"), app.idp.token("bob"));
    let grants = format!("/v1/buckets/{bucket}/grants");
    created(
        app.post(
            &grants,
            &alice,
            &json!({ "object": "report.pdf", "principal": "user:bob", "role": "owner" }),
        )
        .await,
    )
    .await;

    // The object itself, by policy: yes. Every key starting with its name: no.
    let policy = |key: &str, value: &str| json!({ "bucket": bucket, key: value });
    assert_eq!(
        app.post("/v1/upload-policy", &bob, &policy("object", "report.pdf"))
            .await
            .status(),
        200
    );
    expect_problem(
        app.post(
            "/v1/upload-policy",
            &bob,
            &policy("object_prefix", "report.pdf"),
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    // A prefix policy is audited as one.
    assert_eq!(
        app.post(
            "/v1/upload-policy",
            &alice,
            &policy("object_prefix", "inbox/")
        )
        .await
        .status(),
        200
    );
    let method: String = sqlx::query_scalar(
        "SELECT method FROM audit_events WHERE subject = 'alice' AND object = 'inbox/' AND decision = 'allow'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("audited");
    assert_eq!(method, "POST_POLICY_PREFIX");

    // Revoking decides as granting does: `share` on the object "team/" is no right on the
    // prefix "team/", so bob cannot revoke carol's grant there.
    created(
        app.post(
            &grants,
            &alice,
            &json!({ "object": "team/", "principal": "user:bob", "role": "owner" }),
        )
        .await,
    )
    .await;
    let carol_grant = created(
        app.post(
            &grants,
            &alice,
            &json!({ "prefix": "team/", "principal": "user:carol", "role": "viewer" }),
        )
        .await,
    )
    .await;
    let id = carol_grant["id"].as_str().expect("id");
    expect_problem(
        app.delete(&format!("{grants}/{id}"), &bob).await,
        403,
        "forbidden",
    )
    .await;
    expect_problem(
        app.post(
            &grants,
            &bob,
            &json!({ "prefix": "team/", "principal": "user:mallory", "role": "viewer" }),
        )
        .await,
        403,
        "forbidden",
    )
    .await;

    // GET /v1/buckets says which rights are exact.
    let listed: Value = app
        .get("/v1/buckets", &bob)
        .await
        .json()
        .await
        .expect("json");
    let view = listed["buckets"]
        .as_array()
        .expect("buckets")
        .iter()
        .find(|b| b["name"] == bucket.as_str())
        .expect("visible to bob")
        .clone();
    let grants_seen = view["prefix_grants"].as_array().expect("grants").clone();
    assert!(
        grants_seen.iter().all(|g| g["exact"] == true
            && ["report.pdf", "team/"].contains(&g["prefix"].as_str().unwrap_or(""))),
        "{view}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_grants_for_longer_than_they_hold() {
    let app = TestApp::spawn().await;
    let bucket = app.personal_bucket("alice").await;
    let (alice, bob) = (app.idp.token("alice"), app.idp.token("bob"));
    let grants = format!("/v1/buckets/{bucket}/grants");
    let until = in_hours(1);
    created(
        app.post(
            &grants,
            &alice,
            &json!({ "prefix": "team/", "principal": "user:bob", "role": "owner", "expires_at": until }),
        )
        .await,
    )
    .await;
    for (principal, expires_at) in [
        ("user:bob", Value::Null),
        ("user:carol", Value::Null),
        ("authenticated", Value::Null),
        ("user:carol", json!(in_hours(2))),
    ] {
        let problem = expect_problem(
            app.post(
                &grants,
                &bob,
                &json!({ "prefix": "team/", "principal": principal, "role": "viewer", "expires_at": expires_at }),
            )
            .await,
            400,
            "expiry_exceeds_holding",
        )
        .await;
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| d.contains("until")),
            "{problem}"
        );
    }
    // Within what bob holds: yes.
    created(
        app.post(
            &grants,
            &bob,
            &json!({ "prefix": "team/sub/", "principal": "user:carol", "role": "viewer", "expires_at": until }),
        )
        .await,
    )
    .await;
    // The owner's own rights do not end: alice grants for ever.
    created(
        app.post(
            &grants,
            &alice,
            &json!({ "prefix": "pub/", "principal": "authenticated", "role": "viewer" }),
        )
        .await,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subject_with_a_slash_never_reaches_into_another_users_prefix() {
    let emulator = Emulator::start().await;
    emulator.create_bucket("storage-broker-data").await;
    let app = TestApp::spawn_with(&[("BROKER_STORAGE_ENDPOINT", emulator.endpoint.as_str())]).await;
    app.personal_bucket("alice").await;
    emulator
        .store_many(
            "storage-broker-data",
            vec!["users/alice/private.txt".into()],
        )
        .await;
    let mallory_sub = "alice/x";
    let mallory = app.idp.token(mallory_sub);
    let me: Value = app.get("/v1/me", &mallory).await.json().await.expect("me");
    let bucket = me["personal_bucket"].as_str().expect("bucket").to_owned();

    // Nothing of alice's shows in mallory's listing, and her URLs stay in her own prefix.
    let listed: Value = app
        .get(&format!("/v1/buckets/{bucket}/objects"), &mallory)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(listed["objects"], json!([]), "{listed}");
    for name in ["private.txt", "x/private.txt"] {
        let signed: Value = app
            .post(
                "/v1/sign",
                &mallory,
                &json!({ "bucket": bucket, "object": name, "method": "GET" }),
            )
            .await
            .json()
            .await
            .expect("json");
        let url = signed["url"].as_str().expect("url");
        assert!(
            !url.contains("/users/alice/"),
            "mallory's URL points into alice's prefix: {url}"
        );
        assert!(url.contains("/users/alice%252Fx/"), "{url}");
    }
    // A dot-segment subject is one segment too.
    let dots: Value = app
        .get("/v1/me", &app.idp.token(".."))
        .await
        .json()
        .await
        .expect("me");
    let prefix: String = sqlx::query_scalar("SELECT backend_prefix FROM buckets WHERE name = $1")
        .bind(dots["personal_bucket"].as_str().expect("bucket"))
        .fetch_one(&app.pool)
        .await
        .expect("prefix");
    assert_eq!(prefix, "users/%2E%2E/");

    // The database itself refuses overlapping locations, whoever writes them.
    let overlap = sqlx::query(
        "INSERT INTO buckets (name, class, backend_bucket, backend_prefix, classification, created_by)
         VALUES ('sneaky', 'existing', 'storage-broker-data', 'users/alice/sub/', 'unclassified', 'psql')",
    )
    .execute(&app.pool)
    .await
    .expect_err("overlap refused");
    assert!(overlap.to_string().contains("overlaps"), "{overlap}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subject_named_like_a_group_is_no_member_of_it() {
    let app = TestApp::spawn().await;
    let alice = app.idp.token("alice");
    created(
        app.post(
            "/v1/projects",
            &alice,
            &json!({ "slug": "vision", "name": "Vision" }),
        )
        .await,
    )
    .await;
    created(
        app.post(
            "/v1/buckets",
            &alice,
            &json!({ "name": "p-vision", "class": "project", "project": "vision" }),
        )
        .await,
    )
    .await;
    let added = app
        .put(
            "/v1/projects/vision/members/group:%2Fvision",
            &alice,
            &json!({ "role": "editor" }),
        )
        .await;
    assert_eq!(added.status(), 200);
    let member = app.idp.token_with("dana", json!({ "groups": ["/vision"] }));
    let impostor = app.idp.token("group:/vision");
    let sign = |token: String| {
        let app = &app;
        async move {
            app.post(
                "/v1/sign",
                &token,
                &json!({ "bucket": "p-vision", "object": "a", "method": "GET" }),
            )
            .await
        }
    };
    assert_eq!(sign(member.clone()).await.status(), 200);
    expect_problem(sign(impostor.clone()).await, 404, "not_found").await;
    let me: Value = app.get("/v1/me", &impostor).await.json().await.expect("me");
    assert_eq!(me["projects"], json!([]), "{me}");
    // Naming the user explicitly reaches the user, not the group.
    let added = app
        .put(
            &format!(
                "/v1/projects/vision/members/{}",
                encode("user:group:/vision")
            ),
            &alice,
            &json!({ "role": "viewer" }),
        )
        .await;
    let added: Value = added.json().await.expect("json");
    assert_eq!(added["member"], "user:group:/vision");
    assert_eq!(sign(impostor.clone()).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_personal_namespace_cannot_be_squatted() {
    let app = TestApp::spawn().await;
    let mallory = app.idp.token("mallory");
    created(
        app.post(
            "/v1/projects",
            &mallory,
            &json!({ "slug": "trap", "name": "Trap" }),
        )
        .await,
    )
    .await;
    for name in ["u-victim", "u-victim-1a2b3c4d", "u-x"] {
        expect_problem(
            app.post(
                "/v1/buckets",
                &mallory,
                &json!({ "name": name, "class": "project", "project": "trap" }),
            )
            .await,
            400,
            "reserved_bucket_name",
        )
        .await;
    }
    // Names squatted before this rule (written straight into the store) do not break the
    // victim: the next candidate names are the victim's own digests.
    for name in ["u-victim", &format!("u-victim-{}", short_digest("victim"))] {
        sqlx::query(
            "INSERT INTO buckets (name, class, project, backend_bucket, backend_prefix, classification, created_by)
             VALUES ($1, 'project', 'trap', 'storage-broker-data', $2, 'unclassified', 'mallory')",
        )
        .bind(name)
        .bind(format!("squat/{name}/"))
        .execute(&app.pool)
        .await
        .expect("squat");
    }
    let victim = app.idp.token("victim");
    let me = app.get("/v1/me", &victim).await;
    assert_eq!(me.status(), 200);
    let me: Value = me.json().await.expect("me");
    let bucket = me["personal_bucket"].as_str().expect("bucket").to_owned();
    assert!(bucket.starts_with("u-") && bucket != "u-victim", "{bucket}");
    assert_eq!(
        app.post(
            "/v1/sign",
            &victim,
            &json!({ "bucket": bucket, "object": "a", "method": "PUT" })
        )
        .await
        .status(),
        200
    );
}

fn short_digest(s: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes());
    hex::encode(&digest.as_ref()[..4])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_and_dot_segments_are_refused_everywhere() {
    let app = TestApp::spawn().await;
    let bucket = app.personal_bucket("alice").await;
    let alice = app.idp.token("alice");
    let sign = |object: &str| {
        let body = json!({ "bucket": bucket, "object": object, "method": "PUT" });
        let (app, alice) = (&app, &alice);
        async move { app.post("/v1/sign", alice, &body).await }
    };
    for name in [
        "a\u{0}b", "a\u{1b}b", "a\u{7f}", "a\u{85}b", "a/../b", "a/./b", "../x", "x/..", ".",
    ] {
        expect_problem(sign(name).await, 400, "invalid_object_name").await;
        expect_problem(
            app.post(
                "/v1/upload-policy",
                &alice,
                &json!({ "bucket": bucket, "object_prefix": name }),
            )
            .await,
            400,
            "invalid_object_name",
        )
        .await;
        expect_problem(
            app.post(
                &format!("/v1/buckets/{bucket}/grants"),
                &alice,
                &json!({ "prefix": name, "principal": "user:bob", "role": "viewer" }),
            )
            .await,
            400,
            "invalid_prefix",
        )
        .await;
        expect_problem(
            app.get(
                &format!("/v1/buckets/{bucket}/objects?prefix={}", encode(name)),
                &alice,
            )
            .await,
            400,
            "invalid_prefix",
        )
        .await;
    }
    // Metadata values and header-bound fields too.
    expect_problem(
        app.post(
            "/v1/sign",
            &alice,
            &json!({ "bucket": bucket, "object": "a", "method": "PUT", "metadata": { "k": "a\u{0}b" } }),
        )
        .await,
        400,
        "invalid_request",
    )
    .await;
    expect_problem(
        app.post(
            "/v1/sign",
            &alice,
            &json!({ "bucket": bucket, "object": "a", "method": "GET", "response_content_disposition": "a\r\nSet-Cookie: x" }),
        )
        .await,
        400,
        "invalid_request",
    )
    .await;
    // Names that merely contain dots are fine.
    for name in [".hidden", "a/..b/c", "v1.2/x.tar.gz"] {
        assert_eq!(sign(name).await.status(), 200, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_bytes_never_fail_other_users_requests() {
    let app = TestApp::spawn().await;
    let victims: Vec<(String, String)> = futures::future::join_all((0..8).map(|i| {
        let app = &app;
        async move {
            let sub = format!("victim{i}");
            let bucket = app.personal_bucket(&sub).await;
            (app.idp.token(&sub), bucket)
        }
    }))
    .await;
    let attacker = app.idp.token("mallory");
    let attacks = (0..200).map(|_| {
        // A bucket the attacker cannot see: the refusal is audited too.
        let body = json!({ "bucket": victims[0].1, "object": "x\u{0}y", "method": "GET" });
        let (app, attacker) = (&app, &attacker);
        async move { app.post("/v1/sign", attacker, &body).await }
    });
    let honest = (0..200).map(|i| {
        let (token, bucket) = &victims[i % victims.len()];
        let body = json!({ "bucket": bucket, "object": format!("o{i}"), "method": "GET" });
        let app = &app;
        async move { app.post("/v1/sign", token, &body).await }
    });
    let (attacks, honest) = futures::join!(
        futures::future::join_all(attacks),
        futures::future::join_all(honest)
    );
    assert!(
        attacks
            .iter()
            .all(|r| r.status() == 400 || r.status() == 429)
    );
    let failed = honest.iter().filter(|r| r.status() != 200).count();
    assert_eq!(failed, 0, "honest requests failed beside the attack");
}

fn event(reason: &str) -> AuditEvent {
    AuditEvent {
        at: time::OffsetDateTime::now_utc(),
        request_id: "test".into(),
        subject: Some("tester".into()),
        client: None,
        action: "read",
        bucket: Some("b".into()),
        object: Some("o".into()),
        method: Some("GET"),
        expires_at: None,
        decision: "allow",
        reason: reason.to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poisoned_audit_row_fails_its_own_request_only() {
    let app = TestApp::spawn().await;
    let (audit, _writers) =
        AuditLog::start(storage_broker::store::Store::from_pool(app.pool.clone()));
    // Hold the table so that both writers block with a request each, and what comes next
    // queues up to share one INSERT.
    let mut lock = app.pool.begin().await.expect("begin");
    sqlx::query("LOCK TABLE audit_events IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .expect("lock");
    // One request at a time, so that each writer takes one and blocks on the table (two sent
    // together could go to one writer as one batch).
    let blocked = |at_least: i64| {
        let pool = app.pool.clone();
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            loop {
                let waiting: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
                       AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO audit_events%'",
                )
                .fetch_one(&pool)
                .await
                .expect("activity");
                if waiting >= at_least {
                    return;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "{at_least} writer(s) never blocked (seen: {waiting})"
                );
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    };
    let mut first = Vec::new();
    for i in 0..2 {
        let writer = audit.clone();
        first.push(tokio::spawn(async move {
            writer.record(vec![event(&format!("first {i}"))]).await
        }));
        blocked(i + 1).await;
    }
    // Twenty honest requests and a poisoned one (a NUL byte, below any validation), queued
    // while both writers are busy: they will be taken together.
    let queued: Vec<_> = (0..21)
        .map(|i| {
            let audit = audit.clone();
            let reason = if i == 10 {
                "poison \u{0}".to_owned()
            } else {
                format!("honest {i}")
            };
            tokio::spawn(async move { (i, audit.record(vec![event(&reason)]).await) })
        })
        .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while audit.queued() < 21 {
        assert!(
            std::time::Instant::now() < deadline,
            "the requests never queued"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    lock.commit().await.expect("unlock");
    for first in first {
        assert!(first.await.expect("task").is_ok());
    }
    for task in queued {
        let (i, outcome) = task.await.expect("task");
        if i == 10 {
            assert!(outcome.is_err(), "the poisoned row fails");
        } else {
            assert!(outcome.is_ok(), "honest request {i} failed: {outcome:?}");
        }
    }
    let honest: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE reason LIKE 'honest %' OR reason LIKE 'first %'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("count");
    assert_eq!(honest, 22);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_tokens_reveal_nothing_and_bind_to_their_listing() {
    let emulator = Emulator::start().await;
    emulator.create_bucket("storage-broker-data").await;
    let app = TestApp::spawn_with(&[("BROKER_STORAGE_ENDPOINT", emulator.endpoint.as_str())]).await;
    let bucket = app.personal_bucket("alice").await;
    let (alice, bob) = (app.idp.token("alice"), app.idp.token("bob"));
    // 1,000 hidden objects fill the first page; the next name is a secret.
    let mut names: Vec<String> = (0..1_000)
        .map(|i| format!("users/alice/hidden/{i:04}"))
        .collect();
    names.push("users/alice/hidden/zz-merger-plans.pdf".into());
    names.push("users/alice/shared/cat.png".into());
    emulator.store_many("storage-broker-data", names).await;
    created(
        app.post(
            &format!("/v1/buckets/{bucket}/grants"),
            &alice,
            &json!({ "prefix": "shared/", "principal": "user:bob", "role": "viewer" }),
        )
        .await,
    )
    .await;
    let first: Value = app
        .get(&format!("/v1/buckets/{bucket}/objects"), &bob)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(first["objects"], json!([]), "bob reads nothing hidden");
    let token = first["next_page_token"]
        .as_str()
        .expect("a next page")
        .to_owned();
    for secret in ["merger", "hidden", "users", "alice"] {
        assert!(
            !token.contains(secret),
            "the token leaks {secret:?}: {token}"
        );
    }
    // Only for this bucket, prefix and caller.
    let carol = app.idp.token("carol");
    created(
        app.post(
            &format!("/v1/buckets/{bucket}/grants"),
            &alice,
            &json!({ "prefix": "shared/", "principal": "user:carol", "role": "viewer" }),
        )
        .await,
    )
    .await;
    for (path, who) in [
        (
            format!("/v1/buckets/{bucket}/objects?prefix=s&page_token={token}"),
            &bob,
        ),
        (
            format!("/v1/buckets/{bucket}/objects?page_token={token}"),
            &carol,
        ),
        (
            format!("/v1/buckets/{bucket}/objects?page_token={token}x"),
            &bob,
        ),
        (
            format!("/v1/buckets/{bucket}/objects?page_token=users%2Falice%2Fhidden%2F0999"),
            &bob,
        ),
    ] {
        expect_problem(app.get(&path, who).await, 400, "invalid_page_token").await;
    }
    let second: Value = app
        .get(
            &format!("/v1/buckets/{bucket}/objects?page_token={token}"),
            &bob,
        )
        .await
        .json()
        .await
        .expect("json");
    let names: Vec<&str> = second["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .map(|o| o["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["shared/cat.png"]);
    // A prefix manifest still resumes with start_after.
    let resumed = app
        .post(
            "/v1/sign/prefix",
            &alice,
            &json!({ "bucket": bucket, "prefix": "hidden/", "start_after": "hidden/0998" }),
        )
        .await
        .text()
        .await
        .expect("text");
    let objects: Vec<String> = resumed
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("line")["object"]
                .as_str()
                .expect("object")
                .to_owned()
        })
        .collect();
    assert_eq!(objects, ["hidden/0999", "hidden/zz-merger-plans.pdf"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_name_existing_projects_and_die_with_them() {
    let app = TestApp::spawn().await;
    let bucket = app.personal_bucket("alice").await;
    let alice = app.idp.token("alice");
    let grants = format!("/v1/buckets/{bucket}/grants");
    expect_problem(
        app.post(
            &grants,
            &alice,
            &json!({ "prefix": "", "principal": "project:future", "role": "viewer" }),
        )
        .await,
        400,
        "unknown_project",
    )
    .await;
    created(
        app.post(
            "/v1/projects",
            &alice,
            &json!({ "slug": "present", "name": "P" }),
        )
        .await,
    )
    .await;
    created(
        app.post(
            &grants,
            &alice,
            &json!({ "prefix": "", "principal": "project:present", "role": "viewer" }),
        )
        .await,
    )
    .await;
    // A deleted project takes its grants along: a new project of the same slug inherits none.
    sqlx::query("DELETE FROM projects WHERE slug = 'present'")
        .execute(&app.pool)
        .await
        .expect("delete project");
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM grants WHERE principal = 'project:present'")
            .fetch_one(&app.pool)
            .await
            .expect("count");
    assert_eq!(left, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_manifest_never_pairs_a_name_with_another_objects_url() {
    let emulator = Emulator::start().await;
    emulator.create_bucket("storage-broker-data").await;
    let app = TestApp::spawn_with(&[("BROKER_STORAGE_ENDPOINT", emulator.endpoint.as_str())]).await;
    let bucket = app.personal_bucket("alice").await;
    let alice = app.idp.token("alice");
    // Names another tool stored that the broker will not sign: a dot segment, and one too long
    // once the backend prefix is added.
    let long = format!("m/c{}", "x".repeat(1_010));
    emulator
        .store_many(
            "storage-broker-data",
            vec![
                "users/alice/m/a.txt".into(),
                "users/alice/m/b/../z".into(),
                format!("users/alice/{long}"),
                "users/alice/m/d.txt".into(),
                "users/alice/m/e.txt".into(),
            ],
        )
        .await;
    let body = app
        .post(
            "/v1/sign/prefix",
            &alice,
            &json!({ "bucket": bucket, "prefix": "m/" }),
        )
        .await
        .text()
        .await
        .expect("text");
    let lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let mut signed = 0;
    for line in &lines {
        let object = line["object"].as_str().expect("object");
        match line["url"].as_str() {
            Some(url) => {
                signed += 1;
                let path = url::Url::parse(url).expect("url").path().to_owned();
                assert!(
                    path.ends_with(&format!("/users/alice/{object}")),
                    "{object} got the URL of {path}"
                );
            }
            None => assert_eq!(line["error"]["code"], "invalid_object_name", "{line}"),
        }
    }
    assert_eq!(signed, 3, "{lines:?}");
    assert_eq!(lines.len(), 5);
    let audited: Vec<String> = sqlx::query_scalar(
        "SELECT object FROM audit_events WHERE subject = 'alice' AND method = 'GET' AND reason LIKE 'prefix manifest; %' ORDER BY object",
    )
    .fetch_all(&app.pool)
    .await
    .expect("audit");
    assert_eq!(audited, ["m/a.txt", "m/d.txt", "m/e.txt"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_projects_and_bad_prefixes_are_4xx_not_500() {
    let app = TestApp::spawn().await;
    let bucket = app.personal_bucket("alice").await;
    let admin = app.idp.token_with(
        "root",
        json!({ "realm_access": { "roles": ["storage-admin"] } }),
    );
    expect_problem(
        app.put(
            "/v1/projects/nowhere/members/bob",
            &admin,
            &json!({ "role": "viewer" }),
        )
        .await,
        404,
        "project_not_found",
    )
    .await;
    expect_problem(
        app.delete("/v1/projects/nowhere/members/bob", &admin).await,
        404,
        "project_not_found",
    )
    .await;
    expect_problem(
        app.post(
            &format!("/v1/buckets/{bucket}/grants"),
            &app.idp.token("alice"),
            &json!({ "prefix": "a\u{0}", "principal": "user:bob", "role": "viewer" }),
        )
        .await,
        400,
        "invalid_prefix",
    )
    .await;
}
