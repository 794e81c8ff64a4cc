//! Leader election on a `coordination.k8s.io` Lease (kube-lease-manager): of the replicas
//! sharing a lease, only the holder runs the controllers; the others stand by (and are
//! Ready) until they win it.
//!
//! The lease manager says when the lease is won or lost, but not whether each renewal went
//! through: a leader cut off from the API server would go on believing it leads while a
//! standby takes over. So this replica also reads the Lease after each expected renewal and
//! keeps `held_until` (its last confirmed `renewTime` + the duration). With less than half
//! the duration left it stops taking work (graceful shutdown of the controllers, whose
//! reconciles are bounded to a third of the duration); with a tenth left it cancels what is
//! still running. Either way nothing acts once the lease could have expired, and it leads
//! again as soon as it holds the lease again.
//!
//! A replica that stops (SIGTERM) releases the lease; a standby, which reads the Lease every
//! tenth of the duration, sees it free and takes it at once (the lease manager alone would
//! only look again when the old lease would have expired). One that crashes leaves it to
//! expire.

use std::future::Future;
use std::time::{Duration, SystemTime};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError, LeaseParams};
use tokio::sync::{Mutex, Notify, oneshot, watch};

use super::health::{Health, Role};
use super::metrics::Metrics;

/// The shortest lease duration [`Timings`] work with (renewal every second, with slack).
pub const MIN_LEASE_DURATION: Duration = Duration::from_secs(3);

/// Which lease this replica competes for, and as whom.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderElection {
    pub lease_name: String,
    /// Namespace of the Lease: the operator's own.
    pub namespace: String,
    /// This replica's identity in the Lease's `holderIdentity` (the pod name).
    pub identity: String,
    /// How long a lease lasts without renewal; a crashed leader's lease is taken over
    /// after at most this long. Whole seconds, at least [`MIN_LEASE_DURATION`].
    pub lease_duration: Duration,
}

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

/// This replica's identity: the pod name (POD_NAME), else the host name with a random
/// suffix (two local runs on one machine must differ).
pub fn default_identity() -> String {
    if let Some(pod) = std::env::var("POD_NAME").ok().filter(|p| !p.is_empty()) {
        return pod;
    }
    use rand::RngExt;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "servicedb".to_string());
    let suffix: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(8)
        .map(|c| char::from(c).to_ascii_lowercase())
        .collect();
    format!("{host}-{suffix}")
}

