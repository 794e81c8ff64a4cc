//! What every reconcile shares: the client, the one Event recorder (it deduplicates), the
//! registry of connected servers, per-object failure counts for backoff, and the metrics.

use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};

use super::Config;
use super::backoff::{Failures, backoff_delay, jittered, resync_or_sooner};
use super::database_server::registry::ServerRegistry;
use super::freshness::Written;
use super::metrics::Metrics;
use super::rollout::cache::{FleetCache, FleetTenants};

pub struct Context {
    pub client: kube::Client,
    pub config: Config,
    /// This installation's id in the servers' ownership catalogs.
    pub installation: String,
    pub recorder: Recorder,
    pub servers: ServerRegistry,
    pub failures: Failures,
    pub metrics: Metrics,
    /// The versions of its own status writes, so no reconcile starts from an older cache.
    pub written: Written,
    /// The Tenants, as the ServiceDatabase controller's fleet step reads them.
    pub fleet_tenants: FleetTenants,
    /// The Tenants' migration Jobs, as the fleet step reads them.
    pub fleet_jobs: FleetCache<k8s_openapi::api::batch::v1::Job>,
}

impl Context {
    pub fn new(client: kube::Client, config: Config, installation: String) -> Context {
        let reporter = Reporter {
            controller: "servicedb".to_string(),
            instance: config.instance.clone(),
        };
        Context {
            metrics: config.metrics.clone(),
            recorder: Recorder::new(client.clone(), reporter),
            client,
            config,
            installation,
            servers: ServerRegistry::default(),
            failures: Failures::default(),
            written: Written::default(),
            fleet_tenants: FleetTenants::default(),
            fleet_jobs: FleetCache::default(),
        }
    }

    /// The next periodic check of a healthy object.
    pub fn resync(&self, uid: &str) -> Action {
        Action::requeue(jittered(self.config.resync, uid))
    }

    /// The next periodic check, or sooner when something (a password rotation) falls due
    /// in `due`.
    pub fn resync_within(&self, uid: &str, due: Option<std::time::Duration>) -> Action {
        Action::requeue(resync_or_sooner(jittered(self.config.resync, uid), due))
    }

    /// Counts a failure of the object and says when to retry.
    pub fn retry_after_failure(&self, uid: &str) -> Action {
        let n = self.failures.record(uid);
        Action::requeue(backoff_delay(
            n,
            self.config.backoff_base,
            self.config.backoff_max,
        ))
    }
}

/// An Api over the namespaces the controllers watch: the one `--namespace` names, else all.
pub fn watched<K>(ctx: &Context) -> kube::Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match &ctx.config.namespace {
        Some(ns) => kube::Api::namespaced(ctx.client.clone(), ns),
        None => kube::Api::all(ctx.client.clone()),
    }
}
