//! The ServiceDatabase controller's fleet step for a PerTenant service: count its Tenants
//! into `status.tenants` and write it when it changed. The one call the ServiceDatabase
//! controller makes ([`write_fleet_status`]), plus the Tenant watch that brings it news
//! ([`services_of`], [`fleet_trigger`]).
//!
//! Until migration Jobs land, `status.rollout` is not written: nothing produces the tenants'
//! migration states [`super::decide`] needs. With Jobs, this step also builds a
//! [`super::TenantMigration`] per tenant ([`super::classify`] of its recorded attempt),
//! calls [`super::decide`], and writes `decision.status` as `status.rollout` (plus a
//! RolloutPaused Warning Event and Stalled when `paused_because` is set).

use std::hash::{DefaultHasher, Hash, Hasher};

use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use serde_json::json;

use super::fleet::summarize;
use crate::api::{ServiceDatabase, Tenancy, Tenant, TenantsSummary};
use crate::controller::status_patch::FIELD_MANAGER;

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

/// Counts the service's Tenants (one list of its namespace) and writes `status.tenants`
/// when it changed. Returns whether it wrote.
pub async fn write_fleet_status(
    client: &kube::Client,
    sdb: &ServiceDatabase,
) -> Result<bool, kube::Error> {
    if sdb.spec.tenancy != Tenancy::PerTenant {
        return Ok(false);
    }
    let ns = sdb.namespace().unwrap_or_default();
    let tenants = Api::<Tenant>::namespaced(client.clone(), &ns)
        .list(&ListParams::default())
        .await?
        .items;
    let refs: Vec<&Tenant> = tenants.iter().collect();
    let name = sdb.name_any();
    let summary = match fleet_target(sdb) {
        None => summarize(&name, None, &refs, None),
        Some(Some(target)) => summarize(&name, Some(&target), &refs, None),
        // Nothing is known to be at a target not known yet.
        Some(None) => TenantsSummary {
            at_target_version: 0,
            ..summarize(&name, None, &refs, None)
        },
    };
    if sdb.status.as_ref().and_then(|s| s.tenants.as_ref()) == Some(&summary) {
        return Ok(false);
    }
    let api: Api<ServiceDatabase> = Api::namespaced(client.clone(), &ns);
    api.patch_status(
        &sdb.name_any(),
        &PatchParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..PatchParams::default()
        },
        &Patch::Merge(&json!({ "status": { "tenants": summary } })),
    )
    .await?;
    Ok(true)
}

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
    (
        &tenant.spec.services,
        tenant.metadata.deletion_timestamp.is_some(),
        tenant.labels().get(crate::api::CANARY_LABEL),
        databases,
    )
        .hash(&mut h);
    Some(h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{
        MigrationsSpec, ServiceDatabaseSpec, TenantDatabaseStatus, TenantSpec, TenantStatus,
    };

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
