//! `fetch-manifest` against a broker on a real PostgreSQL and fake-gcs-server: the count it
//! reports after a resume, how it tells malformed, expired and refused tokens apart, and a list
//! that repeats names resumed into the manifest an uninterrupted run writes, and a name the
//! broker will not sign named on stderr without stopping the run.

use crate::helpers::{Emulator, TestApp, fetch_manifest, manifest_objects};
use serde_json::json;
use std::path::{Path, PathBuf};

/// Its stderr, after checking it succeeded.
fn succeeded(out: &std::process::Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    err
}

/// Its stderr, after checking it failed with one line there.
fn failed_in_one_line(out: &std::process::Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "should fail: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    err
}

/// Keeps the first `lines` complete lines of a manifest and adds one cut off mid-way, as an
/// interrupted run leaves it.
fn interrupt_after(path: &Path, lines: usize) {
    let text = std::fs::read_to_string(path).expect("manifest");
    let mut kept: String = text.lines().take(lines).map(|l| format!("{l}\n")).collect();
    kept.push_str("{\"object\":\"job/0");
    std::fs::write(path, kept).expect("truncate");
}

fn strings(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| (*s).to_owned()).collect()
}

/// A fresh directory under the target dir, kept for inspection after a failure.
fn tempdir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("fetch-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A broker on an emulator, alice's personal bucket, and the arguments every run shares.
struct Setup {
    app: TestApp,
    emulator: Emulator,
    dir: PathBuf,
    token_file: PathBuf,
    base: Vec<String>,
}

impl Setup {
    async fn new(objects: usize) -> Self {
        let emulator = Emulator::start().await;
        emulator.create_bucket("storage-broker-data").await;
        let app =
            TestApp::spawn_with(&[("BROKER_STORAGE_ENDPOINT", emulator.endpoint.as_str())]).await;
        let bucket = app.personal_bucket("alice").await;
        for i in 0..objects {
            let name: &'static str =
                Box::leak(format!("users/alice/job/{i:03}.bin").into_boxed_str());
            emulator.put("storage-broker-data", name, b"x").await;
        }
        let dir = tempdir();
        let token_file = dir.join("token");
        std::fs::write(&token_file, app.idp.token("alice")).expect("token");
        let base = strings(&[
            "--broker",
            &app.address,
            "--token-file",
            &token_file.display().to_string(),
            "--bucket",
            &bucket,
        ]);
        Self {
            app,
            emulator,
            dir,
            token_file,
            base,
        }
    }

    fn with(&self, extra: &[&str]) -> Vec<String> {
        [self.base.clone(), strings(extra)].concat()
    }
}

/// The count printed after a resume is what the output file holds, not what the rerun added.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_resume_the_count_is_what_the_manifest_holds() {
    let setup = Setup::new(30).await;
    let out = setup.dir.join("prefix.ndjson");
    let out_arg = out.display().to_string();
    let args = setup.with(&["--prefix", "job/", "--out", &out_arg]);
    let err = succeeded(&fetch_manifest(args.clone()).await);
    assert!(err.contains("30 URLs written"), "{err}");
    interrupt_after(&out, 10);
    let err = succeeded(&fetch_manifest(args).await);
    assert_eq!(manifest_objects(&out).len(), 30);
    assert!(
        err.lines()
            .last()
            .is_some_and(|l| l.starts_with(&format!("30 URLs written to {out_arg}"))),
        "{err}"
    );

    // List mode across several batches of 1,000 (names need not exist to be signed).
    let names: Vec<String> = (0..2_500).map(|i| format!("many/{i:05}.bin")).collect();
    let list = setup.dir.join("names.txt");
    std::fs::write(&list, names.join("\n")).expect("names");
    let out = setup.dir.join("list.ndjson");
    let out_arg = out.display().to_string();
    let args = setup.with(&["--objects", &list.display().to_string(), "--out", &out_arg]);
    let err = succeeded(&fetch_manifest(args.clone()).await);
    assert!(err.contains("2500 URLs written"), "{err}");
    interrupt_after(&out, 999);
    let before = setup.app.audit_count("allow").await;
    let err = succeeded(&fetch_manifest(args).await);
    assert_eq!(manifest_objects(&out), names);
    assert_eq!(setup.app.audit_count("allow").await - before, 2_500 - 999);
    assert!(
        err.lines()
            .last()
            .is_some_and(|l| l.starts_with(&format!("2500 URLs written to {out_arg}"))),
        "{err}"
    );
}

