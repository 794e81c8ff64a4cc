//! The Tenant's status from what happened to each of its databases. Pure: the controller
//! writes the result only when it differs from the status it read.
//!
//! Ready when every database is. A database that waits (its server, a retry) makes the
//! Tenant Reconciling; one that needs a person (a Shared or invalid service, a Conflict, no
//! room on any server, migrations this version cannot run yet) makes it Stalled, with the
//! service named in the message.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::conditions::{
    ConditionUpdate, Readiness, reasons, remove_condition, set_condition, set_ready, types,
};
use crate::api::{TenantDatabaseStatus, TenantStatus};

/// Reason while tenant migration Jobs are not wired in.
pub const MIGRATIONS_NOT_SUPPORTED: &str = "MigrationsNotSupported";
/// Message of a tenant database whose service has migrations, until Jobs are wired in.
pub const MIGRATIONS_NOT_SUPPORTED_MESSAGE: &str = "this servicedb version does not run migration Jobs for tenant databases yet; the database and Secrets are ready, the schema is not migrated";

/// Where one database got to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DbState {
    Ready,
    /// Provisioned, but its service has migrations that nothing runs yet.
    NotMigrated,
    /// Will go on by itself (a server coming up, a retry).
    Waiting {
        reason: String,
        message: String,
    },
    /// Needs a person.
    Stalled {
        reason: String,
        message: String,
    },
}

impl DbState {
    /// Why it is not ready, if it is not.
    pub fn message(&self) -> Option<String> {
        match self {
            DbState::Ready => None,
            DbState::NotMigrated => Some(MIGRATIONS_NOT_SUPPORTED_MESSAGE.to_string()),
            DbState::Waiting { message, .. } | DbState::Stalled { message, .. } => {
                Some(message.clone())
            }
        }
    }
}

/// One database's report: what is known of it, and its state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DbReport {
    pub service: String,
    pub server: Option<String>,
    pub database: Option<String>,
    pub secret_name: Option<String>,
    pub applied_version: Option<String>,
    pub state: DbState,
}

impl DbReport {
    pub fn entry(&self) -> TenantDatabaseStatus {
        let message = self.state.message();
        TenantDatabaseStatus {
            service: self.service.clone(),
            server: self.server.clone(),
            database: self.database.clone(),
            secret_name: self.secret_name.clone(),
            applied_version: self.applied_version.clone(),
            ready: self.state == DbState::Ready,
            message,
        }
    }
}

/// Where the Tenant's reconcile got to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// A new generation is being worked on.
    Started,
    /// The spec itself is invalid.
    Invalid { message: String },
    /// Every database listed (in `spec.services` order) and the ones still being offboarded.
    Databases(Vec<DbReport>),
}

pub fn desired_status(
    current: Option<&TenantStatus>,
    generation: Option<i64>,
    progress: &Progress,
    now: &Time,
) -> TenantStatus {
    let mut s = current.cloned().unwrap_or_default();
    s.observed_generation = generation;
    let readiness = match progress {
        Progress::Started => Readiness::progressing(
            reasons::PROGRESSING,
            "servicedb is working on this generation",
        ),
        Progress::Invalid { message } => Readiness::stalled(reasons::INVALID_SPEC, message),
        Progress::Databases(reports) => {
            s.databases = reports.iter().map(DbReport::entry).collect();
            s.database_count = Some(to_i32(reports.len()));
            s.ready_count = Some(to_i32(
                reports.iter().filter(|r| r.state == DbState::Ready).count(),
            ));
            migrations_condition(&mut s, reports, generation, now);
            readiness(reports)
        }
    };
    set_ready(&mut s.conditions, readiness, generation, now);
    s
}

/// MigrationsApplied: Unknown while any database's migrations cannot run; absent when no
/// service has migrations.
fn migrations_condition(
    s: &mut TenantStatus,
    reports: &[DbReport],
    generation: Option<i64>,
    now: &Time,
) {
    let waiting: Vec<&str> = reports
        .iter()
        .filter(|r| r.state == DbState::NotMigrated)
        .map(|r| r.service.as_str())
        .collect();
    if waiting.is_empty() {
        remove_condition(&mut s.conditions, types::MIGRATIONS_APPLIED);
        return;
    }
    set_condition(
        &mut s.conditions,
        ConditionUpdate::unknown(
            types::MIGRATIONS_APPLIED,
            MIGRATIONS_NOT_SUPPORTED,
            format!(
                "services {}: {MIGRATIONS_NOT_SUPPORTED_MESSAGE}",
                waiting.join(", ")
            ),
        ),
        generation,
        now,
    );
}

