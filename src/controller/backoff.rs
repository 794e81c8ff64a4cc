//! When to come back: exponential backoff per object after failures, and a resync interval
//! spread per object so thousands of resources do not all resync in the same second. Pure.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::Duration;

/// The delay after the `failures`-th consecutive failure (1 for the first): `base` doubling
/// each time, never more than `max`.
pub fn backoff_delay(failures: u32, base: Duration, max: Duration) -> Duration {
    let exponent = failures.saturating_sub(1).min(30);
    base.checked_mul(1u32 << exponent).unwrap_or(max).min(max)
}

/// `resync` moved by up to ±10% by a hash of the object's uid: stable for one object,
/// spread across objects.
pub fn jittered(resync: Duration, uid: &str) -> Duration {
    let mut hasher = DefaultHasher::new();
    uid.hash(&mut hasher);
    // -1000..=1000 per mille of 10%.
    let spread = (hasher.finish() % 2001) as i64 - 1000;
    let tenth = resync.as_millis() as i64 / 10;
    let millis = resync.as_millis() as i64 + tenth * spread / 1000;
    Duration::from_millis(millis.max(1) as u64)
}

/// `resync`, or `due` when that is sooner; never under a second, so a deadline that has
/// just passed (or a clock behind) does not spin. Pure.
pub fn resync_or_sooner(resync: Duration, due: Option<Duration>) -> Duration {
    due.map_or(resync, |d| resync.min(d.max(Duration::from_secs(1))))
}

/// The wait for a deadline in `due`, never under a second (as in [`resync_or_sooner`]). Pure.
pub fn until_deadline(due: Option<Duration>) -> Option<Duration> {
    due.map(|d| d.max(Duration::from_secs(1)))
}

/// Consecutive failures per object (by uid), reset on success: kube's `error_policy` is not
/// told about successes, so the reconcile wrapper does that here.
#[derive(Default)]
pub struct Failures {
    counts: Mutex<HashMap<String, u32>>,
}

impl Failures {
    /// Counts one more failure and returns the new count.
    pub fn record(&self, uid: &str) -> u32 {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(uid.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    pub fn reset(&self, uid: &str) {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(uid);
    }

    pub fn count(&self, uid: &str) -> u32 {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(uid)
            .copied()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sooner_deadline_shortens_the_resync_but_never_below_a_second() {
        let five_min = Duration::from_secs(300);
        assert_eq!(resync_or_sooner(five_min, None), five_min);
        let due = Duration::from_secs(42);
        assert_eq!(resync_or_sooner(five_min, Some(due)), due);
        assert_eq!(
            resync_or_sooner(five_min, Some(Duration::from_secs(3600))),
            five_min
        );
        assert_eq!(
            resync_or_sooner(five_min, Some(Duration::ZERO)),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn a_deadline_is_kept_but_never_under_a_second() {
        assert_eq!(until_deadline(None), None);
        let far = Duration::from_secs(30 * 24 * 3600);
        assert_eq!(until_deadline(Some(far)), Some(far));
        assert_eq!(
            until_deadline(Some(Duration::ZERO)),
            Some(Duration::from_secs(1))
        );
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let base = Duration::from_secs(1);
        let max = Duration::from_secs(300);
        let delays: Vec<u64> = (1..=10)
            .map(|n| backoff_delay(n, base, max).as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]);
        assert_eq!(backoff_delay(u32::MAX, base, max), max);
        assert_eq!(backoff_delay(0, base, max), base);
    }

    #[test]
    fn jitter_is_stable_per_object_and_within_ten_percent() {
        let resync = Duration::from_secs(300);
        let a = jittered(resync, "uid-a");
        assert_eq!(a, jittered(resync, "uid-a"));
        let all: Vec<Duration> = (0..200)
            .map(|i| jittered(resync, &format!("uid-{i}")))
            .collect();
        assert!(
            all.iter()
                .all(|d| *d >= Duration::from_secs(270) && *d <= Duration::from_secs(330))
        );
        let distinct: std::collections::BTreeSet<_> = all.iter().collect();
        assert!(distinct.len() > 100, "spread: {}", distinct.len());
    }

    #[test]
    fn failures_count_up_and_reset() {
        let f = Failures::default();
        assert_eq!(f.record("a"), 1);
        assert_eq!(f.record("a"), 2);
        assert_eq!(f.record("b"), 1);
        f.reset("a");
        assert_eq!(f.count("a"), 0);
        assert_eq!(f.count("b"), 1);
    }
}
