//! Which tenants the service's batch Jobs hold (batchSize above 1). Pure.
//!
//! A batch Job's tenants count as running while it runs, and after it ended until each
//! one's Tenant status has recorded how it ended: the rollout never admits a tenant to a
//! second Job before the first one's outcome is known, so one database never has two Jobs
//! and a failure is never lost (and never retried without a resume). Those batches stay in
//! `status.rollout.batches`, where each Tenant finds the Job it is part of.
//!
//! A member that has not recorded its outcome [`RECORD_GRACE`] after its Job ended (its
//! Tenant cannot be reconciled, say) stops holding the slot and counts as failed: one stuck
//! Tenant does not hold a slot for good, and never lets the rollout go past maxFailures
//! unseen (with maxFailures 0 the rollout pauses and names it). It is
//! still never admitted again until it records the outcome or the Job is gone.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::decide::{TenantMigration, TenantState};
use crate::api::RolloutBatch;

/// A batch Job of the service, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchJobSeen {
    pub name: String,
    pub members: Vec<String>,
    /// None: running.
    pub finished: Option<bool>,
    /// Its `servicedb.io/migration-inputs` label.
    pub inputs: Option<String>,
    /// When it ended (its Complete or Failed condition's transition).
    pub ended_at: Option<Timestamp>,
}

/// How long after a batch Job ended its members have to record the outcome.
pub const RECORD_GRACE: Duration = Duration::from_secs(300);

/// What the batch Jobs hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Held {
    pub tenants: BTreeSet<String>,
    /// The batches to keep in `status.rollout.batches`, by Job name.
    pub kept: Vec<RolloutBatch>,
    /// Batch Jobs running, or ended with outcomes not all recorded: each holds a
    /// maxParallel slot.
    pub running_jobs: usize,
    /// Members of a Job that ended more than [`RECORD_GRACE`] ago that have not recorded
    /// the outcome: held, but counted as failed instead of running.
    pub overdue: BTreeSet<String>,
    /// When the next ended Job's members become overdue: the fleet is looked at again then.
    pub recheck: Option<Duration>,
}

/// `recorded(tenant, job)`: None when the tenant is gone (or left the service), else
/// whether its status records that `job` ended; `current(job)`: whether it migrates the
/// rollout's current inputs. A running Job holds its tenants whatever its inputs, but only
/// a current one is kept for its tenants to report on (an ended Job of earlier inputs has
/// nothing to say about the current ones).
pub fn hold(
    jobs: &[BatchJobSeen],
    recorded: &dyn Fn(&str, &str) -> Option<bool>,
    current: &dyn Fn(&BatchJobSeen) -> bool,
    now: Timestamp,
) -> Held {
    let mut held = Held::default();
    let mut jobs: Vec<&BatchJobSeen> = jobs.iter().collect();
    jobs.sort_by(|a, b| a.name.cmp(&b.name));
    for job in jobs {
        let waiting: Vec<&String> = job
            .members
            .iter()
            .filter(|t| {
                let known = recorded(t, &job.name);
                known.is_some() && (job.finished.is_none() || known == Some(false))
            })
            .collect();
        let current = current(job);
        if waiting.is_empty() || (!current && job.finished.is_some()) {
            held.running_jobs += usize::from(job.finished.is_none());
            continue;
        }
        // An ended batch keeps its slot until its outcomes are known: a failure not yet
        // recorded must count against maxFailures before the next batch starts.
        let overdue = job.finished.is_some()
            && job
                .ended_at
                .is_some_and(|at| now.duration_since(at).as_secs() > RECORD_GRACE.as_secs() as i64);
        if overdue {
            held.overdue.extend(waiting.iter().map(|t| t.to_string()));
        } else {
            held.running_jobs += 1;
            if job.finished.is_some()
                && let Some(at) = job.ended_at
            {
                let elapsed = now.duration_since(at).as_secs().max(0) as u64;
                let left = Duration::from_secs(RECORD_GRACE.as_secs().saturating_sub(elapsed) + 1);
                held.recheck = Some(held.recheck.map_or(left, |r| r.min(left)));
            }
        }
        held.tenants.extend(waiting.into_iter().cloned());
        if !current {
            continue;
        }
        held.kept.push(RolloutBatch {
            job: job.name.clone(),
            tenants: job.members.clone(),
        });
    }
    held
}

/// Marks the held tenants running (the overdue ones failed); returns how many rollout Jobs
/// run: the running batch Jobs plus a Job of its own for each other running tenant that is
/// not fresh (one started before batchSize was raised).
pub fn apply(migrations: &mut [TenantMigration], held: &Held) -> usize {
    let mut own = 0;
    for m in migrations.iter_mut() {
        if held.overdue.contains(&m.name) {
            m.state = TenantState::Failed;
        } else if held.tenants.contains(&m.name) {
            m.state = TenantState::Running;
        } else if m.state == TenantState::Running && !m.fresh {
            own += 1;
        }
    }
    held.running_jobs + own
}

