//! The S3 control plane (`backends::s3`) on SeaweedFS, which verifies every signature: names no
//! XML or URL carries as they are, listings of more than a page, resuming after a name, a
//! sibling prefix left alone, deletions of more than a page, and the store's refusals — a
//! missing bucket and wrong credentials — told apart as the API needs them.

use crate::helpers::SeaweedFs;
use std::collections::BTreeSet;
use std::sync::Arc;
use storage_broker::backends::s3::S3Control;
use storage_broker::backends::{ObjectInfo, PAGE_SIZE, StorageError};
use storage_broker::signing::{Endpoint, S3Credentials, S3Signer, Scheme, UrlStyle};

const BUCKET: &str = "control-plane";

async fn started() -> (SeaweedFs, S3Control) {
    let store = SeaweedFs::start().await;
    store.create_bucket(BUCKET).await;
    let control = store.control();
    (store, control)
}

/// Every object under `prefix`, page by page to the end; each page checked to be at most
/// [`PAGE_SIZE`] long.
async fn list_all(control: &S3Control, prefix: &str, start_after: Option<&str>) -> Vec<ObjectInfo> {
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = control
            .list(BUCKET, prefix, start_after, token.as_deref())
            .await
            .expect("list");
        assert!(page.items.len() <= PAGE_SIZE as usize);
        all.extend(page.items);
        match page.next_page_token {
            Some(next) => token = Some(next),
            None => return all,
        }
    }
}

