//! `status.tenants` of a PerTenant ServiceDatabase, counted from its Tenants' statuses (the
//! operator's cache, never the servers). Pure.

use crate::api::{RolloutStatus, Tenant, TenantsSummary};
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
}
