//! The planner: (desired, observed) -> ordered actions. Pure and deterministic, so it is
//! table-tested without a server, and planning again after executing gives nothing to do.

use std::collections::BTreeSet;

use super::action::{Action, Objects};
use super::desired::{Access, DesiredDatabase, DesiredRole};
use super::observed::{ObservedDatabase, ObservedServer};
use crate::pg::Ident;

mod claims;
mod revoke;

use claims::check_database_claim;
pub use claims::{Conflict, check_claims};
pub use revoke::{Unrevocable, unrevocable};
use revoke::{revoke_extra_memberships, revoke_extra_privileges};

/// Catalog claims first (they are what makes two resources unable to share a name), then the
/// server-wide changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerPlan {
    pub claims: Vec<Action>,
    pub actions: Vec<Action>,
}

impl ServerPlan {
    pub fn is_empty(&self) -> bool {
        self.claims.is_empty() && self.actions.is_empty()
    }
}

/// Roles, memberships, the database and who may connect to it.
pub fn plan_server(
    desired: &DesiredDatabase,
    observed: &ObservedServer,
) -> Result<ServerPlan, Conflict> {
    check_claims(desired, observed)?;
    let mut plan = ServerPlan::default();
    let db = &desired.database;
    match &observed.claim {
        None => plan.claims.push(Action::ClaimDatabase {
            database: db.clone(),
            installation: desired.installation.clone(),
            claimant: desired.claimant.clone(),
            service: desired.service.clone(),
            tenant: desired.tenant.clone(),
        }),
        Some(c) => {
            if c.installation.is_none() {
                plan.claims.push(Action::RecordInstallation {
                    database: db.clone(),
                    installation: desired.installation.clone(),
                });
            }
            if c.oid.is_some() && !observed.database_exists {
                plan.claims.push(Action::ForgetDatabaseOid {
                    database: db.clone(),
                });
            }
        }
    }
    for role in desired.roles() {
        if !observed.role_claims.contains_key(role.name.as_str()) {
            plan.claims.push(Action::ClaimRole {
                role: role.name.clone(),
                database: db.clone(),
                purpose: role.purpose.label(),
            });
        }
    }

    let a = &mut plan.actions;
    for role in desired.roles() {
        plan_role(a, role, observed);
    }
    // Extra roles with owner access act as the owner through membership.
    for role in desired
        .roles()
        .filter(|r| r.purpose.access() == Access::Owner && r.name != desired.owner.name)
    {
        let is_member = observed
            .roles
            .get(role.name.as_str())
            .is_some_and(|r| r.member_of.contains(desired.owner.name.as_str()));
        if !is_member {
            a.push(Action::GrantRole {
                role: desired.owner.name.clone(),
                member: Some(role.name.clone()),
            });
        }
    }
    if !observed.database_exists {
        a.push(Action::CreateDatabase {
            database: db.clone(),
            owner: desired.owner.name.clone(),
        });
    }
    let oid_recorded = observed.claim.as_ref().and_then(|c| c.oid);
    if !observed.database_exists || oid_recorded.is_none() {
        // After CREATE DATABASE, or for a database claimed before oids were recorded.
        a.push(Action::RecordDatabaseOid {
            database: db.clone(),
        });
    }
    if observed.database_exists
        && observed.database_owner.as_deref() != Some(desired.owner.name.as_str())
    {
        a.push(Action::SetDatabaseOwner {
            database: db.clone(),
            owner: desired.owner.name.clone(),
        });
    }
    // A new database lets PUBLIC connect until told otherwise.
    if !observed.database_exists || observed.public_connect {
        a.push(Action::RevokeConnectFromPublic {
            database: db.clone(),
        });
    }
    for role in desired.roles().filter(|r| r.name != desired.owner.name) {
        if !observed.database_exists || !observed.connect_grantees.contains(role.name.as_str()) {
            a.push(Action::GrantConnect {
                database: db.clone(),
                role: role.name.clone(),
            });
        }
        let default_role = observed
            .roles
            .get(role.name.as_str())
            .and_then(|r| r.default_role.as_deref());
        let wanted =
            (role.purpose.access() == Access::Owner).then_some(desired.owner.name.as_str());
        if default_role != wanted {
            a.push(Action::SetDefaultRole {
                role: role.name.clone(),
                database: db.clone(),
                owner: wanted.map(|_| desired.owner.name.clone()),
            });
        }
    }
    revoke_extra_memberships(a, desired, observed);
    // CREATE on the database would let a role make schemas: the owner's alone.
    let ours = |name: &str| desired.roles().any(|r| r.name.as_str() == name);
    for creator in &observed.database_creators {
        let role = match creator.as_str() {
            "PUBLIC" => None,
            name if ours(name) && name != desired.owner.name.as_str() => {
                Ident::new(name.to_string()).ok()
            }
            _ => continue,
        };
        a.push(Action::RevokeCreateOnDatabase {
            database: db.clone(),
            role,
        });
    }
    for holder in &observed.database_grant_options {
        if ours(holder)
            && holder != desired.owner.name.as_str()
            && let Ok(role) = Ident::new(holder.clone())
        {
            a.push(Action::RevokeGrantOptionOnDatabase {
                database: db.clone(),
                role,
            });
        }
    }
    // Roles the spec no longer names are disabled, not dropped: they may own objects, and
    // naming them again brings them back.
    for role in retired_roles(desired, observed) {
        if observed
            .roles
            .get(role.as_str())
            .is_some_and(|r| r.can_login)
        {
            a.push(Action::SetNoLogin { role: role.clone() });
        }
        if observed.connect_grantees.contains(role.as_str()) {
            a.push(Action::RevokeConnect {
                database: db.clone(),
                role,
            });
        }
    }
    Ok(plan)
}

