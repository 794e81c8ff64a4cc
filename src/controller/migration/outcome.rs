//! What a migration step reports: the [`Outcome`] the status shows and the
//! [`Announcement`] (an Event) that follows it, and [`present`], the pure mapping from a
//! [`Decision`] to both.

use super::MigrationTarget;
use super::decide::{Decision, News, Next};
use crate::api::conditions::reasons;
use crate::api::{RETRY_ANNOTATION, SchemaStatus};

/// Where the migrations stand, for the status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The schema is at the target.
    Applied { schema: SchemaStatus },
    /// A Job runs (or was just created).
    Running {
        schema: SchemaStatus,
        message: String,
    },
    /// Needs a change by a person: failed inputs, invalid migration files.
    Stalled {
        schema: Option<SchemaStatus>,
        reason: &'static str,
        message: String,
    },
    /// Waits for something that comes by itself (a ConfigMap being applied).
    Waiting {
        schema: Option<SchemaStatus>,
        reason: &'static str,
        message: String,
    },
}

/// An Event to publish once the status is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    pub warning: bool,
    pub reason: &'static str,
    pub note: String,
    /// The Job it is about (the Event's `related` object).
    pub job: String,
}

impl Announcement {
    /// The Job's outcome, when this announces that it finished (counted once per Job, as
    /// the announcement is made once).
    pub fn finished(&self) -> Option<crate::controller::metrics::JobOutcome> {
        use crate::controller::metrics::JobOutcome;
        match self.reason {
            event_reasons::MIGRATION_SUCCEEDED => Some(JobOutcome::Succeeded),
            event_reasons::MIGRATION_FAILED => Some(JobOutcome::Failed),
            _ => None,
        }
    }
}

/// Event reasons.
pub mod event_reasons {
    pub const MIGRATION_STARTED: &str = "MigrationStarted";
    pub const MIGRATION_SUCCEEDED: &str = "MigrationSucceeded";
    pub const MIGRATION_FAILED: &str = "MigrationFailed";
}

/// Files that cannot run as they are: a person must change them.
pub(super) fn invalid(schema: Option<SchemaStatus>, message: String) -> Outcome {
    Outcome::Stalled {
        schema,
        reason: reasons::MIGRATIONS_INVALID,
        message,
    }
}

/// What the decision means for the status and the Events. Pure.
pub fn present(
    target: &MigrationTarget,
    job: &str,
    decision: Decision,
) -> (Outcome, Option<Announcement>) {
    let Decision { next, schema, news } = decision;
    let version = schema.target_version.clone().unwrap_or_default();
    let pending = schema.pending.unwrap_or(0);
    let announce = |warning, reason, note: String| Announcement {
        warning,
        reason,
        note,
        job: job.to_string(),
    };
    let announcement = match (news, &next) {
        (Some(News::Started), _) => Some(announce(
            false,
            event_reasons::MIGRATION_STARTED,
            format!(
                "Job {job} applies {pending} migration(s) to database {} up to version {version}",
                target.database
            ),
        )),
        (Some(News::Succeeded), _) => Some(announce(
            false,
            event_reasons::MIGRATION_SUCCEEDED,
            format!(
                "database {} is at version {} (Job {job})",
                target.database,
                schema.applied_version.as_deref().unwrap_or("<none>")
            ),
        )),
        (Some(News::Failed), Next::Failed { detail, .. }) => Some(announce(
            true,
            event_reasons::MIGRATION_FAILED,
            detail.clone(),
        )),
        _ => None,
    };
    let outcome = match next {
        Next::UpToDate => Outcome::Applied { schema },
        Next::CreateJob => Outcome::Running {
            message: format!(
                "migration Job {job} is applying {pending} migration(s) up to version {version}"
            ),
            schema,
        },
        Next::Wait { job: running } if running == job => Outcome::Running {
            message: format!(
                "migration Job {job} is applying {pending} migration(s) up to version {version}"
            ),
            schema,
        },
        Next::Wait { job: running } => Outcome::Running {
            message: format!(
                "waiting for migration Job {running} (earlier inputs) to finish before the next one starts"
            ),
            schema,
        },
        Next::Failed {
            job: failed,
            detail,
        } => Outcome::Stalled {
            message: format!(
                "migration Job {failed} failed: {detail}. Fix the migration (a change to the ConfigMaps or \
                 targetVersion starts a new Job) or set the annotation {RETRY_ANNOTATION} to a new value to run it again"
            ),
            schema: Some(schema),
            reason: reasons::MIGRATION_FAILED,
        },
    };
    (outcome, announcement)
}
