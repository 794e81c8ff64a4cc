//! The ServiceDatabase's status from where its reconcile got to. Pure: the controller
//! writes the result only when it differs from the status it read.
//!
//! MigrationsApplied is left out without `migrations` in the spec; with them it follows the
//! migration step (`controller::migration`): True at the target version, False while a Job
//! runs (Reconciling) or after one failed (Stalled, with the file, line and error). A PerTenant
//! service is Ready once its fleet rollout is Complete, Stalled while it is paused.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::conditions::{
    ConditionUpdate, Readiness, reasons, set_condition, set_ready, types,
};
use crate::api::{Phase, ServiceDatabaseStatus};
use crate::controller::migration::Outcome;
use crate::controller::rollout::FleetState;
use crate::controller::rollout::write::{ROLLOUT_PAUSED, ROLLOUT_PROGRESSING};

/// Where the reconcile got to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// A new generation is being worked on.
    Started,
    /// Needs a change by a person: invalid spec, Conflict, seed refused.
    Stalled { reason: String, message: String },
    /// Waiting for something that will come by itself (a server, a retry).
    Waiting { reason: String, message: String },
    /// Database, roles and Secrets are in place.
    Provisioned {
        server: String,
        database: String,
        secret_name: String,
        secrets: Vec<String>,
        /// The migration step's outcome; None without migrations in the spec.
        migrations: Option<Box<Outcome>>,
    },
    /// A PerTenant template: valid, nothing to provision for itself.
    PerTenant {
        database: String,
        secret_name: String,
        fleet: FleetState,
    },
}

/// `current` moved to `progress`: transition times carried over unless a status flips.
pub fn desired_status(
    current: Option<&ServiceDatabaseStatus>,
    generation: Option<i64>,
    progress: &Progress,
    now: &Time,
) -> ServiceDatabaseStatus {
    let mut s = current.cloned().unwrap_or_default();
    s.observed_generation = generation;
    let mut set = |update: ConditionUpdate| {
        set_condition(&mut s.conditions, update, generation, now);
    };
    let (readiness, phase) = match progress {
        Progress::Started => (
            Readiness::progressing(
                reasons::PROGRESSING,
                "servicedb is working on this generation",
            ),
            Phase::Provisioning,
        ),
        Progress::Stalled { reason, message } => {
            if reason == reasons::CONFLICT || reason == reasons::INVALID_SPEC {
                set(ConditionUpdate::false_(
                    types::DATABASE_READY,
                    reason.clone(),
                    message.clone(),
                ));
            }
            (Readiness::stalled(reason, message), Phase::Failed)
        }
        Progress::Waiting { reason, message } => {
            (Readiness::progressing(reason, message), Phase::Pending)
        }
        Progress::Provisioned {
            server,
            database,
            secret_name,
            secrets,
            migrations,
        } => {
            set(ConditionUpdate::true_(
                types::DATABASE_READY,
                reasons::RECONCILED,
                format!(
                    "database {database} and its roles are in place on DatabaseServer {server}"
                ),
            ));
            set(ConditionUpdate::true_(
                types::SECRET_READY,
                reasons::RECONCILED,
                format!("Secrets {} hold working credentials", secrets.join(", ")),
            ));
            s.server = Some(server.clone());
            s.database = Some(database.clone());
            s.secret_name = Some(secret_name.clone());
            let ready = |version: Option<&str>| {
                let at = version
                    .map(|v| format!(" at schema version {v}"))
                    .unwrap_or_default();
                Readiness::ready(
                    reasons::RECONCILED,
                    format!(
                        "database {database} is ready{at}; credentials are in Secret {secret_name}"
                    ),
                )
            };
            match migrations.as_deref() {
                None => {
                    let _ = crate::api::conditions::remove_condition(
                        &mut s.conditions,
                        types::MIGRATIONS_APPLIED,
                    );
                    s.schema = None;
                    (ready(None), Phase::Ready)
                }
                Some(Outcome::Applied { schema }) => {
                    let version = schema.applied_version.clone();
                    set(ConditionUpdate::true_(
                        types::MIGRATIONS_APPLIED,
                        reasons::RECONCILED,
                        match &version {
                            Some(v) => format!("the schema is at version {v}"),
                            None => "no migrations to apply".to_string(),
                        },
                    ));
                    s.schema = Some(schema.clone());
                    (ready(version.as_deref()), Phase::Ready)
                }
                Some(Outcome::Running { schema, message }) => {
                    set(ConditionUpdate::false_(
                        types::MIGRATIONS_APPLIED,
                        reasons::MIGRATION_RUNNING,
                        message.clone(),
                    ));
                    s.schema = Some(schema.clone());
                    (
                        Readiness::progressing(reasons::MIGRATION_RUNNING, message),
                        Phase::Migrating,
                    )
                }
                Some(Outcome::Waiting {
                    schema,
                    reason,
                    message,
                }) => {
                    set(ConditionUpdate::false_(
                        types::MIGRATIONS_APPLIED,
                        *reason,
                        message.clone(),
                    ));
                    if let Some(schema) = schema {
                        s.schema = Some(schema.clone());
                    }
                    (Readiness::progressing(*reason, message), Phase::Pending)
                }
                Some(Outcome::Stalled {
                    schema,
                    reason,
                    message,
                }) => {
                    set(ConditionUpdate::false_(
                        types::MIGRATIONS_APPLIED,
                        *reason,
                        message.clone(),
                    ));
                    if let Some(schema) = schema {
                        s.schema = Some(schema.clone());
                    }
                    (Readiness::stalled(*reason, message), Phase::Failed)
                }
            }
        }
        Progress::PerTenant {
            database,
            secret_name,
            fleet,
        } => {
            s.database = Some(database.clone());
            s.secret_name = Some(secret_name.clone());
            per_tenant_readiness(fleet)
        }
    };
    set_ready(&mut s.conditions, readiness, generation, now);
    s.phase = Some(phase);
    s
}

