//! When passwords rotate: `servicedb.io/rotate: <value>` asks once per new value,
//! `spec.passwordRotation.every` asks periodically. Each connection Secret records the last
//! rotation it carries (`servicedb.io/rotated-at`, `servicedb.io/rotation`), written in the
//! same apply as its new password, so the record survives restarts and never runs ahead of
//! the password. Pure: the caller reads the Secrets and the clock.
//!
//! Per Secret, so the same decision serves a tenant's Secrets (one call per tenant database,
//! with that tenant's Secrets).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use crate::api::{ROTATE_ANNOTATION, ServiceDatabase};

/// When the Secret's password was last set by servicedb (RFC 3339).
pub const ROTATED_AT_ANNOTATION: &str = "servicedb.io/rotated-at";
/// The `servicedb.io/rotate` value the Secret's password answered.
pub const ROTATION_ANNOTATION: &str = "servicedb.io/rotation";

/// What the resource asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// The `servicedb.io/rotate` annotation's value.
    pub requested: Option<String>,
    /// `spec.passwordRotation.every`.
    pub every: Option<Duration>,
    /// Roles a running migration Job logs in as: not rotated until it ended (a batch Job
    /// would otherwise fail its later databases with the password it started with). The
    /// Job's end brings the next pass, which rotates them.
    pub held: BTreeSet<String>,
}

impl Policy {
    /// The policy of a (validated) ServiceDatabase; an unparsable `every` is refused by
    /// validation before this is asked.
    pub fn of(sdb: &ServiceDatabase) -> Policy {
        Policy {
            requested: sdb
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(ROTATE_ANNOTATION))
                .filter(|v| !v.is_empty())
                .cloned(),
            every: sdb
                .spec
                .password_rotation
                .as_ref()
                .and_then(|r| humantime::parse_duration(&r.every).ok()),
            held: BTreeSet::new(),
        }
    }
}

/// One connection Secret of the database as it is now.
#[derive(Debug, Clone)]
pub struct SecretState {
    pub name: String,
    /// The role whose credentials it holds.
    pub role: String,
    /// None when the Secret does not exist (yet).
    pub existing: Option<Existing>,
}

#[derive(Debug, Clone, Default)]
pub struct Existing {
    pub annotations: BTreeMap<String, String>,
    pub created: Option<Timestamp>,
}

/// The last rotation a Secret records. A Secret written before rotation existed has no
/// record: it counts as rotated when it was created, answering no request.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    rotated_at: Option<Timestamp>,
    answered: Option<String>,
}

impl Record {
    fn of(e: &Existing) -> Record {
        Record {
            rotated_at: e
                .annotations
                .get(ROTATED_AT_ANNOTATION)
                .and_then(|t| t.parse().ok())
                .or(e.created),
            answered: e.annotations.get(ROTATION_ANNOTATION).cloned(),
        }
    }

    fn annotations(&self) -> BTreeMap<String, String> {
        let mut a = BTreeMap::new();
        if let Some(t) = self.rotated_at {
            a.insert(ROTATED_AT_ANNOTATION.to_string(), t.to_string());
        }
        if let Some(v) = &self.answered {
            a.insert(ROTATION_ANNOTATION.to_string(), v.clone());
        }
        a
    }
}

/// The record annotations of an existing Secret, as they are.
fn carried(e: &Existing) -> BTreeMap<String, String> {
    e.annotations
        .iter()
        .filter(|(k, _)| [ROTATED_AT_ANNOTATION, ROTATION_ANNOTATION].contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Why a role rotates now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// `servicedb.io/rotate` has a value its Secrets have not answered.
    Requested(String),
    /// `passwordRotation.every` has passed since its last rotation.
    Due,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// Roles that get a new password now, with why.
    pub rotate: BTreeMap<String, Cause>,
    /// The record annotations to write with each Secret whenever it is written: a new one
    /// for a rotated role's (or a new) Secret, the current one carried over otherwise (a
    /// server-side apply without them would remove them).
    pub annotations: BTreeMap<String, BTreeMap<String, String>>,
    /// How long until the next periodic rotation, counted after this one.
    pub next_due: Option<Duration>,
}

impl Decision {
    pub fn roles(&self) -> Vec<String> {
        self.rotate.keys().cloned().collect()
    }
}

/// Which roles rotate at `now`, and what each Secret records when written.
pub fn decide(policy: &Policy, secrets: &[SecretState], now: Timestamp) -> Decision {
    let due = |r: &Record| -> Option<Cause> {
        if let Some(v) = &policy.requested
            && r.answered.as_ref() != Some(v)
        {
            return Some(Cause::Requested(v.clone()));
        }
        let every = policy.every?;
        let since = r.rotated_at?;
        (now.duration_since(since).unsigned_abs() >= every && now >= since).then_some(Cause::Due)
    };
    let mut out = Decision::default();
    for s in secrets {
        if policy.held.contains(&s.role) {
            continue;
        }
        if let Some(cause) = s.existing.as_ref().map(Record::of).as_ref().and_then(due) {
            out.rotate.entry(s.role.clone()).or_insert(cause);
        }
    }
    // A rotation also answers the request standing now; without one, the last answer stays.
    let fresh = |before: Option<&Record>| Record {
        rotated_at: Some(now),
        answered: policy
            .requested
            .clone()
            .or_else(|| before.and_then(|r| r.answered.clone())),
    };
    // What a role's existing Secrets carry, for a Secret of it that is new.
    let role_secret = |role: &str| {
        secrets
            .iter()
            .filter(|s| s.role == role)
            .find_map(|s| s.existing.as_ref())
    };
    for s in secrets {
        let (record, annotations) = if out.rotate.contains_key(&s.role) {
            let r = fresh(s.existing.as_ref().map(Record::of).as_ref());
            let a = r.annotations();
            (r, a)
        } else {
            match s.existing.as_ref().or_else(|| role_secret(&s.role)) {
                // Carried over as written: a Secret without a record gets none invented.
                Some(e) => (Record::of(e), carried(e)),
                // The role's first Secret: its password is new now.
                None => {
                    let r = fresh(None);
                    let a = r.annotations();
                    (r, a)
                }
            }
        };
        // A held role's due time is the Job's end, which brings a reconcile of its own.
        if let (Some(every), Some(at), false) = (
            policy.every,
            record.rotated_at,
            policy.held.contains(&s.role),
        ) {
            let elapsed = now.duration_since(at);
            let left = if elapsed.is_negative() {
                every
            } else {
                every.saturating_sub(elapsed.unsigned_abs())
            };
            out.next_due = Some(out.next_due.map_or(left, |d: Duration| d.min(left)));
        }
        out.annotations.insert(s.name.clone(), annotations);
    }
    out
}

#[cfg(test)]
#[path = "rotation_tests.rs"]
mod tests;
