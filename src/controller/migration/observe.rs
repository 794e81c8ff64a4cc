//! Reading what the migration decision needs: the referenced ConfigMaps, this database's
//! Jobs, a failed Job's termination message (from its Pods, never its logs) and the history
//! table, read as the owner role with the migrator Secret's credentials (the admin never
//! reads inside a service's database for this).

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::{Api, ListParams};

use super::MigrationTarget;
use super::decide::History;
use crate::api::{JobOutcome, SchemaStatus};
use crate::migrate::effective::{ReadRows, plan_read};
use crate::migrate::engine::{Engine, MigrateError, Settings};
use crate::migrate::history::HistoryTable;
use crate::migrate::placeholders::Placeholders;
use crate::migrate::plan::{Options, Plan};
use crate::migrate::source::Scan;
use crate::migrate::version::Version;
use crate::provision::server::Server;

/// The label the Job controller puts on a Job's Pods.
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";

/// The referenced ConfigMaps' data in spec order, or the first one that is missing.
pub async fn config_maps(
    client: &kube::Client,
    target: &MigrationTarget,
) -> Result<Result<Vec<(String, BTreeMap<String, String>)>, String>, kube::Error> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &target.namespace);
    let mut out = Vec::new();
    for name in &target.migrations.config_maps {
        match api.get_opt(name).await? {
            Some(cm) => out.push((name.clone(), cm.data.unwrap_or_default())),
            None => return Ok(Err(name.clone())),
        }
    }
    Ok(Ok(out))
}

/// How a Job stands by its conditions alone: Some(true) Complete, Some(false) Failed,
/// None still running. Pure.
pub fn finished(job: &Job) -> Option<bool> {
    let conditions = job.status.as_ref().and_then(|s| s.conditions.as_ref());
    let is = |kind: &str| {
        conditions
            .into_iter()
            .flatten()
            .any(|c| c.type_ == kind && c.status == "True")
    };
    if is("Complete") {
        Some(true)
    } else if is("Failed") {
        Some(false)
    } else {
        None
    }
}

/// Which events of a tenant's migration Job (its own or a batch's) start the Tenant's
/// reconcile: its end alone (and its deletion, which [`Triggers`] always passes). A Job's
/// creation, its pod starting and its progress change nothing the Tenant acts on; each of
/// them was a full provisioning pass, and during a rollout over 100 tenants they were
/// most of the Tenants' 5 to 6 reconciles each. Pure.
///
/// [`Triggers`]: crate::controller::triggers::Triggers
pub fn end_trigger(job: &Job) -> Option<u64> {
    finished(job).map(u64::from)
}

/// A recorded Running whose Job is listed as ended gets the outcome the Job reached. A
/// status kept while nothing new may start (the fleet rollout has not admitted the tenant)
/// would otherwise say Running for good, and the rollout would count that Job as holding its
/// slot. Pure.
pub fn settle_running(schema: Option<SchemaStatus>, jobs: &[&Job]) -> Option<SchemaStatus> {
    let mut schema = schema?;
    if schema.last_job_outcome == Some(JobOutcome::Running)
        && let Some(ended) = schema
            .last_job
            .as_deref()
            .and_then(|n| jobs.iter().find(|j| j.metadata.name.as_deref() == Some(n)))
            .and_then(|j| finished(j))
    {
        schema.last_job_outcome = Some(if ended {
            JobOutcome::Succeeded
        } else {
            JobOutcome::Failed
        });
    }
    Some(schema)
}

/// When the Job ended: its Complete or Failed condition's last transition. Pure.
pub fn ended_at(job: &Job) -> Option<k8s_openapi::jiff::Timestamp> {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0)
}

/// The Failed condition's reason and message, for a Job that left no termination message.
/// Pure.
pub fn failed_condition(job: &Job) -> String {
    let c = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "Failed" && c.status == "True");
    match c {
        Some(c) => format!(
            "the Job failed ({}: {}) without a termination message",
            c.reason.as_deref().unwrap_or("Failed"),
            c.message.as_deref().unwrap_or_default()
        ),
        None => "the Job failed without a termination message".to_string(),
    }
}