/// With one Job per tenant (batchSize 1): tenants the rollout admitted (for these inputs and
/// resume value) whose Job the cache does not show yet count as running. The decision gave
/// them their slot, and a Tenant status seconds behind the Job must not free it for another
/// tenant.
pub fn keep_admitted(
    migrations: &mut [TenantMigration],
    previous: Option<&crate::api::RolloutStatus>,
    inputs_hash: &str,
    resume: Option<&str>,
) {
    let Some(previous) = previous
        .filter(|p| p.inputs_hash.as_deref() == Some(inputs_hash) && p.resume.as_deref() == resume)
    else {
        return;
    };
    for m in migrations.iter_mut() {
        if !m.fresh && m.state == TenantState::Pending && previous.admitted.contains(&m.name) {
            m.state = TenantState::Running;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(name: &str, members: &[&str], finished: Option<bool>) -> BatchJobSeen {
        BatchJobSeen {
            name: name.into(),
            members: members.iter().map(|m| m.to_string()).collect(),
            finished,
            inputs: None,
            ended_at: None,
        }
    }

    fn migration(name: &str, state: TenantState) -> TenantMigration {
        TenantMigration {
            name: name.into(),
            canary: false,
            fresh: false,
            state,
        }
    }

    /// Locks "never two Jobs for one database, never a lost failure": running batches hold
    /// all their tenants; ended ones hold those that have not recorded the end; gone tenants
    /// hold nothing; fully recorded batches drop out.
    #[test]
    fn batches_hold_until_every_member_recorded_the_end() {
        let jobs = [
            job("b-run", &["a", "b"], None),
            job("b-done", &["c", "d", "gone"], Some(false)),
            job("b-old", &["e"], Some(true)),
        ];
        let recorded = |t: &str, j: &str| match t {
            "gone" => None,
            "c" => Some(j == "b-done"),
            "e" => Some(true),
            _ => Some(false),
        };
        let held = hold(&jobs, &recorded, &|_| true, Timestamp::now());
        assert_eq!(
            held.tenants.iter().map(String::as_str).collect::<Vec<_>>(),
            ["a", "b", "d"]
        );
        assert_eq!(
            held.kept.iter().map(|b| b.job.as_str()).collect::<Vec<_>>(),
            ["b-done", "b-run"]
        );
        assert_eq!(held.kept[0].tenants, ["c", "d", "gone"]);
        assert_eq!(held.running_jobs, 2, "b-run, and b-done until d recorded");

        let mut ms = vec![
            migration("a", TenantState::Pending),
            migration("d", TenantState::Failed),
            migration("x", TenantState::Running),
            TenantMigration {
                fresh: true,
                ..migration("y", TenantState::Running)
            },
            migration("c", TenantState::AtTarget),
        ];
        assert_eq!(apply(&mut ms, &held), 3, "two batch Jobs and x's own");
        assert_eq!(ms[0].state, TenantState::Running);
        assert_eq!(ms[1].state, TenantState::Running);
        assert_eq!(ms[4].state, TenantState::AtTarget);

        // Earlier inputs: a running Job holds its tenants but is not kept; an ended one
        // does neither.
        let old = hold(&jobs, &recorded, &|j| j.name == "b-old", Timestamp::now());
        assert_eq!(
            old.tenants.iter().map(String::as_str).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert!(old.kept.is_empty());
    }
    /// Locks "one stuck Tenant does not block the fleet": a member that has not recorded
    /// the end of its Job RECORD_GRACE after it ended frees the Job's slot and counts as
    /// failed (so maxFailures sees it), and is still not admitted again.
    #[test]
    fn a_member_overdue_with_its_outcome_frees_the_slot_and_counts_as_failed() {
        let ended = Timestamp::now();
        let jobs = [BatchJobSeen {
            ended_at: Some(ended),
            ..job("b-done", &["c", "d"], Some(true))
        }];
        let recorded = |t: &str, _: &str| Some(t == "c");
        let soon = hold(&jobs, &recorded, &|_| true, ended);
        assert_eq!(soon.running_jobs, 1, "within the grace the slot is held");
        assert!(soon.overdue.is_empty());
        assert_eq!(
            soon.recheck,
            Some(RECORD_GRACE + Duration::from_secs(1)),
            "looked at again once the grace is over"
        );

        let late = ended + (RECORD_GRACE + Duration::from_secs(1));
        let held = hold(&jobs, &recorded, &|_| true, late);
        assert_eq!(held.running_jobs, 0, "the slot is free");
        assert_eq!(held.overdue.iter().collect::<Vec<_>>(), ["d"]);
        assert_eq!(held.kept.len(), 1, "d can still report on its Job");
        let mut ms = vec![
            migration("d", TenantState::Pending),
            migration("e", TenantState::Pending),
        ];
        assert_eq!(apply(&mut ms, &held), 0);
        assert_eq!(
            ms[0].state,
            TenantState::Failed,
            "counted against maxFailures"
        );
        assert_eq!(ms[1].state, TenantState::Pending);
    }

    /// Locks "an admitted tenant keeps its slot until its Job shows": with the same inputs
    /// and resume value it counts as running; other inputs or a resume start afresh, and
    /// fresh tenants are never held.
    #[test]
    fn admitted_tenants_not_yet_running_keep_their_slot() {
        let previous = crate::api::RolloutStatus {
            inputs_hash: Some("h".into()),
            admitted: vec!["a".into(), "f".into()],
            ..Default::default()
        };
        let fleet = || {
            vec![
                migration("a", TenantState::Pending),
                migration("b", TenantState::Pending),
                TenantMigration {
                    fresh: true,
                    ..migration("f", TenantState::Pending)
                },
            ]
        };
        let mut ms = fleet();
        keep_admitted(&mut ms, Some(&previous), "h", None);
        let states: Vec<TenantState> = ms.iter().map(|m| m.state).collect();
        use TenantState::{Pending, Running};
        assert_eq!(states, [Running, Pending, Pending]);
        for (hash, resume) in [("h2", None), ("h", Some("1"))] {
            let mut ms = fleet();
            keep_admitted(&mut ms, Some(&previous), hash, resume);
            assert!(ms.iter().all(|m| m.state == Pending), "{hash} {resume:?}");
        }
    }
}
