//! The DatabaseServer's status from what the last check found. Pure.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::conditions::{Readiness, find_condition, is_ready, reasons, set_ready, types};
use crate::api::{DatabaseServer, DatabaseServerStatus};

/// Whether the DatabaseServer is Ready for its current generation (what the ServiceDatabase
/// and Tenant controllers wait for).
pub fn server_ready(dbs: &DatabaseServer) -> bool {
    dbs.status
        .as_ref()
        .is_some_and(|s| is_ready(&s.conditions, dbs.metadata.generation))
}

/// Why the DatabaseServer is not Ready, as its Ready condition says.
pub fn not_ready_why(dbs: &DatabaseServer) -> String {
    dbs.status
        .as_ref()
        .and_then(|s| find_condition(&s.conditions, types::READY))
        .map(|c| c.message.clone())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "not checked yet".to_string())
}

/// What checking the server found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    Ready {
        admin: String,
        version: String,
        database_count: i32,
    },
    /// Needs a change by a person (Stalled).
    Stalled { reason: String, message: String },
    /// Being retried (Reconciling).
    Retrying { reason: String, message: String },
}

/// The status to write: `current` with the conditions and facts of `health`, transition
/// times carried over unless a condition flips. Version and count stay at their last known
/// values while the server cannot be reached.
pub fn desired_status(
    current: Option<&DatabaseServerStatus>,
    generation: Option<i64>,
    health: &Health,
    now: &Time,
) -> DatabaseServerStatus {
    let mut status = current.cloned().unwrap_or_default();
    status.observed_generation = generation;
    let readiness = match health {
        Health::Ready {
            admin,
            version,
            database_count,
        } => {
            status.server_version = Some(version.clone());
            status.database_count = Some(*database_count);
            Readiness::ready(
                reasons::RECONCILED,
                format!("logged in as {admin}; PostgreSQL {version}"),
            )
        }
        Health::Stalled { reason, message } => Readiness::stalled(reason, message),
        Health::Retrying { reason, message } => Readiness::progressing(reason, message),
    };
    set_ready(&mut status.conditions, readiness, generation, now);
    status
}

/// Whether some installation has reported on this generation (a Ready condition observed at
/// it). A DatabaseServer whose Secrets are outside this operator's namespace is reported as
/// misplaced only when none has: it may be another installation's (the one running in that
/// namespace), whose report must not be overwritten back and forth.
pub fn reported(current: Option<&DatabaseServerStatus>, generation: Option<i64>) -> bool {
    current
        .and_then(|s| find_condition(&s.conditions, types::READY))
        .is_some_and(|c| c.observed_generation == generation)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::conditions::{is_ready, is_true};
    use k8s_openapi::jiff::Timestamp;

    fn at(s: i64) -> Time {
        Time(Timestamp::from_second(s).unwrap())
    }

    fn ready() -> Health {
        Health::Ready {
            admin: "admin".into(),
            version: "16.4".into(),
            database_count: 3,
        }
    }

    /// Locks "status is written only when it changes": the same health later gives an equal
    /// status (same transition time), so the controller skips the patch.
    #[test]
    fn same_health_gives_the_same_status() {
        let first = desired_status(None, Some(1), &ready(), &at(10));
        assert!(is_ready(&first.conditions, Some(1)));
        assert_eq!(first.server_version.as_deref(), Some("16.4"));
        assert_eq!(first.database_count, Some(3));
        let again = desired_status(Some(&first), Some(1), &ready(), &at(20));
        assert_eq!(again, first);
    }

    /// Locks "leave another installation's report alone": a status with Ready observed at
    /// the current generation counts as reported, whatever its value; none, or one for an
    /// older generation, does not.
    #[test]
    fn reported_means_ready_observed_at_this_generation() {
        assert!(!reported(None, Some(1)));
        let ready = desired_status(None, Some(1), &ready(), &at(10));
        assert!(reported(Some(&ready), Some(1)));
        assert!(!reported(Some(&ready), Some(2)));
        let stalled = Health::Stalled {
            reason: "AdminSecretInvalid".into(),
            message: "outside".into(),
        };
        let misplaced = desired_status(None, Some(2), &stalled, &at(10));
        assert!(reported(Some(&misplaced), Some(2)));
        assert!(!reported(Some(&DatabaseServerStatus::default()), Some(2)));
    }

    #[test]
    fn a_wrong_password_stalls_and_keeps_the_last_known_version() {
        let first = desired_status(None, Some(1), &ready(), &at(10));
        let failed = Health::Stalled {
            reason: "ConnectionFailed".into(),
            message: "cannot log in".into(),
        };
        let s = desired_status(Some(&first), Some(1), &failed, &at(20));
        assert!(is_true(&s.conditions, types::STALLED));
        let ready = find_condition(&s.conditions, types::READY).unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "ConnectionFailed")
        );
        assert_eq!(ready.last_transition_time, at(20));
        assert_eq!(s.server_version.as_deref(), Some("16.4"));
        let retrying = Health::Retrying {
            reason: "ConnectionFailed".into(),
            message: "cannot reach".into(),
        };
        let s = desired_status(Some(&s), Some(1), &retrying, &at(30));
        assert!(is_true(&s.conditions, types::RECONCILING));
        assert!(find_condition(&s.conditions, types::STALLED).is_none());
    }
}
