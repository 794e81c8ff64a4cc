//! metav1-style conditions, the way Flux's kstatus and Argo CD read them.
//!
//! - Every resource has `Ready`; `Reconciling` (True while work is under way) and `Stalled`
//!   (True when progress needs a person) are the kstatus "abnormal-true" conditions.
//! - A condition's `lastTransitionTime` changes only when its `status` changes, and
//!   [`set_condition`] reports whether anything but timestamps changed, so the caller patches
//!   status only when there is news and never loops on its own writes.
//! - `observedGeneration` is set on each condition and on the status, and [`is_ready`] compares
//!   it with `metadata.generation`, so an old Ready never passes for a new spec.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Condition types.
pub mod types {
    /// Everything the resource asks for is in place and up to date.
    pub const READY: &str = "Ready";
    /// kstatus: True while servicedb is working towards the spec.
    pub const RECONCILING: &str = "Reconciling";
    /// kstatus: True when servicedb cannot make progress without a change by a person.
    pub const STALLED: &str = "Stalled";
    /// ServiceDatabase: the database, its schemas, extensions and roles exist.
    pub const DATABASE_READY: &str = "DatabaseReady";
    /// ServiceDatabase: the connection Secrets are written and their credentials log in.
    pub const SECRET_READY: &str = "SecretReady";
    /// ServiceDatabase: the schema is at the target version.
    pub const MIGRATIONS_APPLIED: &str = "MigrationsApplied";
}

/// Condition reasons: CamelCase, stable, for automation (`message` is for people).
pub mod reasons {
    /// Everything is in place.
    pub const RECONCILED: &str = "Reconciled";
    /// Work is under way.
    pub const PROGRESSING: &str = "Progressing";
    /// The spec fails validation; the message names the field and the rule.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// The database (or a role) belongs to another resource; nothing was touched.
    pub const CONFLICT: &str = "Conflict";
    /// The named DatabaseServer does not exist, or no default server is marked.
    pub const SERVER_NOT_FOUND: &str = "ServerNotFound";
    /// spec.server names another server than the one the database lives on.
    pub const SERVER_CHANGED: &str = "ServerChanged";
    /// The DatabaseServer exists but is not Ready.
    pub const SERVER_NOT_READY: &str = "ServerNotReady";
    /// Every server is at `maxDatabases`.
    pub const NO_CAPACITY: &str = "NoCapacity";
    /// The server could not be reached or refused the login.
    pub const CONNECTION_FAILED: &str = "ConnectionFailed";
    /// The admin Secret is missing or lacks `username`/`password`.
    pub const ADMIN_SECRET_INVALID: &str = "AdminSecretInvalid";
    /// The admin lacks CREATEROLE or CREATEDB.
    pub const INSUFFICIENT_PRIVILEGES: &str = "InsufficientPrivileges";
    /// A SQL statement failed; the message says which step.
    pub const PROVISIONING_FAILED: &str = "ProvisioningFailed";
    /// A ConfigMap named in `migrations` is missing or holds a badly named file.
    pub const MIGRATIONS_INVALID: &str = "MigrationsInvalid";
    /// The migration Job is running.
    pub const MIGRATION_RUNNING: &str = "MigrationRunning";
    /// The migration Job failed; `status.schema.lastError` says why.
    pub const MIGRATION_FAILED: &str = "MigrationFailed";
    /// Seed data was asked for on a server whose environment is not `local`.
    pub const SEED_REFUSED: &str = "SeedRefused";
    /// A PerTenant service waits for Tenants; or a Tenant names a Shared or missing service.
    pub const SERVICE_NOT_FOUND: &str = "ServiceNotFound";
    /// The resource is being deleted.
    pub const DELETING: &str = "Deleting";
    /// Dropping the database or roles failed; the finalizer is retried.
    pub const DELETE_FAILED: &str = "DeleteFailed";
}

