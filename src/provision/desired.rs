//! What one database on a server should look like, in PostgreSQL terms.

use std::fmt;

use crate::password::Password;
use crate::pg::Ident;

/// The Kubernetes resource a database belongs to: the identity recorded in the ownership
/// catalog. Namespace and name, not uid, so a resource deleted with `Retain` and applied again
/// gets its database back, while a resource in another namespace never can.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Claimant {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for Claimant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// What an extra role may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// SELECT on tables and sequences.
    Read,
    /// SELECT, INSERT, UPDATE, DELETE on tables; USAGE on sequences; EXECUTE on functions.
    Write,
    /// Member of the owner role: DDL too.
    Owner,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolePurpose {
    /// Owns the database and everything in it; only migrations log in as it.
    Owner,
    /// The runtime role: data, no DDL.
    App,
    /// An extra role from `spec.roles`.
    Extra { name: String, access: Access },
}

impl RolePurpose {
    /// As recorded in the catalog.
    pub fn label(&self) -> String {
        match self {
            RolePurpose::Owner => "owner".to_string(),
            RolePurpose::App => "app".to_string(),
            RolePurpose::Extra { name, .. } => format!("extra:{name}"),
        }
    }

    pub fn access(&self) -> Access {
        match self {
            RolePurpose::Owner => Access::Owner,
            RolePurpose::App => Access::Write,
            RolePurpose::Extra { access, .. } => *access,
        }
    }
}

#[derive(Debug, Clone)]
pub struct DesiredRole {
    pub name: Ident,
    pub purpose: RolePurpose,
    /// -1 for no limit.
    pub connection_limit: i32,
    /// From the role's Secret (or newly generated and already written there).
    pub password: Password,
}

#[derive(Debug, Clone)]
pub struct DesiredDatabase {
    /// Which servicedb makes the claim: one id per cluster or dev state directory.
    pub installation: String,
    pub claimant: Claimant,
    /// The ServiceDatabase's name.
    pub service: String,
    pub tenant: Option<String>,
    pub database: Ident,
    pub owner: DesiredRole,
    /// None when the app uses the owner's credentials (`secret.access: owner`).
    pub app: Option<DesiredRole>,
    pub extra: Vec<DesiredRole>,
    /// Schemas besides `public`, owned by the owner.
    pub schemas: Vec<Ident>,
    pub extensions: Vec<Ident>,
}

impl DesiredDatabase {
    /// Every login role, owner first.
    pub fn roles(&self) -> impl Iterator<Item = &DesiredRole> {
        [Some(&self.owner), self.app.as_ref()]
            .into_iter()
            .flatten()
            .chain(&self.extra)
    }

    /// Roles that get privileges granted (not the owner, not owner-access extras, which are
    /// members of the owner).
    pub fn grantees(&self) -> impl Iterator<Item = &DesiredRole> {
        self.roles()
            .filter(|r| matches!(r.purpose.access(), Access::Read | Access::Write))
    }
}
