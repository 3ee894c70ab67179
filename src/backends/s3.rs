//! S3's control plane, through its REST API: `ListObjectsV2` and `DeleteObjects`, signed with
//! SigV4 in the `Authorization` header by the same [`S3Signer`] that presigns the broker's URLs,
//! so they go to the same endpoint, in the same URL style, with object names encoded the one way
//! the signer canonicalises them.
//!
//! Tested on SeaweedFS 4.48, which verifies signatures but, keeping a bucket as a directory tree
//! (`weed/s3api/s3api_object_handlers_list.go`), lists differently from AWS:
//! - depth first: the objects under `a/` come where `a` would, before `a b`, `a-c` and `a.x`,
//!   which AWS's byte order puts first. Pages and `start-after` follow that same order, so a
//!   listing resumed after an object's name neither repeats nor skips a name; but
//! - `start-after` naming a directory (`a`, with `a/b` stored; `a` an object too or not) skips
//!   everything under it, and
//!   a page that fills exactly at an object which is also such a directory (`p/a` and `p/a/0`)
//!   answers `IsTruncated=false`: the objects under it are never listed. The API's listings
//!   can only pass this on; [`S3Control::delete_prefix`] lists again until nothing is left;
//! - it checks no `Content-MD5` on `DeleteObjects` (AWS refuses the call without one), and does
//!   not compare `x-amz-content-sha256` with the body outside chunked uploads; both are sent
//!   for AWS and checked here by unit tests;
//! - with `encoding-type=url` it escapes a key's directories with Go's `url.PathEscape` and its
//!   last part with `url.QueryEscape`: `%20` in one, `+` in the other for a space, and `+` itself
//!   always as `%2B`. Decoding as botocore does (`unquote_plus`) reads both, and AWS's keys too.

use super::{ObjectInfo, ObjectPage, StorageError};
use crate::signing::s3::{ApiRequest, AuthorizedRequest};
use crate::signing::{BucketName, Method, ObjectName, S3Signer};
use base64::Engine;
use md5::{Digest, Md5};
use serde::Deserialize;
use std::fmt::Write;
use std::sync::Arc;
use time::OffsetDateTime;

/// How many times [`S3Control::delete_prefix`] lists a prefix from its start, deleting what it
/// finds, before it gives up on objects that keep being listed. Two passes when nothing goes
/// wrong: the second finds nothing.
const DELETE_PASSES: usize = 4;

/// A `ListObjectsV2` answer: what the broker reads of it.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListBucketResult {
    #[serde(default)]
    is_truncated: bool,
    #[serde(default)]
    contents: Vec<Contents>,
    next_continuation_token: Option<String>,
    /// `url` when the store honoured `encoding-type=url` (then keys are escaped).
    encoding_type: Option<String>,
}

/// One object in a listing.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Contents {
    key: String,
    size: Option<u64>,
    last_modified: Option<String>,
}

/// A quiet `DeleteObjects` answer: only the keys that were not deleted.
#[derive(Deserialize)]
struct DeleteResult {
    #[serde(rename = "Error", default)]
    errors: Vec<DeleteError>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DeleteError {
    key: Option<String>,
    code: Option<String>,
    message: Option<String>,
}

/// The control-plane client.
pub struct S3Control {
    signer: Arc<S3Signer>,
    http: reqwest::Client,
}

impl S3Control {
    /// Calls the endpoint `signer` signs for, in its URL style, with its credentials.
    pub fn new(signer: Arc<S3Signer>, http: reqwest::Client) -> Self {
        Self { signer, http }
    }

    /// One page of the objects under `prefix`, after `start_after` (never the name itself) when
    /// given.
    pub async fn list(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: Option<&str>,
        page_token: Option<&str>,
    ) -> Result<ObjectPage, StorageError> {
        let page_size = super::PAGE_SIZE.to_string();
        let result = self
            .list_objects(bucket, prefix, &page_size, start_after, page_token)
            .await?;
        let url_encoded = result.encoding_type.as_deref() == Some("url");
        let mut items = Vec::with_capacity(result.contents.len());
        for object in result.contents {
            let name = if url_encoded {
                decode_key(&object.key).ok_or_else(|| {
                    StorageError::Other(format!(
                        "list {bucket}: the key {:?} is not URL-encoded UTF-8",
                        object.key
                    ))
                })?
            } else {
                object.key
            };
            items.push(ObjectInfo {
                name,
                size: object.size,
                content_type: None,
                updated: object.last_modified.filter(|t| is_rfc3339(t)),
            });
        }
        Ok(ObjectPage {
            items,
            next_page_token: result
                .next_continuation_token
                .filter(|token| result.is_truncated && !token.is_empty()),
        })
    }

