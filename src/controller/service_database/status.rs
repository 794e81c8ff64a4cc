//! The ServiceDatabase's status from where its reconcile got to. Pure: the controller
//! writes the result only when it differs from the status it read.
//!
//! MigrationsApplied: this controller runs no migration Jobs yet. Without `migrations` in
//! the spec the condition is left out; with them it is Unknown and the resource is Stalled
//! (`MigrationsNotSupported`), so nobody mistakes an unmigrated database for a Ready one.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::conditions::{
    ConditionUpdate, Readiness, reasons, set_condition, set_ready, types,
};
use crate::api::{Phase, ServiceDatabaseStatus};

/// Reason while migration Jobs are not implemented.
pub const MIGRATIONS_NOT_SUPPORTED: &str = "MigrationsNotSupported";
/// Reason of a PerTenant ServiceDatabase, whose databases come with its Tenants.
pub const WAITING_FOR_TENANTS: &str = "WaitingForTenants";

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
        has_migrations: bool,
    },
    /// A PerTenant template: valid, nothing to provision for itself.
    PerTenant {
        database: String,
        secret_name: String,
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
            has_migrations,
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
            if *has_migrations {
                let message = "this servicedb version does not run migration Jobs yet; \
                               the database and Secrets are ready, the schema is not migrated";
                set(ConditionUpdate::unknown(
                    types::MIGRATIONS_APPLIED,
                    MIGRATIONS_NOT_SUPPORTED,
                    message,
                ));
                (
                    Readiness::stalled(MIGRATIONS_NOT_SUPPORTED, message),
                    Phase::Failed,
                )
            } else {
                let _ = crate::api::conditions::remove_condition(
                    &mut s.conditions,
                    types::MIGRATIONS_APPLIED,
                );
                (
                    Readiness::ready(
                        reasons::RECONCILED,
                        format!(
                            "database {database} is ready; credentials are in Secret {secret_name}"
                        ),
                    ),
                    Phase::Ready,
                )
            }
        }
        Progress::PerTenant {
            database,
            secret_name,
        } => {
            s.database = Some(database.clone());
            s.secret_name = Some(secret_name.clone());
            (
                Readiness::progressing(
                    WAITING_FOR_TENANTS,
                    "PerTenant: each Tenant listing this service gets its own database; status.tenants counts them",
                ),
                Phase::Pending,
            )
        }
    };
    set_ready(&mut s.conditions, readiness, generation, now);
    s.phase = Some(phase);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::conditions::{find_condition, is_ready, is_true};
    use k8s_openapi::jiff::Timestamp;

    fn at(s: i64) -> Time {
        Time(Timestamp::from_second(s).unwrap())
    }

    fn provisioned(has_migrations: bool) -> Progress {
        Progress::Provisioned {
            server: "main".into(),
            database: "shop_orders".into(),
            secret_name: "orders-db".into(),
            secrets: vec!["orders-db".into(), "orders-migrator".into()],
            has_migrations,
        }
    }

    /// Locks the no-status-loop rule: reconciling the same state again yields an equal
    /// status, so nothing is written at steady state.
    #[test]
    fn steady_state_yields_an_equal_status() {
        let started = desired_status(None, Some(1), &Progress::Started, &at(1));
        assert_eq!(started.observed_generation, Some(1));
        assert!(is_true(&started.conditions, types::RECONCILING));
        let ready = desired_status(Some(&started), Some(1), &provisioned(false), &at(2));
        assert!(is_ready(&ready.conditions, Some(1)));
        assert!(find_condition(&ready.conditions, types::RECONCILING).is_none());
        assert_eq!(ready.phase, Some(Phase::Ready));
        assert_eq!(ready.database.as_deref(), Some("shop_orders"));
        assert_eq!(ready.secret_name.as_deref(), Some("orders-db"));
        assert!(find_condition(&ready.conditions, types::MIGRATIONS_APPLIED).is_none());
        let again = desired_status(Some(&ready), Some(1), &provisioned(false), &at(3));
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

    #[test]
    fn migrations_without_jobs_are_not_reported_ready() {
        let s = desired_status(None, Some(2), &provisioned(true), &at(1));
        assert!(!is_ready(&s.conditions, Some(2)));
        assert!(is_true(&s.conditions, types::STALLED));
        let m = find_condition(&s.conditions, types::MIGRATIONS_APPLIED).unwrap();
        assert_eq!(m.status, "Unknown");
    }
}