/// A token that is not a JWT, one that has expired and one the broker refuses get different
/// messages; the first two before any request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_expired_and_refused_tokens_are_told_apart() {
    let setup = Setup::new(3).await;
    let unreachable = {
        let mut args = setup.with(&["--prefix", "job/"]);
        args[1] = "http://127.0.0.1:1".to_owned();
        args
    };
    for token in ["nonsense", "a.b.c", "Bearer x.y.z"] {
        std::fs::write(&setup.token_file, token).expect("token");
        for args in [setup.with(&["--prefix", "job/"]), unreachable.clone()] {
            let err = failed_in_one_line(&fetch_manifest(args).await);
            assert!(err.contains("malformed (not a JWT)"), "{token}: {err}");
            assert!(
                !err.contains("expired") && !err.contains("revoked"),
                "{err}"
            );
        }
    }

    let exp = time::OffsetDateTime::now_utc().unix_timestamp() - 600;
    let at = time::OffsetDateTime::from_unix_timestamp(exp)
        .expect("time")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format");
    std::fs::write(
        &setup.token_file,
        setup.app.idp.token_with("alice", json!({ "exp": exp })),
    )
    .expect("token");
    for args in [setup.with(&["--prefix", "job/"]), unreachable.clone()] {
        let err = failed_in_one_line(&fetch_manifest(args).await);
        assert!(err.contains(&format!("expired at {at}")), "{err}");
        assert!(
            !err.contains("malformed") && !err.contains("revoked"),
            "{err}"
        );
    }

    std::fs::write(
        &setup.token_file,
        setup
            .app
            .idp
            .token_with("alice", json!({ "aud": "elsewhere", "azp": "elsewhere" })),
    )
    .expect("token");
    let err = failed_in_one_line(&fetch_manifest(setup.with(&["--prefix", "job/"])).await);
    assert!(
        err.contains("refused the token")
            && err.contains("(revoked, wrong audience or issuer)")
            && err.contains("resume"),
        "{err}"
    );
    assert!(
        !err.contains("malformed") && !err.contains("expired"),
        "{err}"
    );
}

/// A list naming an object twice: whatever point a run is interrupted at, the resumed manifest
/// is the one an uninterrupted run writes (each object once, in the order first listed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_with_repeated_names_resumes_to_the_uninterrupted_manifest() {
    let setup = Setup::new(4).await;
    let list = setup.dir.join("objects.txt");
    std::fs::write(
        &list,
        "job/000.bin\njob/001.bin\njob/000.bin\n\njob/002.bin\njob/001.bin\njob/003.bin\n",
    )
    .expect("list");
    let list_arg = list.display().to_string();
    let full_out = setup.dir.join("full.ndjson");
    let err = succeeded(
        &fetch_manifest(setup.with(&[
            "--objects",
            &list_arg,
            "--out",
            &full_out.display().to_string(),
        ]))
        .await,
    );
    let full = manifest_objects(&full_out);
    assert_eq!(
        full,
        ["job/000.bin", "job/001.bin", "job/002.bin", "job/003.bin"]
    );
    assert!(err.contains("4 URLs written"), "{err}");
    assert!(
        err.contains("2 lines of"),
        "the repeats are mentioned: {err}"
    );

    for cut in 0..full.len() {
        let out = setup.dir.join(format!("cut-{cut}.ndjson"));
        std::fs::copy(&full_out, &out).expect("copy");
        interrupt_after(&out, cut);
        let before = setup.app.audit_count("allow").await;
        let err = succeeded(
            &fetch_manifest(setup.with(&[
                "--objects",
                &list_arg,
                "--out",
                &out.display().to_string(),
            ]))
            .await,
        );
        assert_eq!(manifest_objects(&out), full, "interrupted after {cut}");
        assert_eq!(
            setup.app.audit_count("allow").await - before,
            (full.len() - cut) as i64,
            "only what was missing is signed (interrupted after {cut})"
        );
        assert!(err.contains("4 URLs written"), "{err}");
    }
}

/// An object another tool stored under a name the broker will not sign (a dot segment) gets
/// a line on stderr; every other object under the prefix is still written, and the run fails
/// saying how many got no URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_the_broker_will_not_sign_is_named_and_the_rest_written() {
    let setup = Setup::new(3).await;
    setup
        .emulator
        .store_many(
            "storage-broker-data",
            vec!["users/alice/job/0/../x.bin".into()],
        )
        .await;
    let out = setup.dir.join("prefix.ndjson");
    let run =
        fetch_manifest(setup.with(&["--prefix", "job/", "--out", &out.display().to_string()]))
            .await;
    let err = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(!run.status.success(), "should fail: {err}");
    assert_eq!(
        manifest_objects(&out),
        ["job/000.bin", "job/001.bin", "job/002.bin"]
    );
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(lines[0].starts_with("job/0/../x.bin: not signed"), "{err}");
    assert_eq!(
        lines[1],
        "storage-broker: 1 object got no URL (listed above); 3 URLs were written"
    );
}
