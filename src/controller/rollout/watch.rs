//! The ServiceDatabase controller's Tenant watch: which ServiceDatabases a Tenant event
//! concerns ([`services_of`]) and which Tenant changes move the fleet's counts
//! ([`fleet_trigger`]). Pure.

use std::hash::{DefaultHasher, Hash, Hasher};

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use crate::api::{ServiceDatabase, Tenant};

/// The ServiceDatabases a Tenant event concerns: those it lists and those it still has a
/// database of.
pub fn services_of(tenant: &Tenant) -> Vec<ObjectRef<ServiceDatabase>> {
    let ns = tenant.namespace().unwrap_or_default();
    let mut names: Vec<&String> = tenant.spec.services.iter().collect();
    if let Some(s) = &tenant.status {
        names.extend(s.databases.iter().map(|d| &d.service));
    }
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|n| ObjectRef::new(n).within(&ns))
        .collect()
}

/// Tenant changes that move the fleet's counts: its services, its deletion, its canary
/// label and each database's readiness and version. Not condition times or messages.
pub fn fleet_trigger(tenant: &Tenant) -> Option<u64> {
    let mut h = DefaultHasher::new();
    let databases: Vec<(&str, bool, Option<&str>)> = tenant
        .status
        .iter()
        .flat_map(|s| &s.databases)
        .map(|d| (d.service.as_str(), d.ready, d.applied_version.as_deref()))
        .collect();
    let migrations: Vec<_> = tenant
        .status
        .iter()
        .flat_map(|s| &s.databases)
        .map(|d| {
            (
                d.schema.as_ref().and_then(|s| s.last_job_outcome),
                d.schema.as_ref().and_then(|s| s.last_job.as_deref()),
                d.rollout_inputs.as_deref(),
                d.rollout_resume.as_deref(),
            )
        })
        .collect();
    (
        &tenant.spec.services,
        tenant.metadata.deletion_timestamp.is_some(),
        migrations,
        tenant.labels().get(crate::api::CANARY_LABEL),
        databases,
    )
        .hash(&mut h);
    Some(h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{TenantDatabaseStatus, TenantSpec, TenantStatus};

    #[test]
    fn a_tenant_maps_to_every_service_it_lists_or_holds() {
        let mut t = Tenant::new(
            "gym",
            TenantSpec {
                services: vec!["app".into(), "crm".into()],
                ..Default::default()
            },
        );
        t.metadata.namespace = Some("fit".into());
        t.status = Some(TenantStatus {
            databases: vec![
                TenantDatabaseStatus {
                    service: "app".into(),
                    ..Default::default()
                },
                TenantDatabaseStatus {
                    service: "old".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        });
        let names: Vec<String> = services_of(&t).into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["app", "crm", "old"]);
        assert!(
            services_of(&t)
                .iter()
                .all(|r| r.namespace.as_deref() == Some("fit"))
        );
    }

    #[test]
    fn only_fleet_facts_trigger() {
        let mut t = Tenant::new("gym", TenantSpec::default());
        t.status = Some(TenantStatus {
            databases: vec![TenantDatabaseStatus {
                service: "app".into(),
                ..Default::default()
            }],
            ..Default::default()
        });
        let before = fleet_trigger(&t);
        t.status.as_mut().unwrap().databases[0].message = Some("retrying".into());
        assert_eq!(fleet_trigger(&t), before);
        t.status.as_mut().unwrap().databases[0].ready = true;
        assert_ne!(fleet_trigger(&t), before);
    }
}
