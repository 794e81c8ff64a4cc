//! The migration step of a reconcile, for one [`MigrationTarget`]: observe, decide, create
//! the Job when the decision says so, and say what the status should show. The caller
//! writes the status, then publishes the [`Announcement`] (so an Event never runs ahead of
//! the status that records it, and a failure is announced once: the next pass reads it
//! from the status).

use k8s_openapi::api::batch::v1::Job;
use std::collections::BTreeSet;

use kube::api::{Api, PostParams};

use super::MigrationTarget;
use super::decide::{JobState, Next, Observed, decide};
use super::inputs::{Inputs, fleet_hash, job_name};
use super::listed::ListedJobs;
use super::outcome::{Announcement, Outcome, invalid, present};
use super::{batch_job, failure, job, observe};
use crate::api::{JobOutcome, SchemaStatus};
use crate::controller::status_patch::FIELD_MANAGER;
use crate::migrate::effective::ReadRows;
use crate::migrate::engine::MigrateError;
use crate::migrate::version::Version;
use crate::provision::server::Server;
use crate::service::migrations::files_from_config_maps;

/// A referenced ConfigMap does not exist (yet): its creation brings the next reconcile.
pub const CONFIG_MAP_NOT_FOUND: &str = "ConfigMapNotFound";

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error("{what}: {source}")]
    Kube {
        what: &'static str,
        source: kube::Error,
    },
    /// Reading the history failed in a way a retry may fix (the server, the network).
    #[error("reading the migration history of database {database}: {source}")]
    History {
        database: String,
        source: MigrateError,
    },
    #[error("{0}")]
    Transient(String),
}

fn kube(what: &'static str) -> impl FnOnce(kube::Error) -> MigrationError {
    move |source| MigrationError::Kube { what, source }
}

/// Reason while a tenant database waits for the fleet rollout to admit it.
pub const WAITING_FOR_ROLLOUT: &str = "WaitingForRollout";

/// Whether a Job may start now, given the fleet inputs hash
/// ([`super::inputs::fleet_hash`]) and whether the database was never migrated; `Err`
/// says what it waits for.
pub type Admit<'a> = &'a (dyn Fn(&str, bool) -> Result<(), String> + Sync);

/// The batch Job this database is part of, given the fleet inputs hash (a tenant database
/// in a batched rollout): its outcome is the database's, and no Job of its own starts.
pub type BatchOf<'a> = &'a (dyn Fn(&str) -> Option<String> + Sync);

/// What a fleet rollout says about starting a tenant database's Job.
#[derive(Clone, Copy)]
pub struct Gates<'a> {
    pub admit: Admit<'a>,
    pub batch_of: BatchOf<'a>,
}

/// The step: returns what the status should say and what to announce.
pub async fn reconcile(
    client: &kube::Client,
    server: &Server,
    target: &MigrationTarget,
    previous: Option<&SchemaStatus>,
    default_image: &str,
) -> Result<(Outcome, Option<Announcement>), MigrationError> {
    reconcile_admitted(
        client,
        server,
        target,
        previous,
        default_image,
        Gates {
            admit: &|_, _| Ok(()),
            batch_of: &|_| None,
        },
        Prior::default(),
        &mut Seen::default(),
    )
    .await
}

/// What the caller already has: the database's Jobs as listed before this step, and
/// history rows read after that listing (on the owner's probe session, or by an earlier
/// pass no Job has run since). The step lists and reads itself what is missing; rows are
/// used only with the listing they followed.
#[derive(Debug, Default)]
pub struct Prior {
    pub listed: Option<ListedJobs>,
    pub rows: Option<ReadRows>,
}

/// What the step saw, for the caller to keep.
#[derive(Debug, Default)]
pub struct Seen {
    /// The fleet inputs hash, once the ConfigMaps are read.
    pub fleet: Option<String>,
    /// The history rows the decision was made on, read after the listing of `ended`, when
    /// every Job listed had ended (a running one may still write to the history).
    pub rows: Option<ReadRows>,
    /// The Jobs of the database listed as ended before those rows were read (their
    /// identities: `ListedJobs::none_since`).
    pub ended: BTreeSet<String>,
}