fn names(objects: &[ObjectInfo]) -> Vec<String> {
    objects.iter().map(|o| o.name.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_no_xml_or_url_carries_as_they_are_are_listed_and_deleted() {
    let (store, control) = started().await;
    let hostile: Vec<String> = [
        "odd/é/ü 🎉.txt",
        "odd/a b",
        "odd/a+b",
        "odd/a%2Bb",
        "odd/a%20b",
        "odd/100%",
        "odd/&<>\"'",
        "odd/]]>",
        "odd/q?x=1&y=2#f",
        "odd/semi;colon=equals,comma",
        "odd/tab\there",
        "odd/ctl\u{1}and\u{1f}",
        "odd/~tilde",
        "odd/dir with space/x+y z",
    ]
    .map(String::from)
    .to_vec();
    store.store_many(BUCKET, &hostile).await;
    store.store_many(BUCKET, &["odd-sibling".to_owned()]).await;

    let listed = list_all(&control, "odd/", None).await;
    let expected: BTreeSet<&String> = hostile.iter().collect();
    let got: BTreeSet<&String> = listed.iter().map(|o| &o.name).collect();
    assert_eq!(got, expected, "every name back as stored");
    assert_eq!(listed.len(), hostile.len(), "each once");
    for object in &listed {
        // Each object holds its own name.
        assert_eq!(
            object.size,
            Some(object.name.len() as u64),
            "{:?}",
            object.name
        );
        assert_eq!(object.content_type, None);
        let updated = object.updated.as_deref().expect("LastModified");
        time::OffsetDateTime::parse(updated, &time::format_description::well_known::Rfc3339)
            .expect("RFC 3339");
    }

    // Resuming after any name gives exactly the names the listing has after it.
    for (i, object) in listed.iter().enumerate() {
        let rest = list_all(&control, "odd/", Some(&object.name)).await;
        assert_eq!(
            names(&rest),
            names(&listed[i + 1..]),
            "after {:?}",
            object.name
        );
    }

    control
        .check_listable(BUCKET, "odd/")
        .await
        .expect("listable");
    let deleted = control.delete_prefix(BUCKET, "odd/").await.expect("delete");
    assert_eq!(deleted, hostile.len() as u64);
    assert!(list_all(&control, "odd/", None).await.is_empty());
    for name in &hostile {
        assert!(!store.exists(BUCKET, name).await, "{name:?} still there");
    }
    assert!(store.exists(BUCKET, "odd-sibling").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_a_page_is_listed_resumed_and_deleted_and_a_sibling_prefix_is_left_alone() {
    let (store, control) = started().await;
    let many: Vec<String> = (0..1234).map(|i| format!("a/{i:05}")).collect();
    let siblings: Vec<String> = ["ab/1", "ab/00000", "a", "a-b/1", "a0"]
        .map(String::from)
        .to_vec();
    store.store_many(BUCKET, &many).await;
    store.store_many(BUCKET, &siblings).await;

    // Two pages, the first a full one, every name once and in order.
    let first = control.list(BUCKET, "a/", None, None).await.expect("list");
    assert_eq!(first.items.len(), PAGE_SIZE as usize);
    let token = first.next_page_token.expect("a second page");
    let second = control
        .list(BUCKET, "a/", None, Some(&token))
        .await
        .expect("list");
    assert_eq!(second.items.len(), many.len() - PAGE_SIZE as usize);
    assert_eq!(second.next_page_token, None);
    let listed: Vec<String> = names(&first.items)
        .into_iter()
        .chain(names(&second.items))
        .collect();
    assert_eq!(listed, many);

    // start_after resumes in the middle, without the name itself; after the last, nothing.
    let rest = list_all(&control, "a/", Some("a/00600")).await;
    assert_eq!(names(&rest), many[601..]);
    let rest = list_all(&control, "a/", Some("a/00600x")).await;
    assert_eq!(names(&rest), many[601..], "after a name that is not there");
    assert!(list_all(&control, "a/", Some("a/01233")).await.is_empty());

    let deleted = control.delete_prefix(BUCKET, "a/").await.expect("delete");
    assert_eq!(deleted, many.len() as u64);
    assert!(list_all(&control, "a/", None).await.is_empty());
    let left: BTreeSet<String> = names(&list_all(&control, "", None).await)
        .into_iter()
        .collect();
    assert_eq!(left, siblings.iter().cloned().collect::<BTreeSet<_>>());
    // Nothing left to delete is no error.
    assert_eq!(
        control.delete_prefix(BUCKET, "a/").await.expect("delete"),
        0
    );

    // On SeaweedFS a page that fills at `q/a`, an object and the directory of others, ends the
    // listing without them; the deletion finds them on its next pass all the same.
    let mut layered: Vec<String> = (0..PAGE_SIZE - 1).map(|i| format!("q/{i:04}")).collect();
    layered.push("q/a".to_owned());
    store.store_many(BUCKET, &layered).await;
    let under: Vec<String> = (0..5).map(|i| format!("q/a/{i}")).collect();
    store.store_many(BUCKET, &under).await;
    let deleted = control.delete_prefix(BUCKET, "q/").await.expect("delete");
    assert_eq!(deleted, (layered.len() + under.len()) as u64);
    assert!(list_all(&control, "q/", None).await.is_empty());
    for name in &under {
        assert!(!store.exists(BUCKET, name).await, "{name} still there");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_is_not_found_and_wrong_credentials_are_denied() {
    let (store, control) = started().await;
    control
        .check_listable(BUCKET, "any/")
        .await
        .expect("an empty bucket is listable");
    let missing = control
        .check_listable("no-such-bucket", "any/")
        .await
        .expect_err("missing");
    assert!(missing.is_not_found(), "{missing}");
    let missing = control
        .list("no-such-bucket", "", None, None)
        .await
        .expect_err("missing");
    assert!(missing.is_not_found(), "{missing}");
    let missing = control
        .delete_prefix("no-such-bucket", "x/")
        .await
        .expect_err("missing");
    assert!(missing.is_not_found(), "{missing}");

    store.store_many(BUCKET, &["kept/1".to_owned()]).await;
    let wrong = |key: &str, secret: &str| {
        let signer = S3Signer::new(
            S3Credentials::new(key, secret, None).expect("credentials"),
            "us-east-1",
            Endpoint::custom(&store.endpoint, Scheme::Http).expect("endpoint"),
            UrlStyle::Path,
        )
        .expect("signer");
        S3Control::new(Arc::new(signer), reqwest::Client::new())
    };
    for control in [
        wrong(store.access_key_id, "not-the-secret"),
        wrong("AKIDUNKNOWN", store.secret_access_key),
    ] {
        let denied: StorageError = control
            .check_listable(BUCKET, "kept/")
            .await
            .expect_err("denied");
        assert!(denied.is_denied(), "{denied}");
        let denied = control
            .delete_prefix(BUCKET, "kept/")
            .await
            .expect_err("denied");
        assert!(denied.is_denied(), "{denied}");
    }
    assert!(store.exists(BUCKET, "kept/1").await);
}
