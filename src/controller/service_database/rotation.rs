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
use crate::api::ServiceDatabase;
use crate::controller::provisioning::Provisioned;
use crate::service::Layout;
use crate::service::rotation::{Cause, Decision, Existing, Policy, SecretState, decide};

/// Decides the rotation of `layout`'s Secrets at `now` and arms `secrets` with the records.
pub async fn prepare(
    secrets: &KubeSecrets,
    sdb: &ServiceDatabase,
    layout: &Layout,
    now: Timestamp,
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
    let decision = decide(&Policy::of(sdb), &states, now);
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
}
