//! Projects, members, project buckets, the grants API, classification, read-only buckets,
//! bucket deletion by release policy, and revocation reaching every replica.

use crate::helpers::{Emulator, TestApp, expect_problem, within_propagation_limit};
use serde_json::{Value, json};

async fn sign_status(
    app: &TestApp,
    base: &str,
    token: &str,
    bucket: &str,
    object: &str,
    method: &str,
) -> u16 {
    let body = json!({ "bucket": bucket, "object": object, "method": method });
    let response = app
        .client
        .post(format!("{base}/v1/sign"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("request");
    response.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projects_members_and_project_buckets() {
    let app = TestApp::spawn().await;
    let (alice, bob, carol) = (
        app.idp.token("alice"),
        app.idp.token("bob"),
        app.idp.token("carol"),
    );

    let created = app
        .post(
            "/v1/projects",
            &alice,
            &json!({ "slug": "vision", "name": "Vision" }),
        )
        .await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.expect("json");
    assert_eq!(created["role"], "owner");
    expect_problem(
        app.post(
            "/v1/projects",
            &bob,
            &json!({ "slug": "vision", "name": "Again" }),
        )
        .await,
        409,
        "project_exists",
    )
    .await;
    expect_problem(
        app.post(
            "/v1/projects",
            &bob,
            &json!({ "slug": "No Way", "name": "x" }),
        )
        .await,
        400,
        "invalid_slug",
    )
    .await;
    expect_problem(app.get("/v1/projects/vision", &bob).await, 404, "not_found").await;

    // Only project owners make project buckets.
    let bucket = app
        .post(
            "/v1/buckets",
            &alice,
            &json!({ "name": "p-vision", "class": "project", "project": "vision" }),
        )
        .await;
    assert_eq!(bucket.status(), 201);
    let bucket: Value = bucket.json().await.expect("json");
    assert_eq!(
        bucket["actions"],
        json!(["read", "write", "delete", "share", "admin"])
    );
    expect_problem(
        app.post(
            "/v1/buckets",
            &alice,
            &json!({ "name": "p-vision", "class": "project", "project": "vision" }),
        )
        .await,
        409,
        "bucket_exists",
    )
    .await;
    expect_problem(
        app.post(
            "/v1/buckets",
            &bob,
            &json!({ "name": "p-other", "class": "project", "project": "vision" }),
        )
        .await,
        404,
        "not_found",
    )
    .await;

    assert_eq!(
        app.put(
            "/v1/projects/vision/members/bob",
            &alice,
            &json!({ "role": "editor" })
        )
        .await
        .status(),
        200
    );
    let group = app
        .put(
            "/v1/projects/vision/members/group%3A%2Fvision%2Fteam",
            &alice,
            &json!({ "role": "viewer" }),
        )
        .await;
    assert_eq!(group.status(), 200);
    expect_problem(
        app.put(
            "/v1/projects/vision/members/dave",
            &alice,
            &json!({ "role": "boss" }),
        )
        .await,
        400,
        "invalid_role",
    )
    .await;
    expect_problem(
        app.put(
            "/v1/projects/vision/members/dave",
            &bob,
            &json!({ "role": "viewer" }),
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    expect_problem(
        app.post(
            "/v1/buckets",
            &bob,
            &json!({ "name": "p-bob", "class": "project", "project": "vision" }),
        )
        .await,
        403,
        "forbidden",
    )
    .await;

    let project: Value = app
        .get("/v1/projects/vision", &bob)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(project["role"], "editor");
    let members: Vec<&str> = project["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m["member"].as_str().expect("m"))
        .collect();
    // Users and groups in key spaces of their own.
    assert_eq!(members, ["group:/vision/team", "user:alice", "user:bob"]);
    let mine: Value = app
        .get("/v1/projects", &bob)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(mine["projects"][0]["slug"], "vision");

    // Members' roles apply to the whole project bucket; a group membership counts.
    assert_eq!(
        sign_status(&app, &app.address, &bob, "p-vision", "data/x.png", "PUT").await,
        200
    );
    let team = app
        .idp
        .token_with("erin", json!({ "groups": ["/vision/team"] }));
    assert_eq!(
        sign_status(&app, &app.address, &team, "p-vision", "data/x.png", "GET").await,
        200
    );
    assert_eq!(
        sign_status(&app, &app.address, &team, "p-vision", "data/x.png", "PUT").await,
        403
    );
    assert_eq!(
        sign_status(&app, &app.address, &carol, "p-vision", "data/x.png", "GET").await,
        404
    );
    let signed: Value = app
        .sign(
            "bob",
            json!({ "bucket": "p-vision", "object": "data/x.png", "method": "GET" }),
        )
        .await
        .json()
        .await
        .expect("json");
    assert!(
        signed["url"]
            .as_str()
            .expect("url")
            .contains("/storage-broker-data/projects/vision/data/x.png?")
    );

    // The last owner stays.
    expect_problem(
        app.delete("/v1/projects/vision/members/alice", &alice)
            .await,
        409,
        "last_owner",
    )
    .await;
    expect_problem(
        app.put(
            "/v1/projects/vision/members/alice",
            &alice,
            &json!({ "role": "viewer" }),
        )
        .await,
        409,
        "last_owner",
    )
    .await;
    expect_problem(
        app.delete("/v1/projects/vision/members/nobody", &alice)
            .await,
        404,
        "member_not_found",
    )
    .await;

    // Deleting a retain-class bucket: editors cannot; the owner can.
    expect_problem(
        app.delete("/v1/buckets/p-vision", &bob).await,
        403,
        "forbidden",
    )
    .await;
    assert_eq!(
        app.delete("/v1/buckets/p-vision", &alice).await.status(),
        204
    );
    expect_problem(
        app.get("/v1/buckets/p-vision", &alice).await,
        404,
        "not_found",
    )
    .await;

    let audited: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE method IN ('CREATE_PROJECT', 'PUT_MEMBER', 'CREATE_BUCKET', 'DELETE_BUCKET')")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert!(audited >= 6, "changes and refusals are audited: {audited}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_member_loses_access_at_once_on_both_replicas() {
    let app = TestApp::spawn().await;
    let replica = app.replica().await;
    let (alice, bob) = (app.idp.token("alice"), app.idp.token("bob"));
    app.post(
        "/v1/projects",
        &alice,
        &json!({ "slug": "vision", "name": "Vision" }),
    )
    .await;
    app.post(
        "/v1/buckets",
        &alice,
        &json!({ "name": "p-vision", "class": "project", "project": "vision" }),
    )
    .await;
    app.put(
        "/v1/projects/vision/members/bob",
        &alice,
        &json!({ "role": "viewer" }),
    )
    .await;
    app.wait_for_change_feed(&app.address).await;
    app.wait_for_change_feed(&replica.address).await;
    for base in [&app.address, &replica.address] {
        assert_eq!(
            sign_status(&app, base, &bob, "p-vision", "a", "GET").await,
            200
        );
    }
    assert_eq!(
        app.delete("/v1/projects/vision/members/bob", &alice)
            .await
            .status(),
        204
    );
    // At once on the replica that made the change, within the limit on the other.
    assert_eq!(
        sign_status(&app, &app.address, &bob, "p-vision", "a", "GET").await,
        404
    );
    within_propagation_limit("the replica refuses bob once he left", || {
        let (app, bob, base) = (&app, &bob, &replica.address);
        async move { sign_status(app, base, bob, "p-vision", "a", "GET").await == 404 }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_api_rules() {
    let app = TestApp::spawn().await;
    let replica = app.replica().await;
    let bucket = app.personal_bucket("alice").await;
    let (alice, bob) = (app.idp.token("alice"), app.idp.token("bob"));
    let grants = format!("/v1/buckets/{bucket}/grants");

    let shared = app
        .post(
            &grants,
            &alice,
            &json!({ "prefix": "shared/", "principal": "user:bob", "role": "viewer" }),
        )
        .await;
    assert_eq!(shared.status(), 201);
    let shared: Value = shared.json().await.expect("json");
    assert_eq!(
        sign_status(&app, &app.address, &bob, &bucket, "shared/cat.png", "GET").await,
        200
    );
    // A grant on shared/ opens neither the object "shared" nor "sharedx/…".
    assert_eq!(
        sign_status(&app, &app.address, &bob, &bucket, "shared", "GET").await,
        403
    );
    assert_eq!(
        sign_status(&app, &app.address, &bob, &bucket, "sharedx/a", "GET").await,
        403
    );

    // A viewer cannot grant editor (nor anything: viewers cannot share).
    let escalate = app
        .post(
            &grants,
            &bob,
            &json!({ "prefix": "shared/", "principal": "user:carol", "role": "editor" }),
        )
        .await;
    expect_problem(escalate, 403, "forbidden").await;
    let reason: String = sqlx::query_scalar(
        "SELECT reason FROM audit_events WHERE method = 'CREATE_GRANT' AND decision = 'deny'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("the refusal is audited");
    assert!(reason.contains("share"), "{reason}");
    expect_problem(app.get(&grants, &bob).await, 403, "forbidden").await;

    // An owner of a prefix shares inside it, and no more.
    app.post(
        &grants,
        &alice,
        &json!({ "prefix": "team/", "principal": "user:bob", "role": "owner" }),
    )
    .await;
    let inside = app
        .post(
            &grants,
            &bob,
            &json!({ "prefix": "team/sub/", "principal": "user:carol", "role": "editor" }),
        )
        .await;
    assert_eq!(inside.status(), 201);
    let outside = app
        .post(
            &grants,
            &bob,
            &json!({ "prefix": "", "principal": "user:carol", "role": "viewer" }),
        )
        .await;
    expect_problem(outside, 403, "forbidden").await;

    // Single objects.
    app.post(
        &grants,
        &alice,
        &json!({ "object": "report.pdf", "principal": "user:dave", "role": "viewer" }),
    )
    .await;
    let dave = app.idp.token("dave");
    assert_eq!(
        sign_status(&app, &app.address, &dave, &bucket, "report.pdf", "GET").await,
        200
    );
    assert_eq!(
        sign_status(&app, &app.address, &dave, &bucket, "report.pdf.bak", "GET").await,
        403
    );

    // Bad grants.
    for (body, code) in [
        (
            json!({ "prefix": "x/", "principal": "everyone", "role": "viewer" }),
            "invalid_principal",
        ),
        (
            json!({ "prefix": "x/", "principal": "user:z", "role": "god" }),
            "invalid_role",
        ),
        (
            json!({ "prefix": "x/", "object": "y", "principal": "user:z", "role": "viewer" }),
            "invalid_request",
        ),
        (
            json!({ "prefix": "x/", "principal": "user:z", "role": "viewer", "expires_at": "2001-01-01T00:00:00Z" }),
            "invalid_expiry",
        ),
        (
            json!({ "prefix": "a\nb", "principal": "user:z", "role": "viewer" }),
            "invalid_prefix",
        ),
    ] {
        expect_problem(app.post(&grants, &alice, &body).await, 400, code).await;
    }

    // An expiring grant stops working when it expires (also when a decision was cached).
    let expiry = time::OffsetDateTime::now_utc() + time::Duration::seconds(4);
    let soon = expiry
        .format(&time::format_description::well_known::Rfc3339)
        .expect("time");
    app.post(&grants, &alice, &json!({ "prefix": "tmp/", "principal": "user:erin", "role": "viewer", "expires_at": soon })).await;
    let erin = app.idp.token("erin");
    let before = sign_status(&app, &app.address, &erin, &bucket, "tmp/a", "GET").await;
    if time::OffsetDateTime::now_utc() < expiry {
        assert_eq!(before, 200, "the grant holds until it expires");
    }
    let left = expiry - time::OffsetDateTime::now_utc() + time::Duration::milliseconds(50);
    tokio::time::sleep(left.try_into().unwrap_or_default()).await;
    assert_eq!(
        sign_status(&app, &app.address, &erin, &bucket, "tmp/a", "GET").await,
        404,
        "the grant expired"
    );

    // Listing, then revoking through the API: both replicas stop honouring it.
    let listed: Value = app.get(&grants, &alice).await.json().await.expect("json");
    assert!(listed["grants"].as_array().expect("grants").len() >= 5);
    assert_eq!(
        sign_status(
            &app,
            &replica.address,
            &bob,
            &bucket,
            "shared/cat.png",
            "GET"
        )
        .await,
        200
    );
    let id = shared["id"].as_str().expect("id");
    assert_eq!(
        app.delete(&format!("{grants}/{id}"), &alice).await.status(),
        204
    );
    expect_problem(
        app.delete(&format!("{grants}/{id}"), &alice).await,
        404,
        "grant_not_found",
    )
    .await;
    assert_ne!(
        sign_status(&app, &app.address, &bob, &bucket, "shared/cat.png", "GET").await,
        200,
        "the replica that revoked it honours it no more"
    );
    within_propagation_limit(
        "the other replica stops honouring the revoked grant",
        || {
            let (app, bob, base, bucket) = (&app, &bob, &replica.address, &bucket);
            async move { sign_status(app, base, bob, bucket, "shared/cat.png", "GET").await != 200 }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classification_read_only_and_brownfield() {
    // Registration checks that storage has the bucket: an emulator holds the existing ones.
    let emulator = Emulator::start().await;
    for bucket in ["legacy-archive", "legacy-ro", "legacy-x"] {
        emulator.create_bucket(bucket).await;
    }
    let app = TestApp::spawn_with(&[
        ("BROKER_CLEARANCE_CLAIM", "clearance"),
        ("BROKER_STORAGE_ENDPOINT", &emulator.endpoint),
    ])
    .await;
    // A storage admin cleared for protected-b.
    let admin = app.idp.token_with(
        "root",
        json!({ "realm_access": { "roles": ["storage-admin"] }, "clearance": "protected-b" }),
    );
    let alice = app.idp.token("alice");
    let body = json!({ "name": "pb-archive", "class": "existing-protected-b", "backend_bucket": "legacy-archive", "backend_prefix": "data/" });
    expect_problem(
        app.post("/v1/buckets", &alice, &body).await,
        403,
        "forbidden",
    )
    .await;
    assert_eq!(app.post("/v1/buckets", &admin, &body).await.status(), 201);
    let overlapping = json!({ "name": "pb-other", "class": "existing", "backend_bucket": "legacy-archive", "backend_prefix": "data/sub/" });
    expect_problem(
        app.post("/v1/buckets", &admin, &overlapping).await,
        409,
        "prefix_in_use",
    )
    .await;
    let deleting = json!({ "name": "pb-x", "class": "personal", "backend_bucket": "legacy-x" });
    expect_problem(
        app.post("/v1/buckets", &admin, &deleting).await,
        400,
        "class_must_retain",
    )
    .await;
    let grant = json!({ "prefix": "", "principal": "authenticated", "role": "viewer" });
    assert_eq!(
        app.post("/v1/buckets/pb-archive/grants", &admin, &grant)
            .await
            .status(),
        201
    );

    // protected-b is invisible without the clearance, from a realm role or the claim.
    assert_eq!(
        sign_status(&app, &app.address, &alice, "pb-archive", "a", "GET").await,
        404
    );
    expect_problem(
        app.get("/v1/buckets/pb-archive", &alice).await,
        404,
        "not_found",
    )
    .await;
    let by_role = app.idp.token_with(
        "bob",
        json!({ "realm_access": { "roles": ["protected-b"] } }),
    );
    let by_claim = app
        .idp
        .token_with("carol", json!({ "clearance": "protected-b" }));
    let by_lower_claim = app
        .idp
        .token_with("dave", json!({ "clearance": "protected-a" }));
    assert_eq!(
        sign_status(&app, &app.address, &by_role, "pb-archive", "a", "GET").await,
        200
    );
    assert_eq!(
        sign_status(&app, &app.address, &by_claim, "pb-archive", "a", "GET").await,
        200
    );
    assert_eq!(
        sign_status(
            &app,
            &app.address,
            &by_lower_claim,
            "pb-archive",
            "a",
            "GET"
        )
        .await,
        404
    );
    let signed: Value = app
        .post(
            "/v1/sign",
            &by_claim,
            &json!({ "bucket": "pb-archive", "object": "a", "method": "GET" }),
        )
        .await
        .json()
        .await
        .expect("json");
    assert!(
        signed["url"]
            .as_str()
            .expect("url")
            .contains("/legacy-archive/data/a?")
    );
    let why: String = sqlx::query_scalar("SELECT reason FROM audit_events WHERE subject = 'alice' AND decision = 'not_found' LIMIT 1")
        .fetch_one(&app.pool)
        .await
        .expect("audited");
    assert!(why.contains("clearance"), "the audit says why: {why}");

    // Read-only refuses write and delete whatever the grants.
    let ro = json!({ "name": "ro-data", "class": "existing", "backend_bucket": "legacy-ro", "read_only": true });
    assert_eq!(app.post("/v1/buckets", &admin, &ro).await.status(), 201);
    let editor = json!({ "prefix": "", "principal": "user:alice", "role": "editor" });
    assert_eq!(
        app.post("/v1/buckets/ro-data/grants", &admin, &editor)
            .await
            .status(),
        403,
        "not even admins grant writes on a read-only bucket"
    );
    assert_eq!(
        app.post(
            "/v1/buckets/ro-data/grants",
            &admin,
            &json!({ "prefix": "", "principal": "user:alice", "role": "viewer" })
        )
        .await
        .status(),
        201
    );
    assert_eq!(
        sign_status(&app, &app.address, &alice, "ro-data", "a", "GET").await,
        200
    );
    assert_eq!(
        sign_status(&app, &app.address, &alice, "ro-data", "a", "PUT").await,
        403
    );
    assert_eq!(
        sign_status(&app, &app.address, &admin, "ro-data", "a", "DELETE").await,
        403
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_delete_class_bucket_deletes_its_objects_in_storage() {
    let emulator = Emulator::start().await;
    emulator.create_bucket("storage-broker-data").await;
    let app = TestApp::spawn_with(&[("BROKER_STORAGE_ENDPOINT", emulator.endpoint.as_str())]).await;
    let bucket = app.personal_bucket("alice").await;
    app.personal_bucket("bob").await;
    for name in [
        "users/alice/a.txt",
        "users/alice/deep/b.txt",
        "users/alice2/keep.txt",
        "users/bob/c.txt",
    ] {
        emulator.put("storage-broker-data", name, b"bytes").await;
    }
    // Retain classes keep their objects; personal buckets are of a delete class.
    expect_problem(
        app.delete(&format!("/v1/buckets/{bucket}"), &app.idp.token("bob"))
            .await,
        404,
        "not_found",
    )
    .await;
    assert_eq!(
        app.delete(&format!("/v1/buckets/{bucket}"), &app.idp.token("alice"))
            .await
            .status(),
        204
    );
    assert_eq!(
        emulator.names("storage-broker-data").await,
        ["users/alice2/keep.txt", "users/bob/c.txt"]
    );
    let reason: String = sqlx::query_scalar(
        "SELECT reason FROM audit_events WHERE method = 'DELETE_BUCKET' AND decision = 'allow'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("audited");
    assert!(reason.contains("2 objects deleted"), "{reason}");
    // Alice's next request makes her a new, empty personal bucket.
    assert_eq!(app.personal_bucket("alice").await, "u-alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classification_binds_storage_admins_too() {
    let emulator = Emulator::start().await;
    emulator.create_bucket("secret-archive").await;
    let app = TestApp::spawn_with(&[
        ("BROKER_CLEARANCE_CLAIM", "clearance"),
        ("BROKER_STORAGE_ENDPOINT", &emulator.endpoint),
    ])
    .await;
    let cleared = app.idp.token_with(
        "root",
        json!({ "realm_access": { "roles": ["storage-admin"] }, "clearance": "protected-b" }),
    );
    let uncleared = app.idp.token_with(
        "ops",
        json!({ "realm_access": { "roles": ["storage-admin"] } }),
    );
    let body = json!({ "name": "pb-secret", "class": "existing-protected-b", "backend_bucket": "secret-archive" });
    // An admin without the clearance cannot make one...
    expect_problem(
        app.post("/v1/buckets", &uncleared, &body).await,
        403,
        "forbidden",
    )
    .await;
    // ...nor see, sign for, share or delete one a cleared admin made: 404, as for anyone.
    assert_eq!(app.post("/v1/buckets", &cleared, &body).await.status(), 201);
    expect_problem(
        app.get("/v1/buckets/pb-secret", &uncleared).await,
        404,
        "not_found",
    )
    .await;
    let listed: Value = app
        .get("/v1/buckets", &uncleared)
        .await
        .json()
        .await
        .expect("json");
    assert!(
        !listed.to_string().contains("pb-secret"),
        "not listed: {listed}"
    );
    assert_eq!(
        sign_status(&app, &app.address, &uncleared, "pb-secret", "a", "GET").await,
        404
    );
    expect_problem(
        app.post(
            "/v1/buckets/pb-secret/grants",
            &uncleared,
            &json!({ "prefix": "", "principal": "user:ops", "role": "owner" }),
        )
        .await,
        404,
        "not_found",
    )
    .await;
    expect_problem(
        app.delete("/v1/buckets/pb-secret", &uncleared).await,
        404,
        "not_found",
    )
    .await;
    // The cleared admin manages it.
    assert_eq!(
        sign_status(&app, &app.address, &cleared, "pb-secret", "a", "GET").await,
        200
    );
    assert_eq!(
        app.get("/v1/buckets/pb-secret", &cleared).await.status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_checks_storage_and_a_vanished_bucket_is_a_clear_problem() {
    let emulator = Emulator::start().await;
    emulator.create_bucket("short-lived").await;
    let app = TestApp::spawn_with(&[("BROKER_STORAGE_ENDPOINT", &emulator.endpoint)]).await;
    let admin = app.idp.token_with(
        "root",
        json!({ "realm_access": { "roles": ["storage-admin"] } }),
    );
    // A typo in the backend bucket is refused at registration, not discovered later.
    expect_problem(
        app.post(
            "/v1/buckets",
            &admin,
            &json!({ "name": "typo", "class": "existing", "backend_bucket": "no-such-bucket" }),
        )
        .await,
        400,
        "backend_bucket_not_found",
    )
    .await;
    assert_eq!(
        app.post(
            "/v1/buckets",
            &admin,
            &json!({ "name": "legacy", "class": "existing", "backend_bucket": "short-lived" }),
        )
        .await
        .status(),
        201
    );
    assert_eq!(
        app.get("/v1/buckets/legacy/objects", &admin).await.status(),
        200
    );
    // Storage loses the bucket: listing says so, once, instead of "retry shortly".
    let removed = reqwest::Client::new()
        .delete(format!("{}/storage/v1/b/short-lived", emulator.endpoint))
        .send()
        .await
        .expect("delete bucket");
    assert!(removed.status().is_success(), "{}", removed.status());
    let problem = expect_problem(
        app.get("/v1/buckets/legacy/objects", &admin).await,
        502,
        "storage_bucket_missing",
    )
    .await;
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("storage admin")),
        "{problem}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn me_lists_a_project_once_with_the_strongest_role() {
    let app = TestApp::spawn().await;
    let alice = app.idp.token("alice");
    assert_eq!(
        app.post(
            "/v1/projects",
            &alice,
            &json!({ "slug": "vision", "name": "Vision" })
        )
        .await
        .status(),
        201
    );
    // bob is a viewer himself and an editor through his group.
    for (member, role) in [("bob", "viewer"), ("group:%2Fvision", "editor")] {
        let response = app
            .put(
                &format!("/v1/projects/vision/members/{member}"),
                &alice,
                &json!({ "role": role }),
            )
            .await;
        assert!(
            response.status().is_success(),
            "{member}: {}",
            response.status()
        );
    }
    let bob = app.idp.token_with("bob", json!({ "groups": ["/vision"] }));
    let me: Value = app.get("/v1/me", &bob).await.json().await.expect("json");
    assert_eq!(
        me["projects"],
        json!([{ "slug": "vision", "role": "editor" }]),
        "{me}"
    );
}
