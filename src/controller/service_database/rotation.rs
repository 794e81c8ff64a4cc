//! Password rotation for a Shared ServiceDatabase: reads its Secrets (kept for the core's
//! read), asks `service::rotation` which roles rotate, and has every Secret write carry its
//! record. The core then writes the rotated Secrets before it sets the roles' passwords; a
//! crash in between leaves Secrets whose record says "rotated" and whose password the next
//! pass sets (the catalog's fingerprint no longer matches).
//!
//! A Tenant's databases use the same steps (`controller::tenant::database`): one `prepare`
//! per tenant database, with that tenant's layout, on the `KubeSecrets` the Tenant
//! controller makes, and the roles passed to `provisioning::apply_tenant`.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::jiff::Timestamp;
use kube::api::ListParams;

use super::secrets::KubeSecrets;
use crate::api::{JobOutcome, ServiceDatabase, TenantDatabaseStatus};
use crate::controller::migration::observe::finished;
use crate::controller::provisioning::Provisioned;
use crate::service::Layout;
use crate::service::rotation::{Cause, Decision, Existing, Policy, SecretState, decide};

/// Decides the rotation of `layout`'s Secrets at `now` and arms `secrets` with the records.
/// `migrating`: a migration Job of this database runs, so its migrator's role waits.
pub async fn prepare(
    secrets: &KubeSecrets,
    sdb: &ServiceDatabase,
    layout: &Layout,
    now: Timestamp,
    migrating: bool,
) -> Result<Decision, kube::Error> {
    let names: Vec<&str> = layout.secrets.iter().map(|s| s.name.as_str()).collect();
    secrets.fetch_all(&layout.namespace, &names).await?;
    let mut states = Vec::with_capacity(layout.secrets.len());
    for s in &layout.secrets {
        let existing = secrets
            .fetch(&layout.namespace, &s.name)
            .await?
            .map(|secret| Existing {
                annotations: secret.metadata.annotations.unwrap_or_default(),
                created: secret.metadata.creation_timestamp.map(|t| t.0),
            });
        states.push(SecretState {
            name: s.name.clone(),
            role: s.role.clone(),
            existing,
        });
    }
    let mut policy = Policy::of(sdb);
    if migrating {
        policy.held.insert(layout.migrator_secret().role.clone());
    }
    let decision = decide(&policy, &states, now);
    secrets.annotate_writes(decision.annotations.clone());
    Ok(decision)
}

/// The note of the `PasswordRotated` Event: roles, why, and the Secrets now holding the new
/// passwords (never a password). None when nothing rotated.
pub fn announcement(decision: &Decision, layout: &Layout, done: &Provisioned) -> Option<String> {
    if decision.rotate.is_empty() {
        return None;
    }
    let roles = decision.roles();
    let written: Vec<&str> = layout
        .secrets
        .iter()
        .filter(|s| roles.contains(&s.role) && done.secrets_written.contains(&s.name))
        .map(|s| s.name.as_str())
        .collect();
    let requested = decision.rotate.values().find_map(|c| match c {
        Cause::Requested(v) => Some(v.as_str()),
        Cause::Due => None,
    });
    let why = match requested {
        Some(v) => format!("servicedb.io/rotate: {v:?}"),
        None => "passwordRotation.every has passed".to_string(),
    };
    Some(format!(
        "rotated the passwords of roles {} ({why}); new credentials in Secrets {}",
        roles.join(", "),
        written.join(", ")
    ))
}

/// The migration Job of a tenant's database that the statuses say may run: its own Job
/// (recorded Running), or a batch of the service's rollout that it has not yet recorded the
/// end of. Pure; whether it still runs is the Job's to say ([`job_running`]).
pub fn tenant_migration_job(
    sdb: &ServiceDatabase,
    tenant: &str,
    known: Option<&TenantDatabaseStatus>,
) -> Option<String> {
    let schema = known.and_then(|d| d.schema.as_ref());
    if let Some(s) = schema
        && s.last_job_outcome == Some(JobOutcome::Running)
        && let Some(job) = &s.last_job
    {
        return Some(job.clone());
    }
    let recorded = |job: &str| {
        schema.is_some_and(|s| {
            s.last_job.as_deref() == Some(job)
                && matches!(
                    s.last_job_outcome,
                    Some(JobOutcome::Succeeded | JobOutcome::Failed)
                )
        })
    };
    sdb.status
        .as_ref()
        .and_then(|s| s.rollout.as_ref())
        .and_then(|r| {
            r.batches
                .iter()
                .find(|b| b.tenants.iter().any(|t| t == tenant) && !recorded(&b.job))
        })
        .map(|b| b.job.clone())
}

