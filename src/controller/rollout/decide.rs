//! Which tenant databases may migrate now, and the `status.rollout` that says so. Pure: the
//! same inputs always give the same decision, so the ServiceDatabase controller can compute
//! it on every reconcile and write it only when it changed.

use crate::api::{RolloutPhase, RolloutSpec, RolloutStatus};

/// Most failed tenants named in `status.rollout.failedTenants`.
pub const MAX_FAILED_NAMES: usize = 20;

/// `spec.migrations.rollout`, as counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    pub max_parallel: usize,
    pub max_failures: usize,
    pub batch_size: usize,
}

impl Settings {
    /// The spec's values (validated), or the defaults without a `rollout`.
    pub fn from_spec(spec: Option<&RolloutSpec>) -> Settings {
        let spec = spec.cloned().unwrap_or_default();
        let count = |n: i32, least: usize| usize::try_from(n).unwrap_or(least).max(least);
        Settings {
            max_parallel: count(spec.max_parallel, 1),
            max_failures: count(spec.max_failures, 0),
            batch_size: count(spec.batch_size, 1),
        }
    }
}

/// How a tenant database's last migration attempt went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Running,
    Succeeded,
    Failed,
}

/// A tenant database's last migration attempt: for which inputs, after which resume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    pub inputs_hash: String,
    /// The `servicedb.io/resume` value in force when it started.
    pub resume: Option<String>,
    pub outcome: Outcome,
}

/// What is known of one tenant database, from its Tenant's status and its Job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantRecord {
    /// Its schema is at the rollout's target version.
    pub at_target: bool,
    /// No migration was ever applied to it (a tenant onboarded now).
    pub fresh: bool,
    pub last_attempt: Option<Attempt>,
}

/// A tenant database's place in the rollout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TenantState {
    AtTarget,
    /// A migration Job is running for it (for these inputs or older ones: one database
    /// never has two Jobs, so it holds its slot until it ends).
    Running,
    /// Failed on these inputs since the last resume: not retried until one of them changes.
    Failed,
    /// Needs the migration and is not running it.
    Pending,
}

/// Sorts a record into its state for the current inputs and resume value. A failure on
/// other inputs, or before the current resume value, no longer counts: the tenant is
/// pending again.
pub fn classify(record: &TenantRecord, inputs_hash: &str, resume: Option<&str>) -> TenantState {
    match &record.last_attempt {
        Some(a) if a.outcome == Outcome::Running => TenantState::Running,
        _ if record.at_target => TenantState::AtTarget,
        Some(a)
            if a.outcome == Outcome::Failed
                && a.inputs_hash == inputs_hash
                && a.resume.as_deref() == resume =>
        {
            TenantState::Failed
        }
        _ => TenantState::Pending,
    }
}

/// One tenant database in the rollout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantMigration {
    /// The Tenant's name (unique within the service's namespace).
    pub name: String,
    /// Labelled `servicedb.io/canary=true`.
    pub canary: bool,
    /// Never migrated: goes straight to the target, not held by canaries, pauses or
    /// maxParallel, and never counts against maxParallel.
    pub fresh: bool,
    pub state: TenantState,
}

/// The decision for one ServiceDatabase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Tenants whose migration may start now, in Jobs of at most `batchSize` tenants each
    /// (fresh tenants one per batch of their own kind, listed first).
    pub start: Vec<Vec<String>>,
    /// The rollout's part of `start` (no fresh tenant): with batchSize above 1, each is one
    /// batch Job the ServiceDatabase creates.
    pub batches: Vec<Vec<String>>,
    /// What to write as `status.rollout`.
    pub status: RolloutStatus,
    /// Why the rollout is paused, when it is.
    pub paused_because: Option<String>,
}

/// The rollout of `inputs_hash` (towards `target_version`) over `tenants`. Tenants not in
/// the list (deleted) are simply not counted: they neither block nor hold a slot.
pub fn decide(
    inputs_hash: &str,
    target_version: Option<&str>,
    settings: Settings,
    resume: Option<&str>,
    tenants: &[TenantMigration],
) -> Decision {
    decide_with_jobs(inputs_hash, target_version, settings, resume, tenants, None)
}

