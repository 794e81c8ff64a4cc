//! The ServiceDatabase controller's fleet step for a PerTenant service: read its Tenants
//! (from the controller's cache, [`super::cache`]) and its migration ConfigMaps, decide the rollout
//! ([`super::tenant_migrations`], [`super::decide`]); the ServiceDatabase's status write
//! carries `status.rollout` and `status.tenants` ([`assess`], [`status_patch`]). The Tenant watch
//! that brings it news is [`super::watch`].
//!
//! The rollout decision is the only one: the Tenant controller starts a non-fresh tenant's
//! Job only when `status.rollout.admitted` names it for the inputs it sees.

use k8s_openapi::api::batch::v1::Job;

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use serde_json::{Value, json};

use super::cache::{FleetCache, FleetTenants};
use super::decide::{Settings, decide_with_jobs};
use super::fleet::{summarize, tenant_migrations};
use super::{batch_jobs, batches};
use crate::api::{
    RESUME_ANNOTATION, RolloutPhase, RolloutStatus, ServiceDatabase, ServiceDatabaseStatus, Tenant,
    TenantsSummary,
};
use crate::controller::migration::inputs::fleet_hash;
use crate::controller::migration::observe::{self, finished};
use crate::controller::migration::step::CONFIG_MAP_NOT_FOUND;
use crate::service::migrations::files_from_config_maps;

/// Reason (and Event reason) of a paused rollout.
pub const ROLLOUT_PAUSED: &str = "RolloutPaused";
/// Reason while the rollout migrates tenants.
pub const ROLLOUT_PROGRESSING: &str = "RolloutProgressing";

/// How the fleet stands, for the ServiceDatabase's conditions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FleetState {
    /// No migrations: each tenant's database is ready once provisioned.
    NoMigrations,
    /// Waits for something that comes by itself (a ConfigMap).
    Waiting {
        reason: String,
        message: String,
    },
    /// The migration files are unusable.
    Invalid {
        message: String,
    },
    Progressing {
        message: String,
    },
    /// Needs a person: the message says how to go on.
    Paused {
        message: String,
    },
    Complete {
        message: String,
    },
}

/// What the fleet step found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fleet {
    pub summary: TenantsSummary,
    /// `status.rollout` to write (the current one while it cannot be decided).
    pub rollout: Option<RolloutStatus>,
    pub state: FleetState,
    /// When to look at the fleet again, sooner than the resync (a batch member's grace).
    pub recheck: Option<std::time::Duration>,
}

/// The version a PerTenant service's databases should be at, for counting. None: no
/// migrations (a ready database is at its target). Some(None): migrations, target not
/// known yet.
pub fn fleet_target(sdb: &ServiceDatabase) -> Option<Option<String>> {
    let m = sdb.spec.migrations.as_ref()?;
    if m.config_maps.is_empty() {
        return None;
    }
    let known = m.target_version.clone().or_else(|| {
        sdb.status
            .as_ref()
            .and_then(|s| s.schema.as_ref())
            .and_then(|s| s.target_version.clone())
    });
    Some(known)
}

/// Reads the Tenants and the ConfigMaps and decides. Only for PerTenant services.
pub async fn assess(
    client: &kube::Client,
    tenants: &FleetTenants,
    jobs: &FleetCache<Job>,
    sdb: &ServiceDatabase,
    default_image: &str,
) -> Result<Fleet, kube::Error> {
    let ns = sdb.namespace().unwrap_or_default();
    let tenants = tenants.in_namespace(&ns).await?;
    let refs: Vec<&Tenant> = tenants.iter().map(|t| t.as_ref()).collect();
    let name = sdb.name_any();
    let current = sdb.status.as_ref().and_then(|s| s.rollout.clone());
    let layout = crate::controller::provisioning::layout(sdb);
    let Some(target) = crate::controller::service_database::apply::migration_target(sdb, &layout)
    else {
        return Ok(Fleet {
            summary: summarize(&name, None, &refs, None),
            rollout: None,
            state: FleetState::NoMigrations,
            recheck: None,
        });
    };
    let undecided = |state: FleetState| Fleet {
        summary: TenantsSummary {
            at_target_version: 0,
            ..summarize(&name, None, &refs, current.as_ref())
        },
        rollout: current.clone(),
        state,
        recheck: None,
    };
    // Both at once: the admission waits on this pass. The listing's result is looked at
    // where it was read before, so its failure never hides a missing ConfigMap.
    let (config_maps, seen) = futures::join!(
        observe::config_maps(client, &target),
        batch_jobs::seen(client, sdb)
    );
    let config_maps = match config_maps? {
        Ok(found) => found,
        Err(missing) => {
            return Ok(undecided(FleetState::Waiting {
                reason: CONFIG_MAP_NOT_FOUND.to_string(),
                message: format!(
                    "waiting for ConfigMap {ns}/{missing} (spec.migrations.configMaps) to exist"
                ),
            }));
        }
    };
    let latest = match files_from_config_maps(&config_maps) {
        Ok(scan) => scan
            .files
            .iter()
            .filter_map(|f| f.version())
            .max()
            .map(ToString::to_string),
        Err(e) => {
            return Ok(undecided(FleetState::Invalid {
                message: format!("spec.migrations.configMaps: {e}"),
            }));
        }
    };
    let spec_target = target.migrations.target_version.clone();
    let Some(version) = spec_target.clone().or(latest) else {
        return Ok(undecided(FleetState::Invalid {
            message: "spec.migrations.configMaps hold no versioned migration (V<version>__<description>.sql)".to_string(),
        }));
    };
    let hash = fleet_hash(&config_maps, spec_target.as_deref());
    let resume = sdb.annotations().get(RESUME_ANNOTATION).cloned();
    // Tenant Jobs that ended: their slots are free before the Tenants record it.
    let jobs = jobs.store().await?;
    let ended = |job: &str| finished(&*jobs.get(&ObjectRef::new(job).within(&ns))?);
    let mut migrations =
        tenant_migrations(&name, &version, &hash, resume.as_deref(), &refs, &ended);
    // The batch Jobs hold their tenants (whatever batchSize is now), and count as running.
    let seen = seen?;
    let held = batches::hold(
        &seen,
        &|t, job| batch_jobs::recorded(&name, &refs, t, job),
        &|job| batch_jobs::is_current(sdb, &hash, job),
        k8s_openapi::jiff::Timestamp::now(),
    );
    let settings = settings(sdb);
    // Only one Job per tenant acts on `admitted`; batch members are held by their Jobs (and
    // `admitted` then also names tenants that ran a Job of older inputs).
    if settings.batch_size == 1 {
        batches::keep_admitted(&mut migrations, current.as_ref(), &hash, resume.as_deref());
    }
    let jobs_running = batches::apply(&mut migrations, &held);
    let mut decision = decide_with_jobs(
        &hash,
        Some(&version),
        settings,
        resume.as_deref(),
        &migrations,
        (settings.batch_size > 1 || !seen.is_empty()).then_some(jobs_running),
    );
    let mut recorded_batches = held.kept.clone();
    if settings.batch_size > 1 {
        // Batched: the ServiceDatabase starts the rollout's Jobs itself.
        let started =
            batch_jobs::start(client, sdb, &hash, &decision.batches, default_image).await?;
        recorded_batches.extend(started);
    }
    // A tenant in a batch never starts a Job of its own.
    decision
        .status
        .admitted
        .retain(|t| !held.tenants.contains(t));
    // In one order, so a list read back in another order is no change to write.
    recorded_batches.sort_by(|a, b| a.job.cmp(&b.job));
    decision.status.batches = recorded_batches;
    let summary = summarize(&name, Some(&version), &refs, Some(&decision.status));
    let state = fleet_state(&name, &version, &decision.status, decision.paused_because);
    Ok(Fleet {
        summary,
        rollout: Some(decision.status),
        state,
        recheck: held.recheck,
    })
}

