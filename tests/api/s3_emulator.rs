//! S3 SigV4 signing proven on SeaweedFS, an S3 server that verifies every signature: uploads by
//! presigned PUT, by form POST and by multipart, downloads compared byte for byte, and the
//! refusals that must come from the store itself — a tampered signature, an expired URL, the
//! wrong method, a form upload over its size range.

use crate::helpers::SeaweedFs;
use storage_broker::signing::s3::multipart;
use storage_broker::signing::{
    BucketName, Condition, Expiry, Method, ObjectName, PostKey, PostPolicyRequest, S3Signer,
    UrlRequest,
};
use time::OffsetDateTime;

fn bucket() -> BucketName {
    BucketName::parse("s3-e2e").expect("bucket")
}

fn url(
    signer: &S3Signer,
    method: Method,
    object: Option<&str>,
    query: Vec<(String, String)>,
) -> String {
    let mut request = UrlRequest::new(
        method,
        bucket(),
        object.map(|o| ObjectName::parse(o).expect("object")),
        Expiry::from_secs(300).expect("expiry"),
    );
    request.query = query;
    signer
        .sign(&request, OffsetDateTime::now_utc())
        .expect("signed")
        .url
}

async fn started() -> (SeaweedFs, S3Signer, reqwest::Client) {
    let store = SeaweedFs::start().await;
    let signer = store.signer();
    let http = reqwest::Client::new();
    let created = http
        .put(url(&signer, Method::Put, None, Vec::new()))
        .send()
        .await
        .expect("create bucket");
    assert!(
        created.status().is_success(),
        "create bucket: {}",
        created.status()
    );
    (store, signer, http)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_urls_move_bytes_and_the_store_refuses_what_was_not_signed() {
    let (_store, signer, http) = started().await;
    let name = "docs/é t+é/a&b=c.txt";
    let body = b"bytes through a presigned PUT".to_vec();
    let put = http
        .put(url(&signer, Method::Put, Some(name), Vec::new()))
        .body(body.clone())
        .send()
        .await
        .expect("put");
    assert_eq!(
        put.status(),
        200,
        "{}",
        put.text().await.unwrap_or_default()
    );
    let get = http
        .get(url(&signer, Method::Get, Some(name), Vec::new()))
        .send()
        .await
        .expect("get");
    assert_eq!(get.status(), 200);
    assert_eq!(get.bytes().await.expect("bytes").to_vec(), body);
    let head = http
        .head(url(&signer, Method::Head, Some(name), Vec::new()))
        .send()
        .await
        .expect("head");
    assert_eq!(head.status(), 200);

    // Response overrides are signed and honoured.
    let overridden = url(
        &signer,
        Method::Get,
        Some(name),
        vec![
            (
                "response-content-disposition".into(),
                "attachment; filename=\"a.txt\"".into(),
            ),
            ("response-content-type".into(), "text/x-test".into()),
        ],
    );
    let get = http.get(&overridden).send().await.expect("get");
    assert_eq!(get.status(), 200);
    assert_eq!(get.headers()["content-type"], "text/x-test");
    assert_eq!(
        get.headers()["content-disposition"],
        "attachment; filename=\"a.txt\""
    );

    // A tampered signature, the wrong method, an expired URL: the store refuses each.
    let good = url(&signer, Method::Get, Some(name), Vec::new());
    let last = good.chars().last().expect("char");
    let flipped = if last == '0' { '1' } else { '0' };
    let tampered = format!("{}{flipped}", &good[..good.len() - 1]);
    assert_eq!(http.get(&tampered).send().await.expect("get").status(), 403);
    assert_eq!(
        http.put(&good)
            .body("x")
            .send()
            .await
            .expect("put")
            .status(),
        403
    );
    let expired = {
        let request = UrlRequest::new(
            Method::Get,
            bucket(),
            Some(ObjectName::parse(name).expect("object")),
            Expiry::from_secs(60).expect("expiry"),
        );
        let an_hour_ago = OffsetDateTime::now_utc() - time::Duration::hours(1);
        signer.sign(&request, an_hour_ago).expect("signed").url
    };
    assert_eq!(http.get(&expired).send().await.expect("get").status(), 403);

    // A PUT bound to a length and a content type gets nothing else through.
    let mut bound = UrlRequest::new(
        Method::Put,
        bucket(),
        Some(ObjectName::parse("bound.png").expect("object")),
        Expiry::from_secs(300).expect("expiry"),
    );
    bound.headers = vec![
        ("content-length".into(), "5".into()),
        ("content-type".into(), "image/png".into()),
    ];
    let bound = signer
        .sign(&bound, OffsetDateTime::now_utc())
        .expect("signed")
        .url;
    let send = |body: &'static str, content_type: &'static str| {
        http.put(&bound)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    assert_eq!(
        send("123456", "image/png").await.expect("put").status(),
        403
    );
    assert_eq!(send("12345", "text/html").await.expect("put").status(), 403);
    assert_eq!(send("12345", "image/png").await.expect("put").status(), 200);

    let delete = http
        .delete(url(&signer, Method::Delete, Some(name), Vec::new()))
        .send()
        .await
        .expect("delete");
    assert_eq!(delete.status(), 204);
    let gone = http
        .get(url(&signer, Method::Get, Some(name), Vec::new()))
        .send()
        .await
        .expect("get");
    assert_eq!(gone.status(), 404);
}

/// A form POST as a browser sends it: the signed fields, then the file.
pub(crate) fn form(fields: &[(String, String)], file: &[u8]) -> (String, Vec<u8>) {
    let boundary = format!("----storage-broker-{}", uuid::Uuid::new_v4().simple());
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_upload_is_held_to_its_size_range_by_the_store() {
    let (_store, signer, http) = started().await;
    let policy = signer
        .post_policy(
            &PostPolicyRequest {
                bucket: bucket(),
                key: PostKey::Exact(ObjectName::parse("forms/up.bin").expect("object")),
                expiry: Expiry::from_secs(300).expect("expiry"),
                fields: Vec::new(),
                conditions: vec![Condition::ContentLengthRange { min: 1, max: 1024 }],
            },
            OffsetDateTime::now_utc(),
        )
        .expect("policy");
    let post = |file: Vec<u8>| {
        let (content_type, body) = form(&policy.fields, &file);
        http.post(&policy.url)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let too_big = post(vec![b'x'; 2_000]).await.expect("post");
    assert_eq!(too_big.status(), 400, "over the range");
    assert!(
        too_big
            .text()
            .await
            .unwrap_or_default()
            .contains("EntityTooLarge")
    );
    let fits = post(vec![b'y'; 1_000]).await.expect("post");
    assert!(fits.status().is_success(), "{}", fits.status());
    let get = http
        .get(url(&signer, Method::Get, Some("forms/up.bin"), Vec::new()))
        .send()
        .await
        .expect("get");
    assert_eq!(
        get.bytes().await.expect("bytes").to_vec(),
        vec![b'y'; 1_000]
    );
}

fn xml_value<'a>(text: &'a str, tag: &str) -> &'a str {
    let open = format!("<{tag}>");
    let start = text.find(&open).map(|i| i + open.len()).expect(tag);
    let end = text[start..].find(&format!("</{tag}>")).expect(tag);
    &text[start..start + end]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_upload_runs_on_presigned_urls() {
    let (_store, signer, http) = started().await;
    let name = Some("big/parts.bin");
    let created = http
        .post(url(&signer, Method::Post, name, multipart::create()))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 200);
    let text = created.text().await.expect("text");
    let upload_id = xml_value(&text, "UploadId").to_owned();
    let parts: Vec<Vec<u8>> = vec![vec![b'a'; 5 * 1024 * 1024], b"the last part".to_vec()];
    let mut completion = String::from("<CompleteMultipartUpload>");
    for (i, part) in parts.iter().enumerate() {
        let number = i as u32 + 1;
        let uploaded = http
            .put(url(
                &signer,
                Method::Put,
                name,
                multipart::part(&upload_id, number),
            ))
            .body(part.clone())
            .send()
            .await
            .expect("part");
        assert_eq!(uploaded.status(), 200);
        let etag = uploaded.headers()["etag"]
            .to_str()
            .expect("etag")
            .to_owned();
        completion.push_str(&format!(
            "<Part><PartNumber>{number}</PartNumber><ETag>{etag}</ETag></Part>"
        ));
    }
    completion.push_str("</CompleteMultipartUpload>");
    let completed = http
        .post(url(
            &signer,
            Method::Post,
            name,
            multipart::upload(&upload_id),
        ))
        .body(completion)
        .send()
        .await
        .expect("complete");
    assert_eq!(completed.status(), 200);
    let got = http
        .get(url(&signer, Method::Get, name, Vec::new()))
        .send()
        .await
        .expect("get")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(got.len(), parts.iter().map(Vec::len).sum::<usize>());
    assert_eq!(got.to_vec(), parts.concat());

    // An aborted upload is gone: its parts cannot be listed.
    let other = http
        .post(url(
            &signer,
            Method::Post,
            Some("big/aborted.bin"),
            multipart::create(),
        ))
        .send()
        .await
        .expect("create")
        .text()
        .await
        .expect("text");
    let other_id = xml_value(&other, "UploadId").to_owned();
    let aborted = http
        .delete(url(
            &signer,
            Method::Delete,
            Some("big/aborted.bin"),
            multipart::upload(&other_id),
        ))
        .send()
        .await
        .expect("abort");
    assert_eq!(aborted.status(), 204);
    let listed = http
        .get(url(
            &signer,
            Method::Get,
            Some("big/aborted.bin"),
            multipart::upload(&other_id),
        ))
        .send()
        .await
        .expect("list parts");
    assert_eq!(listed.status(), 404);
}
