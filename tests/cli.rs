//! The offline signer as operators and outside checks run it: flags as DESIGN.md gives them,
//! the URL alone (or the policy JSON) on stdout, one line on stderr and a non-zero exit otherwise.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn broker(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_storage-broker"))
        .args(args)
        .output()
        .expect("run storage-broker")
}

fn tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")
}

fn known_answers() -> Vec<Value> {
    let text =
        std::fs::read_to_string(tests_dir().join("known_answers/cases.json")).expect("cases.json");
    serde_json::from_str(&text).expect("JSON")
}

fn key_file(case: &Value) -> String {
    let name = if case["key"] == "hmac" {
        "test-hmac-key.json"
    } else {
        "test-service-account.json"
    };
    tests_dir()
        .join("fixtures")
        .join(name)
        .display()
        .to_string()
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("UTF-8")
}

/// Runs the command and checks it failed with exactly one line on stderr, which it returns.
fn one_line_error(args: &[&str]) -> String {
    let out = broker(args);
    assert!(!out.status.success(), "{args:?} should fail");
    assert!(out.stdout.is_empty(), "nothing on stdout when failing");
    let err = String::from_utf8(out.stderr).expect("UTF-8");
    assert_eq!(
        err.matches('\n').count(),
        1,
        "one line on stderr, got {err:?}"
    );
    assert!(err.starts_with("storage-broker: "), "{err:?}");
    err
}

/// Each known-answer URL (from python google-cloud-storage, or the GCS HMAC scheme) comes out of
/// `sign-url` byte for byte, with flags written as `--name=value`.
#[test]
fn sign_url_reproduces_the_known_answers() {
    let cases: Vec<Value> = known_answers()
        .into_iter()
        .filter(|c| c["kind"] == "url")
        .collect();
    assert!(cases.len() >= 10);
    for case in cases {
        let input = &case["input"];
        let mut args = vec![
            "sign-url".to_owned(),
            format!("--credentials={}", key_file(&case)),
            format!("--method={}", input["method"].as_str().expect("method")),
            format!("--bucket={}", input["bucket"].as_str().expect("bucket")),
            format!("--expires={}", input["expires"]),
            format!("--at={}", input["at"].as_str().expect("at")),
        ];
        if let Some(object) = input["object"].as_str() {
            args.push(format!("--object={object}"));
        }
        for pair in input["headers"].as_array().into_iter().flatten() {
            args.push(format!(
                "--header={}: {}",
                pair[0].as_str().expect("name"),
                pair[1].as_str().expect("value")
            ));
        }
        for pair in input["query"].as_array().into_iter().flatten() {
            args.extend([
                "--query".to_owned(),
                format!(
                    "{}={}",
                    pair[0].as_str().expect("n"),
                    pair[1].as_str().expect("v")
                ),
            ]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let url = stdout(&broker(&args));
        assert_eq!(
            url.trim_end_matches('\n'),
            case["expected"]["url"].as_str().expect("url"),
            "{}",
            case["name"]
        );
    }
}

#[test]
fn sign_post_policy_prints_url_and_fields() {
    let case = known_answers()
        .into_iter()
        .find(|c| c["kind"] == "post_policy")
        .expect("a POST case");
    let input = &case["input"];
    let key = key_file(&case);
    let mut args = vec![
        "sign-post-policy",
        "--credentials",
        &key,
        "--bucket",
        input["bucket"].as_str().expect("bucket"),
        "--object",
        input["object"].as_str().expect("object"),
        "--expires",
        "900",
        "--at",
        input["at"].as_str().expect("at"),
        "--starts-with",
        "content-type=image/",
        "--content-length-range",
        "1,5242880",
    ];
    let fields: Vec<String> = input["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|p| {
            format!(
                "{}={}",
                p[0].as_str().expect("n"),
                p[1].as_str().expect("v")
            )
        })
        .collect();
    for field in &fields {
        args.extend(["--field", field]);
    }
    let out: Value = serde_json::from_str(&stdout(&broker(&args))).expect("JSON on stdout");
    assert_eq!(out["url"], case["expected"]["url"]);
    let expected: serde_json::Map<String, Value> = case["expected"]["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|p| (p[0].as_str().expect("n").to_owned(), p[1].clone()))
        .collect();
    assert_eq!(out["fields"], Value::Object(expected));
}

#[test]
fn bad_input_is_one_line_and_non_zero() {
    let key = tests_dir()
        .join("fixtures/test-service-account.json")
        .display()
        .to_string();
    let base = ["sign-url", "--credentials", &key, "--bucket", "my-bucket"];
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter().chain(extra).map(|s| (*s).to_owned()).collect()
    };
    let cases: [(Vec<String>, &str); 9] = [
        (
            with(&["--method", "PATCH", "--expires=60"]),
            "unknown method",
        ),
        (
            with(&["--method", "GET", "--expires=60", "--object", ".."]),
            "invalid object name",
        ),
        (
            with(&["--method", "GET", "--expires=60", "--object", "a\nb"]),
            "line feed",
        ),
        (with(&["--method", "GET", "--expires=0"]), "604800"),
        (
            with(&["--method", "GET", "--expires=60", "--header", "no-colon"]),
            "Name: value",
        ),
        (
            with(&[
                "--method",
                "GET",
                "--expires=60",
                "--url-style",
                "bucket-bound",
            ]),
            "--bucket-bound-hostname",
        ),
        (
            with(&[
                "--method",
                "GET",
                "--expires=60",
                "--query",
                "X-Goog-Signature=x",
            ]),
            "set by the signer",
        ),
        (
            with(&["--method", "GET", "--expires=60", "--at", "yesterday"]),
            "RFC 3339",
        ),
        (
            with(&["--method", "GET", "--expires=60", "--endpoint", "ftp://x"]),
            "invalid endpoint",
        ),
    ];
    for (args, needle) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = one_line_error(&args);
        assert!(
            err.contains(needle),
            "{args:?}: {err:?} should mention {needle:?}"
        );
    }
    let err = one_line_error(&[
        "sign-url",
        "--credentials",
        "/no/such/key.json",
        "--method",
        "GET",
        "--bucket",
        "my-bucket",
        "--expires",
        "60",
    ]);
    assert!(err.contains("cannot read key file"), "{err}");
    let err = one_line_error(&[
        "sign-url",
        "--credentials",
        &key,
        "--method",
        "GET",
        "--bucket",
        "Bad_Bucket",
        "--expires",
        "60",
    ]);
    assert!(err.contains("invalid bucket name"), "{err}");
    let err = one_line_error(&[
        "sign-post-policy",
        "--credentials",
        &key,
        "--bucket",
        "my-bucket",
        "--object",
        "o",
        "--expires",
        "60",
        "--content-length-range",
        "10,1",
    ]);
    assert!(err.contains("MIN,MAX"), "{err}");
}