/// Every migration Job of this database (any inputs).
pub async fn jobs(
    client: &kube::Client,
    target: &MigrationTarget,
) -> Result<Vec<Job>, kube::Error> {
    let api: Api<Job> = Api::namespaced(client.clone(), &target.namespace);
    let lp = ListParams::default().labels(&super::job::selector(target));
    Ok(api.list(&lp).await?.items)
}

/// The termination message of the Job's last terminated container that left one.
pub async fn termination_message(
    client: &kube::Client,
    namespace: &str,
    job: &str,
) -> Result<Option<String>, kube::Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let lp = ListParams::default().labels(&format!("{JOB_NAME_LABEL}={job}"));
    let mut messages: Vec<(String, String)> = api
        .list(&lp)
        .await?
        .items
        .into_iter()
        .flat_map(|p| {
            p.status
                .and_then(|s| s.container_statuses)
                .unwrap_or_default()
        })
        .filter_map(|cs| {
            let t = cs.state?.terminated?;
            let message = t.message.filter(|m| !m.trim().is_empty())?;
            let at = t.finished_at.map(|f| f.0.to_string()).unwrap_or_default();
            Some((at, message))
        })
        .collect();
    messages.sort();
    Ok(messages.pop().map(|(_, m)| m))
}

/// The owner role's name and password, from the migrator Secret.
pub async fn owner_credentials(
    client: &kube::Client,
    target: &MigrationTarget,
) -> Result<Option<(String, String)>, kube::Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &target.namespace);
    let Some(secret) = api.get_opt(&target.migrator_secret).await? else {
        return Ok(None);
    };
    let data = secret.data.unwrap_or_default();
    let get = |k: &str| {
        data.get(k)
            .and_then(|v| String::from_utf8(v.0.clone()).ok())
    };
    Ok(get("username").zip(get("password")))
}

/// The history table against the files, as the migration Job will see it.
#[derive(Debug, Clone, Default)]
pub struct HistoryRead {
    pub history: History,
    /// What `validate` refuses (a changed applied file, a missing one, ...).
    pub problems: Vec<String>,
    /// Whether the target names a version among the files or in the history.
    pub target_known: bool,
    /// The latest version among the files.
    pub latest: Option<String>,
}

/// Reads the history as the owner (within the server's connection bound) and plans the
/// files against it, with the settings `servicedb migrate apply` uses; also returns the
/// rows, for a later plan against other files.
pub async fn history(
    server: &Server,
    migration: &MigrationTarget,
    (user, password): (&str, &str),
    files: Scan,
    target: Option<Version>,
) -> Result<(HistoryRead, ReadRows), MigrateError> {
    let (client, _slot) = server
        .session_as(&migration.database, user, password)
        .await?;
    let latest = latest(&files);
    let has_target = target.is_some();
    let settings = settings(target)?;
    let engine = if migration.history_seen {
        Engine::with_table_seen(client, settings, files.files, files.warnings).await?
    } else {
        Engine::with_client(client, settings, files.files, files.warnings).await?
    };
    let read = history_read(&engine.info(), has_target, latest);
    Ok((read, engine.read_rows()))
}

/// [`history`] against rows already read (on the owner's probe session, or by an earlier
/// pass no migration Job has run since). Pure.
pub fn history_of(
    rows: &ReadRows,
    files: Scan,
    target: Option<Version>,
) -> Result<HistoryRead, MigrateError> {
    let latest = latest(&files);
    let has_target = target.is_some();
    let plan = plan_read(&settings(target)?, &files.files, rows)?;
    Ok(history_read(&plan, has_target, latest))
}

fn latest(files: &Scan) -> Option<String> {
    files
        .files
        .iter()
        .filter_map(|f| f.version())
        .max()
        .map(Version::to_string)
}

fn settings(target: Option<Version>) -> Result<Settings, MigrateError> {
    Ok(Settings {
        dirs: Vec::new(),
        history: HistoryTable::schema_history(),
        options: Options {
            target,
            out_of_order: false,
        },
        placeholders: Placeholders::new(&[])?,
        allow_non_empty_schema: false,
    })
}

