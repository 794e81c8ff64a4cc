//! The batch migration Job of a PerTenant service's fleet rollout (`rollout.batchSize` > 1):
//! one pod migrates several tenant databases in turn, and each tenant's outcome is read
//! back from its line of the termination report. Pure.
//!
//! The pod is the single Job's ([`super::job::build`]: restricted Pod Security, ConfigMaps
//! mounted read-only); its environment is one `DATABASE_URL_<i>` per tenant database, each
//! from that tenant's own migrator Secret, and the command `migrate apply
//! --database-url-env DATABASE_URL_0 ...` (never one shared credential, never the admin's).
//! The Job is owned by the ServiceDatabase, which alone creates it (the rollout's one
//! decision-maker); its tenants are in an annotation and in `status.rollout.batches`.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::inputs::{TaggedHash, job_name};
use super::job::{self, Parts, URL_KEY};
use crate::api::{MigrationsSpec, labels};
use crate::migrate::batch_report;
use crate::naming;

/// On batch Jobs: `"true"` (no tenant label: a batch Job is no one tenant's).
pub const BATCH_LABEL: &str = "servicedb.io/migration-batch";
/// On batch Jobs: the tenants it migrates, comma-separated, in `DATABASE_URL_<i>` order.
pub const TENANTS_ANNOTATION: &str = "servicedb.io/tenants";

/// One tenant database of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchMember {
    pub tenant: String,
    pub database: String,
    /// `<secret>-migrator-<tenant>`: the owner role's credentials for this database only.
    pub migrator_secret: String,
}

/// What a batch Job migrates.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchTarget {
    pub namespace: String,
    /// The ServiceDatabase (controller).
    pub owner: OwnerReference,
    /// The ServiceDatabase's name.
    pub base_name: String,
    pub members: Vec<BatchMember>,
    pub migrations: MigrationsSpec,
    /// The service's retry/resume value (as in a tenant Job's inputs).
    pub retry: Option<String>,
}

/// The variable holding the `i`th member's URL.
pub fn env_name(i: usize) -> String {
    format!("{URL_KEY}_{i}")
}

/// [`super::inputs::HASH_LEN`] hex digits over the fleet's inputs, the retry value and the
/// members: new inputs, a retry or other tenants make another Job; a repeat makes none.
pub fn batch_hash(fleet_hash: &str, retry: Option<&str>, members: &[BatchMember]) -> String {
    let mut h = TaggedHash::default();
    let mut field = |tag: &str, value: &str| h.field(tag, value);
    field("fleet", fleet_hash);
    if let Some(r) = retry {
        field("retry", r);
    }
    for m in members {
        field("tenant", &m.tenant);
        field("database", &m.database);
        field("secret", &m.migrator_secret);
    }
    h.short()
}

/// `<service, cut>-batch-mig-<hash>`.
pub fn batch_job_name(base: &str, hash: &str) -> String {
    job_name(base, Some("batch"), hash)
}

/// The labels of every batch Job of the service `base`.
pub fn selector_labels(base: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            labels::MANAGED_BY.to_string(),
            labels::MANAGED_BY_VALUE.to_string(),
        ),
        (
            labels::SERVICE_DATABASE.to_string(),
            naming::label_value(base),
        ),
        (BATCH_LABEL.to_string(), "true".to_string()),
    ])
}

/// A label selector for the service's batch Jobs.
pub fn selector(base: &str) -> String {
    selector_labels(base)
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The batch Job `name` for `target`.
pub fn desired_batch_job(target: &BatchTarget, name: &str, hash: &str, default_image: &str) -> Job {
    let envs: Vec<String> = (0..target.members.len()).map(env_name).collect();
    let env = target
        .members
        .iter()
        .zip(&envs)
        .map(|(m, e)| job::secret_env(e, &m.migrator_secret))
        .collect();
    let mut labels = selector_labels(&target.base_name);
    labels.insert(labels::MIGRATION_INPUTS.to_string(), hash.to_string());
    let list = |f: &dyn Fn(&BatchMember) -> &str| {
        target.members.iter().map(f).collect::<Vec<_>>().join(",")
    };
    let mut annotations = BTreeMap::from([
        (TENANTS_ANNOTATION.to_string(), list(&|m| &m.tenant)),
        ("servicedb.io/databases".to_string(), list(&|m| &m.database)),
    ]);
    if let Some(v) = &target.migrations.target_version {
        annotations.insert("servicedb.io/target-version".into(), v.clone());
    }
    // activeDeadlineSeconds is sized for one database; the batch migrates several in turn.
    let mut migrations = target.migrations.clone();
    if let Some(job) = migrations.job.as_mut() {
        let members = i64::try_from(target.members.len().max(1)).unwrap_or(i64::MAX);
        job.active_deadline_seconds = job
            .active_deadline_seconds
            .map(|d| d.saturating_mul(members));
    }
    job::build(&Parts {
        name,
        namespace: &target.namespace,
        owner: &target.owner,
        labels,
        annotations,
        migrations: &migrations,
        command: job::apply_command(&target.migrations, &envs),
        env,
        default_image,
    })
}

/// The tenants of a batch Job, in `DATABASE_URL_<i>` order.
pub fn members_of(job: &Job) -> Vec<String> {
    job.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(TENANTS_ANNOTATION))
        .map(|t| {
            t.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// How one tenant's database did in its batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberOutcome {
    Running,
    Succeeded,
    Failed { detail: String },
}

/// The outcome of `tenant` in a batch Job of `members` that `finished` (None: running;
/// Some(true): Complete, every database migrated; Some(false): Failed) with the termination
/// `report`; `failed_condition` says why a Job failed without reporting on this tenant.
/// None when the tenant is not a member.
pub fn member_outcome(
    members: &[String],
    tenant: &str,
    finished: Option<bool>,
    report: Option<&str>,
    failed_condition: &str,
) -> Option<MemberOutcome> {
    let i = members.iter().position(|m| m == tenant)?;
    Some(match finished {
        None => MemberOutcome::Running,
        Some(true) => MemberOutcome::Succeeded,
        Some(false) => {
            let env = env_name(i);
            let line = report
                .map(batch_report::parse)
                .unwrap_or_default()
                .into_iter()
                .find(|r| r.env == env);
            match line {
                Some(r) if r.succeeded => MemberOutcome::Succeeded,
                Some(r) => MemberOutcome::Failed {
                    detail: r
                        .detail
                        .unwrap_or_else(|| "the migration failed without a detail".into()),
                },
                None => MemberOutcome::Failed {
                    detail: format!(
                        "{failed_condition} (the batch Job stopped before reporting on this database)"
                    ),
                },
            }
        }
    })
}

#[cfg(test)]
#[path = "batch_job_tests.rs"]
mod tests;
