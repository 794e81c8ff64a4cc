//! What the server's catalogs say, as plain data for the planner.

use std::collections::{BTreeMap, BTreeSet};

use super::desired::Claimant;

/// A role as it exists.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObservedRole {
    pub can_login: bool,
    pub connection_limit: i32,
    /// Whether the admin is a member (needed to create its database, manage its objects and
    /// end its sessions, without superuser).
    pub admin_is_member: bool,
    /// Roles this role is a member of.
    pub member_of: BTreeSet<String>,
    /// Its `SET role` default in this database, if any (owner-access roles act as the owner).
    pub default_role: Option<String>,
}

/// A role's row in the ownership catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleClaim {
    pub database: String,
    pub fingerprint: Option<String>,
}

/// A database's row in the ownership catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub claimant: Claimant,
    /// The ServiceDatabase: for a tenant's database, which of the tenant's services it serves.
    pub service: String,
    /// The installation that made the claim; `None` for claims from before installations
    /// were recorded.
    pub installation: Option<String>,
    /// The oid of the database servicedb created; `None` until it exists.
    pub oid: Option<u32>,
}

/// Server-wide state of one database and its roles (seen from the maintenance database and
/// the ownership catalog).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObservedServer {
    /// Who the catalog says owns the database name.
    pub claim: Option<Claim>,
    pub database_exists: bool,
    pub database_oid: Option<u32>,
    pub database_owner: Option<String>,
    /// Whether PUBLIC may connect (the default for a new database).
    pub public_connect: bool,
    /// Roles granted CONNECT explicitly.
    pub connect_grantees: BTreeSet<String>,
    /// Who besides the owner may CREATE (schemas) in the database: role names, or `PUBLIC`.
    pub database_creators: BTreeSet<String>,
    /// Our roles that exist, by name.
    pub roles: BTreeMap<String, ObservedRole>,
    /// Catalog rows for our role names and for every role recorded for this database
    /// (including roles the spec no longer names).
    pub role_claims: BTreeMap<String, RoleClaim>,
    /// Roles whose Secret password a login probe was refused with (filled by the probes,
    /// not by the catalog reads).
    pub password_rejected: BTreeSet<String>,
}

/// Privileges a role lacks on the existing objects of one schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SchemaGrants {
    pub usage: bool,
    pub tables_missing: bool,
    pub sequences_missing: bool,
    pub functions_missing: bool,
}

/// Inside the database (seen connected to it).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObservedDatabase {
    /// Schemas of interest (public, the spec's, and any the owner owns) -> owner.
    pub schemas: BTreeMap<String, String>,
    pub extensions: BTreeSet<String>,
    /// (role, schema) -> what it has.
    pub grants: BTreeMap<(String, String), SchemaGrants>,
    /// (schema, object type `r`/`S`/`f`, privilege, grantee) in the owner's default privileges.
    pub default_privileges: BTreeSet<(String, char, String, String)>,
    /// (role, table): grantees that can change a migration history table.
    pub history_writers: BTreeSet<(String, String)>,
    /// (schema, grantee or `PUBLIC`): CREATE on a managed schema for PUBLIC or a grantee.
    pub schema_creators: BTreeSet<(String, String)>,
    /// (role, schema, `r` tables or `S` sequences, privilege): granted beyond what the role's
    /// access allows (TRUNCATE, TRIGGER, writes for a read role...).
    pub excess_privileges: BTreeSet<(String, String, char, String)>,
}
