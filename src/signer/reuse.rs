//! The read reuse window: a GET or HEAD URL asked for again within the same window of `W`
//! seconds is the *same* URL, so that browsers and CDNs can cache what it points to.
//!
//! The signing time is rounded down to a multiple of the window (counted from the Unix epoch)
//! and the expiry follows from it: the URL is the same for every request in the window and valid
//! for at least its lifetime minus the window. With a local key the URL is a function of the
//! request and the rounded time alone (RSA PKCS#1 v1.5 and HMAC are deterministic), so replicas
//! hand out the same URL without sharing anything; the cache here only saves the signature.
//! Uploads, deletes, POST policies and anything with sub-resource parameters are never reused.

use super::{ObjectMethod, ObjectUrl};
use crate::signing::{SignedUrl, SigningError};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use time::OffsetDateTime;

/// The memory one backend's reused URLs may take, by the bytes of their URLs and headers.
const CACHE_BYTES: u64 = 64 * 1024 * 1024;
/// No window is longer than this (a quarter of the longest V4 lifetime), nor any entry.
const LONGEST_WINDOW: Duration = Duration::from_secs(604_800 / 4);

/// What makes two reads the same URL: every field that is signed, and the window. Fields,
/// never a joined string: object names are hostile.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct ReuseKey {
    /// The signing key's generation: a rotated key never serves an URL of the key before.
    generation: u64,
    head: bool,
    bucket: String,
    object: String,
    response_content_type: Option<String>,
    response_content_disposition: Option<String>,
    lifetime: u32,
    /// The window's start, in Unix seconds: the signing time of every URL in it.
    start: i64,
}

impl ReuseKey {
    /// The key of `url` and the time to sign it at, or `None` when it is never reused (then
    /// `generation`, which may look at the signing key, is not asked).
    pub(super) fn of(
        url: &ObjectUrl,
        now: OffsetDateTime,
        generation: impl FnOnce() -> u64,
    ) -> Option<(Self, OffsetDateTime)> {
        if !reusable(url) {
            return None;
        }
        let at = window_start(now, url.reuse_window)?;
        let key = Self {
            generation: generation(),
            head: url.method == ObjectMethod::Head,
            bucket: url.bucket.as_str().to_owned(),
            object: url.object.as_str().to_owned(),
            response_content_type: url.response_content_type.clone(),
            response_content_disposition: url.response_content_disposition.clone(),
            lifetime: url.expiry.as_secs(),
            start: at.unix_timestamp(),
        };
        Some((key, at))
    }
}

/// Reads with nothing but overrides: no upload fields, no sub-resource parameters.
fn reusable(url: &ObjectUrl) -> bool {
    let upload = &url.upload;
    matches!(url.method, ObjectMethod::Get | ObjectMethod::Head)
        && url.reuse_window > 0
        && url.query.is_empty()
        && upload.content_type.is_none()
        && upload.content_md5.is_none()
        && upload.size.is_none()
        && upload.max_size.is_none()
        && upload.metadata.is_empty()
}

/// `now` rounded down to a multiple of `window` seconds since the epoch (`None` for no window).
pub fn window_start(now: OffsetDateTime, window: u32) -> Option<OffsetDateTime> {
    if window == 0 {
        return None;
    }
    let seconds = now.unix_timestamp();
    let start = seconds - seconds.rem_euclid(i64::from(window));
    OffsetDateTime::from_unix_timestamp(start).ok()
}

/// Signed reads of one backend, by [`ReuseKey`], bounded in bytes; entries live one window.
#[derive(Clone, Debug)]
pub(super) struct ReadReuse {
    urls: moka::future::Cache<ReuseKey, Arc<SignedUrl>>,
    /// Reusable reads asked for, and those that needed a signature.
    asked: Arc<AtomicU64>,
    misses: Arc<AtomicU64>,
}

impl Default for ReadReuse {
    fn default() -> Self {
        Self {
            urls: moka::future::Cache::builder()
                .max_capacity(CACHE_BYTES)
                .weigher(|key: &ReuseKey, url: &Arc<SignedUrl>| {
                    let headers: usize = url.headers.iter().map(|(k, v)| k.len() + v.len()).sum();
                    let bytes = 200 + key.object.len() + key.bucket.len() + url.url.len() + headers;
                    u32::try_from(bytes).unwrap_or(u32::MAX)
                })
                .time_to_live(LONGEST_WINDOW)
                .build(),
            asked: Arc::default(),
            misses: Arc::default(),
        }
    }
}

impl ReadReuse {
    /// The URL of `key`, signed by `sign` when this window has none yet; concurrent requests
    /// for the same key wait for one signature.
    pub(super) async fn get_or_sign<F>(
        &self,
        key: ReuseKey,
        sign: F,
    ) -> Result<SignedUrl, SigningError>
    where
        F: Future<Output = Result<SignedUrl, SigningError>>,
    {
        self.asked.fetch_add(1, Ordering::Relaxed);
        let misses = &self.misses;
        let signed = self
            .urls
            .try_get_with(key, async move {
                misses.fetch_add(1, Ordering::Relaxed);
                sign.await.map(Arc::new)
            })
            .await;
        match signed {
            Ok(url) => Ok((*url).clone()),
            Err(error) => Err(shared(&error)),
        }
    }

