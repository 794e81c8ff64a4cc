//! Passwords live in Secrets: an existing Secret is the source of truth, a new password is
//! generated only when none exists, and Secrets are written before any role gets a password.

use std::collections::BTreeMap;

use super::layout::{Layout, SecretKind};
use crate::naming;
use crate::password::Password;
use crate::pg::SslMode;
use crate::secret::{ConnectionInfo, TemplateError, render};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// Names derived for two databases can meet (a tenant `analytics-x` and a role
    /// `analytics` of tenant `x`): refusing beats two resources overwriting each other's
    /// passwords forever.
    #[error(
        "Secret {secret} already holds credentials of role {holds}, which does not belong to database {database}; \
         give this resource's Secret another name (secret.name, roles[].secretName) or rename the other"
    )]
    SecretConflict {
        secret: String,
        holds: String,
        database: String,
    },
}

/// Where Secrets are kept: Kubernetes Secrets in the cluster, `.env` files in dev mode.
pub trait SecretStore {
    type Error: std::error::Error + Send + Sync + 'static;

    fn read(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<BTreeMap<String, String>>, Self::Error>> + Send;

    /// Creates or replaces the Secret; `layout` is for labels and ownership.
    fn write(
        &self,
        layout: &Layout,
        name: &str,
        data: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// How apps reach the server (a pooler or service name may differ from the admin's host).
#[derive(Debug, Clone)]
pub struct ClientEndpoint {
    pub host: String,
    pub port: u16,
    pub ssl_mode: SslMode,
}

/// Passwords per role, and the Secrets whose content must change.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    pub passwords: BTreeMap<String, Password>,
    pub writes: Vec<(String, BTreeMap<String, String>)>,
}

/// Decides every role's password and every Secret's content. `existing` maps Secret names to
/// their current data. A role's password comes from the first of its Secrets that has one;
/// `rotate` lists roles that get a new password anyway.
pub fn plan_credentials(
    layout: &Layout,
    endpoint: &ClientEndpoint,
    template: &BTreeMap<String, String>,
    existing: &BTreeMap<String, BTreeMap<String, String>>,
    rotate: &[String],
) -> Result<Credentials, CredentialError> {
    // Roles of this database, including ones the spec may have stopped naming.
    let mut ours: Vec<String> = layout.roles().map(|r| r.name.clone()).collect();
    ours.push(naming::owner_role(&layout.database));
    ours.push(naming::app_role(&layout.database));
    for secret in &layout.secrets {
        if let Some(holds) = existing.get(&secret.name).and_then(|d| d.get("username"))
            && !ours.contains(holds)
        {
            return Err(CredentialError::SecretConflict {
                secret: secret.name.clone(),
                holds: holds.clone(),
                database: layout.database.clone(),
            });
        }
    }
    let mut out = Credentials::default();
    for role in layout.roles() {
        let found = layout
            .secrets
            .iter()
            .filter(|s| s.role == role.name)
            .filter_map(|s| existing.get(&s.name))
            // A Secret that names another user (the role was renamed) does not count.
            .filter(|data| data.get("username").is_none_or(|u| u == &role.name))
            .find_map(|data| data.get("password").filter(|p| !p.is_empty()));
        let password = match found {
            Some(p) if !rotate.contains(&role.name) => Password::from_existing(p.clone()),
            _ => Password::generate(),
        };
        out.passwords.insert(role.name.clone(), password);
    }
    for secret in &layout.secrets {
        let info = ConnectionInfo {
            host: endpoint.host.clone(),
            port: endpoint.port,
            database: layout.database.clone(),
            username: secret.role.clone(),
            password: out.passwords[&secret.role].clone(),
            ssl_mode: endpoint.ssl_mode,
        };
        let empty = BTreeMap::new();
        let extra = if secret.kind == SecretKind::App {
            template
        } else {
            &empty
        };
        let data = render(&info, extra)?;
        if existing.get(&secret.name) != Some(&data) {
            out.writes.push((secret.name.clone(), data));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ServiceDatabase, ServiceDatabaseSpec};

    fn layout() -> Layout {
        let mut s = ServiceDatabase::new("orders", ServiceDatabaseSpec::default());
        s.metadata.namespace = Some("shop".into());
        Layout::new(&s, None)
    }

    fn endpoint() -> ClientEndpoint {
        ClientEndpoint {
            host: "pg".into(),
            port: 5432,
            ssl_mode: SslMode::Require,
        }
    }

    #[test]
    fn a_secret_holding_another_databases_role_is_a_conflict() {
        let mut existing = BTreeMap::new();
        existing.insert(
            "orders-db".to_string(),
            BTreeMap::from([("username".to_string(), "other_db_app".to_string())]),
        );
        let err =
            plan_credentials(&layout(), &endpoint(), &BTreeMap::new(), &existing, &[]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("Secret orders-db already holds credentials of role other_db_app"),
            "{err}"
        );
    }

    #[test]
    fn first_run_generates_and_writes_every_secret() {
        let c = plan_credentials(
            &layout(),
            &endpoint(),
            &BTreeMap::new(),
            &BTreeMap::new(),
            &[],
        )
        .unwrap();
        assert_eq!(c.passwords.len(), 2);
        let names: Vec<&str> = c.writes.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["orders-db", "orders-migrator"]);
        assert_eq!(c.writes[0].1["PGUSER"], "shop_orders_app");
        assert_eq!(c.writes[1].1["PGUSER"], "shop_orders_owner");
    }

    /// Locks "the existing Secret is the source of truth": a second pass keeps every password
    /// and writes nothing.
    #[test]
    fn existing_secrets_keep_their_passwords_and_need_no_write() {
        let l = layout();
        let first =
            plan_credentials(&l, &endpoint(), &BTreeMap::new(), &BTreeMap::new(), &[]).unwrap();
        let existing: BTreeMap<_, _> = first.writes.into_iter().collect();
        let second = plan_credentials(&l, &endpoint(), &BTreeMap::new(), &existing, &[]).unwrap();
        assert!(second.writes.is_empty());
        assert_eq!(second.passwords, first.passwords);
        // A changed endpoint rewrites the Secrets but keeps the passwords.
        let mut moved = endpoint();
        moved.host = "pooler".into();
        let third = plan_credentials(&l, &moved, &BTreeMap::new(), &existing, &[]).unwrap();
        assert_eq!(third.writes.len(), 2);
        assert_eq!(third.passwords, first.passwords);
        // Rotation asks for a new one.
        let rotated = plan_credentials(
            &l,
            &endpoint(),
            &BTreeMap::new(),
            &existing,
            &["shop_orders_app".into()],
        )
        .unwrap();
        assert_ne!(
            rotated.passwords["shop_orders_app"],
            first.passwords["shop_orders_app"]
        );
        assert_eq!(
            rotated.passwords["shop_orders_owner"],
            first.passwords["shop_orders_owner"]
        );
    }
}
