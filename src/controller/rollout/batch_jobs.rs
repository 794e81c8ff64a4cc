//! The ServiceDatabase's batch Jobs (batchSize above 1): listing them for [`super::batches`]
//! and creating the ones the decision names. Only the ServiceDatabase creates them, and only
//! for tenants no Job holds, so two Jobs never touch one database.

use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};

use super::batches::BatchJobSeen;
use crate::api::{JobOutcome, RolloutBatch, ServiceDatabase, Tenant, labels};
use crate::controller::migration::batch_job::{
    BatchMember, BatchTarget, batch_hash, batch_job_name, desired_batch_job, members_of, selector,
};
use crate::controller::migration::observe::{ended_at, finished};
use crate::controller::status_patch::FIELD_MANAGER;
use crate::service::Layout;

/// The service's batch Jobs (any inputs), with their tenants and how they stand.
pub async fn seen(
    client: &kube::Client,
    sdb: &ServiceDatabase,
) -> Result<Vec<BatchJobSeen>, kube::Error> {
    let api: Api<Job> = Api::namespaced(client.clone(), &sdb.namespace().unwrap_or_default());
    let lp = ListParams::default().labels(&selector(&sdb.name_any()));
    Ok(api
        .list(&lp)
        .await?
        .items
        .iter()
        .filter(|j| j.metadata.deletion_timestamp.is_none())
        .map(|j| BatchJobSeen {
            name: j.name_any(),
            members: members_of(j),
            finished: finished(j),
            inputs: j.labels().get(labels::MIGRATION_INPUTS).cloned(),
            ended_at: ended_at(j),
        })
        .collect())
}

/// Whether `tenant`'s status records that `job` ended (None: no such tenant of the service).
/// Pure.
pub fn recorded(service: &str, tenants: &[&Tenant], tenant: &str, job: &str) -> Option<bool> {
    let t = tenants.iter().find(|t| {
        t.name_any() == tenant
            && t.metadata.deletion_timestamp.is_none()
            && t.spec.services.iter().any(|s| s == service)
    })?;
    let schema = t
        .status
        .as_ref()
        .and_then(|s| s.databases.iter().find(|d| d.service == service))
        .and_then(|d| d.schema.as_ref());
    Some(schema.is_some_and(|s| {
        s.last_job.as_deref() == Some(job)
            && matches!(
                s.last_job_outcome,
                Some(JobOutcome::Succeeded | JobOutcome::Failed)
            )
    }))
}

/// The members of a batch, with the names the service gives each tenant's database and
/// migrator Secret.
fn members(sdb: &ServiceDatabase, tenants: &[String]) -> Vec<BatchMember> {
    tenants
        .iter()
        .map(|t| {
            let layout = Layout::new(sdb, Some(t));
            BatchMember {
                tenant: t.clone(),
                database: layout.database.clone(),
                migrator_secret: layout.migrator_secret().name.clone(),
            }
        })
        .collect()
}

/// Whether `job` migrates its tenants with the current inputs and retry value: its inputs
/// label is the hash this operator would give it now. Pure.
pub fn is_current(sdb: &ServiceDatabase, fleet_hash: &str, job: &BatchJobSeen) -> bool {
    let retry = crate::controller::tenant::migrations::job_retry(sdb);
    job.inputs.as_deref()
        == Some(batch_hash(fleet_hash, retry.as_deref(), &members(sdb, &job.members)).as_str())
}

/// Creates a batch Job for each of `batches` (tenant names); returns them as recorded in
/// `status.rollout.batches`. A Job that exists already is the same Job.
pub async fn start(
    client: &kube::Client,
    sdb: &ServiceDatabase,
    fleet_hash: &str,
    batches: &[Vec<String>],
    default_image: &str,
) -> Result<Vec<RolloutBatch>, kube::Error> {
    let Some(migrations) = sdb.spec.migrations.clone() else {
        return Ok(Vec::new());
    };
    let ns = sdb.namespace().unwrap_or_default();
    let api: Api<Job> = Api::namespaced(client.clone(), &ns);
    let retry = crate::controller::tenant::migrations::job_retry(sdb);
    let mut out = Vec::new();
    for tenants in batches {
        let members = members(sdb, tenants);
        let hash = batch_hash(fleet_hash, retry.as_deref(), &members);
        let name = batch_job_name(&sdb.name_any(), &hash);
        let target = BatchTarget {
            namespace: ns.clone(),
            owner: crate::controller::service_database::apply::owner_reference(sdb),
            base_name: sdb.name_any(),
            members,
            migrations: migrations.clone(),
            retry: retry.clone(),
        };
        let job = desired_batch_job(&target, &name, &hash, default_image);
        let pp = PostParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..PostParams::default()
        };
        match api.create(&pp, &job).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.is_already_exists() => {}
            Err(e) => return Err(e),
        }
        tracing::info!(job = %name, tenants = ?tenants, "started a batch migration Job");
        out.push(RolloutBatch {
            job: name,
            tenants: tenants.clone(),
        });
    }
    Ok(out)
}
