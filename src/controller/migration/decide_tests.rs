use super::*;

const H: &str = "aaaaaaaaaa";
const JOB: &str = "orders-mig-aaaaaaaaaa";

fn history(applied: Option<&str>, pending: usize) -> History {
    History {
        applied_version: applied.map(String::from),
        pending,
    }
}

fn recorded(inputs: &str, outcome: JobOutcome, error: Option<&str>) -> SchemaStatus {
    SchemaStatus {
        last_job: Some(format!("orders-mig-{inputs}")),
        last_job_inputs: Some(inputs.into()),
        last_job_outcome: Some(outcome),
        last_error: error.map(String::from),
        ..Default::default()
    }
}

fn decide_with(
    previous: Option<&SchemaStatus>,
    history: &History,
    job: Option<&JobState>,
    other_running: Option<&str>,
) -> Decision {
    decide(&Observed {
        inputs: H,
        job_name: JOB,
        target_version: Some("2".into()),
        previous,
        history,
        job,
        other_running,
    })
}

/// A fresh database with pending migrations gets a Job, recorded as Running and announced.
#[test]
fn pending_and_no_record_creates_the_job() {
    let d = decide_with(None, &history(None, 2), None, None);
    assert_eq!(d.next, Next::CreateJob);
    assert_eq!(d.news, Some(News::Started));
    assert_eq!(d.schema.last_job.as_deref(), Some(JOB));
    assert_eq!(d.schema.last_job_inputs.as_deref(), Some(H));
    assert_eq!(d.schema.last_job_outcome, Some(JobOutcome::Running));
    assert_eq!(d.schema.pending, Some(2));
    assert_eq!(d.schema.target_version.as_deref(), Some("2"));
}

/// A running Job is waited for; once it completes with nothing pending the schema is up to
/// date, announced once; the next pass (Job still there, or gone by its TTL) is quiet and
/// gives the same status.
#[test]
fn running_then_succeeded_then_steady() {
    let created = decide_with(None, &history(None, 2), None, None).schema;
    let running = decide_with(
        Some(&created),
        &history(None, 2),
        Some(&JobState::Running),
        None,
    );
    assert_eq!(running.next, Next::Wait { job: JOB.into() });
    assert_eq!(running.news, None);
    let done = decide_with(
        Some(&running.schema),
        &history(Some("2"), 0),
        Some(&JobState::Succeeded),
        None,
    );
    assert_eq!(done.next, Next::UpToDate);
    assert_eq!(done.news, Some(News::Succeeded));
    assert_eq!(done.schema.applied_version.as_deref(), Some("2"));
    assert_eq!(done.schema.last_job_outcome, Some(JobOutcome::Succeeded));
    for job in [Some(&JobState::Succeeded), None] {
        let again = decide_with(Some(&done.schema), &history(Some("2"), 0), job, None);
        assert_eq!(again.next, Next::UpToDate);
        assert_eq!(again.news, None);
        assert_eq!(again.schema, done.schema);
    }
}

/// Locks the no-storm rule: failed inputs are never run again, whether the Job is still
/// there or its TTL removed it; the failure is announced once.
#[test]
fn failed_inputs_stall_without_a_new_job() {
    let created = decide_with(None, &history(Some("1"), 1), None, None).schema;
    let failed_job = JobState::Failed {
        detail: "V2__bad.sql line 1: syntax error".into(),
    };
    let failed = decide_with(
        Some(&created),
        &history(Some("1"), 1),
        Some(&failed_job),
        None,
    );
    assert_eq!(
        failed.next,
        Next::Failed {
            job: JOB.into(),
            detail: "V2__bad.sql line 1: syntax error".into()
        }
    );
    assert_eq!(failed.news, Some(News::Failed));
    assert_eq!(
        failed.schema.last_error.as_deref(),
        Some("V2__bad.sql line 1: syntax error")
    );
    for job in [Some(&failed_job), None] {
        let again = decide_with(Some(&failed.schema), &history(Some("1"), 1), job, None);
        assert!(
            matches!(again.next, Next::Failed { .. }),
            "{:?}",
            again.next
        );
        assert_eq!(again.news, None);
        assert_eq!(again.schema, failed.schema);
    }
}