/// [`decide`], told how many rollout Jobs run (`jobs_running`) when it is known from the
/// Jobs themselves (batches); otherwise it is counted from the running tenants.
pub fn decide_with_jobs(
    inputs_hash: &str,
    target_version: Option<&str>,
    settings: Settings,
    resume: Option<&str>,
    tenants: &[TenantMigration],
    jobs_running: Option<usize>,
) -> Decision {
    let mut sorted: Vec<&TenantMigration> = tenants.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    sorted.dedup_by(|a, b| a.name == b.name);
    let count = |f: &dyn Fn(&TenantMigration) -> bool| sorted.iter().filter(|t| f(t)).count();
    let in_state = |s: TenantState| move |t: &TenantMigration| t.state == s;

    let failed: Vec<String> = sorted
        .iter()
        .filter(|t| t.state == TenantState::Failed)
        .map(|t| t.name.clone())
        .collect();
    let failed_canary = sorted
        .iter()
        .find(|t| t.canary && !t.fresh && t.state == TenantState::Failed);
    let paused_because = if let Some(c) = failed_canary {
        Some(format!(
            "canary tenant {} failed to migrate; no other tenant starts until the migrations, \
             the targetVersion or the servicedb.io/resume annotation change",
            c.name
        ))
    } else if failed.len() > settings.max_failures {
        Some(format!(
            "{} tenant migrations failed, more than maxFailures ({}): {}; fix the migrations \
             (or the target), or change the servicedb.io/resume annotation to retry them",
            failed.len(),
            settings.max_failures,
            names(&failed)
        ))
    } else {
        None
    };

    // Fresh tenants go straight to the target, whatever the rollout is doing.
    let fresh: Vec<String> = sorted
        .iter()
        .filter(|t| t.fresh && t.state == TenantState::Pending)
        .map(|t| t.name.clone())
        .collect();
    let running_rollout = count(&|t| !t.fresh && t.state == TenantState::Running);
    let mut admitted: Vec<String> = sorted
        .iter()
        .filter(|t| !t.fresh && t.state == TenantState::Running)
        .map(|t| t.name.clone())
        .collect();
    let mut chosen = Vec::new();
    if paused_because.is_none() {
        let waiting = |canary: bool| {
            sorted
                .iter()
                .filter(move |t| !t.fresh && t.canary == canary)
                .filter(|t| t.state != TenantState::AtTarget)
                .count()
        };
        // Canaries first; the others only once every canary is at the target.
        let stage_is_canaries = waiting(true) > 0;
        let jobs_running =
            jobs_running.unwrap_or_else(|| running_rollout.div_ceil(settings.batch_size));
        let room = settings.max_parallel.saturating_sub(jobs_running) * settings.batch_size;
        chosen = sorted
            .iter()
            .filter(|t| !t.fresh && t.state == TenantState::Pending)
            .filter(|t| t.canary == stage_is_canaries)
            .take(room)
            .map(|t| t.name.clone())
            .collect();
    }
    admitted.extend(chosen.iter().cloned());
    admitted.sort();

    let mut start: Vec<Vec<String>> = fresh
        .chunks(settings.batch_size)
        .map(<[String]>::to_vec)
        .collect();
    let batches: Vec<Vec<String>> = chosen
        .chunks(settings.batch_size)
        .map(<[String]>::to_vec)
        .collect();
    start.extend(batches.iter().cloned());

    let pending_or_running =
        count(&|t| matches!(t.state, TenantState::Pending | TenantState::Running));
    let phase = if paused_because.is_some() {
        RolloutPhase::Paused
    } else if pending_or_running > 0 {
        RolloutPhase::Progressing
    } else {
        RolloutPhase::Complete
    };
    let status = RolloutStatus {
        inputs_hash: Some(inputs_hash.to_string()),
        target_version: target_version.map(str::to_string),
        phase: Some(phase),
        total: to_i32(sorted.len()),
        at_target: to_i32(count(&in_state(TenantState::AtTarget))),
        running: to_i32(count(&in_state(TenantState::Running))),
        failed: to_i32(failed.len()),
        failed_tenants: failed.iter().take(MAX_FAILED_NAMES).cloned().collect(),
        admitted,
        resume: resume.map(str::to_string),
        batches: Vec::new(),
    };
    Decision {
        start,
        batches,
        status,
        paused_because,
    }
}

fn names(list: &[String]) -> String {
    let mut shown = list.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if list.len() > 5 {
        shown.push_str(&format!(" and {} more", list.len() - 5));
    }
    shown
}

fn to_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests;
