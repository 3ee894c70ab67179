//! Keyless signing: the IAM Credentials `signBlob` API signs as the service account, with an
//! access token from the metadata server.
//!
//! IAM caps `signBlob` per project (60,000 calls a minute by default) and each call is a round
//! trip of tens of milliseconds. So calls are paced to `BROKER_IAM_QUOTA_PER_MINUTE` (this
//! replica's share of the quota: a batch queues rather than exceeds it), and the number in
//! flight follows Little's law — the pace times the measured latency, with headroom — under a
//! ceiling that halves when IAM answers 429 anyway (someone else spends the quota too) and grows
//! back by one per round trip. Calls are retried with exponential backoff on 429, 5xx and
//! transport errors, so a throttled call waits instead of failing a client. Over TLS the HTTP
//! client speaks HTTP/2 (ALPN), so every call in flight shares one connection.

use super::metadata::MetadataServer;
use crate::signing::SigningError;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use governor::{DefaultDirectRateLimiter, Quota};
use serde::Deserialize;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Attempts per signature, the first included.
const ATTEMPTS: u32 = 6;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Calls in flight before any latency is known.
const START_IN_FLIGHT: f64 = 8.0;
/// In flight = pace × latency × this: room for latency to vary without starving the pace.
const HEADROOM: f64 = 1.5;

/// Signs blobs as `email` through IAM Credentials at `base`.
#[derive(Debug)]
pub struct IamSigner {
    http: reqwest::Client,
    base: String,
    email: String,
    metadata: Arc<MetadataServer>,
    throttle: Throttle,
}

/// What IAM was asked, for metrics and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IamCounts {
    /// Calls sent, retries included.
    pub calls: u64,
    /// Answers of 429 (retried).
    pub throttled: u64,
    /// The most calls in flight at once.
    pub most_in_flight: usize,
}

impl IamSigner {
    /// Paced to `quota_per_minute` calls; at most `max_in_flight` in flight at once.
    pub fn new(
        base: &str,
        email: String,
        metadata: Arc<MetadataServer>,
        http: reqwest::Client,
        max_in_flight: usize,
        quota_per_minute: u32,
    ) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            email,
            metadata,
            throttle: Throttle::new(max_in_flight, quota_per_minute),
        }
    }

    /// The service account that signs.
    pub fn email(&self) -> &str {
        &self.email
    }

    /// The metadata server whose tokens the calls carry.
    pub fn metadata(&self) -> &Arc<MetadataServer> {
        &self.metadata
    }

    /// What was sent so far.
    pub fn counts(&self) -> IamCounts {
        self.throttle.counts()
    }

    /// The RSA-SHA256 signature of `payload` by the service account's Google-managed key.
    pub async fn sign_blob(&self, payload: &[u8]) -> Result<Vec<u8>, SigningError> {
        let url = format!(
            "{}/v1/projects/-/serviceAccounts/{}:signBlob",
            self.base, self.email
        );
        let body = serde_json::json!({ "payload": STANDARD.encode(payload) });
        let mut backoff = FIRST_BACKOFF;
        let mut last = String::new();
        for attempt in 1..=ATTEMPTS {
            if attempt > 1 {
                tokio::time::sleep(jitter(backoff)).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            let token = match self.metadata.access_token().await {
                Ok(token) => token,
                Err(err) => {
                    last = err.to_string();
                    continue;
                }
            };
            let call = self.throttle.call().await;
            let parts = &crate::telemetry::COMPONENTS;
            let started = std::time::Instant::now();
            let sent = self.http.post(&url).bearer_auth(token).json(&body).send();
            let sent = sent.await;
            parts
                .keyless_call_seconds
                .observe(started.elapsed().as_secs_f64());
            let response = match sent {
                Ok(response) => response,
                Err(err) => {
                    parts.keyless_call_failures.inc();
                    call.done(Outcome::Failed);
                    last = format!("signBlob: {err}");
                    continue;
                }
            };
            let status = response.status();
            if !status.is_success() {
                parts.keyless_call_failures.inc();
            }
            call.done(match status.as_u16() {
                429 => Outcome::Throttled,
                _ if status.is_success() => Outcome::Answered,
                _ => Outcome::Failed,
            });
            if status.is_success() {
                #[derive(Deserialize)]
                #[serde(rename_all = "camelCase")]
                struct Signed {
                    signed_blob: String,
                }
                let signed: Signed = response
                    .json()
                    .await
                    .map_err(|e| SigningError::Unavailable(format!("signBlob answer: {e}")))?;
                return STANDARD
                    .decode(signed.signed_blob)
                    .map_err(|e| SigningError::Unavailable(format!("signBlob answer: {e}")));
            }
            let text = response.text().await.unwrap_or_default();
            last = format!(
                "signBlob answered {status}: {}",
                text.chars().take(200).collect::<String>()
            );
            match status.as_u16() {
                401 => self.metadata.forget_token().await,
                429 | 500 | 502 | 503 | 504 => {}
                // 400, 403 (no Token Creator role), 404: retrying will not help.
                _ => break,
            }
        }
        tracing::warn!(error = %last, "keyless signing failed");
        Err(SigningError::Unavailable(last))
    }
}

