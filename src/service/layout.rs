//! From a ServiceDatabase (and a Tenant, for PerTenant) to names: the database, its roles,
//! and which Secret holds whose credentials. Pure.

use crate::api::{RoleAccess, SecretAccess, ServiceDatabase};
use crate::naming;
use crate::provision::{Access, Claimant, RolePurpose};

/// A login role to provision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleLayout {
    pub name: String,
    pub purpose: RolePurpose,
    pub connection_limit: i32,
}

/// What a Secret is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretKind {
    /// The app's Secret (`secret.name`), with template keys.
    App,
    /// The owner's, for the migration Job only.
    Migrator,
    /// An extra role's.
    Role(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretLayout {
    pub name: String,
    pub kind: SecretKind,
    /// The role whose credentials it holds.
    pub role: String,
}

/// Everything named for one database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub namespace: String,
    pub claimant: Claimant,
    pub service: String,
    pub tenant: Option<String>,
    pub database: String,
    pub owner: RoleLayout,
    pub app: Option<RoleLayout>,
    pub extra: Vec<RoleLayout>,
    pub secrets: Vec<SecretLayout>,
    pub schemas: Vec<String>,
    pub extensions: Vec<String>,
}

impl Layout {
    /// The layout of a Shared ServiceDatabase (`tenant: None`) or of one tenant's database of
    /// a PerTenant one. The spec must have been validated.
    pub fn new(sdb: &ServiceDatabase, tenant: Option<&str>) -> Layout {
        let namespace = sdb
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string());
        let name = sdb.metadata.name.clone().unwrap_or_default();
        let spec = &sdb.spec;
        let base = naming::database_name(&namespace, &name, spec.database_name.as_deref());
        let database = match tenant {
            Some(t) => naming::tenant_database_name(&base, t),
            None => base,
        };
        let limit = |r: &Option<crate::api::LoginRoleSpec>| {
            r.as_ref().and_then(|r| r.connection_limit).unwrap_or(-1)
        };
        let owner = RoleLayout {
            name: naming::owner_role(&database),
            purpose: RolePurpose::Owner,
            connection_limit: limit(&spec.owner),
        };
        let secret = spec.secret.clone().unwrap_or_default();
        let app = (secret.access == SecretAccess::Write).then(|| RoleLayout {
            name: naming::app_role(&database),
            purpose: RolePurpose::App,
            connection_limit: limit(&spec.app),
        });
        let per_tenant = |secret_name: String| match tenant {
            Some(t) => naming::tenant_secret_name(&secret_name, t),
            None => secret_name,
        };
        let mut secrets = vec![
            SecretLayout {
                name: per_tenant(naming::app_secret_name(&name, secret.name.as_deref())),
                kind: SecretKind::App,
                role: app.as_ref().unwrap_or(&owner).name.clone(),
            },
            SecretLayout {
                name: per_tenant(naming::migrator_secret_name(&name)),
                kind: SecretKind::Migrator,
                role: owner.name.clone(),
            },
        ];
        let mut extra = Vec::new();
        for r in &spec.roles {
            let access = match r.access {
                RoleAccess::Read => Access::Read,
                RoleAccess::Write => Access::Write,
                RoleAccess::Owner => Access::Owner,
            };
            let role = RoleLayout {
                name: naming::extra_role(&database, &r.name),
                purpose: RolePurpose::Extra {
                    name: r.name.clone(),
                    access,
                },
                connection_limit: r.connection_limit.unwrap_or(-1),
            };
            secrets.push(SecretLayout {
                name: per_tenant(
                    r.secret_name
                        .clone()
                        .unwrap_or_else(|| naming::role_secret_name(&name, &r.name)),
                ),
                kind: SecretKind::Role(r.name.clone()),
                role: role.name.clone(),
            });
            extra.push(role);
        }
        let claimant = match tenant {
            Some(t) => Claimant {
                kind: "Tenant".to_string(),
                namespace: namespace.clone(),
                name: t.to_string(),
            },
            None => Claimant {
                kind: "ServiceDatabase".to_string(),
                namespace: namespace.clone(),
                name: name.clone(),
            },
        };
        Layout {
            namespace,
            claimant,
            service: name,
            tenant: tenant.map(str::to_string),
            database,
            owner,
            app,
            extra,
            secrets,
            schemas: spec.schemas.clone(),
            extensions: spec.extensions.clone(),
        }
    }

    /// Every role, owner first.
    pub fn roles(&self) -> impl Iterator<Item = &RoleLayout> {
        [Some(&self.owner), self.app.as_ref()]
            .into_iter()
            .flatten()
            .chain(&self.extra)
    }

    pub fn app_secret(&self) -> &SecretLayout {
        &self.secrets[0]
    }

    pub fn migrator_secret(&self) -> &SecretLayout {
        &self.secrets[1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ExtraRoleSpec, SecretSpec, ServiceDatabaseSpec};

    fn sdb(spec: ServiceDatabaseSpec) -> ServiceDatabase {
        let mut s = ServiceDatabase::new("orders", spec);
        s.metadata.namespace = Some("shop".into());
        s
    }

    #[test]
    fn shared_service_names_follow_the_design() {
        let l = Layout::new(
            &sdb(ServiceDatabaseSpec {
                roles: vec![ExtraRoleSpec {
                    name: "reporting".into(),
                    access: RoleAccess::Read,
                    connection_limit: None,
                    secret_name: None,
                }],
                ..Default::default()
            }),
            None,
        );
        assert_eq!(l.database, "shop_orders");
        assert_eq!(l.owner.name, "shop_orders_owner");
        assert_eq!(l.app.as_ref().unwrap().name, "shop_orders_app");
        let secrets: Vec<(&str, &str)> = l
            .secrets
            .iter()
            .map(|s| (s.name.as_str(), s.role.as_str()))
            .collect();
        assert_eq!(
            secrets,
            [
                ("orders-db", "shop_orders_app"),
                ("orders-migrator", "shop_orders_owner"),
                ("orders-db-reporting", "shop_orders_reporting")
            ]
        );
        assert_eq!(l.claimant.to_string(), "ServiceDatabase shop/orders");
    }

    #[test]
    fn tenant_databases_and_secrets_are_suffixed_and_owned_by_the_tenant() {
        let l = Layout::new(
            &sdb(ServiceDatabaseSpec {
                database_name: Some("app".into()),
                ..Default::default()
            }),
            Some("gym-42"),
        );
        assert_eq!(l.database, "app_gym_42");
        assert_eq!(l.app_secret().name, "orders-db-gym-42");
        assert_eq!(l.migrator_secret().name, "orders-migrator-gym-42");
        assert_eq!(l.claimant.to_string(), "Tenant shop/gym-42");
    }

    #[test]
    fn owner_access_gives_the_app_secret_the_owners_credentials() {
        let l = Layout::new(
            &sdb(ServiceDatabaseSpec {
                secret: Some(SecretSpec {
                    access: SecretAccess::Owner,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            None,
        );
        assert!(l.app.is_none());
        assert_eq!(l.app_secret().role, "shop_orders_owner");
    }
}