/// The step, creating a Job only when `gates.admit` allows it (a tenant database in a
/// fleet rollout), and none when `gates.batch_of` names the batch Job the database is in
/// (whose outcome is then its own); `seen` receives what it saw.
#[allow(clippy::too_many_arguments)]
pub async fn reconcile_admitted(
    client: &kube::Client,
    server: &Server,
    target: &MigrationTarget,
    previous: Option<&SchemaStatus>,
    default_image: &str,
    gates: Gates<'_>,
    prior: Prior,
    seen: &mut Seen,
) -> Result<(Outcome, Option<Announcement>), MigrationError> {
    let keep = previous.cloned();
    // Both at once: a round trip fewer before the Job starts. Each result is looked at
    // where it was read before, so a Secret read failing never hides a missing ConfigMap.
    let (config_maps, credentials) = futures::join!(
        observe::config_maps(client, target),
        observe::owner_credentials(client, target),
    );
    let config_maps = config_maps.map_err(kube("reading the migration ConfigMaps"))?;
    let config_maps = match config_maps {
        Ok(found) => found,
        Err(missing) => {
            let message = format!(
                "waiting for ConfigMap {}/{missing} (spec.migrations.configMaps) to exist",
                target.namespace
            );
            return Ok((
                Outcome::Waiting {
                    schema: keep,
                    reason: CONFIG_MAP_NOT_FOUND,
                    message,
                },
                None,
            ));
        }
    };
    let fleet_inputs = fleet_hash(&config_maps, target.migrations.target_version.as_deref());
    seen.fleet = Some(fleet_inputs.clone());
    let files = match files_from_config_maps(&config_maps) {
        Ok(files) => files,
        Err(e) => {
            let message = format!("spec.migrations.configMaps: {e}");
            return Ok((invalid(keep, message), None));
        }
    };
    let inputs = Inputs {
        database: target.database.clone(),
        config_maps,
        target: target.migrations.target_version.clone(),
        retry: target.retry.clone(),
    };
    let hash = inputs.hash();
    let Gates { admit, batch_of } = gates;
    let batch = batch_of(&fleet_inputs);
    let name = batch
        .clone()
        .unwrap_or_else(|| job_name(&target.base_name, target.tenant.as_deref(), &hash));
    let Some((user, password)) = credentials.map_err(kube("reading the migrator Secret"))? else {
        return Err(MigrationError::Transient(format!(
            "Secret {}/{} has no username and password yet",
            target.namespace, target.migrator_secret
        )));
    };
    let version = target
        .migrations
        .target_version
        .as_deref()
        .and_then(|v| Version::parse(v).ok());
    // Listed before the history is read (see `listed`): rows read before a listing this
    // step makes itself are not used.
    let Prior { listed, mut rows } = prior;
    let mut listed = match listed {
        Some(listed) => listed,
        None => {
            rows = None;
            ListedJobs::list(client, target, &[])
                .await
                .map_err(kube("listing migration Jobs"))?
        }
    };
    if let Some(b) = &batch
        && !listed.covers(b)
    {
        rows = None;
        listed
            .also(client, &target.namespace, b)
            .await
            .map_err(kube("reading the batch migration Job"))?;
    }
    let history_error = |source| MigrationError::History {
        database: target.database.clone(),
        source,
    };
    let (read, rows) = match rows {
        Some(rows) => (
            observe::history_of(&rows, files, version).map_err(history_error)?,
            rows,
        ),
        None => observe::history(server, target, (&user, &password), files, version)
            .await
            .map_err(history_error)?,
    };
    seen.ended = listed.ended();
    seen.rows = listed.all_ended().then_some(rows);
    let jobs: Vec<&Job> = listed
        .jobs()
        .iter()
        .filter(|j| batch.as_deref() != j.metadata.name.as_deref())
        .collect();
    let batch_job = batch.as_deref().and_then(|b| listed.find(b));
    // What the status keeps when nothing new starts: its last Job as it ended.
    let all: Vec<&Job> = listed.jobs().iter().collect();
    let keep = observe::settle_running(keep, &all);
    let current = batch_job.or_else(|| {
        jobs.iter()
            .copied()
            .find(|j| j.metadata.name.as_deref() == Some(name.as_str()))
    });
    let other_running = jobs
        .iter()
        .filter(|j| j.metadata.name.as_deref() != Some(name.as_str()))
        .find(|j| observe::finished(j).is_none())
        .and_then(|j| j.metadata.name.clone());
    let state = match current {
        None => None,
        Some(j) => Some(job_state(client, target, previous, &hash, j).await?),
    };
    let target_version = target
        .migrations
        .target_version
        .clone()
        .or(read.latest.clone());
    let decision = decide(&Observed {
        inputs: &hash,
        job_name: &name,
        target_version,
        previous,
        history: &read.history,
        job: state.as_ref(),
        other_running: other_running.as_deref(),
    });
    // A failed Job is reported as such (its file, line and error, its Event) even when it
    // left a failed row behind; otherwise files that do not match the history are refused
    // here, before any Job.
    if !matches!(decision.next, Next::Failed { .. }) {
        if !read.problems.is_empty() {
            let message = format!(
                "the migrations do not match database {}'s history: {}",
                target.database,
                read.problems.join("; ")
            );
            return Ok((invalid(keep, message), None));
        }
        if !read.target_known {
            let message = format!(
                "spec.migrations.targetVersion {} matches no migration file and no applied version",
                target
                    .migrations
                    .target_version
                    .as_deref()
                    .unwrap_or_default()
            );
            return Ok((invalid(keep, message), None));
        }
    }
    if decision.next == Next::CreateJob {
        let admitted = match &batch {
            Some(b) => Err(format!(
                "waiting for batch migration Job {b} of the fleet rollout to start"
            )),
            None => admit(&fleet_inputs, decision.schema.applied_version.is_none()),
        };
        if let Err(message) = admitted {
            // Not started: the status keeps the last Job, with today's versions.
            let mut schema = keep.unwrap_or_default();
            schema.applied_version = decision.schema.applied_version;
            schema.target_version = decision.schema.target_version;
            schema.pending = decision.schema.pending;
            let outcome = Outcome::Waiting {
                schema: Some(schema),
                reason: WAITING_FOR_ROLLOUT,
                message,
            };
            return Ok((outcome, None));
        }
        let desired = job::desired_job(target, &name, &hash, default_image);
        create(client, &target.namespace, &desired).await?;
        tracing::debug!(job = %name, "created the migration Job");
    }
    Ok(present(target, &name, decision))
}

