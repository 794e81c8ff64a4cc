//! The planner: (desired, observed) -> ordered actions. Pure and deterministic, so it is
//! table-tested without a server, and planning again after executing gives nothing to do.

use std::collections::BTreeSet;

use super::action::{Action, Objects};
use super::desired::{Access, DesiredDatabase, DesiredRole};
use super::observed::{ObservedDatabase, ObservedServer};
use crate::pg::Ident;

/// Another resource, or something outside servicedb, holds a name this resource needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    #[error("database {database:?} belongs to {owner}; choose another spec.databaseName")]
    DatabaseClaimed { database: String, owner: String },
    #[error(
        "database {database:?} belongs to another servicedb installation ({installation}) sharing this server; \
         choose another spec.databaseName"
    )]
    DatabaseOfOtherInstallation {
        database: String,
        installation: String,
    },
    #[error(
        "database {database:?} already exists and was not created by servicedb; choose another spec.databaseName \
         (servicedb never takes over a database it did not create)"
    )]
    DatabaseUnmanaged { database: String },
    #[error(
        "database {database:?} was dropped and created again outside servicedb (its oid changed), so servicedb \
         will not adopt or drop it; rename or drop that database, then servicedb creates its own again"
    )]
    DatabaseReplaced { database: String },
    #[error("role {role:?} belongs to database {database:?}")]
    RoleClaimed { role: String, database: String },
    #[error("role {role:?} already exists and was not created by servicedb")]
    RoleUnmanaged { role: String },
}

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

/// Checks the database's claim: absent (and no database of that name), or this resource's,
/// made by this installation, for the database it created.
fn check_database_claim(
    desired: &DesiredDatabase,
    observed: &ObservedServer,
) -> Result<(), Conflict> {
    let database = || desired.database.as_str().to_string();
    let Some(claim) = &observed.claim else {
        if observed.database_exists {
            return Err(Conflict::DatabaseUnmanaged {
                database: database(),
            });
        }
        return Ok(());
    };
    if claim.claimant != desired.claimant || claim.service != desired.service {
        let owner = match &claim.claimant {
            c if c.kind == "Tenant" => format!("{c} (ServiceDatabase {})", claim.service),
            c => c.to_string(),
        };
        return Err(Conflict::DatabaseClaimed {
            database: database(),
            owner,
        });
    }
    if let Some(other) = claim
        .installation
        .as_deref()
        .filter(|i| *i != desired.installation)
    {
        return Err(Conflict::DatabaseOfOtherInstallation {
            database: database(),
            installation: other.to_string(),
        });
    }
    if observed.database_exists {
        match claim.oid {
            Some(oid) if observed.database_oid != Some(oid) => {
                return Err(Conflict::DatabaseReplaced {
                    database: database(),
                });
            }
            // Claimed but its oid not yet recorded (a crash right after CREATE DATABASE): ours
            // only if our owner role owns it, which nobody else can arrange without superuser.
            None if observed.database_owner.as_deref() != Some(desired.owner.name.as_str()) => {
                return Err(Conflict::DatabaseUnmanaged {
                    database: database(),
                });
            }
            _ => {}
        }
    }
    Ok(())
}

