//! Caches of what decisions read, kept correct across replicas: every change to grants,
//! buckets, projects or members is published by triggers (`migrations/0002`) on one channel, and
//! each replica listens and drops what the change affects. While the listener is disconnected
//! nothing is cached or served from cache; on reconnect everything cached is dropped.
//!
//! The replica that makes a change does not wait for its own notification: the API calls
//! [`DecisionCache::changed`] after the change commits and before it answers, so the caller's
//! next request, on this replica, never sees the old answer (read-your-writes). Other replicas
//! learn of it through the notification, within a second.

use super::{AccessContext, BucketRecord, Store, StoreError};
use aws_lc_rs::digest;
use moka::future::Cache;
use sqlx::postgres::PgListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// The channel the triggers publish on.
pub const CHANNEL: &str = "storage_broker_changes";

/// A bucket and a digest of the caller's principals and member keys.
type ContextKey = (String, [u8; 32]);

/// The caches and the state of the change feed.
pub struct DecisionCache {
    contexts: Cache<ContextKey, Arc<AccessContext>>,
    /// Subject → personal bucket.
    personal: Cache<String, BucketRecord>,
    /// Bumped on every change seen: a read that started before a change never fills the cache.
    generation: AtomicU64,
    /// The listener is connected and listening.
    live: AtomicBool,
    /// How long each notification waits before it is applied (fault injection for tests: a
    /// replica so loaded that its own notifications come back late). Zero in service.
    feed_delay_ms: AtomicU64,
}

/// What changed, as the triggers publish it and as the API reports its own changes.
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct Change {
    /// `grant`, `bucket`, `member` or `project`.
    kind: String,
    bucket: Option<String>,
    /// The owner of a personal bucket that changed.
    owner: Option<String>,
    /// The owner is not known: forget every remembered personal bucket.
    #[serde(skip)]
    any_owner: bool,
}

impl Change {
    /// A grant on `bucket` was created, changed or deleted.
    pub fn grant(bucket: &str) -> Self {
        Self {
            kind: "grant".into(),
            bucket: Some(bucket.to_owned()),
            ..Self::default()
        }
    }

    /// Logical bucket `name` was created or deleted; it may have been someone's personal bucket.
    pub fn bucket(name: &str) -> Self {
        Self {
            kind: "bucket".into(),
            bucket: Some(name.to_owned()),
            owner: None,
            any_owner: true,
        }
    }

    /// `owner`'s personal bucket `name` was created or deleted.
    pub fn personal_bucket(name: &str, owner: &str) -> Self {
        Self {
            kind: "bucket".into(),
            bucket: Some(name.to_owned()),
            owner: Some(owner.to_owned()),
            any_owner: false,
        }
    }

    /// A project or its members changed: that reaches into many buckets' decisions.
    pub fn members() -> Self {
        Self {
            kind: "member".into(),
            ..Self::default()
        }
    }
}

