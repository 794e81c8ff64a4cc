//! Which services a Tenant gets databases of, and which it no longer lists. Pure.

use crate::api::conditions::reasons;
use crate::api::validation::{describe, validate_service_database};
use crate::api::{ServiceDatabase, Tenancy, Tenant, TenantDatabaseStatus};

use super::status::DbState;

/// The PerTenant ServiceDatabase `name` (as found in the namespace, if at all), or why the
/// Tenant cannot have a database of it.
pub fn resolve<'a>(
    tenant: &Tenant,
    name: &str,
    found: Option<&'a ServiceDatabase>,
) -> Result<&'a ServiceDatabase, DbState> {
    let ns = tenant.metadata.namespace.as_deref().unwrap_or_default();
    let sdb = match found {
        Some(sdb) if sdb.metadata.deletion_timestamp.is_none() => sdb,
        Some(_) => {
            return Err(DbState::Waiting {
                reason: reasons::SERVICE_NOT_FOUND.into(),
                message: format!(
                    "ServiceDatabase {ns}/{name} is being deleted; remove {name} from spec.services"
                ),
            });
        }
        // It may be applied after the Tenant (GitOps applies in any order): its watch brings it.
        None => {
            return Err(DbState::Waiting {
                reason: reasons::SERVICE_NOT_FOUND.into(),
                message: format!(
                    "spec.services: ServiceDatabase {ns}/{name} does not exist; create it with tenancy: PerTenant, or remove {name} from spec.services"
                ),
            });
        }
    };
    if sdb.spec.tenancy != Tenancy::PerTenant {
        return Err(DbState::Stalled {
            reason: reasons::SERVICE_NOT_FOUND.into(),
            message: format!(
                "spec.services: ServiceDatabase {ns}/{name} is Shared (one database for all); only tenancy: PerTenant services give each Tenant a database; remove {name} from spec.services"
            ),
        });
    }
    if let Err(errors) = validate_service_database(sdb) {
        return Err(DbState::Stalled {
            reason: reasons::INVALID_SPEC.into(),
            message: format!(
                "ServiceDatabase {ns}/{name} is invalid: {}",
                describe(&errors)
            ),
        });
    }
    Ok(sdb)
}

/// The databases the status records for services `spec.services` no longer lists: to be
/// offboarded by the Tenant's reclaimPolicy.
pub fn removed(tenant: &Tenant) -> Vec<TenantDatabaseStatus> {
    tenant
        .status
        .as_ref()
        .map(|s| {
            s.databases
                .iter()
                .filter(|d| !tenant.spec.services.contains(&d.service))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the service has migrations for its tenants' databases.
pub fn has_migrations(sdb: &ServiceDatabase) -> bool {
    sdb.spec
        .migrations
        .as_ref()
        .is_some_and(|m| !m.config_maps.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ServiceDatabaseSpec, TenantSpec, TenantStatus};

    fn tenant(services: &[&str], recorded: &[&str]) -> Tenant {
        let mut t = Tenant::new(
            "gym-1",
            TenantSpec {
                services: services.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            },
        );
        t.metadata.namespace = Some("fit".into());
        t.status = Some(TenantStatus {
            databases: recorded
                .iter()
                .map(|s| TenantDatabaseStatus {
                    service: s.to_string(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        });
        t
    }

    fn sdb(name: &str, tenancy: Tenancy) -> ServiceDatabase {
        let mut s = ServiceDatabase::new(
            name,
            ServiceDatabaseSpec {
                tenancy,
                ..Default::default()
            },
        );
        s.metadata.namespace = Some("fit".into());
        s
    }

    #[test]
    fn missing_shared_and_invalid_services_are_named() {
        let t = tenant(&["app"], &[]);
        let per_tenant = sdb("app", Tenancy::PerTenant);
        assert!(resolve(&t, "app", Some(&per_tenant)).is_ok());
        match resolve(&t, "app", None) {
            Err(DbState::Waiting { reason, message }) => {
                assert_eq!(reason, "ServiceNotFound");
                assert!(
                    message.contains("ServiceDatabase fit/app does not exist"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
        match resolve(&t, "app", Some(&sdb("app", Tenancy::Shared))) {
            Err(DbState::Stalled { reason, message }) => {
                assert_eq!(reason, "ServiceNotFound");
                assert!(message.contains("fit/app is Shared"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        let mut bad = per_tenant.clone();
        bad.spec.database_name = Some("Bad-Name".into());
        match resolve(&t, "app", Some(&bad)) {
            Err(DbState::Stalled { reason, message }) => {
                assert_eq!(reason, "InvalidSpec");
                assert!(message.contains("spec.databaseName"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn removed_services_are_the_recorded_ones_no_longer_listed() {
        let t = tenant(&["app"], &["app", "crm"]);
        let gone: Vec<String> = removed(&t).into_iter().map(|d| d.service).collect();
        assert_eq!(gone, ["crm"]);
        assert!(removed(&tenant(&["app"], &[])).is_empty());
    }
}