#[test]
fn help_exits_zero() {
    let out = broker(&["sign-url", "--help"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--bucket-bound-hostname"));
}

/// Runs the command with `env` set (and the settings that would change its output removed).
fn broker_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_storage-broker"));
    for name in ["NO_COLOR", "RUST_LOG", "BROKER_LOG", "BROKER_LOG_FORMAT"] {
        command.env_remove(name);
    }
    command
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run storage-broker")
}

/// A usage error: exit status 2, one line on stderr naming what is missing.
#[test]
fn usage_errors_name_what_is_missing() {
    let key = tests_dir()
        .join("fixtures/test-service-account.json")
        .display()
        .to_string();
    let cases: [(Vec<&str>, &[&str]); 5] = [
        (
            vec![
                "sign-url",
                "--credentials",
                &key,
                "--method",
                "GET",
                "--bucket",
                "b",
            ],
            &["--expires <SECONDS>"],
        ),
        (
            vec![
                "sign-post-policy",
                "--credentials",
                &key,
                "--bucket",
                "b",
                "--expires",
                "60",
            ],
            &["--object <O>"],
        ),
        (
            vec!["sign-url"],
            &[
                "--credentials <FILE>",
                "--method <METHOD>",
                "--bucket <B>",
                "--expires <SECONDS>",
            ],
        ),
        (
            vec![
                "fetch-manifest",
                "--broker",
                "http://127.0.0.1:1",
                "--token-file",
                "t",
                "--bucket",
                "b",
            ],
            &["--prefix <P>", "--objects <FILE>"],
        ),
        (vec!["policy"], &["requires a subcommand", "check"]),
    ];
    for (args, needles) in cases {
        let out = broker(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout");
        let err = String::from_utf8(out.stderr).expect("UTF-8");
        assert_eq!(err.lines().count(), 1, "{args:?}: one line, got {err:?}");
        assert!(err.starts_with("storage-broker: "), "{err:?}");
        for needle in needles {
            assert!(
                err.contains(needle),
                "{args:?}: {err:?} should name {needle:?}"
            );
        }
        assert!(!err.contains("Usage:"), "{err:?}");
    }
}

/// `migrate` against a database that refuses connections says so, at once, in one line.
#[test]
fn migrate_reports_why_the_database_cannot_be_reached() {
    let started = std::time::Instant::now();
    let out = broker_env(
        &["migrate"],
        &[("DATABASE_URL", "postgres://x@127.0.0.1:1/db")],
    );
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).expect("UTF-8");
    assert_eq!(err.lines().count(), 1, "one line, got {err:?}");
    assert!(err.contains("DATABASE_URL"), "{err:?}");
    assert!(
        err.to_lowercase().contains("connection refused"),
        "{err:?} should give the cause"
    );
    assert!(!err.contains("timed out"), "{err:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "a refused connection is reported without waiting for a pool timeout"
    );
}

/// `migrate` applies the migrations to a fresh database, and again (nothing to do) without error.
#[test]
fn migrate_applies_the_migrations() {
    let admin_url = std::env::var("DATABASE_URL").expect(
        "DATABASE_URL is not set: run the tests with scripts/test, which starts PostgreSQL",
    );
    let name = format!("sb_cli_{}", uuid::Uuid::new_v4().simple());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let admin = |sql: String| {
        runtime.block_on(async {
            let pool = sqlx::PgPool::connect(&admin_url).await.expect("connect");
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&pool)
                .await
                .expect("admin statement");
            pool.close().await;
        })
    };
    admin(format!("CREATE DATABASE {name}"));
    let base = admin_url
        .rsplit_once('/')
        .map_or(admin_url.as_str(), |(base, _)| base);
    let url = format!("{base}/{name}");
    let first = broker_env(&["migrate"], &[("DATABASE_URL", &url)]);
    let again = broker_env(&["migrate"], &[("DATABASE_URL", &url)]);
    admin(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    for out in [first, again] {
        assert_eq!(stdout(&out), "migrations applied\n");
    }
}

/// Text logs written to a pipe or file carry no colour codes.
#[test]
fn text_logs_to_a_pipe_have_no_colour() {
    let key = tests_dir()
        .join("fixtures/test-service-account.json")
        .display()
        .to_string();
    let policies = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("policies")
        .display()
        .to_string();
    // It logs the signer, then fails to migrate an unreachable database and exits.
    let out = broker_env(
        &["serve"],
        &[
            ("BROKER_LISTEN", "127.0.0.1:0"),
            ("DATABASE_URL", "postgres://x@127.0.0.1:1/db"),
            ("BROKER_MIGRATE", "true"),
            ("BROKER_OIDC_ISSUER", "http://127.0.0.1:1/realms/none"),
            ("BROKER_OIDC_AUDIENCE", "storage-broker"),
            ("BROKER_SIGNING_CREDENTIALS", &key),
            ("BROKER_POLICIES_DIR", &policies),
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).expect("UTF-8");
    assert!(err.contains("INFO") && err.contains("signing"), "{err:?}");
    assert!(!err.contains("\x1b["), "colour codes in {err:?}");
    // And the start names why the database cannot be reached, not a pool timing out.
    assert!(
        err.contains("DATABASE_URL") && err.to_lowercase().contains("connection refused"),
        "{err:?}"
    );
}

#[test]
fn the_kustomize_copy_of_the_policies_matches_the_source() {
    // kustomize/base reads its own copy (so that `kubectl apply -k` needs no flags); policies/
    // is where they are edited. They may never differ.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in ["roles.toml", "classes.toml"] {
        let source = std::fs::read(root.join("policies").join(file)).expect("policies/");
        let copy =
            std::fs::read(root.join("kustomize/base/policies").join(file)).expect("kustomize copy");
        assert!(
            source == copy,
            "kustomize/base/policies/{file} differs from policies/{file}: run scripts/sync-policies"
        );
    }
}

#[test]
fn signing_is_a_pure_leaf() {
    // DESIGN.md: signing is pure, synchronous, no I/O; cloud credentials and the signing
    // service are composed above it and never imported by it.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/signing");
    for entry in std::fs::read_dir(&dir).expect("src/signing") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("source");
        for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for banned in ["crate::", "tokio", "reqwest", "async fn", "sqlx"] {
                let allowed = banned == "crate::"
                    && line
                        .split("crate::")
                        .skip(1)
                        .all(|rest| rest.starts_with("signing"));
                assert!(
                    !line.contains(banned) || allowed,
                    "{}: {line:?} ({banned} in signing)",
                    path.display()
                );
            }
        }
    }
}

