//! The ServiceDatabase controller (Shared tenancy; PerTenant templates get a validated
//! status). `kube::runtime::finalizer` is the top step: Apply provisions and migrates,
//! Cleanup applies the reclaim policy. It owns its Secrets and migration Jobs
//! (label-selected watches, so a Job's Complete or Failed brings a reconcile), watches its
//! Tenants and their migration Jobs (cached for the fleet step), the ConfigMaps
//! it references (metadata only) and the DatabaseServers (only generation and readiness
//! changes and deletions pass, so a growing databaseCount does not fan out).
pub mod apply;
pub mod cleanup;
pub mod error;
pub mod rotation;
pub mod secrets;
pub mod server;
pub mod status;

use std::sync::Arc;

use futures::future::{BoxFuture, Shared};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::ResourceExt;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::finalizer::{Event, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};

use self::error::Error;
use super::Context;
use super::context::watched as api;
use super::metrics::Kind;
use super::triggers::Triggers;
use crate::api::{DatabaseServer, FINALIZER, ServiceDatabase, Tenant, labels};
use crate::naming;

/// Runs the controller until `shutdown`.
pub async fn run(ctx: Arc<Context>, shutdown: Shared<BoxFuture<'static, ()>>) {
    let controller = Controller::new(api::<ServiceDatabase>(&ctx), watcher::Config::default());
    let by_config_map = controller.store();
    let by_server = controller.store();
    let health = ctx.config.health.clone();
    let synced_store = controller.store();
    let managed = format!("{}={}", labels::MANAGED_BY, labels::MANAGED_BY_VALUE);
    let mut triggers = server::server_triggers();
    let servers = watcher(
        Api::<DatabaseServer>::all(ctx.client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .try_filter_map(move |event| futures::future::ready(Ok(triggers.pass(event))));
    // PerTenant fleets count their Tenants; only changes of those counts pass.
    let mut tenant_triggers = Triggers::new(crate::controller::rollout::fleet_trigger);
    let tenants = watcher(api::<Tenant>(&ctx), watcher::Config::default())
        .default_backoff()
        // The fleet step never reads managedFields: the cache need not hold them.
        .modify(|t| t.managed_fields_mut().clear())
        .reflect(ctx.fleet_tenants.writer())
        .try_filter_map(move |event| futures::future::ready(Ok(tenant_triggers.pass(event))));
    // Tenant Jobs (owned by their Tenants): cached for the fleet step, and each one's end
    // brings its service's reconcile, so the rollout's slot turns over without waiting for
    // the Tenant to record it.
    let mut job_ends = Triggers::new(crate::controller::migration::observe::end_trigger);
    let tenant_jobs = watcher(
        api::<Job>(&ctx),
        watcher::Config::default().labels(&format!("{managed},{}", labels::TENANT)),
    )
    .default_backoff()
    // The fleet step reads names, labels and how each Job ended (`observe::finished`):
    // the rest is not cached, as there is a Job per tenant database.
    .modify(strip_job)
    .reflect(ctx.fleet_jobs.writer())
    .try_filter_map(move |event| futures::future::ready(Ok(job_ends.pass(event))));
    let by_job = controller.store();
    let metrics = ctx.metrics.clone();
    let run = controller
        .with_config(controller::Config::default().concurrency(ctx.config.concurrency))
        .owns(
            api::<Secret>(&ctx),
            watcher::Config::default().labels(&managed),
        )
        // Its own migration Jobs (Shared databases' and batch Jobs).
        .owns(
            api::<Job>(&ctx),
            watcher::Config::default().labels(&format!("{managed},!{}", labels::TENANT)),
        )
        .watches_stream(tenant_jobs, move |job| {
            let ns = job.namespace();
            let service = job.labels().get(labels::SERVICE_DATABASE).cloned();
            by_job
                .state()
                .into_iter()
                .filter(|s| {
                    s.namespace() == ns
                        && service.as_deref() == Some(naming::label_value(&s.name_any()).as_str())
                })
                .map(|s| ObjectRef::from_obj(&*s))
                .collect::<Vec<_>>()
        })
        .watches(
            api::<PartialObjectMeta<ConfigMap>>(&ctx),
            watcher::Config::default(),
            move |cm| {
                let (ns, name) = (cm.namespace(), cm.name_any());
                by_config_map
                    .state()
                    .into_iter()
                    .filter(|s| s.namespace() == ns && references_config_map(s, &name))
                    .map(|s| ObjectRef::from_obj(&*s))
                    .collect::<Vec<_>>()
            },
        )
        .watches_stream(tenants, |t| crate::controller::rollout::services_of(&t))
        .watches_stream(servers, move |dbs| {
            by_server
                .state()
                .into_iter()
                .filter(|s| server::uses(s, &dbs))
                .map(|s| ObjectRef::from_obj(&*s))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx.clone())
        .for_each(move |result| {
            let metrics = metrics.clone();
            async move {
                match result {
                    Ok((obj, _)) => tracing::debug!(resource = %obj, "reconciled"),
                    Err(controller::Error::ObjectNotFound(obj)) => {
                        let ns = obj.namespace.as_deref().unwrap_or_default();
                        metrics.remove_service_database(ns, &obj.name);
                        tracing::debug!(resource = %obj, "gone before its reconcile")
                    }
                    Err(e) => tracing::warn!(error = %e, "ServiceDatabase reconcile failed"),
                }
            }
        });
    futures::join!(run, health.synced_when(synced_store));
}

/// Whether the ServiceDatabase reads migrations or seed data from the ConfigMap `name`.
pub fn references_config_map(sdb: &ServiceDatabase, name: &str) -> bool {
    sdb.spec.migrations.as_ref().is_some_and(|m| {
        m.config_maps.iter().any(|c| c == name)
            || m.seed
                .as_ref()
                .is_some_and(|s| s.config_maps.iter().any(|c| c == name))
    })
}

fn error_policy(sdb: Arc<ServiceDatabase>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(resource = %sdb.name_any(), namespace = sdb.namespace().unwrap_or_default(), error = %error, "will retry");
    ctx.retry_after_failure(&sdb.uid().unwrap_or_default())
}

#[tracing::instrument(skip_all, fields(namespace = sdb.namespace().unwrap_or_default(), resource = %sdb.name_any()))]
async fn reconcile(sdb: Arc<ServiceDatabase>, ctx: Arc<Context>) -> Result<Action, Error> {
    let uid = sdb.uid().unwrap_or_default();
    // Level-triggered: the status written by the last reconcile (or deletion) sets the series.
    ctx.metrics.observe_service_database(&sdb);
    let started = std::time::Instant::now();
    let api: Api<ServiceDatabase> =
        Api::namespaced(ctx.client.clone(), &sdb.namespace().unwrap_or_default());
    let work = async {
        // Gone meanwhile: its deletion event brings what is left to do.
        let Some(sdb) = super::freshness::latest(&api, sdb, &ctx.written)
            .await
            .map_err(Error::kube("reading the ServiceDatabase"))?
        else {
            return Ok(Action::await_change());
        };
        finalizer(&api, FINALIZER, sdb, |event| async {
            match event {
                Event::Apply(sdb) => apply::apply(&sdb, &ctx).await,
                Event::Cleanup(sdb) => cleanup::cleanup(&sdb, &ctx).await,
            }
        })
        .await
        .map_err(|e| Error::Finalizer(Box::new(e)))
    };
    let limit = ctx.config.reconcile_timeout;
    let result = match crate::budget::bounded(limit, work).await {
        Some(done) => done,
        None => Err(Error::Transient(format!(
            "the reconcile took longer than {}; it is retried",
            humantime::format_duration(limit)
        ))),
    };
    ctx.metrics.reconciled(
        Kind::ServiceDatabase,
        started.elapsed(),
        result.as_ref().err().map(Error::reason),
    );
    if result.is_ok() {
        ctx.failures.reset(&uid);
    }
    result
}

/// A tenant Job as the fleet cache keeps it: name, namespace, labels and its conditions'
/// types and statuses.
fn strip_job(job: &mut Job) {
    use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};
    job.managed_fields_mut().clear();
    job.metadata.annotations = None;
    job.metadata.owner_references = None;
    job.spec = None;
    if let Some(status) = job.status.take() {
        let conditions = status.conditions.map(|cs| {
            cs.into_iter()
                .map(|c| JobCondition {
                    type_: c.type_,
                    status: c.status,
                    ..Default::default()
                })
                .collect()
        });
        job.status = Some(JobStatus {
            conditions,
            ..Default::default()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::migration::observe::finished;
    use k8s_openapi::api::batch::v1::{JobCondition, JobSpec, JobStatus};

    /// Locks what the fleet cache keeps of a Job: enough to say how it ended, and its
    /// name and labels (the slot's owner), nothing else.
    #[test]
    fn a_stripped_job_still_says_how_it_ended() {
        for ended in [None, Some(true), Some(false)] {
            let mut job = Job::default();
            job.metadata.name = Some("app-t1-mig-0123456789".into());
            job.metadata.labels = Some([(labels::TENANT.to_string(), "t1".to_string())].into());
            job.metadata.annotations = Some([("a".to_string(), "b".repeat(100))].into());
            job.spec = Some(JobSpec::default());
            let condition = |type_: &str| JobCondition {
                type_: type_.into(),
                status: "True".into(),
                message: Some("x".repeat(200)),
                ..Default::default()
            };
            job.status = Some(JobStatus {
                active: Some(1),
                conditions: ended.map(|ok| vec![condition(if ok { "Complete" } else { "Failed" })]),
                ..Default::default()
            });
            let mut stripped = job.clone();
            strip_job(&mut stripped);
            assert_eq!(finished(&stripped), ended);
            assert_eq!(stripped.metadata.name, job.metadata.name);
            assert_eq!(stripped.metadata.labels, job.metadata.labels);
            assert!(stripped.spec.is_none() && stripped.metadata.annotations.is_none());
            let status = stripped.status.unwrap();
            assert_eq!(status.active, None);
            assert!(
                status
                    .conditions
                    .iter()
                    .flatten()
                    .all(|c| c.message.is_none())
            );
        }
    }
}
