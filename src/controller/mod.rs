//! `servicedb run`: the Kubernetes controllers. One thin driver per kind
//! ([`database_server`], [`service_database`]); each reconcile is a pipeline of steps whose
//! decisions are pure functions, separate from the API and SQL calls that carry them out.
//!
//! [`run`] starts both controllers against a `kube::Client` and returns when `shutdown`
//! resolves and the reconciles in flight have finished; tests call it in-process against
//! the fake API server. With [`Config::leader_election`] the controllers run only while
//! this replica holds the leader lease ([`leader`]).
pub mod backoff;
pub mod context;
pub mod database_server;
pub mod events;
pub mod freshness;
pub mod health;
pub mod leader;
pub mod metrics;
pub mod migration;
pub mod paced_resync;
pub mod provisioning;
pub mod rollout;
pub mod service_database;
pub mod status_patch;
pub mod tenant;
pub mod triggers;

use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use kube::api::{Api, ListParams};

use crate::api::{DatabaseServer, ServiceDatabase};
pub use context::Context;

/// How the controllers run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Watch ServiceDatabases (and their Secrets and ConfigMaps) in this namespace only;
    /// None: all namespaces. DatabaseServers are cluster-scoped and always watched.
    pub namespace: Option<String>,
    /// How often every resource is checked against the server even without a change
    /// (drift repair), spread by ±10% per resource. For Tenants a least interval: their
    /// checks only take free reconcile slots (`paced_resync`), so under overload they stretch.
    pub resync: Duration,
    /// How long deletion may wait for an unreachable server before the finalizer is
    /// removed anyway (with a Warning Event saying what was left behind).
    pub finalizer_timeout: Duration,
    /// The operator's own namespace: the only one DatabaseServers' admin and CA Secrets may
    /// live in (and the only one whose Secrets the DatabaseServer controller watches), so
    /// admin credentials never sit next to the services. None: the client's default
    /// namespace (in a pod, its service account's).
    pub operator_namespace: Option<String>,
    /// Identifies this installation in the servers' ownership catalogs.
    pub installation_id: Option<String>,
    /// First delay after a transient failure; doubles per consecutive failure.
    pub backoff_base: Duration,
    /// Longest delay between retries.
    pub backoff_max: Duration,
    /// Longest a single reconcile may take before it is abandoned and retried (a hung SQL
    /// call must not hold up shutdown; every step is safe to stop at any await).
    pub reconcile_timeout: Duration,
    /// Reconciles running at once per kind (one object is never reconciled twice at once);
    /// Tenants wait for theirs first come, first served, those not reconciled yet one at a
    /// time (`paced_resync`; 0 is unbounded, with no wait).
    pub concurrency: u16,
    /// The image migration Jobs run unless a ServiceDatabase names its own: the
    /// operator's own (its `servicedb migrate` runs in the Job).
    pub migration_image: String,
    /// The Events' reporting instance (the pod name in a cluster).
    pub instance: Option<String>,
    /// What this replica is doing (for `/readyz`).
    pub health: health::Health,
    /// The process's metrics (served on `/metrics`).
    pub metrics: metrics::Metrics,
    /// Run the controllers only while holding this lease; None: always (one replica).
    pub leader_election: Option<leader::LeaderElection>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            namespace: None,
            operator_namespace: None,
            resync: Duration::from_secs(300),
            finalizer_timeout: Duration::from_secs(600),
            installation_id: None,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(300),
            reconcile_timeout: Duration::from_secs(60),
            concurrency: 16,
            migration_image: default_migration_image(),
            instance: None,
            health: health::Health::default(),
            metrics: metrics::Metrics::default(),
            leader_election: None,
        }
    }
}