/// A condition's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    True,
    False,
    Unknown,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::True => "True",
            Status::False => "False",
            Status::Unknown => "Unknown",
        }
    }

    pub fn from_bool(value: bool) -> Status {
        if value { Status::True } else { Status::False }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to set a condition to; [`set_condition`] adds the time and generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConditionUpdate {
    pub type_: String,
    pub status: Status,
    pub reason: String,
    pub message: String,
}

impl ConditionUpdate {
    pub fn new(
        type_: impl Into<String>,
        status: Status,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ConditionUpdate {
            type_: type_.into(),
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }

    pub fn true_(
        type_: impl Into<String>,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::new(type_, Status::True, reason, message)
    }

    pub fn false_(
        type_: impl Into<String>,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::new(type_, Status::False, reason, message)
    }

    pub fn unknown(
        type_: impl Into<String>,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::new(type_, Status::Unknown, reason, message)
    }
}

/// The current time, for [`set_condition`]'s `now` (the functions here never read the clock).
pub fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

/// The API server's limit on a condition message; longer messages are cut (on a char boundary).
pub const MAX_MESSAGE_BYTES: usize = 32768;

/// Sets the condition `update.type_`, adding it if missing. `lastTransitionTime` becomes `now`
/// only when the condition is new or its status changed; otherwise it is kept.
/// `observed_generation` (the object's `metadata.generation`) goes on the condition.
///
/// Returns whether anything other than `lastTransitionTime` changed, i.e. whether the status
/// is worth patching.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    update: ConditionUpdate,
    observed_generation: Option<i64>,
    now: &Time,
) -> bool {
    let message = truncate_message(update.message);
    let status = update.status.as_str();
    match conditions.iter_mut().find(|c| c.type_ == update.type_) {
        Some(existing) => {
            let changed = existing.status != status
                || existing.reason != update.reason
                || existing.message != message
                || existing.observed_generation != observed_generation;
            if existing.status != status {
                existing.last_transition_time = now.clone();
            }
            existing.status = status.to_string();
            existing.reason = update.reason;
            existing.message = message;
            existing.observed_generation = observed_generation;
            changed
        }
        None => {
            conditions.push(Condition {
                type_: update.type_,
                status: status.to_string(),
                reason: update.reason,
                message,
                observed_generation,
                last_transition_time: now.clone(),
            });
            true
        }
    }
}

/// Removes the condition of this type; returns whether there was one.
pub fn remove_condition(conditions: &mut Vec<Condition>, type_: &str) -> bool {
    let before = conditions.len();
    conditions.retain(|c| c.type_ != type_);
    conditions.len() != before
}

/// The condition of this type, if set.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of this type is set and True.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find_condition(conditions, type_).is_some_and(|c| c.status == Status::True.as_str())
}

/// Whether `Ready` is True for this very generation of the spec (what kstatus calls Current).
pub fn is_ready(conditions: &[Condition], generation: Option<i64>) -> bool {
    find_condition(conditions, types::READY)
        .is_some_and(|c| c.status == Status::True.as_str() && c.observed_generation == generation)
}

/// Sets `Ready`, `Reconciling` and `Stalled` consistently, the way kstatus expects:
/// - ready: Ready=True, Reconciling and Stalled removed;
/// - in progress (`stalled == false`): Ready=False, Reconciling=True, Stalled removed;
/// - stalled: Ready=False, Stalled=True, Reconciling removed.
///
/// `reason` and `message` go on Ready and on whichever of Reconciling/Stalled is set.
/// Returns whether anything other than timestamps changed.
pub fn set_ready(
    conditions: &mut Vec<Condition>,
    readiness: Readiness,
    observed_generation: Option<i64>,
    now: &Time,
) -> bool {
    // (Ready's status, the condition raised beside it, the ones cleared)
    let (ready, raised, cleared, reason, message): (bool, Option<&str>, &[&str], _, _) =
        match readiness {
            Readiness::Ready { reason, message } => (
                true,
                None,
                &[types::RECONCILING, types::STALLED],
                reason,
                message,
            ),
            Readiness::Progressing { reason, message } => (
                false,
                Some(types::RECONCILING),
                &[types::STALLED],
                reason,
                message,
            ),
            Readiness::Stalled { reason, message } => (
                false,
                Some(types::STALLED),
                &[types::RECONCILING],
                reason,
                message,
            ),
        };
    let ready_update = if ready {
        ConditionUpdate::true_(types::READY, reason.clone(), message.clone())
    } else {
        ConditionUpdate::false_(types::READY, reason.clone(), message.clone())
    };
    let mut changed = set_condition(conditions, ready_update, observed_generation, now);
    if let Some(kind) = raised {
        changed |= set_condition(
            conditions,
            ConditionUpdate::true_(kind, reason, message),
            observed_generation,
            now,
        );
    }
    for kind in cleared {
        changed |= remove_condition(conditions, kind);
    }
    changed
}