/// The rollout settings of the spec.
pub fn settings(sdb: &ServiceDatabase) -> Settings {
    let spec = sdb
        .spec
        .migrations
        .as_ref()
        .and_then(|m| m.rollout.as_ref());
    Settings::from_spec(spec)
}

/// The conditions' view of a decided rollout. Pure.
pub fn fleet_state(
    service: &str,
    version: &str,
    r: &RolloutStatus,
    paused_because: Option<String>,
) -> FleetState {
    if let Some(why) = paused_because {
        return FleetState::Paused {
            message: format!(
                "the rollout of version {version} is paused: {why}. To go on, fix the \
                 migrations or the targetVersion, or resume with \
                 `kubectl annotate servicedatabase {service} {RESUME_ANNOTATION}=$(date +%s) --overwrite`"
            ),
        };
    }
    let counts = format!(
        "{} of {} tenant(s) at version {version}, {} running, {} failed",
        r.at_target, r.total, r.running, r.failed
    );
    match r.phase {
        Some(RolloutPhase::Complete) => FleetState::Complete {
            message: format!("rollout complete: {counts}"),
        },
        _ => FleetState::Progressing {
            message: format!("rolling out: {counts}"),
        },
    }
}

/// Whether `after` is a pause `before` did not have (the same pause, for the same inputs
/// and resume value, is announced once). Pure.
pub fn newly_paused(before: Option<&RolloutStatus>, after: Option<&RolloutStatus>) -> bool {
    let paused = |r: Option<&RolloutStatus>| {
        r.filter(|r| r.phase == Some(RolloutPhase::Paused))
            .map(|r| (r.inputs_hash.clone(), r.resume.clone()))
    };
    paused(after).is_some() && paused(before) != paused(after)
}

/// A status holding the fleet's counts and decision, as a merge patch: one write carries
/// the decision and the conditions, with every rollout field named (see `rollout_patch`).
pub fn status_patch(status: &ServiceDatabaseStatus) -> Value {
    let mut body = json!({ "status": status });
    body["status"]["rollout"] = rollout_patch(status.rollout.as_ref());
    body
}

/// The rollout as a merge patch: a field left out (an empty list, say) would keep its old
/// value, so every field is named, null when empty.
fn rollout_patch(r: Option<&RolloutStatus>) -> Value {
    let Some(r) = r else {
        return Value::Null;
    };
    let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut v {
        for key in [
            "inputsHash",
            "targetVersion",
            "phase",
            "failedTenants",
            "admitted",
            "resume",
            "batches",
        ] {
            map.entry(key).or_insert(Value::Null);
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{MigrationsSpec, ServiceDatabaseSpec};

    #[test]
    fn target_from_spec_then_status() {
        let mut sdb = ServiceDatabase::new("app", ServiceDatabaseSpec::default());
        assert_eq!(fleet_target(&sdb), None);
        sdb.spec.migrations = Some(MigrationsSpec {
            config_maps: vec!["m".into()],
            ..Default::default()
        });
        assert_eq!(fleet_target(&sdb), Some(None));
        sdb.spec.migrations.as_mut().unwrap().target_version = Some("3".into());
        assert_eq!(fleet_target(&sdb), Some(Some("3".into())));
    }
}
