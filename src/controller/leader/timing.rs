//! The timing of leader election, all from the lease duration D, as pure functions of the
//! Lease and the clock: when to renew, when to look, when to stop taking work, when to
//! cancel.

use std::time::{Duration, SystemTime};

use k8s_openapi::api::coordination::v1::Lease;

/// The shortest lease duration [`Timings`] work with (renewal every second, with slack).
pub const MIN_LEASE_DURATION: Duration = Duration::from_secs(3);

/// Everything timed from the lease duration D. Pure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timings {
    /// D in whole seconds (what the Lease records).
    pub duration_secs: u64,
    /// The lease manager renews when this much of the lease is left (D - D/3).
    pub grace_secs: u64,
    /// Time between renewals (D/3).
    pub renew_period: Duration,
    /// Slack before a renewal is looked for, and between looks while it is overdue (D/20).
    pub recheck: Duration,
    /// How often a standby reads the Lease to see it released or expired (D/10).
    pub standby_check: Duration,
    /// Stop taking work when less than this is left (D/2).
    pub step_down: Duration,
    /// Cancel the reconciles in flight when less than this is left (D/10).
    pub hard_stop: Duration,
    /// The longest one reconcile may take (D/3), so a graceful stop finishes between
    /// `step_down` and `hard_stop`.
    pub reconcile_bound: Duration,
}

impl Timings {
    pub fn new(lease_duration: Duration) -> Timings {
        let d = lease_duration.as_secs().max(MIN_LEASE_DURATION.as_secs());
        let period = (d / 3).max(1);
        let whole = Duration::from_secs(d);
        Timings {
            duration_secs: d,
            grace_secs: d - period,
            renew_period: Duration::from_secs(period),
            recheck: whole / 20,
            standby_check: whole / 10,
            step_down: whole / 2,
            hard_stop: whole / 10,
            reconcile_bound: whole / 3,
        }
    }

    fn duration(&self) -> Duration {
        Duration::from_secs(self.duration_secs)
    }
}

/// Where this replica stands, from `held_until` and the clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Holds the lease with time to spare: runs the controllers.
    Lead,
    /// Holds it, but a renewal is overdue: takes no new work.
    Draining,
    /// Does not hold it (or it may have expired): nothing may run.
    Out,
}

/// Pure.
pub fn standing(held_until: Option<SystemTime>, now: SystemTime, t: &Timings) -> Standing {
    let Some(until) = held_until else {
        return Standing::Out;
    };
    let left = until.duration_since(now).unwrap_or(Duration::ZERO);
    if left > t.step_down {
        Standing::Lead
    } else if left > t.hard_stop {
        Standing::Draining
    } else {
        Standing::Out
    }
}

/// How long until [`standing`] changes by the clock alone (None: only a new `held_until`
/// changes it). Pure.
pub fn next_change(
    held_until: Option<SystemTime>,
    now: SystemTime,
    t: &Timings,
) -> Option<Duration> {
    let left = held_until?.duration_since(now).unwrap_or(Duration::ZERO);
    let threshold = match standing(held_until, now, t) {
        Standing::Lead => t.step_down,
        Standing::Draining => t.hard_stop,
        Standing::Out => return None,
    };
    // Just past the threshold, so the next look sees the new standing.
    Some(left.saturating_sub(threshold) + Duration::from_millis(1))
}

/// When to read the Lease next: just after the expected renewal while holding it, every
/// `standby_check` while not. Pure.
pub fn next_check(held_until: Option<SystemTime>, now: SystemTime, t: &Timings) -> Duration {
    let Some(until) = held_until else {
        return t.standby_check;
    };
    let renewed = until.checked_sub(t.duration()).unwrap_or(until);
    let expected = renewed + t.renew_period + t.recheck;
    expected
        .duration_since(now)
        .unwrap_or(t.recheck)
        .max(t.recheck)
}

/// Whether nobody holds `lease` (released, expired, or not created yet), so that it can be
/// taken now. Pure.
pub fn is_free(lease: Option<&Lease>, now: SystemTime, t: &Timings) -> bool {
    let Some(spec) = lease.and_then(|l| l.spec.as_ref()) else {
        return true;
    };
    if spec.holder_identity.is_none() {
        return true;
    }
    let Some(renewed) = spec.renew_time.as_ref().map(|r| SystemTime::from(r.0)) else {
        return true;
    };
    let duration = spec
        .lease_duration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map(Duration::from_secs)
        .unwrap_or(t.duration());
    renewed + duration < now
}

