//! `status.tenants` of a PerTenant ServiceDatabase, counted from its Tenants' statuses (the
//! operator's cache, never the servers). Pure.

use super::decide::{Attempt, Outcome, TenantMigration, TenantRecord, classify};
use crate::api::{CANARY_LABEL, JobOutcome, RolloutStatus, Tenant, TenantsSummary};
use crate::migrate::version::Version;

/// Whether `applied` is `target` (numerically: `1.0` is `1`).
pub fn same_version(applied: &str, target: &str) -> bool {
    match (Version::parse(applied), Version::parse(target)) {
        (Ok(a), Ok(t)) => a == t,
        _ => applied == target,
    }
}

/// The fleet of `service` among `tenants` (those of its namespace): every Tenant listing it
/// counts, ready or not; `target` is the version the fleet should be at (None: the service
/// has no migrations, so a ready database is at its target). `failed` comes from the
/// rollout, which alone knows which failures count.
pub fn summarize(
    service: &str,
    target: Option<&str>,
    tenants: &[&Tenant],
    rollout: Option<&RolloutStatus>,
) -> TenantsSummary {
    let mut summary = TenantsSummary::default();
    for tenant in tenants {
        if tenant.metadata.deletion_timestamp.is_some()
            || !tenant.spec.services.iter().any(|s| s == service)
        {
            continue;
        }
        summary.total += 1;
        let Some(db) = tenant
            .status
            .as_ref()
            .and_then(|s| s.databases.iter().find(|d| d.service == service))
        else {
            continue;
        };
        if db.ready {
            summary.ready += 1;
        }
        let at_target = match (target, db.applied_version.as_deref()) {
            (None, _) => db.ready,
            (Some(t), Some(applied)) => same_version(applied, t),
            (Some(_), None) => false,
        };
        if at_target {
            summary.at_target_version += 1;
        }
    }
    summary.failed = rollout.map_or(0, |r| r.failed);
    summary
}