/// Existing roles the catalog records for this database that the spec no longer names.
fn retired_roles(desired: &DesiredDatabase, observed: &ObservedServer) -> Vec<Ident> {
    observed
        .role_claims
        .iter()
        .filter(|(name, claim)| {
            claim.database == desired.database.as_str()
                && observed.roles.contains_key(name.as_str())
                && !desired.roles().any(|r| r.name.as_str() == name.as_str())
        })
        .filter_map(|(name, _)| Ident::new(name.clone()).ok())
        .collect()
}

fn plan_role(a: &mut Vec<Action>, role: &DesiredRole, observed: &ObservedServer) {
    let name = &role.name;
    let fingerprint = role.password.fingerprint(name.as_str());
    match observed.roles.get(name.as_str()) {
        None => {
            a.push(Action::CreateRole {
                role: name.clone(),
                connection_limit: role.connection_limit,
                password: role.password.clone(),
            });
            a.push(Action::RecordFingerprint {
                role: name.clone(),
                fingerprint,
            });
        }
        Some(existing) => {
            if !existing.can_login {
                a.push(Action::SetLogin { role: name.clone() });
            }
            if existing.connection_limit != role.connection_limit {
                a.push(Action::SetConnectionLimit {
                    role: name.clone(),
                    limit: role.connection_limit,
                });
            }
            let recorded = observed
                .role_claims
                .get(name.as_str())
                .and_then(|c| c.fingerprint.as_deref());
            if recorded != Some(fingerprint.as_str())
                || observed.password_rejected.contains(name.as_str())
            {
                a.push(Action::SetPassword {
                    role: name.clone(),
                    password: role.password.clone(),
                });
                a.push(Action::RecordFingerprint {
                    role: name.clone(),
                    fingerprint,
                });
            }
        }
    }
    if !observed
        .roles
        .get(name.as_str())
        .is_some_and(|r| r.admin_is_member)
    {
        a.push(Action::GrantRole {
            role: name.clone(),
            member: None,
        });
    }
}

/// What each access level needs: (objects, privileges as granted, privileges as
/// `aclexplode` names them).
fn required(access: Access) -> &'static [(Objects, &'static str, &'static [&'static str])] {
    const WRITE: &[(Objects, &str, &[&str])] = &[
        (
            Objects::Tables,
            "SELECT, INSERT, UPDATE, DELETE",
            &["SELECT", "INSERT", "UPDATE", "DELETE"],
        ),
        (Objects::Sequences, "USAGE, SELECT", &["USAGE", "SELECT"]),
        (Objects::Functions, "EXECUTE", &["EXECUTE"]),
    ];
    const READ: &[(Objects, &str, &[&str])] = &[
        (Objects::Tables, "SELECT", &["SELECT"]),
        (Objects::Sequences, "SELECT", &["SELECT"]),
    ];
    match access {
        Access::Write => WRITE,
        Access::Read => READ,
        Access::Owner => &[],
    }
}