/// A PerTenant service is Ready when valid and its fleet is at the target (every rollout
/// Complete, or no migrations); its tenants' own readiness is on each Tenant and counted in
/// status.tenants.
fn per_tenant_readiness(fleet: &FleetState) -> (Readiness, Phase) {
    const NOTE: &str = "PerTenant: each Tenant listing this service gets its own database; status.tenants counts them";
    match fleet {
        FleetState::NoMigrations => (Readiness::ready(reasons::RECONCILED, NOTE), Phase::Ready),
        FleetState::Complete { message } => (
            Readiness::ready(reasons::RECONCILED, format!("{NOTE}; {message}")),
            Phase::Ready,
        ),
        FleetState::Progressing { message } => (
            Readiness::progressing(ROLLOUT_PROGRESSING, message),
            Phase::Migrating,
        ),
        FleetState::Waiting { reason, message } => {
            (Readiness::progressing(reason, message), Phase::Pending)
        }
        FleetState::Invalid { message } => (
            Readiness::stalled(reasons::MIGRATIONS_INVALID, message),
            Phase::Failed,
        ),
        FleetState::Paused { message } => {
            (Readiness::stalled(ROLLOUT_PAUSED, message), Phase::Failed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::conditions::{find_condition, is_ready, is_true};
    use k8s_openapi::jiff::Timestamp;

    fn at(s: i64) -> Time {
        Time(Timestamp::from_second(s).unwrap())
    }

    fn provisioned(migrations: Option<Outcome>) -> Progress {
        let migrations = migrations.map(Box::new);
        Progress::Provisioned {
            server: "main".into(),
            database: "shop_orders".into(),
            secret_name: "orders-db".into(),
            secrets: vec!["orders-db".into(), "orders-migrator".into()],
            migrations,
        }
    }

    /// Locks the no-status-loop rule: reconciling the same state again yields an equal
    /// status, so nothing is written at steady state.
    #[test]
    fn steady_state_yields_an_equal_status() {
        let started = desired_status(None, Some(1), &Progress::Started, &at(1));
        assert_eq!(started.observed_generation, Some(1));
        assert!(is_true(&started.conditions, types::RECONCILING));
        let ready = desired_status(Some(&started), Some(1), &provisioned(None), &at(2));
        assert!(is_ready(&ready.conditions, Some(1)));
        assert!(find_condition(&ready.conditions, types::RECONCILING).is_none());
        assert_eq!(ready.phase, Some(Phase::Ready));
        assert_eq!(ready.database.as_deref(), Some("shop_orders"));
        assert_eq!(ready.secret_name.as_deref(), Some("orders-db"));
        assert!(find_condition(&ready.conditions, types::MIGRATIONS_APPLIED).is_none());
        let again = desired_status(Some(&ready), Some(1), &provisioned(None), &at(3));
        assert_eq!(again, ready);
    }

    #[test]
    fn conflict_stalls_with_database_not_ready() {
        let s = desired_status(
            None,
            Some(1),
            &Progress::Stalled {
                reason: reasons::CONFLICT.into(),
                message: "database \"x\" belongs to ServiceDatabase a/b".into(),
            },
            &at(1),
        );
        assert!(is_true(&s.conditions, types::STALLED));
        let db = find_condition(&s.conditions, types::DATABASE_READY).unwrap();
        assert_eq!(
            (db.status.as_str(), db.reason.as_str()),
            ("False", "Conflict")
        );
        assert_eq!(s.phase, Some(Phase::Failed));
        assert!(s.secret_name.is_none());
    }

    /// Locks the migration conditions: a running Job is Reconciling (phase Migrating), a
    /// failed one Stalled with its message, the target reached is Ready with
    /// `status.schema` filled; each time MigrationsApplied says so.
    #[test]
    fn migration_outcomes_map_to_conditions() {
        use crate::api::SchemaStatus;
        let schema = SchemaStatus {
            applied_version: Some("2".into()),
            target_version: Some("3".into()),
            pending: Some(1),
            ..Default::default()
        };
        let running = desired_status(
            None,
            Some(2),
            &provisioned(Some(Outcome::Running {
                schema: schema.clone(),
                message: "Job j runs".into(),
            })),
            &at(1),
        );
        assert!(!is_ready(&running.conditions, Some(2)));
        assert!(is_true(&running.conditions, types::RECONCILING));
        assert_eq!(running.phase, Some(Phase::Migrating));
        let m = find_condition(&running.conditions, types::MIGRATIONS_APPLIED).unwrap();
        assert_eq!(
            (m.status.as_str(), m.reason.as_str()),
            ("False", "MigrationRunning")
        );
        assert_eq!(running.schema.as_ref(), Some(&schema));

        let failed = desired_status(
            Some(&running),
            Some(2),
            &provisioned(Some(Outcome::Stalled {
                schema: Some(schema.clone()),
                reason: reasons::MIGRATION_FAILED,
                message: "V3__x.sql line 1: boom".into(),
            })),
            &at(2),
        );
        assert!(is_true(&failed.conditions, types::STALLED));
        assert!(find_condition(&failed.conditions, types::RECONCILING).is_none());
        assert_eq!(failed.phase, Some(Phase::Failed));
        let m = find_condition(&failed.conditions, types::MIGRATIONS_APPLIED).unwrap();
        assert_eq!(m.message, "V3__x.sql line 1: boom");

        let done = SchemaStatus {
            applied_version: Some("3".into()),
            pending: Some(0),
            ..schema
        };
        let ready = desired_status(
            Some(&failed),
            Some(2),
            &provisioned(Some(Outcome::Applied {
                schema: done.clone(),
            })),
            &at(3),
        );
        assert!(is_ready(&ready.conditions, Some(2)));
        assert!(find_condition(&ready.conditions, types::STALLED).is_none());
        assert!(is_true(&ready.conditions, types::MIGRATIONS_APPLIED));
        assert_eq!(ready.schema, Some(done));
        assert!(
            find_condition(&ready.conditions, types::READY)
                .unwrap()
                .message
                .contains("at schema version 3")
        );
        // Migrations removed from the spec: no condition, no schema.
        let plain = desired_status(Some(&ready), Some(3), &provisioned(None), &at(4));
        assert!(find_condition(&plain.conditions, types::MIGRATIONS_APPLIED).is_none());
        assert_eq!(plain.schema, None);
    }
}
