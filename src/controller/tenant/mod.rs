//! The Tenant controller: per (Tenant, PerTenant ServiceDatabase it lists) a database, its
//! roles and its Secrets `<secret>-<tenant>`, owned by the Tenant; `status.databases` per
//! service; Ready when all are. `kube::runtime::finalizer` is the top step: Apply provisions
//! (and offboards services no longer listed), Cleanup applies the Tenant's reclaimPolicy.
//!
//! Watches: its Secrets and its migration Jobs (label-selected), the ServiceDatabases (mapped to the Tenants that
//! list them; only spec changes, deletion and the rollout decision pass, and a new admission
//! reaches only the tenants it admits) and the
//! DatabaseServers (generation and readiness only, so a growing databaseCount does not fan
//! out). Their reflectors are the caches placement counts from.
pub mod apply;
pub mod cleanup;
pub mod database;
pub mod error;
pub mod locate;
pub mod migrations;
pub mod placement;
pub mod services;
pub mod status;
pub mod verified;

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use futures::future::{BoxFuture, Shared};
use futures::{FutureExt, StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::Api;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::finalizer::{Event, finalizer};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Predicate, PredicateConfig, WatchStreamExt, predicates, watcher};
use kube::{Resource, ResourceExt};

use self::error::Error;
use self::placement::Placer;
use super::Context;
use super::context::watched as api;
use super::metrics::Kind;
use super::paced_resync::PacedResync;
use super::triggers::Triggers;
use crate::api::{DatabaseServer, FINALIZER, ServiceDatabase, Tenant, labels};

/// What the Tenant reconciles share besides the operator's [`Context`]: the caches and the
/// placements made since they were filled.
pub struct TenantContext {
    pub ctx: Arc<Context>,
    pub tenants: Store<Tenant>,
    pub services: Store<ServiceDatabase>,
    pub servers: Store<DatabaseServer>,
    pub placer: Placer,
    /// The routine resyncs, triggered only into free slots (see `paced_resync`).
    pub resync: Arc<PacedResync<Tenant>>,
    /// Provisioning checks a pass moments later may reuse (see `verified`).
    pub verified: Arc<verified::Verified>,
    /// Resolves once the ServiceDatabase and DatabaseServer caches have their first lists.
    /// One shared future for every reconcile: awaiting `Store::wait_until_ready` from many
    /// reconciles at once woke only one of them (the others stalled for good).
    pub caches_ready: Shared<BoxFuture<'static, ()>>,
}

impl TenantContext {
    /// The ServiceDatabase `name` in `namespace`, from the cache.
    pub fn service(&self, namespace: &str, name: &str) -> Option<Arc<ServiceDatabase>> {
        self.services.get(&ObjectRef::new(name).within(namespace))
    }

    pub fn server(&self, name: &str) -> Option<Arc<DatabaseServer>> {
        self.servers.get(&ObjectRef::new(name))
    }
}

