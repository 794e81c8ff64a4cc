//! What the last `dev up` saw, in `<state>/resources.json`: the manifests it read, the
//! DatabaseServers they declared, and every database it set up with the resource as last
//! applied (like kubectl's last-applied annotation), so a resource removed from the
//! manifests is still known: reported as orphaned, and `--prune` can apply its reclaimPolicy.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::manifests::Manifests;
use crate::api::{ReclaimPolicy, ServiceDatabase, Tenancy};

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// The `-f` paths of the last `dev up`, absolute.
    pub manifests: Vec<PathBuf>,
    pub servers: Vec<DeclaredServer>,
    pub units: Vec<UnitRecord>,
}

/// A DatabaseServer of the manifests, as `dev status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DeclaredServer {
    pub name: String,
    pub file: PathBuf,
    /// The admin's URL without the password.
    pub admin_url: String,
    /// Where the admin password is: the Secret and the file holding it.
    pub password_from: String,
}

/// One database `dev up` set up: a Shared service, or one tenant's database.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnitRecord {
    pub namespace: String,
    pub service: String,
    pub tenant: Option<String>,
    pub server: String,
    pub database: String,
    /// Secret names (files `<state>/secrets/<namespace>/<name>.env` and `.json`).
    pub secrets: Vec<String>,
    /// No longer in the manifests; kept until pruned with reclaimPolicy Delete.
    #[serde(default)]
    pub orphaned: bool,
    /// The resource as last applied: what `--prune` needs once it is gone from the manifests.
    pub resource: ServiceDatabase,
    /// For a tenant's database, the Tenant's reclaimPolicy (it decides, not the service's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_reclaim_policy: Option<ReclaimPolicy>,
}

impl UnitRecord {
    pub fn same_unit(&self, other: &UnitRecord) -> bool {
        self.namespace == other.namespace
            && self.service == other.service
            && self.tenant == other.tenant
    }

    /// `ServiceDatabase ns/name`, with the tenant when there is one.
    pub fn describe(&self) -> String {
        match &self.tenant {
            Some(t) => format!(
                "ServiceDatabase {}/{} (tenant {t})",
                self.namespace, self.service
            ),
            None => format!("ServiceDatabase {}/{}", self.namespace, self.service),
        }
    }

    /// What happens to this database when pruned: the Tenant's policy for a tenant's
    /// database, the ServiceDatabase's otherwise.
    pub fn policy(&self) -> ReclaimPolicy {
        self.tenant_reclaim_policy
            .unwrap_or(self.resource.spec.reclaim_policy)
    }

    pub fn reclaim_policy(&self) -> String {
        format!("{:?}", self.policy())
    }
}

fn path(state: &Path) -> PathBuf {
    state.join("resources.json")
}

impl Record {
    pub fn load(state: &Path) -> Result<Record, String> {
        let path = path(state);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                format!(
                    "{}: {e}; delete it to forget what earlier runs set up",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Record::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    pub fn save(&self, state: &Path) -> Result<(), String> {
        let path = path(state);
        let tmp = state.join(".resources.json.tmp");
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn orphans(&self) -> impl Iterator<Item = &UnitRecord> {
        self.units.iter().filter(|u| u.orphaned)
    }
}

/// Whether the manifests still declare this database, counting resources they declare but
/// that were refused or failed (those are broken, not gone).
pub fn still_declared(m: &Manifests, unit: &UnitRecord) -> bool {
    let ns = unit.namespace.as_str();
    if m.is_rejected("ServiceDatabase", ns, &unit.service) {
        return true;
    }
    let service = m.services.iter().find(|s| {
        s.value.metadata.namespace.as_deref() == Some(ns)
            && s.value.metadata.name.as_deref() == Some(unit.service.as_str())
    });
    let Some(service) = service else {
        return false;
    };
    match &unit.tenant {
        None => service.value.spec.tenancy == Tenancy::Shared,
        Some(t) => {
            service.value.spec.tenancy == Tenancy::PerTenant
                && (m.is_rejected("Tenant", ns, t)
                    || m.tenants.iter().any(|tn| {
                        tn.value.metadata.namespace.as_deref() == Some(ns)
                            && tn.value.metadata.name.as_deref() == Some(t.as_str())
                            && tn.value.spec.services.contains(&unit.service)
                    }))
        }
    }
}

/// The record after a run: this run's units, the earlier ones still declared (failed this
/// time, kept as they were), and the ones no longer declared, marked orphaned.
pub fn merge(old: &Record, m: &Manifests, done: Vec<UnitRecord>) -> Vec<UnitRecord> {
    let mut units = done;
    for u in &old.units {
        if units.iter().any(|d| d.same_unit(u)) {
            continue;
        }
        let mut u = u.clone();
        u.orphaned = !still_declared(m, &u);
        units.push(u);
    }
    units.sort_by(|a, b| {
        (&a.namespace, &a.service, &a.tenant).cmp(&(&b.namespace, &b.service, &b.tenant))
    });
    units
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(service: &str, tenant: Option<&str>) -> UnitRecord {
        UnitRecord {
            namespace: "shop".into(),
            service: service.into(),
            tenant: tenant.map(str::to_string),
            server: "local".into(),
            database: format!("shop_{service}"),
            secrets: vec![format!("{service}-db")],
            orphaned: false,
            resource: ServiceDatabase::new(service, Default::default()),
            tenant_reclaim_policy: None,
        }
    }

    /// A tenant's database is pruned by the Tenant's reclaimPolicy, not the service's.
    #[test]
    fn a_tenant_database_uses_the_tenants_policy() {
        let mut u = unit("app", Some("gym"));
        assert_eq!(u.policy(), ReclaimPolicy::Retain);
        u.tenant_reclaim_policy = Some(ReclaimPolicy::Delete);
        assert_eq!(u.policy(), ReclaimPolicy::Delete);
        assert_eq!(u.reclaim_policy(), "Delete");
    }

    /// Gone from the manifests: orphaned. Refused by the schema, or a tenant still listing the
    /// service: declared, however broken.
    #[test]
    fn only_what_the_manifests_no_longer_declare_is_orphaned() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("m.yaml"),
            "apiVersion: servicedb.io/v1alpha1\nkind: ServiceDatabase\nmetadata: {name: kept, namespace: shop}\nspec: {}\n---\n\
             apiVersion: servicedb.io/v1alpha1\nkind: ServiceDatabase\nmetadata: {name: broken, namespace: shop}\nspec: {tenancy: Sometimes}\n---\n\
             apiVersion: servicedb.io/v1alpha1\nkind: ServiceDatabase\nmetadata: {name: app, namespace: shop}\nspec: {tenancy: PerTenant}\n---\n\
             apiVersion: servicedb.io/v1alpha1\nkind: Tenant\nmetadata: {name: t1, namespace: shop}\nspec: {services: [app]}\n",
        )
        .unwrap();
        let m = super::super::manifests::load(&[dir.path().to_path_buf()]).unwrap();
        let old = Record {
            units: vec![
                unit("kept", None),
                unit("broken", None),
                unit("gone", None),
                unit("app", Some("t1")),
                unit("app", Some("t2")),
            ],
            ..Default::default()
        };
        let merged = merge(&old, &m, vec![unit("kept", None)]);
        let orphaned: Vec<String> = merged
            .iter()
            .filter(|u| u.orphaned)
            .map(UnitRecord::describe)
            .collect();
        assert_eq!(
            orphaned,
            [
                "ServiceDatabase shop/app (tenant t2)",
                "ServiceDatabase shop/gone"
            ]
        );
        assert_eq!(merged.len(), 5);
    }
}