/// How a call ended, for the throttle.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Answered,
    Throttled,
    Failed,
}

/// The pace (the quota) and the number in flight (Little's law under an AIMD ceiling).
#[derive(Debug)]
struct Throttle {
    pace: DefaultDirectRateLimiter,
    per_second: f64,
    max: usize,
    state: Mutex<Flight>,
    freed: Notify,
}

#[derive(Debug)]
struct Flight {
    in_flight: usize,
    /// Smoothed latency of answered calls, in seconds (none yet: 0).
    latency: f64,
    /// Halved on a 429, +1 per round trip otherwise.
    ceiling: f64,
    calls: u64,
    throttled: u64,
    most_in_flight: usize,
}

impl Flight {
    /// Calls allowed in flight now.
    fn limit(&self, per_second: f64, max: usize) -> usize {
        let little = if self.latency > 0.0 {
            (per_second * self.latency * HEADROOM).ceil() + 1.0
        } else {
            START_IN_FLIGHT
        };
        (little.min(self.ceiling) as usize).clamp(1, max)
    }
}

impl Throttle {
    fn new(max: usize, quota_per_minute: u32) -> Self {
        let quota = NonZeroU32::new(quota_per_minute).unwrap_or(NonZeroU32::MIN);
        let max = max.max(1);
        // Evenly spaced at 98% of the quota, with a burst of a hundredth of a second's calls so
        // that a call woken a timer tick late does not lose its turn: no second, however the
        // quota counts it, sees more than 99% of the quota.
        let paced = (u64::from(quota.get()) * 98 / 100).max(1);
        let paced = u32::try_from(paced)
            .ok()
            .and_then(NonZeroU32::new)
            .unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(quota.get() / 6000).unwrap_or(NonZeroU32::MIN);
        Self {
            pace: governor::RateLimiter::direct(Quota::per_minute(paced).allow_burst(burst)),
            per_second: f64::from(quota.get()) / 60.0,
            max,
            state: Mutex::new(Flight {
                in_flight: 0,
                latency: 0.0,
                ceiling: max as f64,
                calls: 0,
                throttled: 0,
                most_in_flight: 0,
            }),
            freed: Notify::new(),
        }
    }

    /// Waits for room in flight, then for the call's turn in the pace.
    async fn call(&self) -> Call<'_> {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            {
                let mut flight = self.lock();
                if flight.in_flight < flight.limit(self.per_second, self.max) {
                    flight.in_flight += 1;
                    flight.calls += 1;
                    flight.most_in_flight = flight.most_in_flight.max(flight.in_flight);
                    break;
                }
            }
            freed.await;
        }
        self.pace.until_ready().await;
        Call {
            throttle: self,
            started: Instant::now(),
            open: true,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Flight> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn finish(&self, started: Instant, outcome: Outcome) {
        {
            let mut flight = self.lock();
            flight.in_flight -= 1;
            match outcome {
                Outcome::Answered => {
                    let took = started.elapsed().as_secs_f64();
                    flight.latency = if flight.latency == 0.0 {
                        took
                    } else {
                        flight.latency * 0.875 + took * 0.125
                    };
                    // One more per round trip: +1/ceiling per answer.
                    flight.ceiling = (flight.ceiling + 1.0 / flight.ceiling).min(self.max as f64);
                }
                Outcome::Throttled => {
                    flight.throttled += 1;
                    flight.ceiling = (flight.ceiling / 2.0).max(1.0);
                }
                Outcome::Failed => {}
            }
        }
        self.freed.notify_waiters();
    }

    fn counts(&self) -> IamCounts {
        let flight = self.lock();
        IamCounts {
            calls: flight.calls,
            throttled: flight.throttled,
            most_in_flight: flight.most_in_flight,
        }
    }
}