/// The overall state fed to [`set_ready`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// Everything is in place.
    Ready { reason: String, message: String },
    /// Work is under way and will finish without help (or be retried).
    Progressing { reason: String, message: String },
    /// Needs a person: invalid spec, conflict, failed migration, seed refused.
    Stalled { reason: String, message: String },
}

impl Readiness {
    pub fn ready(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Readiness::Ready {
            reason: reason.into(),
            message: message.into(),
        }
    }

    pub fn progressing(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Readiness::Progressing {
            reason: reason.into(),
            message: message.into(),
        }
    }

    pub fn stalled(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Readiness::Stalled {
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// Whether two condition lists say the same thing, ignoring `lastTransitionTime`, so a
/// reconciler can compare the status it computed with the one it read.
pub fn same_ignoring_time(a: &[Condition], b: &[Condition]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.type_ == y.type_
                && x.status == y.status
                && x.reason == y.reason
                && x.message == y.message
                && x.observed_generation == y.observed_generation
        })
}

fn truncate_message(mut message: String) -> String {
    if message.len() > MAX_MESSAGE_BYTES {
        let mut cut = MAX_MESSAGE_BYTES - 3;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push_str("...");
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).unwrap())
    }

    #[test]
    fn new_condition_is_added_with_time_and_generation() {
        let mut conditions = Vec::new();
        let changed = set_condition(
            &mut conditions,
            ConditionUpdate::true_(
                types::DATABASE_READY,
                "Created",
                "database shop_orders exists",
            ),
            Some(3),
            &at(100),
        );
        assert!(changed);
        assert_eq!(conditions.len(), 1);
        let c = &conditions[0];
        assert_eq!(
            (c.type_.as_str(), c.status.as_str(), c.reason.as_str()),
            ("DatabaseReady", "True", "Created")
        );
        assert_eq!(c.observed_generation, Some(3));
        assert_eq!(c.last_transition_time, at(100));
    }

    #[test]
    fn same_status_keeps_transition_time_and_reports_no_change() {
        let mut conditions = Vec::new();
        let update = ConditionUpdate::true_(types::READY, reasons::RECONCILED, "ok");
        set_condition(&mut conditions, update.clone(), Some(1), &at(100));
        assert!(!set_condition(&mut conditions, update, Some(1), &at(200)));
        assert_eq!(conditions[0].last_transition_time, at(100));
    }

    #[test]
    fn message_or_generation_change_is_a_change_but_keeps_transition_time() {
        let mut conditions = Vec::new();
        let update = ConditionUpdate::true_(types::READY, reasons::RECONCILED, "ok");
        set_condition(&mut conditions, update.clone(), Some(1), &at(100));
        assert!(set_condition(&mut conditions, update, Some(2), &at(200)));
        assert_eq!(conditions[0].last_transition_time, at(100));
        assert_eq!(conditions[0].observed_generation, Some(2));
        let other = ConditionUpdate::true_(types::READY, reasons::RECONCILED, "still ok");
        assert!(set_condition(&mut conditions, other, Some(2), &at(300)));
        assert_eq!(conditions[0].last_transition_time, at(100));
    }

    #[test]
    fn status_change_moves_transition_time_and_keeps_order() {
        let mut conditions = Vec::new();
        set_condition(
            &mut conditions,
            ConditionUpdate::true_(types::READY, reasons::RECONCILED, ""),
            Some(1),
            &at(100),
        );
        set_condition(
            &mut conditions,
            ConditionUpdate::true_(types::SECRET_READY, "Written", ""),
            Some(1),
            &at(100),
        );
        assert!(set_condition(
            &mut conditions,
            ConditionUpdate::false_(types::READY, reasons::MIGRATION_FAILED, "V7 failed"),
            Some(1),
            &at(200),
        ));
        assert_eq!(conditions.len(), 2);
        assert_eq!(conditions[0].type_, "Ready");
        assert_eq!(conditions[0].status, "False");
        assert_eq!(conditions[0].last_transition_time, at(200));
        assert_eq!(conditions[1].last_transition_time, at(100));
    }

    #[test]
    fn is_ready_requires_current_generation() {
        let mut conditions = Vec::new();
        set_ready(
            &mut conditions,
            Readiness::ready(reasons::RECONCILED, "ok"),
            Some(4),
            &at(1),
        );
        assert!(is_ready(&conditions, Some(4)));
        assert!(!is_ready(&conditions, Some(5)));
        assert!(is_true(&conditions, types::READY));
    }

    #[test]
    fn set_ready_keeps_kstatus_conditions_consistent() {
        let mut conditions = Vec::new();
        set_ready(
            &mut conditions,
            Readiness::progressing(
                reasons::MIGRATION_RUNNING,
                "job orders-migrate-1a2b running",
            ),
            Some(1),
            &at(1),
        );
        assert!(is_true(&conditions, types::RECONCILING));
        assert!(!is_true(&conditions, types::READY));
        assert!(find_condition(&conditions, types::STALLED).is_none());

        set_ready(
            &mut conditions,
            Readiness::stalled(reasons::INVALID_SPEC, "spec.databaseName: ..."),
            Some(2),
            &at(2),
        );
        assert!(is_true(&conditions, types::STALLED));
        assert!(find_condition(&conditions, types::RECONCILING).is_none());

        let changed = set_ready(
            &mut conditions,
            Readiness::ready(reasons::RECONCILED, "ok"),
            Some(3),
            &at(3),
        );
        assert!(changed);
        assert_eq!(conditions.len(), 1);
        assert!(!set_ready(
            &mut conditions,
            Readiness::ready(reasons::RECONCILED, "ok"),
            Some(3),
            &at(4),
        ));
    }

    #[test]
    fn comparison_ignores_time_only() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        let update = ConditionUpdate::true_(types::READY, reasons::RECONCILED, "ok");
        set_condition(&mut a, update.clone(), Some(1), &at(1));
        set_condition(&mut b, update, Some(1), &at(2));
        assert!(same_ignoring_time(&a, &b));
        set_condition(
            &mut b,
            ConditionUpdate::false_(types::READY, reasons::PROGRESSING, "ok"),
            Some(1),
            &at(3),
        );
        assert!(!same_ignoring_time(&a, &b));
    }

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        let mut conditions = Vec::new();
        let message = "é".repeat(MAX_MESSAGE_BYTES);
        set_condition(
            &mut conditions,
            ConditionUpdate::false_(types::READY, reasons::PROVISIONING_FAILED, message),
            None,
            &at(1),
        );
        let kept = &conditions[0].message;
        assert!(kept.len() <= MAX_MESSAGE_BYTES);
        assert!(kept.ends_with("..."));
    }

    #[test]
    fn status_from_bool() {
        assert_eq!(Status::from_bool(true).to_string(), "True");
        assert_eq!(Status::from_bool(false).as_str(), "False");
        assert_eq!(Status::Unknown.as_str(), "Unknown");
    }
}