    /// Checks that `bucket` exists and the broker may list it under `prefix` (what every
    /// listing and deletion of its objects needs): one listing of at most one object. A missing
    /// bucket is storage's 404 (`NoSuchBucket`), refused credentials its 403.
    pub async fn check_listable(&self, bucket: &str, prefix: &str) -> Result<(), StorageError> {
        self.list_objects(bucket, prefix, "1", None, None)
            .await
            .map(drop)
    }

    /// A `ListObjectsV2` call, its answer parsed.
    async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        max_keys: &str,
        start_after: Option<&str>,
        page_token: Option<&str>,
    ) -> Result<ListBucketResult, StorageError> {
        let mut request = ApiRequest::new(Method::Get, bucket_name(bucket)?, None)
            .query("list-type", "2")
            .query("prefix", prefix)
            .query("max-keys", max_keys)
            // Keys may hold characters XML 1.0 cannot carry.
            .query("encoding-type", "url");
        if let Some(start) = start_after {
            request = request.query("start-after", start);
        }
        if let Some(token) = page_token {
            request = request.query("continuation-token", token);
        }
        let response = self
            .send(&request, Vec::new(), || format!("list {bucket}"))
            .await?;
        let text = response
            .text()
            .await
            .map_err(|e| StorageError::Other(format!("list {bucket}: {e}")))?;
        quick_xml::de::from_str(&text).map_err(|e| {
            StorageError::Other(format!(
                "list {bucket}: an answer that is not a listing: {e}"
            ))
        })
    }

    /// Deletes every object under `prefix`; how many. Pass after pass, each listing the prefix
    /// from its start and deleting it a page at a time, until a listing finds nothing: a
    /// listing may miss objects (SeaweedFS, see the module docs) and writers may add some
    /// meanwhile. Objects still there after `DELETE_PASSES` passes are an error, not a chase.
    pub async fn delete_prefix(&self, bucket: &str, prefix: &str) -> Result<u64, StorageError> {
        let mut deleted = 0;
        for _ in 0..DELETE_PASSES {
            match self.delete_pass(bucket, prefix).await? {
                0 => return Ok(deleted),
                pass => deleted += pass,
            }
        }
        Err(StorageError::Other(format!(
            "delete {bucket}/{prefix}: {deleted} objects deleted, and pass {DELETE_PASSES} still \
             found some: written meanwhile, or listed but not deletable"
        )))
    }

    /// Deletes what one listing of `prefix` to its end shows: each page with one
    /// `DeleteObjects` call, a key XML cannot carry on its own. How many.
    async fn delete_pass(&self, bucket: &str, prefix: &str) -> Result<u64, StorageError> {
        let mut deleted = 0;
        let mut after: Option<String> = None;
        let mut token: Option<String> = None;
        loop {
            // Resumed after the last name deleted rather than with the page's token: a token
            // for objects since deleted is the store's business, a name is not. Only a page
            // with no names at all is followed by its token.
            let page = self
                .list(bucket, prefix, after.as_deref(), token.as_deref())
                .await?;
            match page.items.last() {
                // The last in the store's order, which may not be byte order (SeaweedFS).
                Some(last) => (after, token) = (Some(last.name.clone()), None),
                None => token.clone_from(&page.next_page_token),
            }
            let (batch, alone): (Vec<String>, Vec<String>) = page
                .items
                .into_iter()
                .map(|object| object.name)
                .partition(|name| xml_can_carry(name));
            if !batch.is_empty() {
                self.delete_objects(bucket, &batch).await?;
                deleted += batch.len() as u64;
            }
            for name in &alone {
                self.delete_object(bucket, name).await?;
                deleted += 1;
            }
            if page.next_page_token.is_none() {
                return Ok(deleted);
            }
        }
    }