/// Each Tenant of `service` (not being deleted) in the rollout of `inputs_hash` towards
/// `target`, from what its status records of its database. `ended(job)` says how a
/// tenant's own migration Job ended (None: running, or not known): a Job whose end the
/// Tenant has not recorded yet counts by how it ended, so its slot goes to the next tenant
/// while the Tenant's own pass records the outcome. A Job that succeeded on these inputs
/// brought its database to the target (the inputs name the target). Pure.
pub fn tenant_migrations(
    service: &str,
    target: &str,
    inputs_hash: &str,
    resume: Option<&str>,
    tenants: &[&Tenant],
    ended: &dyn Fn(&str) -> Option<bool>,
) -> Vec<TenantMigration> {
    tenants
        .iter()
        .filter(|t| t.metadata.deletion_timestamp.is_none())
        .filter(|t| t.spec.services.iter().any(|s| s == service))
        .map(|t| {
            let db = t
                .status
                .as_ref()
                .and_then(|s| s.databases.iter().find(|d| d.service == service));
            let applied = db.and_then(|d| d.applied_version.as_deref());
            // The end of a Job the status still records as running.
            let ended_now = db
                .and_then(|d| d.schema.as_ref())
                .filter(|s| s.last_job_outcome == Some(JobOutcome::Running))
                .and_then(|s| s.last_job.as_deref())
                .and_then(ended);
            let last_attempt = db.and_then(|d| {
                let outcome = match (d.schema.as_ref()?.last_job_outcome?, ended_now) {
                    (JobOutcome::Running, None) => Outcome::Running,
                    (JobOutcome::Running, Some(true)) | (JobOutcome::Succeeded, _) => {
                        Outcome::Succeeded
                    }
                    (JobOutcome::Running, Some(false)) | (JobOutcome::Failed, _) => Outcome::Failed,
                };
                Some(Attempt {
                    inputs_hash: d.rollout_inputs.clone().unwrap_or_default(),
                    resume: d.rollout_resume.clone(),
                    outcome,
                })
            });
            let migrated_now = ended_now == Some(true)
                && last_attempt
                    .as_ref()
                    .is_some_and(|a| a.inputs_hash == inputs_hash);
            let record = TenantRecord {
                at_target: applied.is_some_and(|a| same_version(a, target)) || migrated_now,
                fresh: applied.is_none(),
                last_attempt,
            };
            TenantMigration {
                name: t.metadata.name.clone().unwrap_or_default(),
                canary: t.metadata.labels.as_ref().and_then(|l| l.get(CANARY_LABEL))
                    == Some(&"true".to_string()),
                fresh: record.fresh,
                state: classify(&record, inputs_hash, resume),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{TenantDatabaseStatus, TenantSpec, TenantStatus};

    fn tenant(name: &str, services: &[&str], dbs: &[(&str, bool, Option<&str>)]) -> Tenant {
        let mut t = Tenant::new(
            name,
            TenantSpec {
                services: services.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            },
        );
        t.status = Some(TenantStatus {
            databases: dbs
                .iter()
                .map(|(service, ready, version)| TenantDatabaseStatus {
                    service: service.to_string(),
                    ready: *ready,
                    applied_version: version.map(str::to_string),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        });
        t
    }

    #[test]
    fn counts_every_listing_tenant_and_its_state() {
        let a = tenant("a", &["app"], &[("app", true, Some("2"))]);
        let b = tenant("b", &["app", "crm"], &[("app", false, Some("1"))]);
        let c = tenant("c", &["app"], &[]); // not reconciled yet
        let d = tenant("d", &["crm"], &[("crm", true, None)]);
        let mut gone = tenant("e", &["app"], &[("app", true, Some("2"))]);
        gone.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::from_second(1).unwrap(),
            ));
        let all = [&a, &b, &c, &d, &gone];
        let rollout = RolloutStatus {
            failed: 1,
            ..Default::default()
        };
        let s = summarize("app", Some("2.0"), &all, Some(&rollout));
        assert_eq!(
            s,
            TenantsSummary {
                total: 3,
                ready: 1,
                at_target_version: 1,
                failed: 1
            }
        );
        let crm = summarize("crm", None, &all, None);
        assert_eq!((crm.total, crm.ready, crm.at_target_version), (2, 1, 1));
    }

    #[test]
    fn tenants_sorted_into_the_rollout() {
        use crate::api::SchemaStatus;
        use crate::controller::rollout::TenantState;
        let with =
            |name: &str, version: Option<&str>, outcome: Option<JobOutcome>, inputs: &str| {
                let mut t = tenant(name, &["app"], &[("app", false, version)]);
                let db = &mut t.status.as_mut().unwrap().databases[0];
                db.schema = outcome.map(|o| SchemaStatus {
                    last_job_outcome: Some(o),
                    ..Default::default()
                });
                db.rollout_inputs = Some(inputs.to_string());
                t
            };
        let mut canary = with("a", Some("2"), Some(JobOutcome::Succeeded), "h1");
        canary
            .metadata
            .labels
            .get_or_insert_default()
            .insert(CANARY_LABEL.into(), "true".into());
        let running = with("b", Some("1"), Some(JobOutcome::Running), "h2");
        let failed = with("c", Some("1"), Some(JobOutcome::Failed), "h2");
        let failed_before = with("d", Some("1"), Some(JobOutcome::Failed), "h1");
        let fresh = tenant("e", &["app"], &[]);
        let other = tenant("f", &["crm"], &[]);
        let all = [&canary, &running, &failed, &failed_before, &fresh, &other];
        let got: Vec<(String, bool, bool, TenantState)> =
            tenant_migrations("app", "2.0", "h2", None, &all, &|_| None)
                .into_iter()
                .map(|m| (m.name, m.canary, m.fresh, m.state))
                .collect();
        let row = |n: &str, c, f, s| (n.to_string(), c, f, s);
        assert_eq!(
            got,
            vec![
                row("a", true, false, TenantState::AtTarget),
                row("b", false, false, TenantState::Running),
                row("c", false, false, TenantState::Failed),
                row("d", false, false, TenantState::Pending),
                row("e", false, true, TenantState::Pending),
            ]
        );
    }
}
