//! Read-your-writes: a change made through the API is seen by the very next request to the
//! replica that made it, even while the machine is busy and many changes run at once. (Other
//! replicas learn of changes through PostgreSQL notifications: `grants::revocation_reaches_every_replica_within_a_second`.)

use crate::helpers::TestApp;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Two threads spinning until dropped: the 2-core machine fully loaded beside the test, which
/// is when a notification that the writer waits for arrives late.
struct BusyLoops {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl BusyLoops {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..2)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut x = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005) + 1);
                    }
                })
            })
            .collect();
        Self { stop, threads }
    }
}

impl Drop for BusyLoops {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

async fn sign_status(app: &TestApp, token: &str, bucket: &str, object: &str) -> u16 {
    app.post(
        "/v1/sign",
        token,
        &json!({ "bucket": bucket, "object": object, "method": "GET" }),
    )
    .await
    .status()
    .as_u16()
}

/// Worker `i`: grants, memberships and a bucket, each changed and read back at once, `ROUNDS`
/// times; every read must see the change just made. Returns what went wrong, if anything.
async fn worker(app: Arc<TestApp>, i: usize, alice_bucket: String) -> Vec<String> {
    const ROUNDS: usize = 5;
    let alice = app.idp.token("alice");
    let bob_sub = format!("bob-{i}");
    let bob = app.idp.token(&bob_sub);
    let project = format!("proj-{i}");
    let project_bucket = format!("p-proj-{i}");
    let mut wrong = Vec::new();
    let mut expect = |what: String, got: u16, want: u16| {
        if got != want {
            wrong.push(format!("worker {i}: {what}: got {got}, want {want}"));
        }
    };
    let created = app
        .post(
            "/v1/projects",
            &alice,
            &json!({ "slug": project, "name": "p" }),
        )
        .await;
    expect("create project".into(), created.status().as_u16(), 201);

    for round in 0..ROUNDS {
        // A grant, read back at once, then revoked and read back at once.
        let object = format!("t{i}/r{round}");
        // Warm the cache with the answer before the change.
        expect(
            format!("round {round}: before the grant"),
            sign_status(&app, &bob, &alice_bucket, &object).await,
            404,
        );
        let grant: Value = app
            .post(
                &format!("/v1/buckets/{alice_bucket}/grants"),
                &alice,
                &json!({ "prefix": format!("t{i}/"), "principal": format!("user:{bob_sub}"), "role": "viewer" }),
            )
            .await
            .json()
            .await
            .expect("grant json");
        let id = grant["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no grant: {grant}"))
            .to_owned();
        expect(
            format!("round {round}: right after the grant"),
            sign_status(&app, &bob, &alice_bucket, &object).await,
            200,
        );
        let revoked = app
            .delete(&format!("/v1/buckets/{alice_bucket}/grants/{id}"), &alice)
            .await;
        expect(
            format!("round {round}: revoke"),
            revoked.status().as_u16(),
            204,
        );
        expect(
            format!("round {round}: right after the revocation"),
            sign_status(&app, &bob, &alice_bucket, &object).await,
            404,
        );

        // A project bucket, created and read back, deleted and read back.
        let path = format!("/v1/buckets/{project_bucket}");
        expect(
            format!("round {round}: bucket before it exists"),
            app.get(&path, &alice).await.status().as_u16(),
            404,
        );
        let made = app
            .post(
                "/v1/buckets",
                &alice,
                &json!({ "name": project_bucket, "class": "project", "project": project }),
            )
            .await;
        expect(
            format!("round {round}: create bucket"),
            made.status().as_u16(),
            201,
        );
        expect(
            format!("round {round}: bucket right after it was made"),
            app.get(&path, &alice).await.status().as_u16(),
            200,
        );

        // A member added and read back, removed and read back.
        let member = format!("/v1/projects/{project}/members/{bob_sub}");
        expect(
            format!("round {round}: before membership"),
            sign_status(&app, &bob, &project_bucket, "a").await,
            404,
        );
        let added = app.put(&member, &alice, &json!({ "role": "viewer" })).await;
        expect(
            format!("round {round}: add member"),
            added.status().as_u16(),
            200,
        );
        expect(
            format!("round {round}: right after joining"),
            sign_status(&app, &bob, &project_bucket, "a").await,
            200,
        );
        let removed = app.delete(&member, &alice).await;
        expect(
            format!("round {round}: remove member"),
            removed.status().as_u16(),
            204,
        );
        expect(
            format!("round {round}: right after leaving"),
            sign_status(&app, &bob, &project_bucket, "a").await,
            404,
        );

        let deleted = app.delete(&path, &alice).await;
        expect(
            format!("round {round}: delete bucket"),
            deleted.status().as_u16(),
            204,
        );
        expect(
            format!("round {round}: bucket right after it was deleted"),
            app.get(&path, &alice).await.status().as_u16(),
            404,
        );
    }
    wrong
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replica_that_makes_a_change_never_answers_from_before_it() {
    // One owner makes every change: her requests are not to be rate limited.
    let app = Arc::new(TestApp::spawn_with(&[("BROKER_RATE_LIMIT_PER_SECOND", "0")]).await);
    // Caching must be on, or there is nothing to prove.
    app.wait_for_change_feed(&app.address).await;
    // This replica's own notifications come back half a second late, as on a loaded machine:
    // the answers must not depend on them.
    app.state
        .cache
        .delay_feed(std::time::Duration::from_millis(500));
    let alice_bucket = app.personal_bucket("alice").await;
    let _busy = BusyLoops::start();
    let workers: Vec<_> = (0..12)
        .map(|i| tokio::spawn(worker(app.clone(), i, alice_bucket.clone())))
        .collect();
    let mut wrong = Vec::new();
    for worker in workers {
        wrong.extend(worker.await.expect("worker"));
    }
    assert!(
        wrong.is_empty(),
        "{} stale or wrong answers:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
