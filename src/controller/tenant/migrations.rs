//! The tenant database's schema: its migration Job, run through `controller::migration`
//! like a Shared ServiceDatabase's, owned by the Tenant.
//!
//! A Job starts only when the database was never migrated (a new tenant goes straight to
//! the service's current target, outside the rollout) or when the ServiceDatabase's
//! `status.rollout` admits this tenant for the inputs this reconcile sees: the
//! ServiceDatabase alone decides, this controller obeys, so two controllers never race.
//! The Tenant's status records the schema and the fleet inputs of the last Job, which is
//! what the ServiceDatabase's decision reads back.

use kube::ResourceExt;

use super::TenantContext;
use super::status::{DbState, MigrationRecord};
use crate::api::conditions::reasons;
use crate::api::{RESUME_ANNOTATION, RETRY_ANNOTATION, SchemaStatus, ServiceDatabase, Tenant};
use crate::controller::migration::{self, Announcement, MigrationTarget, Outcome, Prior, Seen};
use crate::controller::service_database::apply::MIGRATION_CHECK_FAILED;
use crate::provision::server::Server;
use crate::service::Layout;

/// Where a tenant database's migrations got to.
pub struct Migrated {
    pub state: DbState,
    pub applied_version: Option<String>,
    pub record: MigrationRecord,
    pub announcement: Option<Announcement>,
    /// A failure worth retrying with backoff.
    pub retry: Option<String>,
    /// The history rows the step decided on, and the Jobs listed ended before they were read.
    pub seen: Seen,
}

/// The tenant database as the migration step sees it; None when the service has no
/// migration ConfigMaps.
pub fn target(tenant: &Tenant, sdb: &ServiceDatabase, layout: &Layout) -> Option<MigrationTarget> {
    let migrations = sdb.spec.migrations.clone()?;
    if migrations.config_maps.is_empty() {
        return None;
    }
    Some(MigrationTarget {
        namespace: layout.namespace.clone(),
        owner: super::owner_reference(tenant),
        base_name: sdb.name_any(),
        tenant: Some(tenant.name_any()),
        database: layout.database.clone(),
        migrator_secret: layout.migrator_secret().name.clone(),
        migrations,
        retry: job_retry(sdb),
        history_seen: false,
    })
}

/// The service's `servicedb.io/resume` annotation.
pub fn resume(sdb: &ServiceDatabase) -> Option<String> {
    sdb.annotations().get(RESUME_ANNOTATION).cloned()
}

/// What makes a failed tenant Job run again: the service's `servicedb.io/retry` or
/// `servicedb.io/resume` changing (both are in the Job's inputs hash).
pub fn job_retry(sdb: &ServiceDatabase) -> Option<String> {
    let retry = sdb.annotations().get(RETRY_ANNOTATION);
    match (retry, resume(sdb)) {
        (None, None) => None,
        (retry, resume) => Some(format!(
            "{}/{}",
            retry.map_or("", String::as_str),
            resume.as_deref().unwrap_or("")
        )),
    }
}

/// Whether the tenant's Job may start now. Pure.
pub fn admission(
    sdb: &ServiceDatabase,
    tenant: &str,
    fleet: &str,
    fresh: bool,
) -> Result<(), String> {
    if fresh {
        return Ok(());
    }
    if crate::controller::rollout::write::settings(sdb).batch_size > 1 {
        return Err(format!(
            "waiting for the fleet rollout of ServiceDatabase {} to migrate this tenant in a batch Job (see its status.rollout.batches)",
            sdb.name_any()
        ));
    }
    let rollout = sdb.status.as_ref().and_then(|s| s.rollout.as_ref());
    let admitted = rollout.is_some_and(|r| {
        r.inputs_hash.as_deref() == Some(fleet)
            && r.resume == resume(sdb)
            && r.admitted.iter().any(|t| t == tenant)
    });
    if admitted {
        return Ok(());
    }
    Err(format!(
        "waiting for the fleet rollout of ServiceDatabase {} to admit this tenant (see its status.rollout)",
        sdb.name_any()
    ))
}