    /// One `DeleteObjects` call for at most 1000 `names`, quiet: an answer listing any key is a
    /// failure.
    async fn delete_objects(&self, bucket: &str, names: &[String]) -> Result<(), StorageError> {
        let body = delete_body(names);
        let md5 = base64::engine::general_purpose::STANDARD.encode(Md5::digest(body.as_bytes()));
        let request = ApiRequest::new(Method::Post, bucket_name(bucket)?, None)
            .query("delete", "")
            .header("content-md5", md5)
            .header("content-type", "application/xml");
        let context = || format!("delete {} objects from {bucket}", names.len());
        let response = self.send(&request, body.into_bytes(), context).await?;
        let text = response
            .text()
            .await
            .map_err(|e| StorageError::Other(format!("{}: {e}", context())))?;
        let result: DeleteResult = quick_xml::de::from_str(&text).map_err(|e| {
            StorageError::Other(format!(
                "{}: an answer that is not a result: {e}",
                context()
            ))
        })?;
        let Some(first) = result.errors.first() else {
            return Ok(());
        };
        let code = first.code.as_deref().unwrap_or("an error");
        let body = format!(
            "{code} deleting {:?} from {bucket}: {}{}",
            first.key.as_deref().unwrap_or(""),
            first.message.as_deref().unwrap_or(""),
            match result.errors.len() {
                1 => String::new(),
                n => format!(" (and {} more keys)", n - 1),
            }
        );
        Err(if code == "AccessDenied" {
            StorageError::Status { status: 403, body }
        } else {
            StorageError::Other(body)
        })
    }

    /// Deletes one object; one already gone is fine.
    async fn delete_object(&self, bucket: &str, name: &str) -> Result<(), StorageError> {
        let object = ObjectName::parse(name)
            .map_err(|e| StorageError::Other(format!("delete {name:?} from {bucket}: {e}")))?;
        let request = ApiRequest::new(Method::Delete, bucket_name(bucket)?, Some(object));
        match self
            .send(&request, Vec::new(), || {
                format!("delete {name:?} from {bucket}")
            })
            .await
        {
            Err(StorageError::Status { status: 404, .. }) => Ok(()),
            other => other.map(drop),
        }
    }

    /// Signs `request` with `body`, sends it, and yields a successful answer.
    async fn send(
        &self,
        request: &ApiRequest,
        body: Vec<u8>,
        context: impl Fn() -> String,
    ) -> Result<reqwest::Response, StorageError> {
        let AuthorizedRequest {
            method,
            url,
            headers,
            ..
        } = self
            .signer
            .authorize(request, &body, OffsetDateTime::now_utc())
            .map_err(|e| StorageError::Other(format!("{}: cannot sign: {e}", context())))?;
        let method = match method {
            Method::Get => reqwest::Method::GET,
            Method::Head => reqwest::Method::HEAD,
            Method::Put => reqwest::Method::PUT,
            Method::Delete => reqwest::Method::DELETE,
            Method::Post => reqwest::Method::POST,
        };
        let mut builder = self.http.request(method, url);
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        if !body.is_empty() {
            builder = builder.body(body);
        }
        let response = builder
            .send()
            .await
            .map_err(|e| StorageError::Other(format!("{}: {e}", context())))?;
        super::checked(response).await
    }
}

fn bucket_name(bucket: &str) -> Result<BucketName, StorageError> {
    BucketName::parse(bucket).map_err(|e| StorageError::Other(format!("bucket {bucket:?}: {e}")))
}

/// A key as `encoding-type=url` writes it, decoded as botocore does (`unquote_plus`): `+` is a
/// space, `%XX` a byte; `None` unless the bytes are UTF-8.
fn decode_key(key: &str) -> Option<String> {
    let plus_as_space = key.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_as_space)
        .decode_utf8()
        .ok()
        .map(|name| name.into_owned())
}

/// `LastModified` as the API hands it on: RFC 3339 (AWS writes `2009-10-12T17:50:30.000Z`), or
/// nothing rather than a time the API's clients cannot read.
fn is_rfc3339(text: &str) -> bool {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).is_ok()
}