/// Stalled if any database needs a person, else Reconciling if any is not ready, else
/// Ready; the message names every database that is not ready.
fn readiness(reports: &[DbReport]) -> Readiness {
    let problems: Vec<String> = reports
        .iter()
        .filter_map(|r| r.entry().message.map(|m| format!("{}: {m}", r.service)))
        .collect();
    let first_stalled = reports.iter().find_map(|r| match &r.state {
        DbState::Stalled { reason, .. } => Some(reason.clone()),
        DbState::NotMigrated => Some(MIGRATIONS_NOT_SUPPORTED.to_string()),
        _ => None,
    });
    let first_waiting = reports.iter().find_map(|r| match &r.state {
        DbState::Waiting { reason, .. } => Some(reason.clone()),
        _ => None,
    });
    match (first_stalled, first_waiting) {
        (Some(reason), _) => Readiness::stalled(reason, problems.join("; ")),
        (None, Some(reason)) => Readiness::progressing(reason, problems.join("; ")),
        (None, None) => Readiness::ready(
            reasons::RECONCILED,
            format!(
                "{} database(s) ready: {}",
                reports.len(),
                reports
                    .iter()
                    .map(|r| format!(
                        "{} in Secret {}",
                        r.database.as_deref().unwrap_or("?"),
                        r.secret_name.as_deref().unwrap_or("?")
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
    }
}

fn to_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::conditions::{find_condition, is_ready, is_true};
    use k8s_openapi::jiff::Timestamp;

    fn at(s: i64) -> Time {
        Time(Timestamp::from_second(s).unwrap())
    }

    fn report(service: &str, state: DbState) -> DbReport {
        DbReport {
            service: service.into(),
            server: Some("main".into()),
            database: Some(format!("{service}_gym_1")),
            secret_name: Some(format!("{service}-db-gym-1")),
            applied_version: None,
            state,
        }
    }

    /// Locks the no-status-loop rule and Ready only when every database is.
    #[test]
    fn ready_when_all_are_and_steady() {
        let started = desired_status(None, Some(1), &Progress::Started, &at(1));
        assert_eq!(started.observed_generation, Some(1));
        let all = Progress::Databases(vec![
            report("app", DbState::Ready),
            report("crm", DbState::Ready),
        ]);
        let ready = desired_status(Some(&started), Some(1), &all, &at(2));
        assert!(is_ready(&ready.conditions, Some(1)));
        assert!(find_condition(&ready.conditions, types::RECONCILING).is_none());
        assert_eq!(
            (ready.database_count, ready.ready_count),
            (Some(2), Some(2))
        );
        assert!(
            ready
                .databases
                .iter()
                .all(|d| d.ready && d.message.is_none())
        );
        assert_eq!(desired_status(Some(&ready), Some(1), &all, &at(3)), ready);
    }

    #[test]
    fn a_waiting_database_is_reconciling_and_a_stalled_one_wins() {
        let waiting = Progress::Databases(vec![
            report("app", DbState::Ready),
            report(
                "crm",
                DbState::Waiting {
                    reason: reasons::SERVER_NOT_READY.into(),
                    message: "waiting for DatabaseServer main".into(),
                },
            ),
        ]);
        let s = desired_status(None, Some(1), &waiting, &at(1));
        assert!(is_true(&s.conditions, types::RECONCILING));
        let ready = find_condition(&s.conditions, types::READY).unwrap();
        assert_eq!(ready.reason, "ServerNotReady");
        assert_eq!(ready.message, "crm: waiting for DatabaseServer main");
        assert_eq!(s.ready_count, Some(1));

        let stalled = Progress::Databases(vec![
            report(
                "crm",
                DbState::Waiting {
                    reason: reasons::SERVER_NOT_READY.into(),
                    message: "waiting".into(),
                },
            ),
            report(
                "billing",
                DbState::Stalled {
                    reason: reasons::SERVICE_NOT_FOUND.into(),
                    message: "ServiceDatabase billing is Shared".into(),
                },
            ),
        ]);
        let s = desired_status(None, Some(1), &stalled, &at(1));
        assert!(is_true(&s.conditions, types::STALLED));
        let ready = find_condition(&s.conditions, types::READY).unwrap();
        assert_eq!(ready.reason, "ServiceNotFound");
        assert!(
            ready
                .message
                .contains("billing: ServiceDatabase billing is Shared")
        );
    }

    /// Locks "a tenant database whose service has migrations is not reported Ready until
    /// migration Jobs run".
    #[test]
    fn unmigrated_databases_are_not_ready() {
        let p = Progress::Databases(vec![report("app", DbState::NotMigrated)]);
        let s = desired_status(None, Some(1), &p, &at(1));
        assert!(!is_ready(&s.conditions, Some(1)));
        assert!(is_true(&s.conditions, types::STALLED));
        let m = find_condition(&s.conditions, types::MIGRATIONS_APPLIED).unwrap();
        assert_eq!(
            (m.status.as_str(), m.reason.as_str()),
            ("Unknown", MIGRATIONS_NOT_SUPPORTED)
        );
        assert!(!s.databases[0].ready);
        // Once the migrations are gone from the service, so is the condition.
        let p = Progress::Databases(vec![report("app", DbState::Ready)]);
        let s = desired_status(Some(&s), Some(2), &p, &at(2));
        assert!(find_condition(&s.conditions, types::MIGRATIONS_APPLIED).is_none());
        assert!(is_ready(&s.conditions, Some(2)));
    }

    #[test]
    fn invalid_spec_stalls() {
        let s = desired_status(
            None,
            Some(3),
            &Progress::Invalid {
                message: "spec.services: \"\" must name at least one".into(),
            },
            &at(1),
        );
        assert!(is_true(&s.conditions, types::STALLED));
        assert_eq!(
            find_condition(&s.conditions, types::READY).unwrap().reason,
            "InvalidSpec"
        );
    }
}
