//! `AudioKey`: one cloud API key used for speech-to-text (or text-to-speech), with its own windows:
//! requests per minute and day, calls at once, and audio seconds per hour and per day (Groq's
//! free tier counts all of these per model, apart from the chat models' windows).
//!
//! Admission happens in the caller's task (as for GPU nodes): one lock takes room in every window or
//! none, the reservation is written to the usage ledger and flushed before the request goes out (a
//! restart cannot spend a window twice), and the permit is settled to the real audio length, or
//! released when the call never reached the provider. A 429 cools the key down (until the daily reset
//! when the provider says the day is spent), 401/403 retires it, and repeated server failures rest it
//! for a while.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::providers::ProviderError;
use crate::quota::{AudioWindow, Blocked, Cost, Limits, Quota, ReservationId};
use crate::secret::Secret;
use crate::storage::UsageLedger;

/// A provider's published limits for its audio models, per key (`stt_limits` in the config).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioLimits {
    /// Requests per minute.
    pub rpm: Option<u32>,
    /// Requests per day.
    pub rpd: Option<u32>,
    /// Audio seconds per sliding hour.
    pub audio_seconds_per_hour: Option<u64>,
    /// Audio seconds per day.
    pub audio_seconds_per_day: Option<u64>,
    /// Calls at once.
    pub concurrency: Option<u32>,
    /// Shortest length billed per request, seconds (Groq bills at least 10 s).
    pub min_billed_s: Option<u32>,
}

/// One audio key as configured.
#[derive(Debug, Clone)]
pub struct AudioKeySpec {
    /// Redacted id (`groq#1`), as for the chat keys.
    pub id: String,
    /// Provider name.
    pub provider: String,
    /// API root, ending in `/v1` (or the provider's equivalent).
    pub base_url: String,
    /// The model (`whisper-large-v3-turbo`).
    pub model: String,
    /// The voice, for speech synthesis.
    pub voice: Option<String>,
    /// The key.
    pub secret: Secret,
    /// Lower is tried first.
    pub priority: u32,
    /// The windows.
    pub limits: AudioLimits,
    /// Daily reset time zone.
    pub tz: chrono_tz::Tz,
    /// One call's timeout.
    pub timeout: Duration,
}

/// The key's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AudioKeyHealth {
    /// Taking requests.
    Healthy,
    /// Resting after a 429 or repeated failures.
    CoolingDown,
    /// Refused by the provider (401/403).
    Invalid,
}

/// What `/api/system_status` shows of an audio key (no secret in it).
#[derive(Debug, Clone, Serialize)]
pub struct AudioKeyStatus {
    /// Redacted id.
    pub id: String,
    /// Provider.
    pub provider: String,
    /// Model.
    pub model: String,
    /// Health.
    pub health: AudioKeyHealth,
    /// Requests in the last minute.
    pub rpm_used: u64,
    /// Requests today.
    pub rpd_used: u64,
    /// Audio seconds in the last hour.
    pub audio_seconds_hour: u64,
    /// Audio seconds today.
    pub audio_seconds_day: u64,
    /// The limits.
    pub limits: AudioLimits,
    /// Calls in flight.
    pub in_flight: u32,
}

struct Windows {
    requests: Quota,
    audio: AudioWindow,
}

/// One key with its windows and health.
pub struct AudioKey {
    spec: AudioKeySpec,
    /// Ledger scope (`groq#1:stt`); the audio window is stored under `<scope>:audio`.
    scope: String,
    windows: Mutex<Windows>,
    cooldown_until: Mutex<Option<Instant>>,
    invalid: AtomicBool,
    failures: AtomicU32,
    ledger: Arc<dyn UsageLedger>,
}

impl std::fmt::Debug for AudioKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioKey")
            .field("id", &self.spec.id)
            .finish()
    }
}

/// Why a key did not admit a request now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioRefusal {
    /// Room comes at this instant.
    Until(Instant),
    /// Not today (daily window, invalid key, request larger than a window).
    NotToday,
    /// Calls at once are at the limit.
    Busy,
}

/// Failures in a row that rest a key.
const REST_AFTER: u32 = 3;
/// How long a key rests after them.
const REST_FOR: Duration = Duration::from_secs(15);
/// Cool-down after a 429 that gave no wait.
const DEFAULT_RETRY: Duration = Duration::from_secs(10);