/// New inputs (a fixed file, or a new retry annotation: a different hash) after a failure
/// get their own Job.
#[test]
fn other_inputs_after_a_failure_create_a_job() {
    let previous = recorded("bbbbbbbbbb", JobOutcome::Failed, Some("boom"));
    let d = decide_with(Some(&previous), &history(Some("1"), 1), None, None);
    assert_eq!(d.next, Next::CreateJob);
    assert_eq!(d.schema.last_error, None);
    assert_eq!(d.schema.last_job_inputs.as_deref(), Some(H));
}

/// Locks "never two Jobs at once per database": a running Job with other inputs is waited
/// for, and the status keeps describing it.
#[test]
fn a_running_job_with_other_inputs_is_waited_for() {
    let previous = recorded("bbbbbbbbbb", JobOutcome::Running, None);
    let d = decide_with(
        Some(&previous),
        &history(Some("1"), 2),
        None,
        Some("orders-mig-bbbbbbbbbb"),
    );
    assert_eq!(
        d.next,
        Next::Wait {
            job: "orders-mig-bbbbbbbbbb".into()
        }
    );
    assert_eq!(d.news, None);
    assert_eq!(d.schema.last_job_inputs.as_deref(), Some("bbbbbbbbbb"));
}

/// Nothing pending needs no Job, whatever the inputs (a target already reached, a file
/// added beyond the target, a retry annotation with nothing to retry).
#[test]
fn nothing_pending_needs_no_job() {
    let previous = recorded("bbbbbbbbbb", JobOutcome::Succeeded, None);
    let d = decide_with(Some(&previous), &history(Some("2"), 0), None, None);
    assert_eq!(d.next, Next::UpToDate);
    assert_eq!(d.news, None);
    assert_eq!(d.schema.last_job_inputs.as_deref(), Some("bbbbbbbbbb"));
    assert_eq!(
        decide_with(None, &history(Some("2"), 0), None, None).next,
        Next::UpToDate
    );
}

/// A Job that vanished while recorded Running: the history decides; pending work is a
/// failure to look at, not a new Job (a Job deleted at once by a TTL of 0 must not loop).
#[test]
fn a_vanished_job_is_judged_by_the_history() {
    let running = recorded(H, JobOutcome::Running, None);
    let ok = decide_with(Some(&running), &history(Some("2"), 0), None, None);
    assert_eq!((ok.next, ok.news), (Next::UpToDate, Some(News::Succeeded)));
    let lost = decide_with(Some(&running), &history(Some("1"), 1), None, None);
    assert!(matches!(lost.next, Next::Failed { .. }));
    assert_eq!(lost.news, Some(News::Failed));
    let again = decide_with(Some(&lost.schema), &history(Some("1"), 1), None, None);
    assert!(matches!(again.next, Next::Failed { .. }));
    assert_eq!(again.news, None);
}

/// A completed Job whose migrations are pending again (history edited by hand) stalls once
/// instead of flip-flopping between success and failure.
#[test]
fn completed_but_pending_stalls_once() {
    let running = recorded(H, JobOutcome::Running, None);
    let first = decide_with(
        Some(&running),
        &history(Some("1"), 1),
        Some(&JobState::Succeeded),
        None,
    );
    assert!(matches!(first.next, Next::Failed { .. }));
    assert_eq!(first.news, Some(News::Failed));
    let second = decide_with(
        Some(&first.schema),
        &history(Some("1"), 1),
        Some(&JobState::Succeeded),
        None,
    );
    assert_eq!(second.news, None);
    assert_eq!(second.schema, first.schema);
}
