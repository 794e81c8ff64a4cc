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

/// Server-wide state of one database and its roles, and the ownership catalog's claims on
/// them (one statement on the catalog database).
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
    /// Roles besides the owner holding a grant option on the database (they could let
    /// anyone connect).
    pub database_grant_options: BTreeSet<String>,
    /// Our roles that exist, by name.
    pub roles: BTreeMap<String, ObservedRole>,
    /// Catalog rows for our role names and for every role recorded for this database
    /// (including roles the spec no longer names).
    pub role_claims: BTreeMap<String, RoleClaim>,
    /// Roles whose Secret password a login probe was refused with (filled by the probes,
    /// not by the catalog reads).
    pub password_rejected: BTreeSet<String>,
}

/// What a role has on one schema itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SchemaGrants {
    pub usage: bool,
}

/// A routine of a managed schema, owned by a role the admin acts for, that a write role
/// cannot execute.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct MissingRoutine {
    pub role: String,
    pub schema: String,
    pub name: String,
    /// Its identity arguments as the server formats them (`pg_get_function_identity_arguments`:
    /// names and types quoted where needed), which tell overloads apart.
    pub arguments: String,
}

/// A table (or view...) or sequence of a managed schema, owned by a role the admin acts for,
/// on which a grantee lacks what its access gives.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Missing {
    pub role: String,
    pub schema: String,
    pub object: String,
    /// `r` tables and the like, `S` sequences.
    pub kind: char,
    /// A migration history table: SELECT is all anyone but the owner gets.
    pub history: bool,
}

/// A privilege on a managed schema or on one of its tables or sequences that the spec does
/// not grant: to PUBLIC, beyond a grantee's access, or with the right to grant it on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Excess {
    pub schema: String,
    /// The table or sequence; `None` for the schema itself.
    pub object: Option<String>,
    /// `n` the schema, `r` a table (or view...), `S` a sequence.
    pub kind: char,
    /// One of our grantees, or `PUBLIC`.
    pub grantee: String,
    pub privilege: String,
    /// The privilege is the spec's; only the grant option on it is not.
    pub grant_option_only: bool,
    /// Who owns the schema or object.
    pub owner: String,
    /// Whether the admin can act for the owner, and so revoke it.
    pub revocable: bool,
}

/// Inside the database (seen connected to it).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObservedDatabase {
    /// Schemas of interest (public, the spec's, and any the owner owns) -> owner.
    pub schemas: BTreeMap<String, String>,
    pub extensions: BTreeSet<String>,
    /// (role, schema) -> what it has.
    pub grants: BTreeMap<(String, String), SchemaGrants>,
    /// Tables and sequences grantees lack privileges on.
    pub missing: BTreeSet<Missing>,
    /// Routines write roles cannot execute.
    pub routines_missing: BTreeSet<MissingRoutine>,
    /// (schema, object type `r`/`S`/`f`, privilege, grantee) in the owner's default privileges.
    pub default_privileges: BTreeSet<(String, char, String, String)>,
    /// (role, table): grantees that can change a migration history table.
    pub history_writers: BTreeSet<(String, String)>,
    /// The migration history tables present in `public`.
    pub history_tables: BTreeSet<String>,
    /// Privileges the spec does not grant, on managed schemas and their tables and sequences.
    pub excess: BTreeSet<Excess>,
}