/// Runs the controller until `shutdown`.
pub async fn run(ctx: Arc<Context>, shutdown: Shared<BoxFuture<'static, ()>>) {
    // Its own status writes do not come back as reconciles: only spec (generation),
    // labels (canaries), annotations and finalizers pass.
    let (tenants, tenants_writer) = reflector::store::<Tenant>();
    let tenant_events = watcher(api::<Tenant>(&ctx), watcher::Config::default())
        .default_backoff()
        // Nothing reads managedFields, and with server-side apply they are a large part of
        // each cached Tenant.
        .modify(|t| t.managed_fields_mut().clear())
        .reflect(tenants_writer)
        .applied_objects()
        .predicate_filter(
            predicates::generation
                .combine(predicates::labels)
                .combine(predicates::annotations)
                .combine(predicates::finalizers),
            PredicateConfig::default(),
        );
    let controller = Controller::for_stream(tenant_events, tenants.clone());
    let (services, services_writer) = reflector::store::<ServiceDatabase>();
    let (servers, servers_writer) = reflector::store::<DatabaseServer>();
    // Deletions always pass (kube's predicate_filter would drop them: see `triggers`).
    let mut service_triggers = Triggers::new(service_trigger);
    let mut server_triggers = crate::controller::service_database::server::server_triggers();
    let service_events = watcher(api::<ServiceDatabase>(&ctx), watcher::Config::default())
        .default_backoff()
        .reflect(services_writer)
        .try_filter_map(move |e| futures::future::ready(Ok(service_triggers.pass(e))));
    let server_events = watcher(
        Api::<DatabaseServer>::all(ctx.client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(servers_writer)
    .try_filter_map(move |e| futures::future::ready(Ok(server_triggers.pass(e))));
    let managed = format!("{}={}", labels::MANAGED_BY, labels::MANAGED_BY_VALUE);
    let job_ends = |selector: String| {
        let mut ends = Triggers::new(crate::controller::migration::observe::end_trigger);
        watcher(
            api::<Job>(&ctx),
            watcher::Config::default().labels(&selector),
        )
        .default_backoff()
        .try_filter_map(move |e| futures::future::ready(Ok(ends.pass(e))))
    };
    let tenant_jobs = job_ends(format!("{managed},{}", labels::TENANT));
    let batch_jobs = job_ends(format!(
        "{managed},{}=true",
        crate::controller::migration::batch_job::BATCH_LABEL
    ));
    let by_service = tenants.clone();
    let fanout = crate::controller::rollout::fanout::Fanout::default();
    let by_server = tenants.clone();
    let synced = ctx.config.health.synced_when(tenants.clone());
    let caches_ready = {
        let (services, servers) = (services.clone(), servers.clone());
        async move {
            let _ = services.wait_until_ready().await;
            let _ = servers.wait_until_ready().await;
        }
        .boxed()
        .shared()
    };
    let resync = Arc::new({
        let metrics = ctx.metrics.clone();
        PacedResync::new(ctx.config.resync, ctx.config.concurrency)
            .reporting_waiting(move |n| metrics.set_reconciles_waiting(Kind::Tenant, n))
    });
    let stopping = shutdown.clone();
    let verified = Arc::new(verified::Verified::default());
    let shared = Arc::new(TenantContext {
        ctx: ctx.clone(),
        tenants,
        services,
        servers,
        placer: Placer::default(),
        resync: resync.clone(),
        verified: verified.clone(),
        caches_ready,
    });
    let metrics = ctx.metrics.clone();
    let forget = resync.clone();
    let unverified = verified.clone();
    // kube runs whatever is triggered at once; the pacer's slots bound the passes, first
    // come first served (kube's own bound can starve an object: see `paced_resync`).
    let run = controller
        .with_config(controller::Config::default().concurrency(0))
        .reconcile_on({
            let metrics = ctx.metrics.clone();
            let overdue = move |n| metrics.set_resyncs_overdue(Kind::Tenant, n);
            resync.clone().triggers(shutdown.clone(), overdue)
        })
        .owns(
            api::<Secret>(&ctx),
            watcher::Config::default().labels(&managed),
        )
        // Tenant migration Jobs: only a Complete or Failed (or a deletion) brings the
        // Tenant's reconcile.
        .owns_stream(tenant_jobs)
        // Batch Jobs (the ServiceDatabase's): their end brings each member's reconcile.
        .watches_stream(batch_jobs, |job| {
            let ns = job.namespace().unwrap_or_default();
            crate::controller::migration::batch_job::members_of(&job)
                .into_iter()
                .map(|t| ObjectRef::new(&t).within(&ns))
                .collect::<Vec<_>>()
        })
        .watches_stream(service_events, move |sdb| {
            let (ns, name) = (sdb.namespace(), sdb.name_any());
            // A new admission concerns the tenants it admits, not the whole fleet.
            let concerned = fanout.concerned(&sdb);
            by_service
                .state()
                .into_iter()
                .filter(|t| {
                    t.namespace() == ns && lists(t, &name) && concerned.includes(&t.name_any())
                })
                .map(|t| ObjectRef::from_obj(&*t))
                .collect::<Vec<_>>()
        })
        .watches_stream(server_events, move |dbs| {
            let name = dbs.name_any();
            by_server
                .state()
                .into_iter()
                .filter(|t| uses_or_waits(t, &name))
                .map(|t| ObjectRef::from_obj(&*t))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, shared)
        .for_each(move |result| {
            let (metrics, forget) = (metrics.clone(), forget.clone());
            let unverified = unverified.clone();
            async move {
                match result {
                    Ok((obj, _)) => tracing::debug!(tenant = %obj, "reconciled"),
                    Err(controller::Error::ObjectNotFound(obj)) => {
                        let ns = obj.namespace.as_deref().unwrap_or_default();
                        metrics.remove_tenant(ns, &obj.name);
                        forget.forget(&ObjectRef::new(&obj.name).within(ns));
                        unverified.forget_tenant(ns, &obj.name);
                        tracing::debug!(tenant = %obj, "gone before its reconcile")
                    }
                    Err(e) => tracing::warn!(error = %e, "Tenant reconcile failed"),
                }
            }
        });
    let mut both = std::pin::pin!(async { futures::join!(run, synced) });
    tokio::select! {
        _ = &mut both => {}
        _ = stopping => {
            // What waits for a slot does not hold up the graceful shutdown.
            resync.close();
            both.await;
        }
    }
}

/// Whether the Tenant lists the service (or still has a database of it to offboard).
pub fn lists(tenant: &Tenant, service: &str) -> bool {
    tenant.spec.services.iter().any(|s| s == service)
        || tenant
            .status
            .as_ref()
            .is_some_and(|s| s.databases.iter().any(|d| d.service == service))
}

/// Whether a DatabaseServer event concerns the Tenant: one of its databases is there, or
/// the Tenant is not Ready (it may be waiting for a server, or for room on one).
pub fn uses_or_waits(tenant: &Tenant, server: &str) -> bool {
    let Some(status) = &tenant.status else {
        return true;
    };
    status
        .databases
        .iter()
        .any(|d| d.server.as_deref() == Some(server))
        || tenant.spec.server.as_deref() == Some(server)
        || !crate::api::conditions::is_ready(&status.conditions, tenant.metadata.generation)
}

/// ServiceDatabase changes that matter to its Tenants: its spec, its deletion, the
/// rollout decision (which tenants may migrate) and a rotation request. Not its other
/// status fields.
pub fn service_trigger(sdb: &ServiceDatabase) -> Option<u64> {
    let mut h = DefaultHasher::new();
    let rollout = sdb.status.as_ref().and_then(|s| s.rollout.as_ref());
    (
        sdb.metadata.generation,
        sdb.metadata.deletion_timestamp.is_some(),
        rollout.map(|r| (&r.inputs_hash, &r.admitted, &r.resume, &r.batches)),
        sdb.annotations().get(crate::api::ROTATE_ANNOTATION),
    )
        .hash(&mut h);
    Some(h.finish())
}

/// The single ownerReference of a tenant's Secrets: the Tenant, as controller, so they go
/// with it.
pub fn owner_reference(tenant: &Tenant) -> OwnerReference {
    OwnerReference {
        api_version: Tenant::api_version(&()).to_string(),
        kind: Tenant::kind(&()).to_string(),
        name: tenant.name_any(),
        uid: tenant.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn error_policy(tenant: Arc<Tenant>, error: &Error, tc: Arc<TenantContext>) -> Action {
    tracing::warn!(tenant = %tenant.name_any(), namespace = tenant.namespace().unwrap_or_default(), error = %error, "will retry");
    tc.ctx
        .retry_after_failure(&tenant.uid().unwrap_or_default())
}

/// Waits for a slot, then reconciles. Kept small: kube holds one of these for every
/// Tenant triggered (thousands at once), and the pass's own state is only made once it
/// runs.
async fn reconcile(tenant: Arc<Tenant>, tc: Arc<TenantContext>) -> Result<Action, Error> {
    let pacer = tc.resync.clone();
    let Some(mut pass) = pacer.start(&tenant).await else {
        // Stopping: the next leader reconciles it.
        return Ok(Action::await_change());
    };
    // kube handed over the Tenant as it was when triggered, and the wait may have been
    // long (a deletion or a spec change meanwhile): the cache has it as it is now.
    let Some(tenant) = tc.tenants.get(&ObjectRef::from_obj(&*tenant)) else {
        let (ns, name) = (tenant.namespace().unwrap_or_default(), tenant.name_any());
        tc.ctx.metrics.remove_tenant(&ns, &name);
        tc.verified.forget_tenant(&ns, &name);
        pass.gone();
        return Ok(Action::await_change());
    };
    reconcile_pass(tenant, tc, pass).boxed().await
}

#[tracing::instrument(skip_all, fields(namespace = tenant.namespace().unwrap_or_default(), tenant = %tenant.name_any()))]
async fn reconcile_pass(
    tenant: Arc<Tenant>,
    tc: Arc<TenantContext>,
    mut pass: super::paced_resync::Pass<'_, Tenant>,
) -> Result<Action, Error> {
    let uid = tenant.uid().unwrap_or_default();
    tracing::debug!("reconcile starts");
    let deleting = tenant.metadata.deletion_timestamp.is_some();
    // Until the first lists are in, a missing service or server would be reported wrongly.
    tc.caches_ready.clone().await;
    // Level-triggered: the status written by the last reconcile (or deletion) sets the series.
    tc.ctx.metrics.observe_tenant(&tenant);
    let started = std::time::Instant::now();
    let api: Api<Tenant> = Api::namespaced(
        tc.ctx.client.clone(),
        &tenant.namespace().unwrap_or_default(),
    );
    let work = async {
        // Gone meanwhile: its deletion event brings what is left to do.
        let Some(tenant) = super::freshness::latest(&api, tenant, &tc.ctx.written)
            .await
            .map_err(Error::kube("reading the Tenant"))?
        else {
            return Ok(Action::await_change());
        };
        finalizer(&api, FINALIZER, tenant, |event| async {
            match event {
                Event::Apply(tenant) => apply::apply(&tenant, &tc).await,
                Event::Cleanup(tenant) => cleanup::cleanup(&tenant, &tc).await,
            }
        })
        .await
        .map_err(|e| Error::Finalizer(Box::new(e)))
    };
    let limit = tc.ctx.config.reconcile_timeout;
    let result = match crate::budget::bounded(limit, work).await {
        Some(done) => done,
        None => Err(Error::Transient(format!(
            "the reconcile took longer than {}; it is retried",
            humantime::format_duration(limit)
        ))),
    };
    tc.ctx.metrics.reconciled(
        Kind::Tenant,
        started.elapsed(),
        result.as_ref().err().map(Error::reason),
    );
    match &result {
        Ok(_) => tc.ctx.failures.reset(&uid),
        Err(_) => pass.failed(),
    }
    // A deletion's cleanup that succeeded removed the finalizer: the Tenant is gone.
    if deleting && result.is_ok() {
        pass.gone();
    }
    result
}

#[cfg(test)]
mod tests;