fn backend_answers(kind: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(tests_dir().join("known_answers/backends.json"))
        .expect("backends.json");
    let cases: Vec<Value> = serde_json::from_str(&text).expect("JSON");
    cases.into_iter().filter(|c| c["kind"] == kind).collect()
}

fn credentials_file(json: &Value) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join(format!("creds-{}.json", uuid::Uuid::new_v4().simple()));
    std::fs::write(&path, json.to_string()).expect("credentials file");
    path
}

/// `sign-url --protocol s3` prints botocore's presigned URL byte for byte, for every case of
/// `known_answers/backends.json` (flags as DESIGN.md gives them).
#[test]
fn sign_url_with_protocol_s3_reproduces_botocore() {
    let cases = backend_answers("s3_url");
    assert!(cases.len() >= 40);
    for case in cases {
        let input = &case["input"];
        let creds = credentials_file(&input["credentials"]);
        let text = |name: &str| input[name].as_str().expect(name).to_owned();
        let mut args = vec![
            "sign-url".to_owned(),
            "--protocol=s3".to_owned(),
            format!("--credentials={}", creds.display()),
            format!("--region={}", text("region")),
            format!("--endpoint={}", text("endpoint")),
            format!("--url-style={}", text("style")),
            format!("--method={}", text("method")),
            format!("--bucket={}", text("bucket")),
            format!("--expires={}", input["expires"]),
            format!("--at={}", text("at")),
        ];
        if let Some(object) = input["object"].as_str() {
            args.push(format!("--object={object}"));
        }
        for pair in input["headers"].as_array().into_iter().flatten() {
            args.push(format!(
                "--header={}: {}",
                pair[0].as_str().expect("n"),
                pair[1].as_str().expect("v")
            ));
        }
        for pair in input["query"].as_array().into_iter().flatten() {
            args.push(format!(
                "--query={}={}",
                pair[0].as_str().expect("n"),
                pair[1].as_str().expect("v")
            ));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let url = stdout(&broker(&args));
        assert_eq!(
            url.trim_end_matches('\n'),
            case["expected"]["url"].as_str().expect("url"),
            "{}",
            case["name"]
        );
    }
}

/// `sign-url --protocol azure` prints azure-storage-blob's service SAS URL byte for byte: the
/// method gives the permissions, `--at` + `--expires` the expiry, `--start` the start, the
/// endpoint's scheme the protocols.
#[test]
fn sign_url_with_protocol_azure_reproduces_azure_storage_blob() {
    let mut checked = 0;
    for case in backend_answers("azure_sas") {
        let input = &case["input"];
        let method = match input["permission"].as_str() {
            Some("r") => "GET",
            Some("cw") => "PUT",
            Some("d") => "DELETE",
            _ => continue,
        };
        let endpoint = input["endpoint"].as_str().expect("endpoint");
        let protocol = if endpoint.starts_with("https:") {
            "https"
        } else {
            "https,http"
        };
        if !input["user_delegation_key"].is_null() || input["protocol"].as_str() != Some(protocol) {
            continue;
        }
        let expiry = time::OffsetDateTime::parse(
            input["expiry"].as_str().expect("expiry"),
            &time::format_description::well_known::Rfc3339,
        )
        .expect("expiry");
        let at = expiry - time::Duration::seconds(900);
        let at = at
            .format(&time::format_description::well_known::Rfc3339)
            .expect("at");
        let creds = credentials_file(&serde_json::json!({
            "account": input["account"], "key": input["key"],
        }));
        let mut args = vec![
            "sign-url".to_owned(),
            "--protocol=azure".to_owned(),
            format!("--credentials={}", creds.display()),
            format!("--endpoint={endpoint}"),
            format!("--method={method}"),
            format!(
                "--bucket={}",
                input["container"].as_str().expect("container")
            ),
            format!("--object={}", input["blob"].as_str().expect("blob")),
            "--expires=900".to_owned(),
            format!("--at={at}"),
        ];
        if let Some(start) = input["start"].as_str() {
            args.push(format!("--start={start}"));
        }
        if let Some(v) = input["content_disposition"].as_str() {
            args.push(format!("--response-content-disposition={v}"));
        }
        if let Some(v) = input["content_type"].as_str() {
            args.push(format!("--response-content-type={v}"));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let url = stdout(&broker(&args));
        assert_eq!(
            url.trim_end_matches('\n'),
            case["expected"]["url"].as_str().expect("url"),
            "{}",
            case["name"]
        );
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} cases apply");
}

/// `sign-post-policy --protocol s3` prints botocore's form: the same URL and fields.
#[test]
fn sign_post_policy_with_protocol_s3_reproduces_botocore() {
    let case = backend_answers("s3_post_policy")
        .into_iter()
        .find(|c| c["name"] == "exact_key_path_style")
        .expect("case");
    let input = &case["input"];
    let creds = credentials_file(&input["credentials"]);
    let text = |name: &str| input[name].as_str().expect(name).to_owned();
    let args = [
        "sign-post-policy".to_owned(),
        "--protocol=s3".to_owned(),
        format!("--credentials={}", creds.display()),
        format!("--region={}", text("region")),
        format!("--endpoint={}", text("endpoint")),
        format!("--bucket={}", text("bucket")),
        format!("--object={}", text("key")),
        format!("--expires={}", input["expires"]),
        format!("--at={}", text("at")),
        "--field=content-type=image/png".to_owned(),
        "--content-length-range=1,10485760".to_owned(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out: Value = serde_json::from_str(&stdout(&broker(&args))).expect("JSON");
    assert_eq!(out["url"], case["expected"]["url"]);
    for pair in case["expected"]["fields"].as_array().expect("fields") {
        let name = pair[0].as_str().expect("name");
        assert_eq!(out["fields"][name], pair[1], "{name}");
    }
}

/// Flags that do not fit the protocol are one-line errors, not silently ignored.
#[test]
fn protocol_flags_that_do_not_fit_are_refused() {
    let s3 = credentials_file(&serde_json::json!({
        "access_key_id": "AKID", "secret_access_key": "secret",
    }));
    let azure = credentials_file(&serde_json::json!({ "account": "acct", "key": "c2VjcmV0" }));
    let s3 = format!("--credentials={}", s3.display());
    let azure = format!("--credentials={}", azure.display());
    let base = [
        "sign-url",
        "--method=GET",
        "--bucket=box",
        "--object=o",
        "--expires=60",
    ];
    for (extra, expect) in [
        (vec!["--protocol=s3", s3.as_str()], "needs --region"),
        (
            vec!["--protocol=azure", azure.as_str(), "--region=us-east-1"],
            "--region applies",
        ),
        (
            vec!["--protocol=azure", azure.as_str(), "--header=x-a: 1"],
            "a SAS binds neither",
        ),
        (
            vec!["--protocol=azure", azure.as_str(), "--url-style=path"],
            "do not apply",
        ),
        (
            vec![
                "--protocol=s3",
                s3.as_str(),
                "--region=us-east-1",
                "--start=2026-01-01T00:00:00Z",
            ],
            "--start applies",
        ),
        (
            vec!["--protocol=s3", azure.as_str(), "--region=us-east-1"],
            "access_key_id",
        ),
        (
            vec!["--protocol=s3", s3.as_str(), "--region=us east"],
            "invalid region",
        ),
    ] {
        let args: Vec<&str> = base.iter().copied().chain(extra).collect();
        let err = one_line_error(&args);
        assert!(err.contains(expect), "{args:?}: {err}");
    }
    let err = one_line_error(&[
        "sign-post-policy",
        "--protocol=azure",
        azure.as_str(),
        "--bucket=box",
        "--object=o",
        "--expires=60",
    ]);
    assert!(err.contains("no POST policies"), "{err}");
}
