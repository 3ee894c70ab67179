//! Azure Blob on Azurite, which checks every Shared Key signature: the control plane
//! ([`AzureControl`]) lists every page to the end, after a name, within a prefix and not its
//! siblings, deletes a prefix, and reports a missing container and a wrong key as such.

use crate::azurite::Azurite;
use storage_broker::backends::azure::{AzureAuth, AzureControl};
use storage_broker::backends::{ObjectInfo, StorageError};
use storage_broker::signing::{AzureCredentials, BlobEndpoint};

/// The control plane on `azurite` with the account key.
fn control(azurite: &Azurite) -> AzureControl {
    AzureControl::new(
        AzureAuth::SharedKey(azurite.credentials()),
        azurite.blob_endpoint(),
        azurite.client(),
    )
}

/// Every page of the listing of `prefix` after `start_after`, and how many pages it took.
async fn list_all(
    control: &AzureControl,
    container: &str,
    prefix: &str,
    start_after: Option<&str>,
) -> (Vec<ObjectInfo>, usize) {
    let (mut items, mut pages, mut token) = (Vec::new(), 0, None::<String>);
    loop {
        let page = control
            .list(container, prefix, start_after, token.as_deref())
            .await
            .expect("list");
        pages += 1;
        assert!(page.items.len() <= 1000);
        items.extend(page.items);
        match page.next_page_token {
            Some(next) => token = Some(next),
            None => return (items, pages),
        }
    }
}

fn names(items: &[ObjectInfo]) -> Vec<&str> {
    items.iter().map(|o| o.name.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_control_plane_lists_pages_to_the_end_and_deletes_a_prefix() {
    let azurite = Azurite::start().await;
    azurite.create_container("listing").await;
    let many: Vec<String> = (0..1003).map(|i| format!("many/{i:04}")).collect();
    azurite.put_many("listing", many.clone()).await;
    let odd = [
        "a",
        "a/x",
        "ab/y",
        "a/é t+é/x&y=z%20 ✓ 😀.txt",
        " a/leading space",
    ];
    for name in odd {
        azurite
            .put_blob("listing", name, b"twelve bytes", "text/plain")
            .await;
    }
    let control = control(&azurite);

    // More than a page: every name once, in order, over two pages.
    let (items, pages) = list_all(&control, "listing", "many/", None).await;
    assert_eq!(pages, 2);
    assert_eq!(names(&items), many);
    assert_eq!(items[0].size, Some(1));
    assert_eq!(
        items[0].content_type.as_deref(),
        Some("application/octet-stream")
    );
    let updated = items[0].updated.as_deref().expect("last modified");
    assert!(
        time::OffsetDateTime::parse(updated, &time::format_description::well_known::Rfc3339)
            .is_ok(),
        "{updated}"
    );

    // After a name, never the name itself, also across a page boundary.
    let (after, _) = list_all(&control, "listing", "many/", Some("many/0997")).await;
    assert_eq!(names(&after), many[998..]);
    let (after, pages) = list_all(&control, "listing", "many/", Some("many/0001")).await;
    assert_eq!((after.len(), pages), (1001, 2));
    assert_eq!(after[0].name, "many/0002");
    let (after, _) = list_all(&control, "listing", "many/", Some("many/0001x")).await;
    assert_eq!(after[0].name, "many/0002");

    // A prefix lists what is under it, not its siblings; names come back as stored.
    let (under_a, _) = list_all(&control, "listing", "a/", None).await;
    assert_eq!(names(&under_a), ["a/x", "a/é t+é/x&y=z%20 ✓ 😀.txt"]);
    assert_eq!(under_a[0].size, Some(12));
    assert_eq!(under_a[0].content_type.as_deref(), Some("text/plain"));
    let (everything, _) = list_all(&control, "listing", "", None).await;
    assert_eq!(everything.len(), 1003 + odd.len());
    assert_eq!(everything[0].name, " a/leading space");

    // Deleting a prefix deletes what is under it, more than a page, and nothing beside it.
    assert_eq!(
        control
            .delete_prefix("listing", "a/")
            .await
            .expect("delete"),
        2
    );
    assert_eq!(
        control
            .delete_prefix("listing", "many/")
            .await
            .expect("delete"),
        1003
    );
    assert_eq!(
        control
            .delete_prefix("listing", "many/")
            .await
            .expect("again"),
        0
    );
    let (left, _) = list_all(&control, "listing", "", None).await;
    assert_eq!(names(&left), [" a/leading space", "a", "ab/y"]);
    control
        .check_listable("listing", "a/")
        .await
        .expect("listable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_control_plane_reports_a_missing_container_and_a_wrong_key() {
    let azurite = Azurite::start().await;
    azurite.create_container("present").await;
    let control = control(&azurite);
    let missing = control
        .check_listable("absent", "")
        .await
        .expect_err("no such container");
    assert!(missing.is_not_found(), "{missing}");
    let listed = control.list("absent", "", None, None).await;
    assert!(
        matches!(listed, Err(ref e) if e.is_not_found()),
        "{listed:?}"
    );

    // The right account with another key: Azurite refuses the signature.
    let wrong = AzureControl::new(
        AzureAuth::SharedKey(
            AzureCredentials::new("devstoreaccount1", "d3Jvbmcga2V5").expect("creds"),
        ),
        azurite.blob_endpoint(),
        azurite.client(),
    );
    let denied = wrong
        .check_listable("present", "")
        .await
        .expect_err("wrong key");
    assert!(denied.is_denied(), "{denied}");
    let denied = wrong
        .delete_prefix("present", "p/")
        .await
        .expect_err("wrong key");
    assert!(denied.is_denied(), "{denied}");

    // Nothing listening: neither a 404 nor a refusal.
    let closed = AzureControl::new(
        AzureAuth::SharedKey(azurite.credentials()),
        BlobEndpoint::parse("http://127.0.0.1:9/devstoreaccount1").expect("endpoint"),
        reqwest::Client::new(),
    );
    let unreachable = closed
        .check_listable("present", "")
        .await
        .expect_err("closed");
    assert!(
        matches!(unreachable, StorageError::Other(_)),
        "{unreachable}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_delete_refuses_names_a_url_would_resolve_to_another_blob() {
    let azurite = Azurite::start().await;
    azurite.create_container("dots").await;
    let control = control(&azurite);
    for name in ["p/../x", "p/./x", "p/..", "."] {
        let refused = control.delete("dots", name).await.expect_err(name);
        assert!(matches!(refused, StorageError::Other(_)), "{refused}");
    }
    // Dots inside a segment are ordinary.
    azurite
        .put_blob("dots", "p/..x/.y.", b"1", "text/plain")
        .await;
    assert!(control.delete("dots", "p/..x/.y.").await.expect("deleted"));
    assert!(!control.delete("dots", "p/..x/.y.").await.expect("gone"));
}
