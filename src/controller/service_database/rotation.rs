//! Password rotation for a Shared ServiceDatabase: reads its Secrets (kept for the core's
//! read), asks `service::rotation` which roles rotate, and has every Secret write carry its
//! record. The core then writes the rotated Secrets before it sets the roles' passwords; a
//! crash in between leaves Secrets whose record says "rotated" and whose password the next
//! pass sets (the catalog's fingerprint no longer matches).
//!
//! A Tenant's databases use the same steps (`controller::tenant::database`): one `prepare`
//! per tenant database, with that tenant's layout, on the `KubeSecrets` the Tenant
//! controller makes, and the roles passed to `provisioning::apply_tenant`.

use k8s_openapi::jiff::Timestamp;

use super::secrets::KubeSecrets;
use crate::api::{JobOutcome, ServiceDatabase, TenantDatabaseStatus};
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

/// Whether a migration Job of a tenant's database runs, as the statuses tell: its own Job
/// (recorded Running), or a batch of the service's rollout that it has not yet recorded the
/// end of. Pure.
pub fn tenant_migrating(
    sdb: &ServiceDatabase,
    tenant: &str,
    known: Option<&TenantDatabaseStatus>,
) -> bool {
    let schema = known.and_then(|d| d.schema.as_ref());
    if schema.and_then(|s| s.last_job_outcome) == Some(JobOutcome::Running) {
        return true;
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
        .is_some_and(|r| {
            r.batches
                .iter()
                .any(|b| b.tenants.iter().any(|t| t == tenant) && !recorded(&b.job))
        })
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

    /// Locks "a rotation waits for the tenant's running migration": its own Job recorded
    /// Running, or a batch naming it whose end it has not recorded; not once recorded.
    #[test]
    fn a_tenant_migrates_while_its_job_or_unrecorded_batch_runs() {
        use crate::api::{RolloutBatch, RolloutStatus, SchemaStatus, ServiceDatabaseStatus};
        let mut sdb = ServiceDatabase::new("app", ServiceDatabaseSpec::default());
        let entry = |job: &str, outcome| TenantDatabaseStatus {
            schema: Some(SchemaStatus {
                last_job: Some(job.into()),
                last_job_outcome: Some(outcome),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(!tenant_migrating(&sdb, "t-1", None));
        assert!(tenant_migrating(
            &sdb,
            "t-1",
            Some(&entry("own", JobOutcome::Running))
        ));
        sdb.status = Some(ServiceDatabaseStatus {
            rollout: Some(RolloutStatus {
                batches: vec![RolloutBatch {
                    job: "app-batch-mig-1".into(),
                    tenants: vec!["t-1".into(), "t-2".into()],
                }],
                ..Default::default()
            }),
            ..Default::default()
        });
        let before = entry("own", JobOutcome::Succeeded);
        assert!(tenant_migrating(&sdb, "t-1", Some(&before)));
        assert!(!tenant_migrating(&sdb, "t-3", Some(&before)));
        let recorded = entry("app-batch-mig-1", JobOutcome::Failed);
        assert!(!tenant_migrating(&sdb, "t-1", Some(&recorded)));
    }
}
