//! `[quotas]` per owner and `[server] max_concurrent_turns`: what a turn or an upload must
//! get past before it starts. A turn holds a [`TurnPermit`] for as long as it runs; dropping
//! the permit gives its place back.
//!
//! Turns per minute is a token bucket (bursts up to the limit, one more every 60/limit s);
//! upload bytes are counted per UTC day since the server started. Owners that hold nothing
//! are forgotten, so the table stays as small as the set of active owners.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Owner;
use crate::config::QuotasConfig;

/// How long a refused turn is told to wait when it is refused for turns still running.
const BUSY_RETRY_AFTER: Duration = Duration::from_secs(5);
/// Owners kept before the idle ones are swept out.
const SWEEP_ABOVE: usize = 1024;

/// Why something was refused, and when to try again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct QuotaExceeded {
    /// The whole server is full (503), not this owner's quota (429).
    pub server_wide: bool,
    pub message: String,
    pub retry_after_secs: u64,
}

#[derive(Default)]
struct OwnerUsage {
    running_turns: u32,
    /// Turn tokens left, and when they were last topped up.
    bucket: Option<(f64, Instant)>,
    /// (UTC day number, bytes uploaded that day).
    uploads: (i64, u64),
}

impl OwnerUsage {
    /// The turn tokens in the bucket at `now`: one more every `per_token`, at most `capacity`.
    fn tokens(&self, capacity: f64, now: Instant, per_token: Duration) -> f64 {
        let (tokens, at) = self.bucket.unwrap_or((capacity, now));
        (tokens + now.saturating_duration_since(at).as_secs_f64() / per_token.as_secs_f64())
            .min(capacity)
    }

    fn holds_nothing(&self, today: i64, capacity: f64, now: Instant, per_token: Duration) -> bool {
        self.running_turns == 0
            && self.tokens(capacity, now, per_token) >= capacity
            && (self.uploads.0 != today || self.uploads.1 == 0)
    }
}

#[derive(Default)]
struct Usage {
    running_turns: usize,
    owners: HashMap<Owner, OwnerUsage>,
}

pub struct Quotas {
    limits: QuotasConfig,
    max_concurrent_turns: usize,
    usage: Mutex<Usage>,
}

/// A running turn's place; dropping it frees the place.
pub struct TurnPermit {
    quotas: Arc<Quotas>,
    owner: Owner,
}

impl Drop for TurnPermit {
    fn drop(&mut self) {
        let mut usage = self.quotas.lock();
        usage.running_turns = usage.running_turns.saturating_sub(1);
        if let Some(owner) = usage.owners.get_mut(&self.owner) {
            owner.running_turns = owner.running_turns.saturating_sub(1);
        }
    }
}