    /// The URL of `key` if this window has one (if not, [`Self::insert`] it once signed).
    pub(super) async fn get(&self, key: &ReuseKey) -> Option<SignedUrl> {
        self.asked.fetch_add(1, Ordering::Relaxed);
        let url = self.urls.get(key).await?;
        Some((*url).clone())
    }

    /// Keeps `url`, signed for `key`, for the rest of its window.
    pub(super) async fn insert(&self, key: ReuseKey, url: &SignedUrl) {
        self.misses.fetch_add(1, Ordering::Relaxed);
        self.urls.insert(key, Arc::new(url.clone())).await;
    }

    /// Signatures made for reusable reads, and reads answered without one.
    pub(super) fn counts(&self) -> (u64, u64) {
        let misses = self.misses.load(Ordering::Relaxed);
        let asked = self.asked.load(Ordering::Relaxed);
        (misses, asked.saturating_sub(misses))
    }
}

/// A signing error shared by every waiter of one signature, as its own value.
fn shared(error: &SigningError) -> SigningError {
    match error {
        SigningError::UnsupportedByBackend(why) => SigningError::UnsupportedByBackend(why.clone()),
        SigningError::Unavailable(why) => SigningError::Unavailable(why.clone()),
        other => SigningError::Backend(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::{BucketName, Expiry, ObjectName};
    use time::macros::datetime;

    fn read(method: ObjectMethod, window: u32) -> ObjectUrl {
        let mut url = ObjectUrl::new(
            method,
            BucketName::parse("bucket").expect("bucket"),
            ObjectName::parse("a/b.png").expect("object"),
            Expiry::from_secs(900).expect("expiry"),
        );
        url.reuse_window = window;
        url
    }

    #[test]
    fn windows_start_on_multiples_of_their_length() {
        let now = datetime!(2026-11-25 10:00:59.999 UTC);
        assert_eq!(
            window_start(now, 60),
            Some(datetime!(2026-11-25 10:00:00 UTC))
        );
        assert_eq!(
            window_start(datetime!(2026-11-25 10:01:00 UTC), 60),
            Some(datetime!(2026-11-25 10:01:00 UTC))
        );
        // 1795600859 s since the epoch; the multiple of 7 at or before it is 1795600856.
        assert_eq!(now.unix_timestamp(), 1_795_600_859);
        assert_eq!(
            window_start(now, 7).map(OffsetDateTime::unix_timestamp),
            Some(1_795_600_856)
        );
        assert_eq!(window_start(now, 0), None);
        // Before the epoch too: rounded down, never up.
        assert_eq!(
            window_start(datetime!(1969-12-31 23:59:59 UTC), 60),
            Some(datetime!(1969-12-31 23:59:00 UTC))
        );
    }

    #[test]
    fn only_plain_reads_are_reused() {
        let now = datetime!(2026-11-25 10:00:30 UTC);
        let get = ReuseKey::of(&read(ObjectMethod::Get, 60), now, || 0);
        let head = ReuseKey::of(&read(ObjectMethod::Head, 60), now, || 0);
        assert!(get.is_some() && head.is_some());
        assert_ne!(get.map(|k| k.0), head.map(|k| k.0));
        for method in [
            ObjectMethod::Put,
            ObjectMethod::Delete,
            ObjectMethod::Resumable,
            ObjectMethod::Post,
        ] {
            assert!(
                ReuseKey::of(&read(method, 60), now, || 0).is_none(),
                "{method:?}"
            );
        }
        assert!(ReuseKey::of(&read(ObjectMethod::Get, 0), now, || 0).is_none());
        let mut part = read(ObjectMethod::Get, 60);
        part.query.push(("partNumber".into(), "1".into()));
        assert!(ReuseKey::of(&part, now, || 0).is_none());
    }

    #[test]
    fn what_is_signed_tells_keys_apart() {
        let now = datetime!(2026-11-25 10:00:30 UTC);
        let key = |url: &ObjectUrl, generation| ReuseKey::of(url, now, || generation).map(|k| k.0);
        let plain = read(ObjectMethod::Get, 60);
        let mut typed = plain.clone();
        typed.response_content_type = Some("image/png".into());
        let mut shown = plain.clone();
        shown.response_content_disposition = Some("attachment".into());
        let mut longer = plain.clone();
        longer.expiry = Expiry::from_secs(901).expect("expiry");
        let mut other = plain.clone();
        other.object = ObjectName::parse("a/b.png ").expect("object");
        let keys = [
            key(&plain, 0),
            key(&typed, 0),
            key(&shown, 0),
            key(&longer, 0),
            key(&other, 0),
            key(&plain, 1),
        ];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
        // The same read a second later in the same window: the same key, the same time.
        let later = ReuseKey::of(&plain, now + time::Duration::seconds(29), || 0);
        assert_eq!(later, ReuseKey::of(&plain, now, || 0));
    }
}
