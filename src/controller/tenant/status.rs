//! The Tenant's status from what happened to each of its databases. Pure: the controller
//! writes the result only when it differs from the status it read.
//!
//! Ready when every database is. A database that waits (its server, a retry) makes the
//! Tenant Reconciling; one that needs a person (a Shared or invalid service, a Conflict, no
//! room on any server, a failed migration) makes it Stalled, with the service named in the
//! message. MigrationsApplied sums up the databases whose service has migrations.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::conditions::{
    ConditionUpdate, Readiness, reasons, remove_condition, set_condition, set_ready, types,
};
use crate::api::{SchemaStatus, TenantDatabaseStatus, TenantStatus};

/// Where one database got to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DbState {
    Ready,
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
    /// Its migrations, when its service has some.
    pub migration: Option<MigrationRecord>,
    pub state: DbState,
}

/// A tenant database's migrations: its schema status and the fleet inputs of its last Job.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MigrationRecord {
    pub schema: Option<SchemaStatus>,
    pub rollout_inputs: Option<String>,
    pub rollout_resume: Option<String>,
}

impl MigrationRecord {
    /// What the status recorded of a database.
    pub fn of(entry: &TenantDatabaseStatus) -> Option<MigrationRecord> {
        let record = MigrationRecord {
            schema: entry.schema.clone(),
            rollout_inputs: entry.rollout_inputs.clone(),
            rollout_resume: entry.rollout_resume.clone(),
        };
        (record != MigrationRecord::default()).then_some(record)
    }
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
            schema: self.migration.as_ref().and_then(|m| m.schema.clone()),
            rollout_inputs: self
                .migration
                .as_ref()
                .and_then(|m| m.rollout_inputs.clone()),
            rollout_resume: self
                .migration
                .as_ref()
                .and_then(|m| m.rollout_resume.clone()),
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
    /// One database done while others are still to go: its entry is recorded (a placement
    /// must survive a reconcile cut short), the conditions wait for `Databases`.
    Partial(Box<DbReport>),
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
        Progress::Partial(report) => {
            let entry = report.entry();
            match s.databases.iter_mut().find(|d| d.service == report.service) {
                Some(known) => *known = entry,
                None => s.databases.push(entry),
            }
            return s;
        }
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

/// MigrationsApplied over the databases whose service has migrations: True when all are
/// at their target, else False with the first one's reason; absent when none has any.
fn migrations_condition(
    s: &mut TenantStatus,
    reports: &[DbReport],
    generation: Option<i64>,
    now: &Time,
) {
    let migrating: Vec<&DbReport> = reports.iter().filter(|r| r.migration.is_some()).collect();
    if migrating.is_empty() {
        remove_condition(&mut s.conditions, types::MIGRATIONS_APPLIED);
        return;
    }
    let behind: Vec<&DbReport> = migrating
        .iter()
        .copied()
        .filter(|r| r.state != DbState::Ready)
        .collect();
    let update = match behind.first() {
        None => ConditionUpdate::true_(
            types::MIGRATIONS_APPLIED,
            reasons::RECONCILED,
            migrating
                .iter()
                .map(|r| {
                    let v = r.applied_version.as_deref().unwrap_or("<none>");
                    format!("{}: the schema is at version {v}", r.service)
                })
                .collect::<Vec<_>>()
                .join("; "),
        ),
        Some(first) => {
            let reason = match &first.state {
                DbState::Waiting { reason, .. } | DbState::Stalled { reason, .. } => reason.clone(),
                DbState::Ready => reasons::PROGRESSING.to_string(),
            };
            let message = behind
                .iter()
                .filter_map(|r| r.state.message().map(|m| format!("{}: {m}", r.service)))
                .collect::<Vec<_>>()
                .join("; ");
            ConditionUpdate::false_(types::MIGRATIONS_APPLIED, reason, message)
        }
    };
    set_condition(&mut s.conditions, update, generation, now);
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
            migration: None,
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

    /// Locks the per-database write: the entry is recorded (replaced in place, or added),
    /// the other entries and the conditions stay until the whole pass is written.
    #[test]
    fn a_partial_report_records_one_entry_and_leaves_the_conditions() {
        let started = desired_status(None, Some(1), &Progress::Started, &at(1));
        let placed = desired_status(
            Some(&started),
            Some(1),
            &Progress::Partial(Box::new(report("app", DbState::Ready))),
            &at(2),
        );
        assert_eq!(
            placed.databases,
            vec![report("app", DbState::Ready).entry()]
        );
        assert_eq!(placed.conditions, started.conditions);
        let mut moved = report("crm", DbState::Ready);
        moved.server = Some("other".into());
        let both = desired_status(
            Some(&placed),
            Some(1),
            &Progress::Partial(Box::new(moved.clone())),
            &at(3),
        );
        let mut app_waiting = report(
            "app",
            DbState::Waiting {
                reason: reasons::SERVER_NOT_READY.into(),
                message: "waiting".into(),
            },
        );
        app_waiting.server = None;
        let again = desired_status(
            Some(&both),
            Some(1),
            &Progress::Partial(Box::new(app_waiting.clone())),
            &at(4),
        );
        assert_eq!(again.databases, vec![app_waiting.entry(), moved.entry()]);
        assert_eq!(again.conditions, started.conditions);
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

    /// Locks MigrationsApplied per database: False with the reason of the first one behind,
    /// True once all are at their target, gone when no service has migrations.
    #[test]
    fn migrations_applied_follows_the_migrating_databases() {
        let migrating = |state: DbState, version: Option<&str>| DbReport {
            applied_version: version.map(str::to_string),
            migration: Some(MigrationRecord::default()),
            ..report("app", state)
        };
        let waiting = DbState::Waiting {
            reason: "WaitingForRollout".into(),
            message: "waiting for the rollout".into(),
        };
        let p = Progress::Databases(vec![
            migrating(waiting, Some("1")),
            report("crm", DbState::Ready),
        ]);
        let s = desired_status(None, Some(1), &p, &at(1));
        assert!(!is_ready(&s.conditions, Some(1)));
        assert!(is_true(&s.conditions, types::RECONCILING));
        let m = find_condition(&s.conditions, types::MIGRATIONS_APPLIED).unwrap();
        assert_eq!(
            (m.status.as_str(), m.reason.as_str(), m.message.as_str()),
            ("False", "WaitingForRollout", "app: waiting for the rollout")
        );
        let p = Progress::Databases(vec![migrating(DbState::Ready, Some("2"))]);
        let s = desired_status(Some(&s), Some(1), &p, &at(2));
        let m = find_condition(&s.conditions, types::MIGRATIONS_APPLIED).unwrap();
        assert_eq!(
            (m.status.as_str(), m.message.as_str()),
            ("True", "app: the schema is at version 2")
        );
        assert!(is_ready(&s.conditions, Some(1)));
        let p = Progress::Databases(vec![report("app", DbState::Ready)]);
        let s = desired_status(Some(&s), Some(2), &p, &at(3));
        assert!(find_condition(&s.conditions, types::MIGRATIONS_APPLIED).is_none());
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
