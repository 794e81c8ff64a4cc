//! The operator's HTTP endpoint: `/healthz` and `/readyz` for the kubelet's probes and
//! `/metrics` for Prometheus. Alive means the process serves HTTP; ready means the CRDs were
//! found and this replica either runs the controllers (leader, or no leader election) or
//! stands by for the lease. Readiness never depends on leadership, so a standby replica is
//! Ready too and rolling updates go on; the body says which it is.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::routing::get;

use super::metrics::{self, Metrics};

/// What this replica is doing, as `/readyz` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Not yet through the start-up checks.
    Starting,
    /// Running the controllers without leader election.
    Running,
    /// Holding the leader lease and running the controllers.
    Leader,
    /// Waiting for the leader lease; the controllers are stopped.
    Standby,
}

impl Role {
    fn from_u8(v: u8) -> Role {
        match v {
            1 => Role::Running,
            2 => Role::Leader,
            3 => Role::Standby,
            _ => Role::Starting,
        }
    }

    fn as_u8(self) -> u8 {
        match self {
            Role::Starting => 0,
            Role::Running => 1,
            Role::Leader => 2,
            Role::Standby => 3,
        }
    }

    /// The `/readyz` answer: status code and body. Pure.
    pub fn readiness(self) -> (StatusCode, &'static str) {
        match self {
            Role::Starting => (StatusCode::SERVICE_UNAVAILABLE, "starting\n"),
            Role::Running => (StatusCode::OK, "ready\n"),
            Role::Leader => (StatusCode::OK, "ready: leader\n"),
            Role::Standby => (
                StatusCode::OK,
                "ready: standby (waiting for the leader lease)\n",
            ),
        }
    }
}

/// This replica's [`Role`], and how many of its controllers' caches are still syncing;
/// shared by `run` and the HTTP server.
#[derive(Clone, Debug, Default)]
pub struct Health {
    role: Arc<AtomicU8>,
    syncing: Arc<AtomicUsize>,
}

impl Health {
    pub fn set_role(&self, role: Role) {
        self.role.store(role.as_u8(), Ordering::Release);
    }

    pub fn role(&self) -> Role {
        Role::from_u8(self.role.load(Ordering::Acquire))
    }

    /// The controllers are starting with `caches` stores to fill.
    pub fn start_syncing(&self, caches: usize) {
        self.syncing.store(caches, Ordering::Release);
    }

    /// One controller's cache holds its first complete list.
    pub fn cache_synced(&self) {
        let _ = self
            .syncing
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// Marks the cache synced once `store` has its first complete list (never, if the
    /// controller stops first).
    pub fn synced_when<K>(
        &self,
        store: kube::runtime::reflector::Store<K>,
    ) -> impl Future<Output = ()> + Send + 'static
    where
        K: kube::Resource + Clone + Send + Sync + 'static,
        K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
    {
        let health = self.clone();
        async move {
            if store.wait_until_ready().await.is_ok() {
                health.cache_synced();
            }
        }
    }

    /// The `/readyz` answer: a replica running the controllers is ready once their caches
    /// have synced (before, it would act on partial lists); a standby is ready at once.
    pub fn readiness(&self) -> (StatusCode, &'static str) {
        let role = self.role();
        let syncing = self.syncing.load(Ordering::Acquire) > 0;
        match role {
            Role::Running | Role::Leader if syncing => (
                StatusCode::SERVICE_UNAVAILABLE,
                "starting: the controllers' caches are syncing\n",
            ),
            _ => role.readiness(),
        }
    }

    pub fn is_ready(&self) -> bool {
        self.readiness().0 == StatusCode::OK
    }
}

/// The routes, apart from the listener so tests can drive them.
pub fn routes(health: Health, metrics: Metrics) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let answer = health.readiness();
                async move { answer }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let text = metrics.encode();
                async move { ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text) }
            }),
        )
}

/// Serves the probes and metrics on `addr` until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    health: Health,
    metrics: Metrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    serve_on(listener, health, metrics, shutdown).await
}

/// [`serve`] on a listener already bound (tests bind port 0 and read the address).
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    health: Health,
    metrics: Metrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "serving /healthz, /readyz and /metrics");
    axum::serve(listener, routes(health, metrics))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Locks "ready once the caches have synced": a leader (or a single replica) whose
    /// controllers are still listing is not ready; a standby is.
    #[test]
    fn a_running_replica_is_ready_once_its_caches_have_synced() {
        let h = Health::default();
        h.set_role(Role::Leader);
        h.start_syncing(2);
        assert_eq!(h.readiness().0, StatusCode::SERVICE_UNAVAILABLE);
        h.cache_synced();
        assert!(!h.is_ready());
        h.set_role(Role::Standby);
        assert!(h.is_ready(), "a standby does not wait for caches");
        h.set_role(Role::Running);
        h.cache_synced();
        h.cache_synced();
        assert_eq!(h.readiness(), (StatusCode::OK, "ready\n"));
    }

    /// Locks "a standby is Ready": only start-up is not, and the body names the role.
    #[test]
    fn every_role_but_starting_is_ready() {
        let h = Health::default();
        assert_eq!(h.role(), Role::Starting);
        assert!(!h.is_ready());
        for role in [Role::Running, Role::Leader, Role::Standby] {
            h.set_role(role);
            assert_eq!(h.role(), role);
            assert!(h.is_ready());
            assert_eq!(role.readiness().0, StatusCode::OK);
        }
        assert!(Role::Standby.readiness().1.contains("standby"));
        assert!(Role::Leader.readiness().1.contains("leader"));
        assert_eq!(
            Role::Starting.readiness().0,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