impl AudioKey {
    /// A key with its windows restored from the ledger under `scope`.
    pub fn restored(spec: AudioKeySpec, scope: String, ledger: Arc<dyn UsageLedger>) -> Self {
        let l = spec.limits;
        let limits = Limits {
            rpm: l.rpm,
            rpd: l.rpd,
            tpm: None,
            tpd: None,
            concurrency: l.concurrency,
            ..Limits::default()
        };
        let (now, wall) = (Instant::now(), Utc::now());
        let mut requests = Quota::new(limits, spec.tz);
        let mut audio =
            AudioWindow::new(l.audio_seconds_per_hour, l.audio_seconds_per_day, spec.tz);
        match ledger.load(&scope) {
            Ok(Some(rec)) => requests.restore(&rec, now, wall),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(scope = %scope, error = %e, "audio usage unreadable; starting empty")
            }
        }
        match ledger.load(&format!("{scope}:audio")) {
            Ok(Some(rec)) => audio.restore(&rec, now, wall),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(scope = %scope, error = %e, "audio seconds unreadable; starting empty")
            }
        }
        Self {
            spec,
            scope,
            windows: Mutex::new(Windows { requests, audio }),
            cooldown_until: Mutex::new(None),
            invalid: AtomicBool::new(false),
            failures: AtomicU32::new(0),
            ledger,
        }
    }

    /// The key as configured.
    pub fn spec(&self) -> &AudioKeySpec {
        &self.spec
    }

    fn windows(&self) -> std::sync::MutexGuard<'_, Windows> {
        self.windows.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cooldown(&self) -> Option<Instant> {
        let mut c = self
            .cooldown_until
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if c.is_some_and(|u| Instant::now() >= u) {
            *c = None;
        }
        *c
    }

    fn billed(&self, seconds: f64) -> u64 {
        let min = f64::from(self.spec.limits.min_billed_s.unwrap_or(0));
        seconds.max(min).ceil().max(1.0) as u64
    }

    /// Takes room for one call of `seconds` of audio in every window, made durable before it returns.
    pub async fn admit(self: &Arc<Self>, seconds: f64) -> Result<AudioPermit, AudioRefusal> {
        if self.invalid.load(Ordering::Acquire) {
            return Err(AudioRefusal::NotToday);
        }
        if let Some(until) = self.cooldown() {
            return Err(AudioRefusal::Until(until));
        }
        let billed = self.billed(seconds);
        let (now, wall) = (Instant::now(), Utc::now());
        let (id, records) = {
            let mut w = self.windows();
            if let Err(at) = w.audio.check(now, wall, billed) {
                return Err(at.map_or(AudioRefusal::NotToday, AudioRefusal::Until));
            }
            let id = match w.requests.try_reserve(now, wall, Cost::ZERO) {
                Ok(id) => id,
                Err(Blocked::Until(at) | Blocked::CoolingDown(at)) => {
                    return Err(AudioRefusal::Until(at))
                }
                Err(Blocked::Concurrency) => return Err(AudioRefusal::Busy),
                Err(Blocked::Day(_) | Blocked::TooLarge { .. }) => {
                    return Err(AudioRefusal::NotToday)
                }
            };
            w.audio.add(now, wall, billed);
            (
                id,
                (w.requests.record(now, wall), w.audio.record(now, wall)),
            )
        };
        let permit = AudioPermit {
            key: self.clone(),
            id,
            billed,
            open: true,
        };
        let stored = self.ledger.store(&self.scope, &records.0).and_then(|_| {
            self.ledger
                .store(&format!("{}:audio", self.scope), &records.1)
        });
        match stored {
            Ok(()) => {
                if let Err(e) = self.ledger.flush().await {
                    tracing::warn!(key = %self.spec.id, error = %e, "audio usage flush failed");
                    return Err(AudioRefusal::Busy); // the permit's drop gives the room back
                }
            }
            Err(e) => {
                tracing::warn!(key = %self.spec.id, error = %e, "audio usage not stored");
                return Err(AudioRefusal::Busy);
            }
        }
        Ok(permit)
    }

    fn on_failure(&self, e: &ProviderError) {
        match e {
            ProviderError::RateLimited {
                retry_after,
                day_exhausted,
            } => {
                let now = Instant::now();
                let until = if *day_exhausted {
                    let wall = Utc::now();
                    let reset = Quota::new(Limits::default(), self.spec.tz).next_reset(wall);
                    now + (reset - wall).to_std().unwrap_or(DEFAULT_RETRY)
                } else {
                    now + retry_after.unwrap_or(DEFAULT_RETRY)
                };
                self.cool_until(until);
            }
            ProviderError::InvalidKey { status } => {
                tracing::error!(key = %self.spec.id, status, "audio key refused by its provider; not used again");
                self.invalid.store(true, Ordering::Release);
            }
            e if e.is_breaker_failure()
                && self.failures.fetch_add(1, Ordering::AcqRel) + 1 >= REST_AFTER =>
            {
                self.failures.store(0, Ordering::Release);
                self.cool_until(Instant::now() + REST_FOR);
            }
            _ => {}
        }
    }

    fn cool_until(&self, until: Instant) {
        let mut c = self
            .cooldown_until
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if c.is_none_or(|u| u < until) {
            *c = Some(until);
        }
    }

    /// The key's status.
    pub fn status(&self) -> AudioKeyStatus {
        let (now, wall) = (Instant::now(), Utc::now());
        let health = if self.invalid.load(Ordering::Acquire) {
            AudioKeyHealth::Invalid
        } else if self.cooldown().is_some() {
            AudioKeyHealth::CoolingDown
        } else {
            AudioKeyHealth::Healthy
        };
        let mut w = self.windows();
        let u = w.requests.usage(now, wall);
        let (hour, day) = w.audio.used(now, wall);
        AudioKeyStatus {
            id: self.spec.id.clone(),
            provider: self.spec.provider.clone(),
            model: self.spec.model.clone(),
            health,
            rpm_used: u.rpm_used,
            rpd_used: u.rpd_used,
            audio_seconds_hour: hour,
            audio_seconds_day: day,
            limits: self.spec.limits,
            in_flight: u.in_flight,
        }
    }

    /// Whether the key may be asked now (healthy and not cooling down).
    pub fn usable(&self) -> bool {
        !self.invalid.load(Ordering::Acquire) && self.cooldown().is_none()
    }
}