/// The Shared database's migration Job that its status says runs. Pure.
pub fn shared_migration_job(sdb: &ServiceDatabase) -> Option<String> {
    let schema = sdb.status.as_ref().and_then(|s| s.schema.as_ref())?;
    (schema.last_job_outcome == Some(JobOutcome::Running))
        .then(|| schema.last_job.clone())
        .flatten()
}

/// Whether the Job `name` exists and has not ended: a status that still says Running
/// after its Job ended (its ConfigMap gone meanwhile, say) must not hold a rotation back.
/// Listed by name: the chart grants Jobs list, not get.
pub async fn job_running(
    client: &kube::Client,
    namespace: &str,
    name: Option<&str>,
) -> Result<bool, kube::Error> {
    let Some(name) = name else {
        return Ok(false);
    };
    let jobs = kube::Api::<Job>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().fields(&format!("metadata.name={name}")))
        .await?;
    Ok(jobs
        .items
        .iter()
        .any(|j| j.metadata.deletion_timestamp.is_none() && finished(j).is_none()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::api::ServiceDatabaseSpec;

    fn layout() -> Layout {
        let mut s = ServiceDatabase::new("orders", ServiceDatabaseSpec::default());
        s.metadata.namespace = Some("shop".into());
        Layout::new(&s, None)
    }

    fn done(written: &[&str]) -> Provisioned {
        Provisioned {
            layout: layout(),
            statements: Vec::new(),
            secrets_written: written.iter().map(|s| s.to_string()).collect(),
            history_seen: false,
            history: None,
        }
    }

    /// Locks the Event's content: the roles, why, and only the rotated roles' Secrets
    /// that were written; nothing when nothing rotated.
    #[test]
    fn the_event_names_roles_cause_and_written_secrets() {
        let nothing = Decision::default();
        assert_eq!(
            announcement(&nothing, &layout(), &done(&["orders-db"])),
            None
        );
        let app_only = Decision {
            rotate: BTreeMap::from([(
                "shop_orders_app".to_string(),
                Cause::Requested("v2".into()),
            )]),
            ..Default::default()
        };
        let note = announcement(
            &app_only,
            &layout(),
            &done(&["orders-db", "orders-migrator"]),
        )
        .unwrap();
        assert_eq!(
            note,
            "rotated the passwords of roles shop_orders_app (servicedb.io/rotate: \"v2\"); \
             new credentials in Secrets orders-db"
        );
        let due = Decision {
            rotate: BTreeMap::from([("shop_orders_owner".to_string(), Cause::Due)]),
            ..Default::default()
        };
        let note = announcement(&due, &layout(), &done(&["orders-migrator"])).unwrap();
        assert!(note.contains("passwordRotation.every has passed"), "{note}");
        assert!(note.ends_with("Secrets orders-migrator"), "{note}");
    }

    /// Locks which Job a rotation asks about: the tenant's own Job recorded Running, or a
    /// batch naming it whose end it has not recorded; none once recorded (and for a
    /// Shared database, its Job recorded Running).
    #[test]
    fn the_job_to_ask_is_the_running_own_job_or_an_unrecorded_batch() {
        use crate::api::{RolloutBatch, RolloutStatus, SchemaStatus, ServiceDatabaseStatus};
        let mut sdb = ServiceDatabase::new("app", ServiceDatabaseSpec::default());
        let schema = |job: &str, outcome| SchemaStatus {
            last_job: Some(job.into()),
            last_job_outcome: Some(outcome),
            ..Default::default()
        };
        let entry = |job: &str, outcome| TenantDatabaseStatus {
            schema: Some(schema(job, outcome)),
            ..Default::default()
        };
        let job = |s: &ServiceDatabase, t: &str, e: &TenantDatabaseStatus| {
            tenant_migration_job(s, t, Some(e))
        };
        assert_eq!(tenant_migration_job(&sdb, "t-1", None), None);
        let own = entry("own", JobOutcome::Running);
        assert_eq!(job(&sdb, "t-1", &own).as_deref(), Some("own"));
        sdb.status = Some(ServiceDatabaseStatus {
            rollout: Some(RolloutStatus {
                batches: vec![RolloutBatch {
                    job: "app-batch-mig-1".into(),
                    tenants: vec!["t-1".into(), "t-2".into()],
                }],
                ..Default::default()
            }),
            schema: Some(schema("app-mig-1", JobOutcome::Running)),
            ..Default::default()
        });
        let before = entry("own", JobOutcome::Succeeded);
        assert_eq!(
            job(&sdb, "t-1", &before).as_deref(),
            Some("app-batch-mig-1")
        );
        assert_eq!(job(&sdb, "t-3", &before), None);
        let recorded = entry("app-batch-mig-1", JobOutcome::Failed);
        assert_eq!(job(&sdb, "t-1", &recorded), None);
        assert_eq!(shared_migration_job(&sdb).as_deref(), Some("app-mig-1"));
    }
}