/// The current Job's state; a failure's detail from its Pods unless the status already
/// has it for these inputs.
async fn job_state(
    client: &kube::Client,
    target: &MigrationTarget,
    previous: Option<&SchemaStatus>,
    hash: &str,
    j: &Job,
) -> Result<JobState, MigrationError> {
    match observe::finished(j) {
        None => Ok(JobState::Running),
        Some(true) => Ok(JobState::Succeeded),
        Some(false) => {
            let known = previous.filter(|p| {
                p.last_job_inputs.as_deref() == Some(hash)
                    && p.last_job_outcome == Some(JobOutcome::Failed)
            });
            if let Some(detail) = known.and_then(|p| p.last_error.clone()) {
                return Ok(JobState::Failed { detail });
            }
            let name = j.metadata.name.clone().unwrap_or_default();
            let message = observe::termination_message(client, &target.namespace, &name)
                .await
                .map_err(kube("reading the failed migration Job's Pods"))?;
            if let Some(tenant) = &target.tenant
                && let Some(outcome) = batch_job::member_outcome(
                    &batch_job::members_of(j),
                    tenant,
                    Some(false),
                    message.as_deref(),
                    &observe::failed_condition(j),
                )
            {
                return Ok(match outcome {
                    batch_job::MemberOutcome::Failed { detail } => JobState::Failed {
                        detail: format!("in batch Job {name}: {detail}"),
                    },
                    _ => JobState::Succeeded,
                });
            }
            let detail = message
                .as_deref()
                .and_then(failure::describe)
                .unwrap_or_else(|| observe::failed_condition(j));
            Ok(JobState::Failed { detail })
        }
    }
}

/// Creates the Job; one that exists already (a reconcile that stopped after creating it)
/// is the same Job.
async fn create(client: &kube::Client, namespace: &str, job: &Job) -> Result<(), MigrationError> {
    let api: Api<Job> = Api::namespaced(client.clone(), namespace);
    let pp = PostParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PostParams::default()
    };
    match api.create(&pp, job).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.is_already_exists() => Ok(()),
        Err(e) => Err(kube("creating the migration Job")(e)),
    }
}