/// The schemas whose objects roles get privileges on: public, the spec's, and any schema the
/// owner created through migrations.
pub fn managed_schemas(desired: &DesiredDatabase, observed: &ObservedDatabase) -> BTreeSet<String> {
    let mut schemas: BTreeSet<String> = desired
        .schemas
        .iter()
        .map(|s| s.as_str().to_string())
        .collect();
    schemas.insert("public".to_string());
    for (schema, owner) in &observed.schemas {
        if owner == desired.owner.name.as_str() {
            schemas.insert(schema.clone());
        }
    }
    schemas
}

/// Schemas, extensions, privileges and default privileges inside the database.
pub fn plan_database(desired: &DesiredDatabase, observed: &ObservedDatabase) -> Vec<Action> {
    let mut a = Vec::new();
    let owner = &desired.owner.name;
    for schema in &desired.schemas {
        match observed.schemas.get(schema.as_str()) {
            None => a.push(Action::CreateSchema {
                schema: schema.clone(),
                owner: owner.clone(),
            }),
            Some(o) if o != owner.as_str() => a.push(Action::SetSchemaOwner {
                schema: schema.clone(),
                owner: owner.clone(),
            }),
            Some(_) => {}
        }
    }
    for ext in &desired.extensions {
        if !observed.extensions.contains(ext.as_str()) {
            a.push(Action::CreateExtension {
                extension: ext.clone(),
                owner: owner.clone(),
            });
        }
    }
    for schema_name in managed_schemas(desired, observed) {
        // Names come from the spec (validated) or from the catalog; both are usable.
        let Ok(schema) = Ident::new(schema_name.clone()) else {
            continue;
        };
        let exists_or_created =
            observed.schemas.contains_key(&schema_name) || desired.schemas.contains(&schema);
        if !exists_or_created {
            continue;
        }
        for role in desired.grantees() {
            let rname = role.name.as_str().to_string();
            // A schema about to be created has no objects and no grants yet.
            let have = observed
                .grants
                .get(&(rname.clone(), schema_name.clone()))
                .copied()
                .unwrap_or_default();
            if !have.usage {
                a.push(Action::GrantUsageOnSchema {
                    schema: schema.clone(),
                    role: role.name.clone(),
                });
            }
            for &(objects, privileges, names) in required(role.purpose.access()) {
                if objects == Objects::Functions {
                    grant_missing_routines(&mut a, observed, &schema, role);
                } else {
                    grant_missing(&mut a, observed, &schema, role, objects, privileges);
                }
                let has_default = names.iter().all(|p| {
                    observed.default_privileges.contains(&(
                        schema_name.clone(),
                        objects.code(),
                        p.to_string(),
                        rname.clone(),
                    ))
                });
                if !has_default {
                    a.push(Action::DefaultPrivileges {
                        owner: owner.clone(),
                        schema: schema.clone(),
                        objects,
                        privileges,
                        role: role.name.clone(),
                    });
                }
            }
        }
    }
    revoke_extra_privileges(&mut a, observed);
    // After the grants, which leave history tables to SELECT anyway.
    for (role, table) in &observed.history_writers {
        if let (Ok(role), Ok(table)) = (Ident::new(role.clone()), Ident::new(table.clone())) {
            a.push(Action::RevokeHistoryWrites { table, role });
        }
    }
    a
}

/// What a Delete does with the database itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseFate {
    /// Ours: dropped.
    Dropped,
    /// Nothing of ours to drop: never claimed, or no database of that name any more.
    Absent,
    /// The name is this resource's, but the database under it is not the one servicedb
    /// created (a replacement, or one it cannot tell is its own): left alone, for this reason.
    /// The roles and the claim still go.
    LeftAlone(Conflict),
}

/// A Delete's statements and what they do with the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletePlan {
    pub actions: Vec<Action>,
    pub database: DatabaseFate,
}