/// A call in flight; ends as failed if dropped unfinished (the request was cancelled).
struct Call<'a> {
    throttle: &'a Throttle,
    started: Instant,
    open: bool,
}

impl Call<'_> {
    fn done(mut self, outcome: Outcome) {
        self.open = false;
        self.throttle.finish(self.started, outcome);
    }
}

impl Drop for Call<'_> {
    fn drop(&mut self) {
        if self.open {
            self.throttle.finish(self.started, Outcome::Failed);
        }
    }
}

/// Between half and all of `backoff`, so that retries of many requests spread out.
fn jitter(backoff: Duration) -> Duration {
    let mut byte = [0u8; 1];
    let _ = aws_lc_rs::rand::fill(&mut byte);
    backoff / 2 + backoff * u32::from(byte[0]) / 512
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flight(latency: f64, ceiling: f64) -> Flight {
        Flight {
            in_flight: 0,
            latency,
            ceiling,
            calls: 0,
            throttled: 0,
            most_in_flight: 0,
        }
    }

    #[test]
    fn in_flight_follows_the_pace_times_the_latency() {
        // 1,000 calls a second of 50 ms each: 50 in flight keep pace; 1.5× headroom, +1.
        assert_eq!(flight(0.050, 1024.0).limit(1000.0, 1024), 76);
        // Faster answers need fewer.
        assert_eq!(flight(0.010, 1024.0).limit(1000.0, 1024), 16);
        // The ceiling (after 429s) and the setting bound it; never below one.
        assert_eq!(flight(0.050, 20.0).limit(1000.0, 1024), 20);
        assert_eq!(flight(0.050, 1024.0).limit(1000.0, 32), 32);
        assert_eq!(
            flight(0.0001, 1024.0).limit(1.0, 1024),
            2,
            "one, and one spare"
        );
        assert_eq!(flight(0.050, 0.2).limit(1000.0, 1024), 1, "never below one");
        // Before any answer: a modest start.
        assert_eq!(flight(0.0, 1024.0).limit(1000.0, 1024), 8);
    }

    #[tokio::test]
    async fn throttled_calls_halve_the_ceiling_and_answers_grow_it_back() {
        let throttle = Throttle::new(64, 6_000_000);
        for _ in 0..3 {
            throttle.call().await.done(Outcome::Throttled);
        }
        assert_eq!(throttle.lock().ceiling, 8.0);
        for _ in 0..8 {
            throttle.call().await.done(Outcome::Answered);
        }
        let ceiling = throttle.lock().ceiling;
        assert!(
            ceiling > 8.9 && ceiling < 9.1,
            "one more after a round trip: {ceiling}"
        );
        assert_eq!(throttle.counts().throttled, 3);
        assert_eq!(throttle.lock().in_flight, 0);
    }

    #[tokio::test]
    async fn a_dropped_call_frees_its_place() {
        let throttle = Throttle::new(1, 6_000_000);
        drop(throttle.call().await);
        let again = tokio::time::timeout(Duration::from_secs(5), throttle.call()).await;
        assert!(again.is_ok(), "the place of a cancelled call was kept");
    }

    #[tokio::test]
    async fn calls_keep_to_the_quota() {
        // 6,000 a minute, paced at 98%: one every ~10.2 ms, however many wait.
        let throttle = Arc::new(Throttle::new(64, 6_000));
        let started = Instant::now();
        let calls = (0..51).map(|_| {
            let throttle = throttle.clone();
            tokio::spawn(async move { throttle.call().await.done(Outcome::Answered) })
        });
        futures::future::join_all(calls).await;
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(490), "{took:?}");
    }
}