/// The image this version of servicedb is published as.
pub fn default_migration_image() -> String {
    format!("ghcr.io/servicedb/servicedb:{}", env!("CARGO_PKG_VERSION"))
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "the servicedb CustomResourceDefinitions are not installed in this cluster \
         (install them with `servicedb crd | kubectl apply -f -`): {0}"
    )]
    CrdsMissing(kube::Error),
    #[error("cannot reach the Kubernetes API server: {0}")]
    Kube(kube::Error),
    #[error(
        "cannot derive this installation's id from the kube-system namespace (set \
         --installation-id or SERVICEDB_INSTALLATION_ID, one value per cluster): {0}"
    )]
    InstallationId(kube::Error),
    #[error(
        "cannot take part in leader election on Lease {namespace}/{name} (check that the \
         namespace exists and the operator may get, create and patch leases there): {source}"
    )]
    LeaderElection {
        namespace: String,
        name: String,
        source: kube_lease_manager::LeaseManagerError,
    },
}

/// Runs the DatabaseServer and ServiceDatabase controllers until `shutdown` resolves (with
/// leader election: during each term this replica holds the lease); then stops taking new
/// work, lets the reconciles in flight finish, and returns.
pub async fn run(
    client: kube::Client,
    mut config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    check_crds(&client, config.namespace.as_deref()).await?;
    let installation = installation_id(&client, config.installation_id.as_deref()).await?;
    if let Some(election) = &config.leader_election {
        // A deposed leader must be done before its lease can expire.
        let bound = leader::Timings::new(election.lease_duration).reconcile_bound;
        config.reconcile_timeout = config.reconcile_timeout.min(bound);
    }
    tracing::info!(
        namespace = config.namespace.as_deref().unwrap_or("(all)"),
        resync = ?config.resync,
        installation = %installation,
        reconcile_timeout = ?config.reconcile_timeout,
        "starting controllers"
    );
    let (health, metrics, election) = (
        config.health.clone(),
        config.metrics.clone(),
        config.leader_election.clone(),
    );
    let ctx = std::sync::Arc::new(Context::new(client.clone(), config, installation));
    let shutdown = shutdown.boxed().shared();
    match election {
        None => {
            health.set_role(health::Role::Running);
            metrics.set_leader(true);
            controllers(ctx, shutdown).await;
        }
        Some(election) => {
            leader::run(client, &election, &health, &metrics, shutdown, |stop| {
                controllers(ctx.clone(), stop)
            })
            .await
            .map_err(|source| Error::LeaderElection {
                namespace: election.namespace.clone(),
                name: election.lease_name.clone(),
                source,
            })?;
        }
    }
    tracing::info!("controllers stopped");
    Ok(())
}

/// All controllers, until `stop` resolves and their reconciles in flight have finished.
async fn controllers(ctx: std::sync::Arc<Context>, stop: Shared<BoxFuture<'static, ()>>) {
    // One cache per controller: /readyz waits for all three.
    ctx.config.health.start_syncing(3);
    futures::join!(
        database_server::run(ctx.clone(), stop.clone()),
        service_database::run(ctx.clone(), stop.clone()),
        tenant::run(ctx, stop),
    );
}

/// This installation's id: the one given, else the uid of the cluster's `kube-system`
/// namespace, which is unique per cluster and never changes. Two clusters sharing a
/// PostgreSQL server then never both own a database.
async fn installation_id(client: &kube::Client, given: Option<&str>) -> Result<String, Error> {
    if let Some(id) = given.filter(|id| !id.trim().is_empty()) {
        return Ok(id.trim().to_string());
    }
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let system = namespaces
        .get("kube-system")
        .await
        .map_err(Error::InstallationId)?;
    system
        .metadata
        .uid
        .map(|uid| format!("k8s-{uid}"))
        .ok_or_else(|| {
            Error::InstallationId(kube::Error::Service(
                "the kube-system namespace has no uid".into(),
            ))
        })
}

/// Fails early, with the fix, when the CRDs are missing (the watches would only log).
async fn check_crds(client: &kube::Client, namespace: Option<&str>) -> Result<(), Error> {
    let classify = |e: kube::Error| match &e {
        kube::Error::Api(s) if s.is_not_found() => Error::CrdsMissing(e),
        _ => Error::Kube(e),
    };
    let one = ListParams::default().limit(1);
    Api::<DatabaseServer>::all(client.clone())
        .list_metadata(&one)
        .await
        .map_err(classify)?;
    let sdbs: Api<ServiceDatabase> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    sdbs.list_metadata(&one).await.map_err(classify)?;
    Ok(())
}
