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

mod timing;

pub use timing::{
    MIN_LEASE_DURATION, Standing, Timings, held_until, is_free, next_change, next_check, standing,
};

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

/// How long a win settles before it is confirmed (longer than the lease manager's random
/// wait before a forced release).
const WIN_SETTLE: Duration = Duration::from_millis(1500);

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
        let just_won = tokio::select! {
            () = tokio::time::sleep(wait) => false,
            () = won.notified() => true,
        };
        if just_won {
            // Two standbys taking an expired lease race: the lease manager force-releases it
            // with an unconditional patch after a random wait (under a second), which can
            // overwrite the other's fresh win. Read the holder only once that window has
            // passed, so the loser never starts its controllers.
            tokio::time::sleep(WIN_SETTLE.min(Duration::from_secs(t.duration_secs) / 4)).await;
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

    #[test]
    fn identities_differ_without_a_pod_name() {
        if std::env::var("POD_NAME").is_ok() {
            return;
        }
        assert_ne!(default_identity(), default_identity());
    }
}