/// GRANTs on the tables or sequences of `schema` the role lacks its access on, named one by
/// one (history tables apart: SELECT is all anyone but the owner gets on them).
fn grant_missing(
    a: &mut Vec<Action>,
    observed: &ObservedDatabase,
    schema: &Ident,
    role: &DesiredRole,
    objects: Objects,
    privileges: &'static str,
) {
    let (mut plain, mut history) = (Vec::new(), Vec::new());
    for m in observed.missing.iter().filter(|m| {
        m.role == role.name.as_str() && m.schema == schema.as_str() && m.kind == objects.code()
    }) {
        if let Ok(name) = Ident::new(m.object.clone()) {
            let target = (schema.clone(), name);
            if m.history {
                history.push(target)
            } else {
                plain.push(target)
            }
        }
    }
    for (targets, privileges) in [(plain, privileges), (history, "SELECT")] {
        if !targets.is_empty() {
            a.push(Action::GrantOnObjects {
                objects,
                privileges,
                targets,
                role: role.name.clone(),
            });
        }
    }
}

/// EXECUTE on the routines of `schema` the role cannot execute, named one by one.
fn grant_missing_routines(
    a: &mut Vec<Action>,
    observed: &ObservedDatabase,
    schema: &Ident,
    role: &DesiredRole,
) {
    let targets: Vec<(Ident, Ident, String)> = observed
        .routines_missing
        .iter()
        .filter(|m| m.role == role.name.as_str() && m.schema == schema.as_str())
        .filter_map(|m| {
            Ident::new(m.name.clone())
                .ok()
                .map(|name| (schema.clone(), name, m.arguments.clone()))
        })
        .collect();
    if !targets.is_empty() {
        a.push(Action::GrantOnRoutines {
            targets,
            role: role.name.clone(),
        });
    }
}

/// `reclaimPolicy: Delete`: only what this resource created, and only if the catalog says it
/// is this resource's. Sessions are ended first so the drop never waits on a live connection.
pub fn plan_delete(
    desired: &DesiredDatabase,
    observed: &ObservedServer,
) -> Result<DeletePlan, Conflict> {
    let mut a = Vec::new();
    // Never claimed: nothing of ours to drop (an unmanaged database of that name stays).
    let mut database = DatabaseFate::Absent;
    if observed.claim.is_some() {
        // Another resource's or installation's claim is a conflict; a database that is no
        // longer the one we created is left alone, while our roles and claim still go.
        match check_database_claim(desired, observed) {
            Ok(()) if observed.database_exists => database = DatabaseFate::Dropped,
            Ok(()) => {}
            Err(why @ (Conflict::DatabaseReplaced { .. } | Conflict::DatabaseUnmanaged { .. })) => {
                database = DatabaseFate::LeftAlone(why)
            }
            Err(other) => return Err(other),
        }
        if database == DatabaseFate::Dropped {
            let db = &desired.database;
            if observed.public_connect {
                a.push(Action::RevokeConnectFromPublic {
                    database: db.clone(),
                });
            }
            for role in &observed.connect_grantees {
                if let Ok(role) = Ident::new(role.clone()) {
                    a.push(Action::RevokeConnect {
                        database: db.clone(),
                        role,
                    });
                }
            }
            a.push(Action::TerminateSessions {
                database: db.clone(),
            });
            a.push(Action::DropDatabase {
                database: db.clone(),
            });
        }
    }
    // Roles the spec no longer names go too; the owner last: the others may hold grants from it.
    let mut roles: Vec<Ident> = retired_roles(desired, observed);
    let mut named: Vec<Ident> = desired.roles().map(|r| r.name.clone()).collect();
    named.reverse();
    roles.extend(named);
    for role in roles {
        let ours = observed
            .role_claims
            .get(role.as_str())
            .is_some_and(|c| c.database == desired.database.as_str());
        if ours && observed.roles.contains_key(role.as_str()) {
            a.push(Action::DropOwned { role: role.clone() });
            a.push(Action::DropRole { role });
        }
    }
    if observed.claim.is_some() {
        a.push(Action::ReleaseDatabase {
            database: desired.database.clone(),
        });
    }
    Ok(DeletePlan {
        actions: a,
        database,
    })
}

#[cfg(test)]
mod tests;