/// Runs `controllers` only while this replica holds the lease, until `shutdown`; then
/// waits for the controllers to stop and releases the lease. `controllers` is called once
/// per term with the signal that ends it.
pub async fn run<C, F>(
    client: kube::Client,
    election: &LeaderElection,
    health: &Health,
    metrics: &Metrics,
    shutdown: Shared<BoxFuture<'static, ()>>,
    controllers: C,
) -> Result<(), LeaseManagerError>
where
    C: Fn(Shared<BoxFuture<'static, ()>>) -> F,
    F: Future<Output = ()>,
{
    let t = Timings::new(election.lease_duration);
    // LeaseParams::new names the field manager after the identity (the builder's
    // with_identity keeps a random one) and checks grace < duration, which Timings ensures.
    let params = LeaseParams::new(&election.identity, t.duration_secs, t.grace_secs);
    let build = || {
        LeaseManagerBuilder::new(client.clone(), &election.lease_name)
            .with_namespace(&election.namespace)
            .with_parameters(params.clone())
            .build()
    };
    let manager = Mutex::new(build().await?);
    let leases: Api<Lease> = Api::namespaced(client.clone(), &election.namespace);
    let (hold_tx, hold_rx) = watch::channel::<Option<SystemTime>>(None);
    let (won, free) = (Notify::new(), Notify::new());
    health.set_role(Role::Standby);
    metrics.set_leader(false);
    tracing::info!(
        lease = %election.lease_name,
        namespace = %election.namespace,
        identity = %election.identity,
        duration_secs = t.duration_secs,
        "waiting for the leader lease"
    );
    tokio::select! {
        () = elect(&manager, build, &hold_tx, &won, &free) => {}
        () = confirm(&leases, election, &t, &hold_tx, &won, &free) => {}
        () = terms(hold_rx, &t, health, metrics, shutdown, &controllers) => {}
    }
    if let Err(e) = manager.lock().await.release().await {
        tracing::warn!(error = %e, "could not release the leader lease; it expires by itself");
    } else {
        tracing::info!(lease = %election.lease_name, "released the leader lease");
    }
    Ok(())
}

enum Election {
    Changed(Result<bool, LeaseManagerError>),
    Free,
}

/// Follows the lease manager: a win asks for a confirming read, a loss ends the hold. When a
/// standby sees the lease free, a new manager (with no cached holder) takes it at once.
async fn elect<B, Fut>(
    manager: &Mutex<LeaseManager>,
    build: B,
    hold: &watch::Sender<Option<SystemTime>>,
    won: &Notify,
    free: &Notify,
) where
    B: Fn() -> Fut,
    Fut: Future<Output = Result<LeaseManager, LeaseManagerError>>,
{
    loop {
        let event = {
            let current = manager.lock().await;
            tokio::select! {
                r = current.changed() => Election::Changed(r),
                () = free.notified() => Election::Free,
            }
        };
        match event {
            Election::Free => match build().await {
                Ok(fresh) => {
                    tracing::debug!("the leader lease is free: trying to take it");
                    *manager.lock().await = fresh;
                }
                Err(e) => tracing::warn!(error = %e, "leader lease: will retry"),
            },
            Election::Changed(Ok(true)) => {
                tracing::info!("won the leader lease");
                won.notify_one();
            }
            Election::Changed(Ok(false)) => {
                tracing::info!("lost the leader lease");
                hold.send_replace(None);
            }
            Election::Changed(Err(e)) => {
                tracing::warn!(error = %e, "leader lease: will retry");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Reads the Lease after each expected renewal (and after a win) and records until when
/// this replica holds it; a failed read leaves the last confirmed time, which runs out. Not
/// holding it, it says when the lease is free.
async fn confirm(
    leases: &Api<Lease>,
    election: &LeaderElection,
    t: &Timings,
    hold: &watch::Sender<Option<SystemTime>>,
    won: &Notify,
    free: &Notify,
) {
    loop {
        let wait = next_check(*hold.borrow(), SystemTime::now(), t);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = won.notified() => {}
        }
        match leases.get_opt(&election.lease_name).await {
            Ok(lease) => {
                let held = held_until(lease.as_ref(), &election.identity, t);
                if held.is_none() && is_free(lease.as_ref(), SystemTime::now(), t) {
                    free.notify_one();
                }
                hold.send_replace(held);
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the leader lease"),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Ended {
    Shutdown,
    Lost,
    ByThemselves,
}

/// One term per won lease: start the controllers, stop them when the hold runs low or on
/// shutdown, cancel them if the hold runs out first.
async fn terms<C, F>(
    mut hold: watch::Receiver<Option<SystemTime>>,
    t: &Timings,
    health: &Health,
    metrics: &Metrics,
    shutdown: Shared<BoxFuture<'static, ()>>,
    controllers: &C,
) where
    C: Fn(Shared<BoxFuture<'static, ()>>) -> F,
    F: Future<Output = ()>,
{
    loop {
        tokio::select! {
            () = shutdown.clone() => return,
            () = until(&mut hold, t, |s| s == Standing::Lead) => {}
        }
        tracing::info!("leading: starting the controllers");
        health.set_role(Role::Leader);
        metrics.set_leader(true);
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let stop = async move {
            let _ = stop_rx.await;
        }
        .boxed()
        .shared();
        let term = controllers(stop);
        tokio::pin!(term);
        let ended = tokio::select! {
            () = &mut term => Ended::ByThemselves,
            () = shutdown.clone() => Ended::Shutdown,
            () = until(&mut hold, t, |s| s != Standing::Lead) => Ended::Lost,
        };
        let _ = stop_tx.send(());
        if ended != Ended::ByThemselves {
            if ended == Ended::Lost {
                tracing::warn!("the leader lease is lost or unconfirmed: stopping the controllers");
            }
            tokio::select! {
                () = &mut term => {}
                () = until(&mut hold, t, |s| s == Standing::Out) => {
                    tracing::warn!("the leader lease ran out before the reconciles in flight finished: they were cancelled");
                }
            }
        }
        health.set_role(Role::Standby);
        metrics.set_leader(false);
        if ended == Ended::Shutdown {
            return;
        }
        tracing::info!("standing by for the leader lease");
    }
}

/// Resolves once `done` holds for this replica's standing.
async fn until(
    hold: &mut watch::Receiver<Option<SystemTime>>,
    t: &Timings,
    done: impl Fn(Standing) -> bool,
) {
    loop {
        let held = *hold.borrow_and_update();
        let now = SystemTime::now();
        if done(standing(held, now, t)) {
            return;
        }
        let changed = async {
            if hold.changed().await.is_err() {
                // The sender lives as long as `run`; nothing changes any more.
                std::future::pending::<()>().await;
            }
        };
        match next_change(held, now, t) {
            Some(d) => {
                tokio::select! {
                    () = tokio::time::sleep(d) => {}
                    () = changed => {}
                }
            }
            None => changed.await,
        }
    }
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

    #[test]
    fn identities_differ_without_a_pod_name() {
        if std::env::var("POD_NAME").is_ok() {
            return;
        }
        assert_ne!(default_identity(), default_identity());
    }
}