/// The batch Job of the rollout that migrates `tenant` for the inputs `fleet` (and the
/// current resume value), if the decision put it in one. Pure.
pub fn batch_of(sdb: &ServiceDatabase, tenant: &str, fleet: &str) -> Option<String> {
    let rollout = sdb.status.as_ref()?.rollout.as_ref()?;
    if rollout.inputs_hash.as_deref() != Some(fleet) || rollout.resume != resume(sdb) {
        return None;
    }
    batches_of(sdb, tenant).pop()
}

/// Every batch Job of the rollout that names `tenant`, whatever its inputs: listed with
/// the tenant's own Jobs, before its history is read. Pure.
pub fn batches_of(sdb: &ServiceDatabase, tenant: &str) -> Vec<String> {
    let rollout = sdb.status.as_ref().and_then(|s| s.rollout.as_ref());
    rollout
        .into_iter()
        .flat_map(|r| &r.batches)
        .filter(|b| b.tenants.iter().any(|t| t == tenant))
        .map(|b| b.job.clone())
        .collect()
}

/// The record to keep: the step's schema, and the fleet inputs of the last Job (taken
/// from this reconcile when it started a new Job, else kept). Pure.
pub fn record(
    previous: Option<&MigrationRecord>,
    schema: Option<SchemaStatus>,
    fleet: Option<&str>,
    resume: Option<&str>,
) -> MigrationRecord {
    let before = previous.cloned().unwrap_or_default();
    let last_job = |s: Option<&SchemaStatus>| s.and_then(|s| s.last_job.clone());
    let schema = schema.or(before.schema.clone());
    let new_job = last_job(schema.as_ref()).is_some()
        && (last_job(schema.as_ref()) != last_job(before.schema.as_ref())
            || before.rollout_inputs.is_none());
    if new_job && fleet.is_some() {
        MigrationRecord {
            schema,
            rollout_inputs: fleet.map(str::to_string),
            rollout_resume: resume.map(str::to_string),
        }
    } else {
        MigrationRecord { schema, ..before }
    }
}