/// Room in a key's windows for one call. Settle it with [`AudioPermit::succeeded`] or
/// [`AudioPermit::failed`]; dropped, it gives the room back (the call never went out).
pub struct AudioPermit {
    key: Arc<AudioKey>,
    id: ReservationId,
    billed: u64,
    open: bool,
}

impl AudioPermit {
    /// The key.
    pub fn key(&self) -> &Arc<AudioKey> {
        &self.key
    }

    /// The provider answered: the request and its audio stay counted.
    pub fn succeeded(mut self) {
        self.open = false;
        self.key.failures.store(0, Ordering::Release);
        self.key.windows().requests.settle(self.id, Cost::ZERO);
    }

    /// The call failed after it was sent: the request stays counted (the provider counted it), and
    /// the failure is reported to the key's health.
    pub fn failed(mut self, e: &ProviderError) {
        self.open = false;
        self.key.on_failure(e);
        self.key.windows().requests.release(self.id, true);
    }
}

impl Drop for AudioPermit {
    fn drop(&mut self) {
        if self.open {
            let mut w = self.key.windows();
            w.requests.release(self.id, false);
            // The audio seconds of an unsent call are not given back: the hour window only grows;
            // at most one call's length is lost from it.
            let _ = self.billed;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::storage::NullLedger;

    fn key(limits: AudioLimits) -> Arc<AudioKey> {
        Arc::new(AudioKey::restored(
            AudioKeySpec {
                id: "groq#1".into(),
                provider: "groq".into(),
                base_url: "http://127.0.0.1:9/v1".into(),
                model: "whisper-large-v3-turbo".into(),
                voice: None,
                secret: Secret::new("gsk_secret"),
                priority: 1,
                limits,
                tz: chrono_tz::UTC,
                timeout: Duration::from_secs(5),
            },
            "groq#1:stt".into(),
            Arc::new(NullLedger),
        ))
    }

    #[tokio::test]
    async fn audio_seconds_are_counted_with_the_minimum_billed() {
        let k = key(AudioLimits {
            audio_seconds_per_hour: Some(25),
            min_billed_s: Some(10),
            ..AudioLimits::default()
        });
        k.admit(3.0).await.unwrap().succeeded();
        k.admit(3.0).await.unwrap().succeeded();
        // 20 of 25 used (two calls billed 10 s each): a third does not fit this hour.
        assert!(matches!(k.admit(3.0).await, Err(AudioRefusal::Until(_))));
        let s = k.status();
        assert_eq!((s.audio_seconds_hour, s.rpd_used), (20, 2));
        assert!(!format!("{k:?}").contains("gsk_secret"));
    }

    #[tokio::test]
    async fn rate_limits_cool_down_and_refusals_retire() {
        let k = key(AudioLimits {
            rpm: Some(1),
            ..AudioLimits::default()
        });
        let p = k.admit(1.0).await.unwrap();
        assert!(
            matches!(k.admit(1.0).await, Err(AudioRefusal::Until(_))),
            "rpm 1"
        );
        p.failed(&ProviderError::RateLimited {
            retry_after: Some(Duration::from_secs(30)),
            day_exhausted: false,
        });
        assert_eq!(k.status().health, AudioKeyHealth::CoolingDown);
        let k = key(AudioLimits::default());
        k.admit(1.0)
            .await
            .unwrap()
            .failed(&ProviderError::InvalidKey { status: 401 });
        assert_eq!(k.admit(1.0).await.err(), Some(AudioRefusal::NotToday));
        // An unsent call gives its request back.
        let k = key(AudioLimits {
            rpd: Some(1),
            ..AudioLimits::default()
        });
        drop(k.admit(1.0).await.unwrap());
        assert!(k.admit(1.0).await.is_ok());
    }
}