/// Until when `lease` is held by `identity`: its `renewTime` plus its duration (None: held by
/// someone else, or by nobody). Pure.
pub fn held_until(lease: Option<&Lease>, identity: &str, t: &Timings) -> Option<SystemTime> {
    let spec = lease?.spec.as_ref()?;
    if spec.holder_identity.as_deref() != Some(identity) {
        return None;
    }
    let renewed: SystemTime = spec.renew_time.as_ref()?.0.into();
    let duration = spec
        .lease_duration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map(Duration::from_secs)
        .unwrap_or(t.duration());
    Some(renewed + duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// Locks the budget: renewals three times per lease, a reconcile bound that fits
    /// between stepping down and cancelling, and grace below the duration (the crate
    /// panics otherwise).
    #[test]
    fn timings_fit_inside_the_lease() {
        for d in [1, 3, 4, 5, 15, 30, 60, 137] {
            let t = Timings::new(secs(d));
            assert!(t.duration_secs >= 3);
            assert!(t.grace_secs > 0 && t.grace_secs < t.duration_secs, "{t:?}");
            assert_eq!(t.renew_period, secs(t.duration_secs - t.grace_secs));
            assert!(
                t.reconcile_bound <= t.step_down - t.hard_stop,
                "a graceful stop must finish before the hard stop: {t:?}"
            );
            // A renewal on time is confirmed before the replica would step down.
            let confirmed_by = t.renew_period + t.recheck;
            assert!(t.duration() - confirmed_by > t.step_down, "{t:?}");
        }
        let t = Timings::new(secs(30));
        assert_eq!((t.grace_secs, t.reconcile_bound), (20, secs(10)));
    }

    #[test]
    fn standing_follows_the_time_left() {
        let t = Timings::new(secs(30));
        let now = SystemTime::UNIX_EPOCH + secs(1_000);
        assert_eq!(standing(None, now, &t), Standing::Out);
        assert_eq!(standing(Some(now + secs(20)), now, &t), Standing::Lead);
        assert_eq!(standing(Some(now + secs(15)), now, &t), Standing::Draining);
        assert_eq!(standing(Some(now + secs(4)), now, &t), Standing::Draining);
        assert_eq!(standing(Some(now + secs(3)), now, &t), Standing::Out);
        assert_eq!(standing(Some(now - secs(3)), now, &t), Standing::Out);
        // Leading now, draining 5s later, out 12s after that.
        let until = Some(now + secs(20));
        assert_eq!(
            next_change(until, now, &t),
            Some(secs(5) + Duration::from_millis(1))
        );
        let later = now + secs(5) + Duration::from_millis(1);
        assert_eq!(standing(until, later, &t), Standing::Draining);
        assert_eq!(next_change(until, later, &t), Some(secs(12)));
        assert_eq!(next_change(None, now, &t), None);
    }

    /// Locks when the Lease is read: just after the renewal is due, then every recheck
    /// while it is overdue, and every tenth of the lease while standing by.
    #[test]
    fn the_lease_is_read_after_each_expected_renewal() {
        let t = Timings::new(secs(30));
        let renewed = SystemTime::UNIX_EPOCH + secs(1_000);
        let until = Some(renewed + secs(30));
        assert_eq!(next_check(until, renewed, &t), secs(10) + t.recheck);
        assert_eq!(next_check(until, renewed + secs(20), &t), t.recheck);
        assert_eq!(next_check(None, renewed, &t), secs(3));
    }

    #[test]
    fn the_hold_is_read_from_the_lease() {
        let t = Timings::new(secs(30));
        let lease: Lease = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "servicedb-leader"},
            "spec": {"holderIdentity": "pod-a", "renewTime": "2026-12-01T10:00:00.000000Z",
                     "leaseDurationSeconds": 15},
        }))
        .unwrap();
        let renewed: SystemTime = "2026-12-01T10:00:00Z"
            .parse::<k8s_openapi::jiff::Timestamp>()
            .unwrap()
            .into();
        assert_eq!(
            held_until(Some(&lease), "pod-a", &t),
            Some(renewed + secs(15))
        );
        assert_eq!(held_until(Some(&lease), "pod-b", &t), None);
        assert_eq!(held_until(None, "pod-a", &t), None);

        let now = renewed + secs(10);
        assert!(!is_free(Some(&lease), now, &t), "held until renewal + 15s");
        assert!(is_free(Some(&lease), renewed + secs(16), &t), "expired");
        let mut released = lease.clone();
        released.spec.as_mut().unwrap().holder_identity = None;
        assert!(is_free(Some(&released), now, &t));
        assert!(is_free(None, now, &t), "not created yet");
    }
}
