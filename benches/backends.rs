//! S3 SigV4 and Azure SAS signing speed beside GCS V4 with an HMAC key: one URL, the MAC alone,
//! and 10,000 URLs on all cores through the broker's own batch path
//! ([`Signers::sign_all`](storage_broker::signer::Signers), which a batch or a manifest uses).
//! `bench/backends.sh` runs it and writes the "Signing per backend" section of BENCHMARKS.md.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::collections::HashMap;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use storage_broker::signer::{BackendSigner, ObjectMethod, ObjectUrl, Signers, SigningService};
use storage_broker::signing::{
    AzureCredentials, AzureSigner, BlobEndpoint, BucketName, Endpoint, Expiry, ObjectName,
    S3Credentials, S3Signer, SasKey, Scheme, UrlSigner, UrlStyle, load_signer,
};
use time::OffsetDateTime;

const BATCH: usize = 10_000;

fn gcs_hmac() -> SigningService {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/test-hmac-key.json");
    let key = load_signer(&path).expect("fixture key");
    SigningService::local(UrlSigner::new(key, Endpoint::default(), UrlStyle::Path))
}

fn s3() -> S3Signer {
    S3Signer::new(
        S3Credentials::new(
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            None,
        )
        .expect("credentials"),
        "eu-west-1",
        Endpoint::aws("eu-west-1", Scheme::Https).expect("endpoint"),
        UrlStyle::Path,
    )
    .expect("signer")
}

fn azure() -> AzureSigner {
    let credentials = AzureCredentials::new(
        "acmeuserdata",
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
    )
    .expect("credentials");
    AzureSigner::new(
        SasKey::Account(credentials),
        BlobEndpoint::public("acmeuserdata").expect("endpoint"),
    )
}

/// A download link as the broker makes them: a user's object in a personal prefix.
fn url(i: usize) -> ObjectUrl {
    let mut url = ObjectUrl::new(
        ObjectMethod::Get,
        BucketName::parse("acme-user-data").expect("bucket"),
        ObjectName::parse(&format!("users/alice/photos/2026/11/IMG_{i:06}.jpg")).expect("object"),
        Expiry::from_secs(900).expect("expiry"),
    );
    url.response_content_disposition = Some("attachment".into());
    url
}

fn signers() -> (Signers, [(&'static str, Arc<BackendSigner>); 3]) {
    let gcs = gcs_hmac();
    let backends = [
        ("gcs_hmac", Arc::new(BackendSigner::gcs(gcs.clone()))),
        ("s3", Arc::new(BackendSigner::s3(Arc::new(s3())))),
        ("azure", Arc::new(BackendSigner::azure(azure()))),
    ];
    let by_name: HashMap<String, Arc<BackendSigner>> = backends
        .iter()
        .map(|(name, signer)| ((*name).to_owned(), signer.clone()))
        .collect();
    (Signers::new(gcs, by_name), backends)
}

fn single(c: &mut Criterion) {
    let at = OffsetDateTime::now_utc();
    let request = url(42);
    let mut group = c.benchmark_group("backend_one_url");
    group.throughput(Throughput::Elements(1));
    let gcs = UrlSigner::new(
        load_signer(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/test-hmac-key.json"),
        )
        .expect("key"),
        Endpoint::default(),
        UrlStyle::Path,
    );
    let gcs_request = request.for_gcs();
    group.bench_function("gcs_hmac", |b| {
        b.iter(|| gcs.sign(black_box(&gcs_request), at).expect("signs"))
    });
    let s3 = s3();
    let s3_request = request.for_s3().expect("s3 request");
    group.bench_function("s3", |b| {
        b.iter(|| s3.sign(black_box(&s3_request), at).expect("signs"))
    });
    // The MAC alone: the day key's four HMACs and the signature's.
    let prepared = s3.prepare(&s3_request, at).expect("prepares");
    group.bench_function("s3_mac", |b| b.iter(|| s3.signature(black_box(&prepared))));
    let azure = azure();
    let sas_request = request.for_azure(at).expect("sas request");
    group.bench_function("azure", |b| {
        b.iter(|| azure.sign(black_box(&sas_request)).expect("signs"))
    });
    // The MAC alone: one HMAC-SHA256 of the string-to-sign with the account key.
    let string_to_sign = azure.sign(&sas_request).expect("signs").string_to_sign;
    let key = aws_lc_rs::hmac::Key::new(
        aws_lc_rs::hmac::HMAC_SHA256,
        &base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
        )
        .expect("key"),
    );
    group.bench_function("azure_mac", |b| {
        b.iter(|| aws_lc_rs::hmac::sign(&key, black_box(string_to_sign.as_bytes())))
    });
    group.finish();
}

fn batch(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    let (signers, backends) = signers();
    let urls: Vec<ObjectUrl> = (0..BATCH).map(url).collect();
    let mut group = c.benchmark_group("backend_batch_all_cores");
    group.throughput(Throughput::Elements(BATCH as u64));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(10));
    for (name, signer) in &backends {
        group.bench_with_input(BenchmarkId::new(*name, BATCH), &urls, |b, urls| {
            b.iter(|| {
                let items = urls.iter().map(|u| (signer.clone(), u.clone())).collect();
                let signed = rt.block_on(signers.sign_all(items, OffsetDateTime::now_utc()));
                assert!(signed.iter().all(Result::is_ok));
                signed
            })
        });
    }
    group.finish();
}

criterion_group!(benches, single, batch);
criterion_main!(benches);
