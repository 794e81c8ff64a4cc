//! What happens next for one database's migrations. Pure.
//!
//! Decided from `status.schema` (the inputs of the last Job and how it ended) plus the
//! history table (what is applied, what is pending against the files), and the Job with
//! the current inputs only when it still exists: `ttlSecondsAfterFinished` deletes Jobs, so
//! their existence decides nothing. A Job is judged only by its Complete/Failed
//! conditions. The rules:
//! - another Job of this database still runs (other inputs): wait for it; never two at once;
//! - inputs that failed are never run again: Stalled until the files, the target or the
//!   `servicedb.io/retry` annotation change (the inputs hash covers them all);
//! - nothing pending: up to date, whatever ran before;
//! - otherwise: create the Job for these inputs.

use crate::api::{JobOutcome, SchemaStatus};

/// What the history table says, against the current files and target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// The latest applied version (or baseline).
    pub applied_version: Option<String>,
    /// Migrations up to the target that are not applied (or whose repeatable changed).
    pub pending: usize,
}

/// How the Job with the current inputs stands, by its conditions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    /// Neither Complete nor Failed yet.
    Running,
    Succeeded,
    /// `detail`: file, line, SQLSTATE and message, from its termination message.
    Failed {
        detail: String,
    },
}

/// Everything the decision reads.
#[derive(Debug, Clone)]
pub struct Observed<'a> {
    /// The current inputs' hash, and the name of their Job.
    pub inputs: &'a str,
    pub job_name: &'a str,
    /// `migrations.targetVersion`, else the latest version among the files.
    pub target_version: Option<String>,
    pub previous: Option<&'a SchemaStatus>,
    pub history: &'a History,
    /// The Job with the current inputs, when it exists.
    pub job: Option<&'a JobState>,
    /// A running Job of this database with other inputs.
    pub other_running: Option<&'a str>,
}

/// The step to take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Nothing pending: the schema is at the target.
    UpToDate,
    /// Create the Job with the current inputs (then it runs).
    CreateJob,
    /// A Job runs: its change brings the next reconcile.
    Wait { job: String },
    /// These inputs failed; nothing runs until they change.
    Failed { job: String, detail: String },
}

/// What is new since the status was written: each is announced once (an Event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum News {
    Started,
    Succeeded,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub next: Next,
    /// `status.schema` to write.
    pub schema: SchemaStatus,
    pub news: Option<News>,
}

pub fn decide(o: &Observed<'_>) -> Decision {
    let previous = o.previous.cloned().unwrap_or_default();
    let recorded = (previous.last_job_inputs.as_deref() == Some(o.inputs))
        .then_some(previous.last_job_outcome)
        .flatten();
    let pending = o.history.pending;
    let mut schema = SchemaStatus {
        applied_version: o.history.applied_version.clone(),
        target_version: o.target_version.clone(),
        pending: Some(i32::try_from(pending).unwrap_or(i32::MAX)),
        ..previous.clone()
    };
    let job = o.job_name.to_string();
    let mut record = |outcome: JobOutcome, error: Option<String>| {
        schema.last_job = Some(job.clone());
        schema.last_job_inputs = Some(o.inputs.to_string());
        schema.last_job_outcome = Some(outcome);
        schema.last_error = error;
        (recorded != Some(outcome)).then_some(match outcome {
            JobOutcome::Running => News::Started,
            JobOutcome::Succeeded => News::Succeeded,
            JobOutcome::Failed => News::Failed,
        })
    };
    let incomplete = || {
        format!(
            "Job {} completed, yet {pending} migration(s) are still pending (was the history table changed by hand?)",
            o.job_name
        )
    };
    // (next, news)
    let (next, news) = if let Some(other) = o.other_running {
        (
            Next::Wait {
                job: other.to_string(),
            },
            None,
        )
    } else {
        match (o.job, recorded) {
            (Some(JobState::Running), _) => {
                // Announced when it was created (or by the run that created it).
                let _ = record(JobOutcome::Running, None);
                (Next::Wait { job: job.clone() }, None)
            }
            (Some(JobState::Failed { detail }), _) => {
                let news = record(JobOutcome::Failed, Some(detail.clone()));
                (failed(&job, detail), news)
            }
            (Some(JobState::Succeeded), _) if pending == 0 => {
                let news = record(JobOutcome::Succeeded, None);
                (Next::UpToDate, news)
            }
            (None, Some(JobOutcome::Succeeded)) if pending == 0 => (Next::UpToDate, None),
            (Some(JobState::Succeeded), _) | (None, Some(JobOutcome::Succeeded)) => {
                let detail = incomplete();
                let news = record(JobOutcome::Failed, Some(detail.clone()));
                (failed(&job, &detail), news)
            }
            (None, Some(JobOutcome::Failed)) => {
                let detail = previous
                    .last_error
                    .clone()
                    .unwrap_or_else(|| format!("Job {job} failed"));
                (failed(&job, &detail), None)
            }
            // Gone (deleted, or finished and removed by its TTL while nobody looked):
            // the history says how it went.
            (None, Some(JobOutcome::Running)) if pending == 0 => {
                let news = record(JobOutcome::Succeeded, None);
                (Next::UpToDate, news)
            }
            (None, Some(JobOutcome::Running)) => {
                let detail = format!(
                    "Job {job} is gone and did not leave the schema at the target: {pending} migration(s) pending"
                );
                let news = record(JobOutcome::Failed, Some(detail.clone()));
                (failed(&job, &detail), news)
            }
            (None, _) if pending == 0 => (Next::UpToDate, None),
            (None, _) => {
                let news = record(JobOutcome::Running, None);
                (Next::CreateJob, news)
            }
        }
    };
    Decision { next, schema, news }
}

fn failed(job: &str, detail: &str) -> Next {
    Next::Failed {
        job: job.to_string(),
        detail: detail.to_string(),
    }
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
