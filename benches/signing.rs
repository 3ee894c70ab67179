//! Signing speed: one URL (RSA, HMAC), the per-URL work beside the RSA signature, the raw RSA
//! primitive, and 10,000 URLs on all cores. `bench/run.sh` runs these beside `openssl speed` and
//! python google-cloud-storage and writes the table in BENCHMARKS.md.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use storage_broker::signing::{
    BucketName, Endpoint, Expiry, Method, ObjectName, Signer, UrlRequest, UrlSigner, UrlStyle,
    load_signer,
};
use time::OffsetDateTime;

const BATCH: usize = 10_000;

fn signer(fixture: &str) -> UrlSigner {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(fixture);
    let key: Arc<dyn Signer> = load_signer(&path).expect("fixture key");
    UrlSigner::new(key, Endpoint::default(), UrlStyle::Path)
}

/// A download link as the broker makes them: a user's object in a personal prefix.
fn request(i: usize) -> UrlRequest {
    UrlRequest::new(
        Method::Get,
        BucketName::parse("acme-user-data").expect("bucket"),
        Some(
            ObjectName::parse(&format!("users/alice/photos/2026/11/IMG_{i:06}.jpg"))
                .expect("object"),
        ),
        Expiry::from_secs(900).expect("expiry"),
    )
    .query("response-content-disposition", "attachment")
}

fn single(c: &mut Criterion) {
    let rsa = signer("test-service-account.json");
    let hmac = signer("test-hmac-key.json");
    let req = request(42);
    let at = OffsetDateTime::now_utc();
    let mut group = c.benchmark_group("one_url");
    group.throughput(Throughput::Elements(1));
    group.bench_function("rsa", |b| {
        b.iter(|| rsa.sign(black_box(&req), at).expect("signs"))
    });
    group.bench_function("hmac", |b| {
        b.iter(|| hmac.sign(black_box(&req), at).expect("signs"))
    });
    // Everything a URL costs beside the RSA signature: canonical request, SHA-256, URL, hex.
    let fake_signature = [0xa5u8; 256];
    group.bench_function("work_beside_rsa", |b| {
        b.iter(|| {
            rsa.prepare(black_box(&req), at)
                .expect("prepares")
                .finish(&fake_signature)
        })
    });
    let prepared = rsa.prepare(&req, at).expect("prepares");
    let key = load_signer(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/test-service-account.json"),
    )
    .expect("key");
    group.bench_function("rsa_primitive", |b| {
        b.iter(|| {
            key.sign(
                prepared.date(),
                black_box(prepared.string_to_sign().as_bytes()),
            )
            .expect("signs")
        })
    });
    group.finish();
}

fn batch(c: &mut Criterion) {
    let requests: Vec<UrlRequest> = (0..BATCH).map(request).collect();
    let at = OffsetDateTime::now_utc();
    let mut group = c.benchmark_group("batch_all_cores");
    group.throughput(Throughput::Elements(BATCH as u64));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(15));
    for (name, fixture) in [
        ("rsa", "test-service-account.json"),
        ("hmac", "test-hmac-key.json"),
    ] {
        let signer = signer(fixture);
        group.bench_with_input(BenchmarkId::new(name, BATCH), &requests, |b, requests| {
            b.iter(|| {
                let urls = signer.sign_all(black_box(requests), at);
                assert!(urls.iter().all(Result::is_ok));
                urls
            })
        });
    }
    group.finish();
}

criterion_group!(benches, single, batch);
criterion_main!(benches);