impl DecisionCache {
    /// Empty caches, not live until [`listen`](Self::listen) connects.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            contexts: Cache::builder()
                .max_capacity(200_000)
                // A bound on staleness should a notification ever be lost in transit.
                .time_to_live(Duration::from_secs(300))
                .support_invalidation_closures()
                .build(),
            personal: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(300))
                .build(),
            generation: AtomicU64::new(0),
            live: AtomicBool::new(false),
            feed_delay_ms: AtomicU64::new(0),
        })
    }

    /// Applies every notification `delay` after it arrives. For tests: it makes this replica's
    /// own notifications as late as on a loaded machine, deterministically.
    #[doc(hidden)]
    pub fn delay_feed(&self, delay: Duration) {
        let millis = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.feed_delay_ms.store(millis, Ordering::Relaxed);
    }

    /// Whether the change feed is connected (caching is on).
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// Listens for changes on `store`, reconnecting as needed, until the task is aborted.
    pub fn listen(self: &Arc<Self>, store: Store) -> tokio::task::JoinHandle<()> {
        let cache = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(err) = cache.follow(&store).await {
                    tracing::warn!(error = %err, "change feed lost; caching off until it reconnects");
                }
                cache.live.store(false, Ordering::Release);
                crate::telemetry::COMPONENTS.change_feed_connected.set(0);
                cache.drop_everything();
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    }

    async fn follow(&self, store: &Store) -> Result<(), sqlx::Error> {
        let mut listener = PgListener::connect_with(store.session_pool()).await?;
        listener.listen(CHANNEL).await?;
        // Anything may have changed while nobody listened.
        self.drop_everything();
        self.live.store(true, Ordering::Release);
        crate::telemetry::COMPONENTS.change_feed_connected.set(1);
        tracing::info!("change feed listening");
        loop {
            // `None`: the connection was lost; reconnect from the top.
            let Some(notification) = listener.try_recv().await? else {
                return Ok(());
            };
            let delay = self.feed_delay_ms.load(Ordering::Relaxed);
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            self.apply(notification.payload()).await;
        }
    }

    async fn apply(&self, payload: &str) {
        let Ok(change) = serde_json::from_str::<Change>(payload) else {
            tracing::warn!(
                payload,
                "unreadable change notification; dropping every cache"
            );
            self.drop_everything();
            return;
        };
        self.changed(change).await;
    }

    /// Drops what `change` affects, now: the API calls it after each change it commits and
    /// before it answers, so that this replica never serves the old answer afterwards.
    pub async fn changed(&self, change: Change) {
        // First: a read that started before the change must not fill the cache with its result.
        self.generation.fetch_add(1, Ordering::AcqRel);
        match (change.kind.as_str(), change.bucket) {
            ("grant" | "bucket", Some(bucket)) => {
                if let Err(err) = self
                    .contexts
                    .invalidate_entries_if(move |key, _| key.0 == bucket)
                {
                    tracing::error!(error = %err, "cache invalidation failed; dropping every cache");
                    self.drop_everything();
                }
                if let Some(owner) = change.owner {
                    self.personal.invalidate(&owner).await;
                } else if change.any_owner {
                    self.personal.invalidate_all();
                }
            }
            // Memberships and projects reach into many buckets' decisions: drop them all.
            _ => self.contexts.invalidate_all(),
        }
    }

    fn drop_everything(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.contexts.invalidate_all();
        self.personal.invalidate_all();
    }

    /// [`Store::access_context`] through the cache.
    pub async fn access_context(
        &self,
        store: &Store,
        bucket: &str,
        principals: &[String],
        member_keys: &[String],
    ) -> Result<Arc<AccessContext>, StoreError> {
        if !self.is_live() {
            return Ok(Arc::new(
                store
                    .access_context(bucket, principals, member_keys)
                    .await?,
            ));
        }
        let key = (bucket.to_owned(), fingerprint(principals, member_keys));
        if let Some(hit) = self.contexts.get(&key).await {
            return Ok(hit);
        }
        let generation = self.generation.load(Ordering::Acquire);
        let context = Arc::new(
            store
                .access_context(bucket, principals, member_keys)
                .await?,
        );
        if self.is_live() && self.generation.load(Ordering::Acquire) == generation {
            self.contexts.insert(key.clone(), context.clone()).await;
            // A change may have been applied between the check and the insert, after its
            // invalidation ran: then the entry may predate it, and goes.
            if self.generation.load(Ordering::Acquire) != generation {
                self.contexts.invalidate(&key).await;
            }
        }
        Ok(context)
    }

    /// The cached personal bucket of `subject`.
    pub async fn personal_bucket(&self, subject: &str) -> Option<BucketRecord> {
        if self.is_live() {
            self.personal.get(subject).await
        } else {
            None
        }
    }

    /// Remembers `subject`'s personal bucket, read when the generation was `generation`.
    pub async fn remember_personal_bucket(
        &self,
        subject: &str,
        bucket: BucketRecord,
        generation: u64,
    ) {
        if self.is_live() && self.generation.load(Ordering::Acquire) == generation {
            self.personal.insert(subject.to_owned(), bucket).await;
            // As in `access_context`: a change applied meanwhile wins.
            if self.generation.load(Ordering::Acquire) != generation {
                self.personal.invalidate(subject).await;
            }
        }
    }

    /// The current generation, to pass back to [`remember_personal_bucket`](Self::remember_personal_bucket).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

/// SHA-256 over the principals and member keys, each length-prefixed so that no two different
/// lists digest alike.
fn fingerprint(principals: &[String], member_keys: &[String]) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for list in [principals, member_keys] {
        ctx.update(&(list.len() as u64).to_le_bytes());
        for part in list {
            ctx.update(&(part.len() as u64).to_le_bytes());
            ctx.update(part.as_bytes());
        }
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}