pub async fn migrate(
    tenant: &Tenant,
    sdb: &ServiceDatabase,
    target: &MigrationTarget,
    server: &Server,
    tc: &TenantContext,
    prior: Prior,
) -> Migrated {
    let previous = tenant
        .status
        .as_ref()
        .and_then(|s| s.databases.iter().find(|d| d.service == sdb.name_any()))
        .and_then(MigrationRecord::of);
    let previous_schema = previous.as_ref().and_then(|p| p.schema.as_ref());
    let name = tenant.name_any();
    let admit = |fleet: &str, fresh: bool| admission(sdb, &name, fleet, fresh);
    let batch = |fleet: &str| batch_of(sdb, &name, fleet);
    let mut seen = Seen::default();
    let step = migration::reconcile_admitted(
        &tc.ctx.client,
        server,
        target,
        previous_schema,
        &tc.ctx.config.migration_image,
        migration::Gates {
            admit: &admit,
            batch_of: &batch,
        },
        prior,
        &mut seen,
    )
    .await;
    let resume = resume(sdb);
    let keep = |schema: Option<SchemaStatus>| {
        record(
            previous.as_ref(),
            schema,
            seen.fleet.as_deref(),
            resume.as_deref(),
        )
    };
    let (outcome, announcement) = match step {
        Ok(done) => done,
        Err(e) => {
            let message = format!("{e} (retrying)");
            return Migrated {
                state: DbState::Waiting {
                    reason: MIGRATION_CHECK_FAILED.into(),
                    message,
                },
                applied_version: previous_schema.and_then(|s| s.applied_version.clone()),
                record: keep(None),
                announcement: None,
                retry: Some(e.to_string()),
                seen: Seen::default(),
            };
        }
    };
    let (state, schema) = match outcome {
        Outcome::Applied { schema } => (DbState::Ready, Some(schema)),
        Outcome::Running { schema, message } => (
            DbState::Waiting {
                reason: reasons::MIGRATION_RUNNING.into(),
                message,
            },
            Some(schema),
        ),
        Outcome::Waiting {
            schema,
            reason,
            message,
        } => (
            DbState::Waiting {
                reason: reason.into(),
                message,
            },
            schema,
        ),
        Outcome::Stalled {
            schema,
            reason,
            message,
        } => (
            DbState::Stalled {
                reason: reason.into(),
                message,
            },
            schema,
        ),
    };
    let record = keep(schema);
    Migrated {
        state,
        applied_version: record
            .schema
            .as_ref()
            .and_then(|s| s.applied_version.clone()),
        record,
        announcement,
        retry: None,
        seen,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{JobOutcome, RolloutStatus, ServiceDatabaseStatus};

    fn sdb(rollout: Option<RolloutStatus>, resume: Option<&str>) -> ServiceDatabase {
        let mut s = ServiceDatabase::new("app", Default::default());
        if let Some(r) = resume {
            s.annotations_mut()
                .insert(RESUME_ANNOTATION.to_string(), r.to_string());
        }
        s.status = Some(ServiceDatabaseStatus {
            rollout,
            ..Default::default()
        });
        s
    }

    #[test]
    fn only_fresh_or_admitted_for_these_inputs_start() {
        let rollout = RolloutStatus {
            inputs_hash: Some("h2".into()),
            admitted: vec!["gym-1".into()],
            resume: Some("r1".into()),
            ..Default::default()
        };
        let s = sdb(Some(rollout), Some("r1"));
        assert!(admission(&s, "gym-1", "h2", false).is_ok());
        assert!(admission(&s, "gym-2", "h2", false).is_err(), "not admitted");
        assert!(admission(&s, "gym-2", "h2", true).is_ok(), "fresh");
        assert!(
            admission(&s, "gym-1", "h3", false).is_err(),
            "a decision about other inputs"
        );
        let resumed = sdb(s.status.clone().unwrap().rollout, Some("r2"));
        assert!(
            admission(&resumed, "gym-1", "h2", false).is_err(),
            "a decision made before the resume"
        );
        let none = sdb(None, None);
        let e = admission(&none, "gym-1", "h2", false).unwrap_err();
        assert!(e.contains("ServiceDatabase app"), "{e}");
    }

    #[test]
    fn the_fleet_inputs_follow_the_last_job() {
        let schema = |job: &str, outcome| SchemaStatus {
            last_job: Some(job.into()),
            last_job_outcome: Some(outcome),
            ..Default::default()
        };
        let started = record(
            None,
            Some(schema("j1", JobOutcome::Running)),
            Some("h1"),
            Some("r"),
        );
        assert_eq!(started.rollout_inputs.as_deref(), Some("h1"));
        assert_eq!(started.rollout_resume.as_deref(), Some("r"));
        // The same Job, seen with other inputs (waiting for the rollout): kept.
        let later = record(
            Some(&started),
            Some(schema("j1", JobOutcome::Succeeded)),
            Some("h2"),
            None,
        );
        assert_eq!(later.rollout_inputs.as_deref(), Some("h1"));
        assert_eq!(later.rollout_resume.as_deref(), Some("r"));
        assert_eq!(
            later.schema.unwrap().last_job_outcome,
            Some(JobOutcome::Succeeded)
        );
        let next = record(
            Some(&started),
            Some(schema("j2", JobOutcome::Running)),
            Some("h2"),
            None,
        );
        assert_eq!(next.rollout_inputs.as_deref(), Some("h2"));
        assert_eq!(next.rollout_resume, None);
        assert_eq!(
            record(None, None, Some("h"), None),
            MigrationRecord::default()
        );
    }

    #[test]
    fn resume_and_retry_both_change_the_job_inputs() {
        let mut s = sdb(None, None);
        assert_eq!(job_retry(&s), None);
        s.annotations_mut()
            .insert(RESUME_ANNOTATION.to_string(), "1".into());
        assert_eq!(job_retry(&s).as_deref(), Some("/1"));
        s.annotations_mut()
            .insert(RETRY_ANNOTATION.to_string(), "a".into());
        assert_eq!(job_retry(&s).as_deref(), Some("a/1"));
    }
}