/// XML 1.0 carries every character but the C0 controls other than tab, line feed and carriage
/// return, and U+FFFE and U+FFFF (Rust strings hold no surrogates), not even as references.
fn xml_can_carry(name: &str) -> bool {
    name.chars()
        .all(|c| !matches!(c, '\0'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}'))
}

/// The `DeleteObjects` body for `names`: quiet, each key escaped, and whitespace a parser would
/// normalise written as references.
fn delete_body(names: &[String]) -> String {
    let mut body = String::with_capacity(128 + names.iter().map(|n| n.len() + 30).sum::<usize>());
    body.push_str(r#"<?xml version="1.0" encoding="UTF-8"?><Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Quiet>true</Quiet>"#);
    for name in names {
        body.push_str("<Object><Key>");
        for c in name.chars() {
            match c {
                '&' => body.push_str("&amp;"),
                '<' => body.push_str("&lt;"),
                '>' => body.push_str("&gt;"),
                '"' => body.push_str("&quot;"),
                '\'' => body.push_str("&apos;"),
                '\t' | '\n' | '\r' => {
                    let _ = write!(body, "&#{};", u32::from(c));
                }
                c => body.push(c),
            }
        }
        body.push_str("</Key></Object>");
    }
    body.push_str("</Delete>");
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_is_read_with_its_keys_decoded() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>a/</Prefix>
<KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated><EncodingType>url</EncodingType>
<Contents><Key>a/x%20y/a+b%2Bc%26%3C%C3%A9%25%01</Key><LastModified>2009-10-12T17:50:30.000Z</LastModified>
<ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag><Size>434234</Size><StorageClass>STANDARD</StorageClass></Contents>
<Contents><Key>a/z</Key><LastModified>yesterday</LastModified><Size>0</Size></Contents>
<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken></ListBucketResult>"#;
        let result: ListBucketResult = quick_xml::de::from_str(xml).expect("listing");
        assert!(result.is_truncated);
        assert_eq!(result.encoding_type.as_deref(), Some("url"));
        assert_eq!(result.contents.len(), 2);
        assert_eq!(
            decode_key(&result.contents[0].key).as_deref(),
            Some("a/x y/a b+c&<é%\u{1}")
        );
        assert_eq!(result.contents[0].size, Some(434_234));
        assert!(is_rfc3339(
            result.contents[0].last_modified.as_deref().expect("time")
        ));
        assert!(!is_rfc3339("yesterday"));
        assert_eq!(
            result.next_continuation_token.as_deref(),
            Some("1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=")
        );
        assert_eq!(decode_key("%C3"), None, "not UTF-8");
    }

    #[test]
    fn an_empty_listing_has_no_contents() {
        let xml = r#"<ListBucketResult><Name>b</Name><KeyCount>0</KeyCount><IsTruncated>false</IsTruncated></ListBucketResult>"#;
        let result: ListBucketResult = quick_xml::de::from_str(xml).expect("listing");
        assert!(result.contents.is_empty() && !result.is_truncated);
    }

    #[test]
    fn a_delete_body_escapes_every_key_and_reads_back() {
        let names = vec![
            "a&b<c>d\"e'f".to_owned(),
            "tab\there é 100%".to_owned(),
            "]]>".to_owned(),
        ];
        let body = delete_body(&names);
        assert!(body.contains("<Quiet>true</Quiet>"));
        assert!(body.contains("<Key>a&amp;b&lt;c&gt;d&quot;e&apos;f</Key>"));
        assert!(body.contains("<Key>tab&#9;here é 100%</Key>"));

        #[derive(Deserialize)]
        struct Delete {
            #[serde(rename = "Object")]
            objects: Vec<Object>,
        }
        #[derive(Deserialize)]
        struct Object {
            #[serde(rename = "Key")]
            key: String,
        }
        let read: Delete = quick_xml::de::from_str(&body).expect("body");
        let keys: Vec<String> = read.objects.into_iter().map(|o| o.key).collect();
        assert_eq!(keys, names);
    }

    #[test]
    fn keys_xml_cannot_carry_are_told_apart() {
        assert!(xml_can_carry("tab\tand é and 🎉"));
        for bad in ["\u{1}", "a\u{b}", "\u{1f}", "\u{fffe}", "\0"] {
            assert!(!xml_can_carry(bad), "{bad:?}");
        }
    }

    #[test]
    fn per_key_errors_are_read() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Error><Key>a</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error><Error><Key>b</Key><Code>InternalError</Code><Message>x</Message></Error></DeleteResult>"#;
        let result: DeleteResult = quick_xml::de::from_str(xml).expect("result");
        assert_eq!(result.errors.len(), 2);
        assert_eq!(result.errors[0].code.as_deref(), Some("AccessDenied"));
        let quiet: DeleteResult = quick_xml::de::from_str(
            r#"<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"></DeleteResult>"#,
        )
        .expect("quiet");
        assert!(quiet.errors.is_empty());
    }

    #[test]
    fn content_md5_is_base64_of_the_digest() {
        let md5 = |body: &[u8]| base64::engine::general_purpose::STANDARD.encode(Md5::digest(body));
        // RFC 1321's test suite.
        assert_eq!(md5(b""), "1B2M2Y8AsgTpgAmY7PhCfg==");
        assert_eq!(
            hex::encode(Md5::digest(b"abc")),
            "900150983cd24fb0d6963f7d28e17f72"
        );
    }
}