fn history_read(plan: &Plan, has_target: bool, latest: Option<String>) -> HistoryRead {
    HistoryRead {
        history: History {
            applied_version: plan.current.as_ref().map(Version::to_string),
            pending: plan.pending.len(),
        },
        problems: plan.problems.iter().map(|p| p.to_string()).collect(),
        target_known: !has_target || plan.target_known,
        latest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};

    #[test]
    fn only_a_jobs_end_triggers_its_tenant() {
        let mut started = job(&[]);
        started.status.as_mut().unwrap().active = Some(1);
        assert_eq!(end_trigger(&Job::default()), None, "just created");
        assert_eq!(end_trigger(&started), None, "its pod running");
        assert_eq!(
            end_trigger(&job(&[("Complete", "False")])),
            None,
            "a condition not yet true"
        );
        let complete = end_trigger(&job(&[("Complete", "True")]));
        let failed = end_trigger(&job(&[("Failed", "True")]));
        assert!(complete.is_some() && failed.is_some());
        assert_ne!(complete, failed, "success and failure are told apart");
    }

    fn job(conditions: &[(&str, &str)]) -> Job {
        Job {
            status: Some(JobStatus {
                conditions: Some(
                    conditions
                        .iter()
                        .map(|(t, s)| JobCondition {
                            type_: t.to_string(),
                            status: s.to_string(),
                            reason: Some("BackoffLimitExceeded".into()),
                            message: Some("Job has reached the specified backoff limit".into()),
                            ..Default::default()
                        })
                        .collect(),
                ),
                // Counts say nothing: a Job that succeeded after a failed pod has failed=1.
                failed: Some(1),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Locks "judged by the Complete/Failed conditions only".
    #[test]
    fn jobs_are_judged_by_their_conditions() {
        assert_eq!(finished(&job(&[])), None);
        assert_eq!(finished(&job(&[("FailureTarget", "True")])), None);
        assert_eq!(
            finished(&job(&[
                ("SuccessCriteriaMet", "True"),
                ("Complete", "True")
            ])),
            Some(true)
        );
        assert_eq!(finished(&job(&[("Complete", "False")])), None);
        assert_eq!(
            finished(&job(&[("FailureTarget", "True"), ("Failed", "True")])),
            Some(false)
        );
        assert_eq!(
            failed_condition(&job(&[("Failed", "True")])),
            "the Job failed (BackoffLimitExceeded: Job has reached the specified backoff limit) without a termination message"
        );
    }

    /// Locks the rollout deadlock fix: a tenant whose own Job of older inputs ended while
    /// the rollout does not admit it kept "Running" for good, so the ServiceDatabase
    /// counted that Job's slot as taken and never started the batch. A recorded Running
    /// now gets the outcome its listed Job reached; a Job still running (or not listed)
    /// leaves it as it was.
    #[test]
    fn a_recorded_running_gets_the_outcome_its_job_reached() {
        let named = |name: &str, conditions: &[(&str, &str)]| {
            let mut j = job(conditions);
            j.metadata.name = Some(name.into());
            j
        };
        let running = Some(SchemaStatus {
            last_job: Some("app-t1-mig-1".into()),
            last_job_outcome: Some(JobOutcome::Running),
            ..Default::default()
        });
        let outcome = |jobs: &[&Job]| settle_running(running.clone(), jobs)?.last_job_outcome;
        let done = named("app-t1-mig-1", &[("Complete", "True")]);
        let failed = named("app-t1-mig-1", &[("Failed", "True")]);
        let still = named("app-t1-mig-1", &[]);
        let other = named("app-t1-mig-2", &[("Complete", "True")]);
        assert_eq!(outcome(&[&other, &done]), Some(JobOutcome::Succeeded));
        assert_eq!(outcome(&[&failed]), Some(JobOutcome::Failed));
        assert_eq!(outcome(&[&still]), Some(JobOutcome::Running));
        assert_eq!(outcome(&[&other]), Some(JobOutcome::Running));
        assert_eq!(settle_running(None, &[&done]), None);
    }
}