impl Quotas {
    pub fn new(limits: QuotasConfig, max_concurrent_turns: usize) -> Arc<Self> {
        Arc::new(Self {
            limits,
            max_concurrent_turns,
            usage: Mutex::new(Usage::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Usage> {
        self.usage
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn per_token(&self) -> Duration {
        Duration::from_secs_f64(60.0 / f64::from(self.limits.turns_per_minute.max(1)))
    }

    /// A place for one more turn of `owner`, or why not.
    pub fn start_turn(self: &Arc<Self>, owner: &Owner) -> Result<TurnPermit, QuotaExceeded> {
        let now = Instant::now();
        let mut usage = self.lock();
        if usage.running_turns >= self.max_concurrent_turns {
            return Err(QuotaExceeded {
                server_wide: true,
                message: format!(
                    "the server is running its limit of {} turns at once ([server] \
                     max_concurrent_turns); try again shortly",
                    self.max_concurrent_turns
                ),
                retry_after_secs: BUSY_RETRY_AFTER.as_secs(),
            });
        }
        self.sweep(&mut usage, now);
        let limits = &self.limits;
        let per_token = self.per_token();
        let entry = usage.owners.entry(owner.clone()).or_default();
        if limits.concurrent_turns > 0 && entry.running_turns >= limits.concurrent_turns {
            return Err(QuotaExceeded {
                server_wide: false,
                message: format!(
                    "quota concurrent_turns: {} turns of yours are already running; wait for \
                     one to end or stop it",
                    limits.concurrent_turns
                ),
                retry_after_secs: BUSY_RETRY_AFTER.as_secs(),
            });
        }
        if limits.turns_per_minute > 0 {
            let capacity = f64::from(limits.turns_per_minute);
            let refilled = entry.tokens(capacity, now, per_token);
            if refilled < 1.0 {
                let wait = (1.0 - refilled) * per_token.as_secs_f64();
                entry.bucket = Some((refilled, now));
                return Err(QuotaExceeded {
                    server_wide: false,
                    message: format!(
                        "quota turns_per_minute: at most {} turns a minute",
                        limits.turns_per_minute
                    ),
                    retry_after_secs: wait.ceil().max(1.0) as u64,
                });
            }
            entry.bucket = Some((refilled - 1.0, now));
        }
        entry.running_turns += 1;
        usage.running_turns += 1;
        Ok(TurnPermit {
            quotas: self.clone(),
            owner: owner.clone(),
        })
    }

    /// Counts `bytes` more uploaded by `owner` today, or refuses them (nothing is counted).
    pub fn charge_upload(&self, owner: &Owner, bytes: u64) -> Result<(), QuotaExceeded> {
        let limit_mb = self.limits.upload_mb_per_day;
        if limit_mb == 0 {
            return Ok(());
        }
        let limit = limit_mb.saturating_mul(1024 * 1024);
        let (today, seconds_left) = utc_day();
        let mut usage = self.lock();
        let entry = usage.owners.entry(owner.clone()).or_default();
        if entry.uploads.0 != today {
            entry.uploads = (today, 0);
        }
        if entry.uploads.1.saturating_add(bytes) > limit {
            return Err(QuotaExceeded {
                server_wide: false,
                message: format!(
                    "quota upload_mb_per_day: at most {limit_mb} MiB of uploads a day \
                     ({} MiB used today)",
                    entry.uploads.1 / (1024 * 1024)
                ),
                retry_after_secs: seconds_left,
            });
        }
        entry.uploads.1 += bytes;
        Ok(())
    }

    /// Gives back `bytes` of an upload that was not kept.
    pub fn refund_upload(&self, owner: &Owner, bytes: u64) {
        let (today, _) = utc_day();
        if let Some(entry) = self.lock().owners.get_mut(owner) {
            if entry.uploads.0 == today {
                entry.uploads.1 = entry.uploads.1.saturating_sub(bytes);
            }
        }
    }

    /// Turns running now, all owners together.
    pub fn running_turns(&self) -> usize {
        self.lock().running_turns
    }

    fn sweep(&self, usage: &mut Usage, now: Instant) {
        if usage.owners.len() <= SWEEP_ABOVE {
            return;
        }
        let (today, _) = utc_day();
        let capacity = f64::from(self.limits.turns_per_minute);
        let per_token = self.per_token();
        usage
            .owners
            .retain(|_, owner| !owner.holds_nothing(today, capacity, now, per_token));
    }
}

/// Today's UTC day number and the seconds until the next one.
fn utc_day() -> (i64, u64) {
    let now = chrono::Utc::now().timestamp();
    let day = now.div_euclid(86_400);
    (day, (86_400 - now.rem_euclid(86_400)) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quotas(concurrent: u32, per_minute: u32, upload_mb: u64, server: usize) -> Arc<Quotas> {
        Quotas::new(
            QuotasConfig {
                concurrent_turns: concurrent,
                live_sessions: 0,
                turns_per_minute: per_minute,
                upload_mb_per_day: upload_mb,
            },
            server,
        )
    }

    #[test]
    fn concurrent_turns_are_counted_per_owner_and_freed_on_drop() {
        let q = quotas(2, 0, 0, 100);
        let (a, b) = (Owner::user("a"), Owner::user("b"));
        let first = q.start_turn(&a).unwrap();
        let _second = q.start_turn(&a).unwrap();
        let refused = q.start_turn(&a).err().unwrap();
        assert!(!refused.server_wide && refused.message.contains("concurrent_turns"));
        assert!(q.start_turn(&b).is_ok(), "another owner is not limited");
        drop(first);
        assert!(q.start_turn(&a).is_ok());
    }

    #[test]
    fn the_server_wide_cap_is_a_different_refusal() {
        let q = quotas(0, 0, 0, 1);
        let _held = q.start_turn(&Owner::user("a")).unwrap();
        let refused = q.start_turn(&Owner::user("b")).err().unwrap();
        assert!(refused.server_wide && refused.retry_after_secs > 0);
        assert_eq!(q.running_turns(), 1);
    }

    #[test]
    fn turns_per_minute_allow_a_burst_then_say_when() {
        let q = quotas(0, 3, 0, 100);
        let a = Owner::user("a");
        for _ in 0..3 {
            drop(q.start_turn(&a).unwrap());
        }
        let refused = q.start_turn(&a).err().unwrap();
        assert!(refused.message.contains("turns_per_minute"));
        assert!((1..=20).contains(&refused.retry_after_secs), "{refused:?}");
    }

    #[test]
    fn uploads_are_refused_past_the_daily_bytes_and_not_counted() {
        let q = quotas(0, 0, 1, 100);
        let a = Owner::user("a");
        q.charge_upload(&a, 700 * 1024).unwrap();
        let refused = q.charge_upload(&a, 400 * 1024).err().unwrap();
        assert!(refused.message.contains("upload_mb_per_day"));
        q.charge_upload(&a, 300 * 1024).unwrap();
        assert!(q.charge_upload(&Owner::user("b"), 1024 * 1024).is_ok());
    }
}