/// Checks ownership: the database and every role must be unclaimed-and-absent or ours.
pub fn check_claims(desired: &DesiredDatabase, observed: &ObservedServer) -> Result<(), Conflict> {
    check_database_claim(desired, observed)?;
    for role in desired.roles() {
        let name = role.name.as_str();
        match observed.role_claims.get(name) {
            Some(claim) if claim.database != desired.database.as_str() => {
                return Err(Conflict::RoleClaimed {
                    role: name.to_string(),
                    database: claim.database.clone(),
                });
            }
            None if observed.roles.contains_key(name) => {
                return Err(Conflict::RoleUnmanaged {
                    role: name.to_string(),
                });
            }
            _ => {}
        }
    }
    Ok(())
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

/// Memberships the spec does not grant (`GRANT owner TO app` by hand would give the app
/// DDL): only owner-access roles are members, of the owner, and nobody else of anything.
fn revoke_extra_memberships(
    a: &mut Vec<Action>,
    desired: &DesiredDatabase,
    observed: &ObservedServer,
) {
    for role in desired.roles() {
        let Some(existing) = observed.roles.get(role.name.as_str()) else {
            continue;
        };
        let allowed = (role.purpose.access() == Access::Owner && role.name != desired.owner.name)
            .then_some(desired.owner.name.as_str());
        for group in &existing.member_of {
            if Some(group.as_str()) != allowed
                && let Ok(group) = Ident::new(group.clone())
            {
                a.push(Action::RevokeRole {
                    role: group,
                    member: role.name.clone(),
                });
            }
        }
    }
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
                let missing_now = match objects {
                    Objects::Tables => have.tables_missing,
                    Objects::Sequences => have.sequences_missing,
                    Objects::Functions => have.functions_missing,
                };
                if missing_now {
                    a.push(Action::GrantOnAll {
                        objects,
                        privileges,
                        schema: schema.clone(),
                        role: role.name.clone(),
                    });
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
    // After any GRANT ON ALL TABLES, which would include them.
    for (role, table) in &observed.history_writers {
        if let (Ok(role), Ok(table)) = (Ident::new(role.clone()), Ident::new(table.clone())) {
            a.push(Action::RevokeHistoryWrites { table, role });
        }
    }
    a
}

/// Privilege names as `aclexplode` gives them; anything else is never put into SQL.
const PRIVILEGES: [&str; 9] = [
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "TRUNCATE",
    "REFERENCES",
    "TRIGGER",
    "MAINTAIN",
    "USAGE",
];

/// What the spec does not grant, granted by hand: CREATE on managed schemas (for PUBLIC or
/// our roles) and table or sequence privileges beyond a role's access.
fn revoke_extra_privileges(a: &mut Vec<Action>, observed: &ObservedDatabase) {
    for (schema, grantee) in &observed.schema_creators {
        let role = match grantee.as_str() {
            "PUBLIC" => None,
            name => match Ident::new(name.to_string()) {
                Ok(role) => Some(role),
                Err(_) => continue,
            },
        };
        if let Ok(schema) = Ident::new(schema.clone()) {
            a.push(Action::RevokeCreateOnSchema { schema, role });
        }
    }
    let mut grouped: std::collections::BTreeMap<(&str, &str, char), Vec<String>> =
        Default::default();
    for (role, schema, objtype, privilege) in &observed.excess_privileges {
        if PRIVILEGES.contains(&privilege.as_str()) {
            grouped
                .entry((role, schema, *objtype))
                .or_default()
                .push(privilege.clone());
        }
    }
    for ((role, schema, objtype), privileges) in grouped {
        let objects = if objtype == 'S' {
            Objects::Sequences
        } else {
            Objects::Tables
        };
        if let (Ok(role), Ok(schema)) = (Ident::new(role), Ident::new(schema)) {
            a.push(Action::RevokeOnAll {
                objects,
                privileges,
                schema,
                role,
            });
        }
    }
}

/// `reclaimPolicy: Delete`: only what this resource created, and only if the catalog says it
/// is this resource's. Sessions are ended first so the drop never waits on a live connection.
pub fn plan_delete(
    desired: &DesiredDatabase,
    observed: &ObservedServer,
) -> Result<Vec<Action>, Conflict> {
    let mut a = Vec::new();
    // Never claimed: nothing of ours to drop (an unmanaged database of that name stays).
    if observed.claim.is_some() {
        // Another resource's or installation's claim is a conflict; a database that is no
        // longer the one we created is left alone, while our roles and claim still go.
        let database_is_ours = match check_database_claim(desired, observed) {
            Ok(()) => observed.database_exists,
            Err(Conflict::DatabaseReplaced { .. } | Conflict::DatabaseUnmanaged { .. }) => false,
            Err(other) => return Err(other),
        };
        {
            let db = &desired.database;
            if database_is_ours {
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
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::password::Password;
    use crate::provision::desired::{Claimant, RolePurpose};
    use crate::provision::observed::{Claim, ObservedRole, RoleClaim, SchemaGrants};

    fn id(s: &str) -> Ident {
        Ident::new(s).unwrap()
    }

    fn role(name: &str, purpose: RolePurpose) -> DesiredRole {
        DesiredRole {
            name: id(name),
            purpose,
            connection_limit: 5,
            password: Password::from_existing(format!("pw-{name}")),
        }
    }

    fn claimant(ns: &str) -> Claimant {
        Claimant {
            kind: "ServiceDatabase".into(),
            namespace: ns.into(),
            name: "orders".into(),
        }
    }

    fn claim(ns: &str) -> Claim {
        Claim {
            claimant: claimant(ns),
            service: "orders".into(),
            installation: Some("here".into()),
            oid: Some(4242),
        }
    }

    fn desired() -> DesiredDatabase {
        DesiredDatabase {
            installation: "here".into(),
            claimant: claimant("shop"),
            service: "orders".into(),
            tenant: None,
            database: id("shop_orders"),
            owner: role("shop_orders_owner", RolePurpose::Owner),
            app: Some(role("shop_orders_app", RolePurpose::App)),
            extra: vec![role(
                "shop_orders_reporting",
                RolePurpose::Extra {
                    name: "reporting".into(),
                    access: Access::Read,
                },
            )],
            schemas: vec![id("orders")],
            extensions: vec![id("pgcrypto")],
        }
    }

    /// The server state right after `plan_server` of `desired()` ran.
    fn provisioned(d: &DesiredDatabase) -> ObservedServer {
        let mut o = ObservedServer {
            claim: Some(claim("shop")),
            database_exists: true,
            database_oid: Some(4242),
            database_owner: Some(d.owner.name.as_str().into()),
            public_connect: false,
            ..Default::default()
        };
        for r in d.roles() {
            o.roles.insert(
                r.name.as_str().into(),
                ObservedRole {
                    can_login: true,
                    connection_limit: r.connection_limit,
                    admin_is_member: true,
                    member_of: Default::default(),
                    default_role: None,
                },
            );
            o.role_claims.insert(
                r.name.as_str().into(),
                RoleClaim {
                    database: d.database.as_str().into(),
                    fingerprint: Some(r.password.fingerprint(r.name.as_str())),
                },
            );
            if r.name != d.owner.name {
                o.connect_grantees.insert(r.name.as_str().into());
            }
        }
        o
    }

    fn shown(actions: &[Action]) -> Vec<String> {
        actions.iter().map(ToString::to_string).collect()
    }

    /// Locks the order and content of a first provisioning: claims, roles with redacted
    /// passwords, admin membership, the database, then CONNECT for exactly our roles.
    #[test]
    fn fresh_server_gets_everything_in_order() {
        let d = desired();
        let plan = plan_server(&d, &ObservedServer::default()).unwrap();
        assert_eq!(plan.claims.len(), 4);
        let s = shown(&plan.actions);
        assert_eq!(
            s[0],
            "CREATE ROLE \"shop_orders_owner\" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION INHERIT CONNECTION LIMIT 5 PASSWORD '<redacted>' VALID UNTIL 'infinity'"
        );
        assert!(s[1].starts_with("UPDATE servicedb.roles SET password_fingerprint"));
        assert_eq!(s[2], "GRANT \"shop_orders_owner\" TO CURRENT_USER");
        let create_db = s
            .iter()
            .position(|x| x == "CREATE DATABASE \"shop_orders\" OWNER \"shop_orders_owner\"")
            .unwrap();
        let last_role = s
            .iter()
            .rposition(|x| x.starts_with("GRANT \"shop_orders_reporting\" TO CURRENT_USER"))
            .unwrap();
        assert!(create_db > last_role, "roles come before the database");
        assert_eq!(
            &s[create_db + 1..],
            [
                "UPDATE servicedb.databases SET database_oid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = 'shop_orders') WHERE database_name = 'shop_orders'",
                "REVOKE CONNECT, TEMPORARY ON DATABASE \"shop_orders\" FROM PUBLIC",
                "GRANT CONNECT, TEMPORARY ON DATABASE \"shop_orders\" TO \"shop_orders_app\"",
                "GRANT CONNECT, TEMPORARY ON DATABASE \"shop_orders\" TO \"shop_orders_reporting\"",
            ]
        );
    }

    #[test]
    fn provisioned_server_needs_nothing() {
        let d = desired();
        assert!(plan_server(&d, &provisioned(&d)).unwrap().is_empty());
    }

    #[test]
    fn drift_is_repaired_one_thing_at_a_time() {
        let d = desired();
        let mut o = provisioned(&d);
        o.roles.remove("shop_orders_app");
        o.public_connect = true;
        o.roles
            .get_mut("shop_orders_owner")
            .unwrap()
            .connection_limit = 99;
        let s = shown(&plan_server(&d, &o).unwrap().actions);
        assert_eq!(
            s,
            [
                "ALTER ROLE \"shop_orders_owner\" CONNECTION LIMIT 5",
                "CREATE ROLE \"shop_orders_app\" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION INHERIT CONNECTION LIMIT 5 PASSWORD '<redacted>' VALID UNTIL 'infinity'",
                "UPDATE servicedb.roles SET password_fingerprint = '<redacted>', password_changed_at = now() WHERE role_name = 'shop_orders_app'",
                "GRANT \"shop_orders_app\" TO CURRENT_USER",
                "REVOKE CONNECT, TEMPORARY ON DATABASE \"shop_orders\" FROM PUBLIC",
            ]
        );
    }

    /// A role removed from the spec can no longer log in or connect, and is dropped only
    /// with the database.
    #[test]
    fn roles_removed_from_the_spec_are_disabled_then_dropped_with_the_database() {
        let mut d = desired();
        let o = provisioned(&d);
        d.extra.clear();
        let s = shown(&plan_server(&d, &o).unwrap().actions);
        assert_eq!(
            s,
            [
                "ALTER ROLE \"shop_orders_reporting\" NOLOGIN",
                "REVOKE CONNECT, TEMPORARY ON DATABASE \"shop_orders\" FROM \"shop_orders_reporting\""
            ]
        );
        let drops = shown(&plan_delete(&d, &o).unwrap());
        assert!(
            drops.contains(&"DROP ROLE IF EXISTS \"shop_orders_reporting\"".to_string()),
            "{drops:?}"
        );
    }

    #[test]
    fn owner_access_roles_act_as_the_owner() {
        let mut d = desired();
        d.extra[0].purpose = RolePurpose::Extra {
            name: "dba".into(),
            access: Access::Owner,
        };
        let o = provisioned(&d);
        let s = shown(&plan_server(&d, &o).unwrap().actions);
        assert_eq!(
            s,
            [
                "GRANT \"shop_orders_owner\" TO \"shop_orders_reporting\"",
                "ALTER ROLE \"shop_orders_reporting\" IN DATABASE \"shop_orders\" SET role = 'shop_orders_owner'"
            ]
        );
    }

    #[test]
    fn a_new_password_in_the_secret_is_set_on_the_role() {
        let mut d = desired();
        let o = provisioned(&d);
        d.app.as_mut().unwrap().password = Password::from_existing("rotated");
        let s = shown(&plan_server(&d, &o).unwrap().actions);
        assert_eq!(
            s[0],
            "ALTER ROLE \"shop_orders_app\" PASSWORD '<redacted>' VALID UNTIL 'infinity'"
        );
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn conflicts_change_nothing() {
        let d = desired();
        let mut o = ObservedServer {
            claim: Some(claim("other")),
            database_exists: true,
            ..Default::default()
        };
        let err = plan_server(&d, &o).unwrap_err();
        assert_eq!(
            err.to_string(),
            "database \"shop_orders\" belongs to ServiceDatabase other/orders; choose another spec.databaseName"
        );
        o.claim = None;
        assert!(matches!(
            plan_server(&d, &o),
            Err(Conflict::DatabaseUnmanaged { .. })
        ));
        o.database_exists = false;
        o.roles
            .insert("shop_orders_app".into(), ObservedRole::default());
        assert!(matches!(
            plan_server(&d, &o),
            Err(Conflict::RoleUnmanaged { .. })
        ));
        let other = ObservedServer {
            claim: Some(claim("other")),
            ..Default::default()
        };
        assert!(plan_delete(&d, &other).is_err());
    }

    /// Two PerTenant services of one tenant that name the same databaseName must not share
    /// the tenant's database: the claim names the service too.
    #[test]
    fn a_tenant_database_of_another_service_is_a_conflict() {
        let mut d = desired();
        d.claimant.kind = "Tenant".into();
        let mut o = provisioned(&d);
        o.claim.as_mut().unwrap().claimant = d.claimant.clone();
        o.claim.as_mut().unwrap().service = "billing".into();
        let err = plan_server(&d, &o).unwrap_err();
        assert!(matches!(err, Conflict::DatabaseClaimed { .. }), "{err}");
        assert!(
            err.to_string().contains("(ServiceDatabase billing)"),
            "{err}"
        );
        assert!(
            plan_delete(&d, &o).is_err(),
            "and Delete drops nothing of it"
        );
    }

    /// A claim made by another installation (another cluster sharing the server) is never
    /// taken over; a claim from before installations were recorded becomes ours.
    #[test]
    fn claims_of_other_installations_conflict_and_old_claims_are_adopted() {
        let d = desired();
        let mut o = provisioned(&d);
        o.claim.as_mut().unwrap().installation = Some("elsewhere".into());
        let err = plan_server(&d, &o).unwrap_err();
        assert!(
            matches!(err, Conflict::DatabaseOfOtherInstallation { ref installation, .. } if installation == "elsewhere"),
            "{err}"
        );
        assert!(plan_delete(&d, &o).is_err());
        o.claim.as_mut().unwrap().installation = None;
        let plan = plan_server(&d, &o).unwrap();
        assert_eq!(
            shown(&plan.claims),
            [
                "UPDATE servicedb.databases SET installation_id = 'here' WHERE database_name = 'shop_orders' AND installation_id IS NULL"
            ]
        );
    }

    /// A database dropped and created again by someone else (another oid) is neither adopted
    /// nor dropped; one dropped by hand is created again and its new oid recorded.
    #[test]
    fn a_replaced_database_is_not_adopted_and_a_dropped_one_comes_back() {
        let d = desired();
        let mut o = provisioned(&d);
        o.database_oid = Some(9999);
        assert!(matches!(
            plan_server(&d, &o),
            Err(Conflict::DatabaseReplaced { .. })
        ));
        let delete = shown(&plan_delete(&d, &o).unwrap());
        assert!(
            !delete.iter().any(|x| x.contains("DROP DATABASE")),
            "{delete:?}"
        );
        assert!(
            delete.iter().any(|x| x.starts_with("DROP ROLE")),
            "{delete:?}"
        );
        o.database_exists = false;
        o.database_oid = None;
        let plan = plan_server(&d, &o).unwrap();
        assert_eq!(
            shown(&plan.claims),
            [
                "UPDATE servicedb.databases SET database_oid = NULL WHERE database_name = 'shop_orders'"
            ],
            "the old oid is forgotten first, so a pass stopped after CREATE DATABASE still knows it"
        );
        let s = shown(&plan.actions);
        let create = s
            .iter()
            .position(|x| x.starts_with("CREATE DATABASE"))
            .unwrap();
        assert!(s[create + 1].starts_with("UPDATE servicedb.databases SET database_oid"));
    }

    /// Claimed but the oid never recorded (a crash right after CREATE DATABASE): ours when our
    /// owner role owns it, someone else's otherwise.
    #[test]
    fn an_unrecorded_oid_is_recorded_only_for_a_database_our_owner_owns() {
        let d = desired();
        let mut o = provisioned(&d);
        o.claim.as_mut().unwrap().oid = None;
        let s = shown(&plan_server(&d, &o).unwrap().actions);
        assert_eq!(s.len(), 1, "{s:?}");
        assert!(s[0].starts_with("UPDATE servicedb.databases SET database_oid"));
        o.database_owner = Some("mallory".into());
        assert!(matches!(
            plan_server(&d, &o),
            Err(Conflict::DatabaseUnmanaged { .. })
        ));
    }

    #[test]
    fn database_plan_creates_schemas_extensions_and_grants() {
        let d = desired();
        let mut o = ObservedDatabase::default();
        o.schemas
            .insert("public".into(), "pg_database_owner".into());
        let s = shown(&plan_database(&d, &o));
        assert_eq!(
            s[0],
            "CREATE SCHEMA IF NOT EXISTS \"orders\" AUTHORIZATION \"shop_orders_owner\""
        );
        assert_eq!(
            s[1],
            "SET ROLE \"shop_orders_owner\"; CREATE EXTENSION IF NOT EXISTS \"pgcrypto\" SCHEMA public; RESET ROLE"
        );
        assert!(s.contains(&"ALTER DEFAULT PRIVILEGES FOR ROLE \"shop_orders_owner\" IN SCHEMA \"orders\" GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO \"shop_orders_app\"".to_string()));
        assert!(s.contains(&"ALTER DEFAULT PRIVILEGES FOR ROLE \"shop_orders_owner\" IN SCHEMA \"public\" GRANT SELECT ON TABLES TO \"shop_orders_reporting\"".to_string()));
        assert!(
            !s.iter()
                .any(|x| x.contains("shop_orders_reporting") && x.contains("INSERT")),
            "read roles never get writes"
        );
        assert!(s.contains(&"GRANT USAGE ON SCHEMA \"orders\" TO \"shop_orders_app\"".to_string()));
    }

    #[test]
    fn database_plan_is_empty_when_everything_is_there_and_regrants_revoked_privileges() {
        let d = desired();
        let mut o = ObservedDatabase::default();
        o.schemas
            .insert("public".into(), "pg_database_owner".into());
        o.schemas
            .insert("orders".into(), "shop_orders_owner".into());
        o.extensions.insert("pgcrypto".into());
        for r in d.grantees() {
            for schema in ["public", "orders"] {
                o.grants.insert(
                    (r.name.as_str().into(), schema.into()),
                    SchemaGrants {
                        usage: true,
                        ..Default::default()
                    },
                );
                for &(objects, _, names) in required(r.purpose.access()) {
                    for p in names {
                        o.default_privileges.insert((
                            schema.into(),
                            objects.code(),
                            p.to_string(),
                            r.name.as_str().into(),
                        ));
                    }
                }
            }
        }
        assert!(plan_database(&d, &o).is_empty());
        o.grants
            .get_mut(&("shop_orders_app".to_string(), "orders".to_string()))
            .unwrap()
            .tables_missing = true;
        assert_eq!(
            shown(&plan_database(&d, &o)),
            [
                "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA \"orders\" TO \"shop_orders_app\""
            ]
        );
    }

    #[test]
    fn delete_drops_only_what_is_ours_database_first_owner_last() {
        let d = desired();
        let s = shown(&plan_delete(&d, &provisioned(&d)).unwrap());
        assert_eq!(
            s[0],
            "REVOKE CONNECT, TEMPORARY ON DATABASE \"shop_orders\" FROM \"shop_orders_app\""
        );
        assert!(s[2].starts_with("SELECT pg_terminate_backend(pid)"));
        assert_eq!(s[3], "DROP DATABASE IF EXISTS \"shop_orders\" WITH (FORCE)");
        assert_eq!(s[s.len() - 2], "DROP ROLE IF EXISTS \"shop_orders_owner\"");
        assert!(
            s.last()
                .unwrap()
                .starts_with("DELETE FROM servicedb.databases")
        );
        // An unclaimed database of the same name is never touched.
        let foreign = ObservedServer {
            database_exists: true,
            ..Default::default()
        };
        assert!(plan_delete(&d, &foreign).unwrap().is_empty());
    }
}
