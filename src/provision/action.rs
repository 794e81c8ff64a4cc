//! One step of a plan: what SQL to run, where, and how to show it without secrets.

use std::fmt;

use crate::password::Password;
use crate::pg::{Ident, quote_literal};

use super::desired::Claimant;

/// Where an action runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The maintenance database: roles and databases are server-wide.
    Server,
    /// The database being provisioned.
    Database,
    /// The ownership catalog.
    Catalog,
}

/// Kinds of objects default privileges apply to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Objects {
    Tables,
    Sequences,
    Functions,
}

impl Objects {
    pub fn keyword(self) -> &'static str {
        match self {
            Objects::Tables => "TABLES",
            Objects::Sequences => "SEQUENCES",
            Objects::Functions => "FUNCTIONS",
        }
    }

    /// For `GRANT ... ON <kind> a, b`: tables (views and the like too) and sequences.
    pub fn each_keyword(self) -> &'static str {
        match self {
            Objects::Tables => "TABLE",
            Objects::Sequences => "SEQUENCE",
            Objects::Functions => "ROUTINE",
        }
    }

    /// `pg_default_acl.defaclobjtype`.
    pub fn code(self) -> char {
        match self {
            Objects::Tables => 'r',
            Objects::Sequences => 'S',
            Objects::Functions => 'f',
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    ClaimDatabase {
        database: Ident,
        installation: String,
        claimant: Claimant,
        service: String,
        tenant: Option<String>,
    },
    /// A claim from before installations were recorded becomes this installation's.
    RecordInstallation {
        database: Ident,
        installation: String,
    },
    /// Ties the claim to the database just created, so a replacement is never adopted.
    RecordDatabaseOid {
        database: Ident,
    },
    /// Our database is gone: forget its oid before creating it again, so a pass stopped
    /// between CREATE DATABASE and recording the new oid is still recognised as ours.
    ForgetDatabaseOid {
        database: Ident,
    },
    ClaimRole {
        role: Ident,
        database: Ident,
        purpose: String,
    },
    CreateRole {
        role: Ident,
        connection_limit: i32,
        password: Password,
    },
    SetLogin {
        role: Ident,
    },
    /// A role the spec no longer names: kept (it may own objects), but it can no longer log in.
    SetNoLogin {
        role: Ident,
    },
    /// Sessions of an owner-access role act as the owner, so what they create belongs to it;
    /// `None` removes that default.
    SetDefaultRole {
        role: Ident,
        database: Ident,
        owner: Option<Ident>,
    },
    SetConnectionLimit {
        role: Ident,
        limit: i32,
    },
    SetPassword {
        role: Ident,
        password: Password,
    },
    RecordFingerprint {
        role: Ident,
        fingerprint: String,
    },
    /// Makes `member` a member of `role`; `None` is the admin itself.
    GrantRole {
        role: Ident,
        member: Option<Ident>,
    },
    /// Ends `member`'s membership in `role`: granted outside the spec.
    RevokeRole {
        role: Ident,
        member: Ident,
    },
    /// A grant option on the database would let a role let anyone connect.
    RevokeGrantOptionOnDatabase {
        database: Ident,
        role: Ident,
    },
    /// CREATE on the database lets a role make schemas: never for apps. `None` is PUBLIC.
    RevokeCreateOnDatabase {
        database: Ident,
        role: Option<Ident>,
    },
    /// A privilege on a schema the spec does not grant (CREATE is DDL: the owner's alone;
    /// nothing for PUBLIC), or only the grant option on it. `None` is PUBLIC. CASCADE takes
    /// along what the grantee granted on with it.
    RevokeOnSchema {
        schema: Ident,
        privileges: Vec<String>,
        grant_option: bool,
        role: Option<Ident>,
    },
    /// Privileges on these tables or sequences beyond the role's access (TRUNCATE, TRIGGER,
    /// writes for a read role, anything for PUBLIC), or only the grant option on them. Named
    /// one by one: `ON ALL TABLES` would fail on one table whose owner the admin cannot act for.
    RevokeOnObjects {
        objects: Objects,
        privileges: Vec<String>,
        grant_option: bool,
        targets: Vec<(Ident, Ident)>,
        role: Option<Ident>,
    },
    CreateDatabase {
        database: Ident,
        owner: Ident,
    },
    SetDatabaseOwner {
        database: Ident,
        owner: Ident,
    },
    RevokeConnectFromPublic {
        database: Ident,
    },
    GrantConnect {
        database: Ident,
        role: Ident,
    },
    RevokeConnect {
        database: Ident,
        role: Ident,
    },
    CreateSchema {
        schema: Ident,
        owner: Ident,
    },
    SetSchemaOwner {
        schema: Ident,
        owner: Ident,
    },
    /// Created as the owner, so a non-superuser admin can add trusted extensions.
    CreateExtension {
        extension: Ident,
        owner: Ident,
    },
    GrantUsageOnSchema {
        schema: Ident,
        role: Ident,
    },
    /// What the role's access gives, on these (schema, name) tables or sequences: only those
    /// whose owner the admin acts for, so a foreign one never fails the statement.
    GrantOnObjects {
        objects: Objects,
        privileges: &'static str,
        targets: Vec<(Ident, Ident)>,
        role: Ident,
    },
    /// EXECUTE on these routines (schema, name, identity arguments as the server formats
    /// them), each named, as [`Action::GrantOnObjects`].
    GrantOnRoutines {
        targets: Vec<(Ident, Ident, String)>,
        role: Ident,
    },
    /// The migration history is the migrations' business: readable, never writable, by apps.
    RevokeHistoryWrites {
        table: Ident,
        role: Ident,
    },
    DefaultPrivileges {
        owner: Ident,
        schema: Ident,
        objects: Objects,
        privileges: &'static str,
        role: Ident,
    },
    TerminateSessions {
        database: Ident,
    },
    DropDatabase {
        database: Ident,
    },
    DropOwned {
        role: Ident,
    },
    DropRole {
        role: Ident,
    },
    ReleaseDatabase {
        database: Ident,
    },
}

impl Action {
    pub fn target(&self) -> Target {
        use Action::*;
        match self {
            ClaimDatabase { .. }
            | RecordInstallation { .. }
            | RecordDatabaseOid { .. }
            | ForgetDatabaseOid { .. }
            | ClaimRole { .. }
            | RecordFingerprint { .. }
            | ReleaseDatabase { .. } => Target::Catalog,
            CreateSchema { .. }
            | RevokeOnSchema { .. }
            | RevokeOnObjects { .. }
            | GrantOnObjects { .. }
            | GrantOnRoutines { .. }
            | SetSchemaOwner { .. }
            | CreateExtension { .. }
            | GrantUsageOnSchema { .. }
            | RevokeHistoryWrites { .. }
            | DefaultPrivileges { .. } => Target::Database,
            _ => Target::Server,
        }
    }

    /// Whether it changes who may connect to the database. The admin does it as a member of
    /// the owner; where that membership is not visible to the session, PostgreSQL answers
    /// a REVOKE or GRANT with only a warning and changes nothing.
    pub fn changes_database_acl(&self) -> bool {
        matches!(
            self,
            Action::RevokeConnectFromPublic { .. }
                | Action::GrantConnect { .. }
                | Action::RevokeConnect { .. }
                | Action::RevokeGrantOptionOnDatabase { .. }
                | Action::RevokeCreateOnDatabase { .. }
        )
    }

    /// Whether it creates or changes a password (the Secret must be written first).
    pub fn sets_password(&self) -> bool {
        matches!(self, Action::CreateRole { .. } | Action::SetPassword { .. })
    }

    /// The SQL to execute. Passwords become SCRAM verifiers computed here.
    pub fn sql(&self) -> String {
        self.render(true)
    }

    fn render(&self, reveal: bool) -> String {
        let verifier = |p: &Password| {
            if reveal {
                quote_literal(&p.scram_verifier())
            } else {
                "'<redacted>'".to_string()
            }
        };
        use Action::*;
        match self {
            ClaimDatabase {
                database,
                installation,
                claimant,
                service,
                tenant,
            } => format!(
                "INSERT INTO servicedb.databases (database_name, installation_id, resource_kind, resource_namespace, resource_name, service, tenant) \
                 VALUES ({}, {}, {}, {}, {}, {}, {}) ON CONFLICT (database_name) DO NOTHING",
                quote_literal(database.as_str()),
                quote_literal(installation),
                quote_literal(&claimant.kind),
                quote_literal(&claimant.namespace),
                quote_literal(&claimant.name),
                quote_literal(service),
                tenant.as_deref().map_or("NULL".to_string(), quote_literal),
            ),
            RecordInstallation {
                database,
                installation,
            } => format!(
                "UPDATE servicedb.databases SET installation_id = {} WHERE database_name = {} AND installation_id IS NULL",
                quote_literal(installation),
                quote_literal(database.as_str())
            ),
            RecordDatabaseOid { database } => format!(
                "UPDATE servicedb.databases SET database_oid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = {0}) \
                 WHERE database_name = {0}",
                quote_literal(database.as_str())
            ),
            ForgetDatabaseOid { database } => format!(
                "UPDATE servicedb.databases SET database_oid = NULL WHERE database_name = {}",
                quote_literal(database.as_str())
            ),
            ClaimRole {
                role,
                database,
                purpose,
            } => format!(
                "INSERT INTO servicedb.roles (role_name, database_name, purpose) VALUES ({}, {}, {}) \
                 ON CONFLICT (role_name) DO NOTHING",
                quote_literal(role.as_str()),
                quote_literal(database.as_str()),
                quote_literal(purpose)
            ),
            CreateRole {
                role,
                connection_limit,
                password,
            } => format!(
                "CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION INHERIT \
                 CONNECTION LIMIT {connection_limit} PASSWORD {} VALID UNTIL 'infinity'",
                verifier(password)
            ),
            SetLogin { role } => format!("ALTER ROLE {role} LOGIN"),
            SetNoLogin { role } => format!("ALTER ROLE {role} NOLOGIN"),
            SetDefaultRole {
                role,
                database,
                owner,
            } => match owner {
                Some(owner) => format!(
                    "ALTER ROLE {role} IN DATABASE {database} SET role = {}",
                    quote_literal(owner.as_str())
                ),
                None => format!("ALTER ROLE {role} IN DATABASE {database} RESET role"),
            },
            SetConnectionLimit { role, limit } => {
                format!("ALTER ROLE {role} CONNECTION LIMIT {limit}")
            }
            SetPassword { role, password } => {
                // An expired password fails a login like a wrong one: clear the expiry too.
                format!(
                    "ALTER ROLE {role} PASSWORD {} VALID UNTIL 'infinity'",
                    verifier(password)
                )
            }
            RecordFingerprint { role, fingerprint } => format!(
                "UPDATE servicedb.roles SET password_fingerprint = {}, password_changed_at = now() WHERE role_name = {}",
                // A hash of the password is still not for logs.
                if reveal {
                    quote_literal(fingerprint)
                } else {
                    "'<redacted>'".to_string()
                },
                quote_literal(role.as_str())
            ),
            GrantRole { role, member } => match member {
                Some(m) => format!("GRANT {role} TO {m}"),
                None => format!("GRANT {role} TO CURRENT_USER"),
            },
            RevokeRole { role, member } => format!("REVOKE {role} FROM {member}"),
            RevokeGrantOptionOnDatabase { database, role } => format!(
                "REVOKE GRANT OPTION FOR ALL PRIVILEGES ON DATABASE {database} FROM {role} CASCADE"
            ),
            RevokeCreateOnDatabase { database, role } => format!(
                "REVOKE CREATE ON DATABASE {database} FROM {}",
                grantee(role)
            ),
            RevokeOnSchema {
                schema,
                privileges,
                grant_option,
                role,
            } => format!(
                "REVOKE {}{} ON SCHEMA {schema} FROM {} CASCADE",
                option_for(*grant_option),
                privileges.join(", "),
                grantee(role)
            ),
            RevokeOnObjects {
                objects,
                privileges,
                grant_option,
                targets,
                role,
            } => format!(
                "REVOKE {}{} ON {} {} FROM {} CASCADE",
                option_for(*grant_option),
                privileges.join(", "),
                objects.each_keyword(),
                qualified(targets),
                grantee(role)
            ),
            GrantOnRoutines { targets, role } => format!(
                "GRANT EXECUTE ON ROUTINE {} TO {role}",
                targets
                    .iter()
                    .map(|(schema, name, arguments)| format!("{schema}.{name}({arguments})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            GrantOnObjects {
                objects,
                privileges,
                targets,
                role,
            } => format!(
                "GRANT {privileges} ON {} {} TO {role}",
                objects.each_keyword(),
                qualified(targets)
            ),
            CreateDatabase { database, owner } => {
                format!("CREATE DATABASE {database} OWNER {owner}")
            }
            SetDatabaseOwner { database, owner } => {
                format!("ALTER DATABASE {database} OWNER TO {owner}")
            }
            RevokeConnectFromPublic { database } => {
                format!("REVOKE CONNECT, TEMPORARY ON DATABASE {database} FROM PUBLIC")
            }
            GrantConnect { database, role } => {
                format!("GRANT CONNECT, TEMPORARY ON DATABASE {database} TO {role}")
            }
            RevokeConnect { database, role } => {
                format!("REVOKE CONNECT, TEMPORARY ON DATABASE {database} FROM {role}")
            }
            CreateSchema { schema, owner } => {
                format!("CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION {owner}")
            }
            SetSchemaOwner { schema, owner } => format!("ALTER SCHEMA {schema} OWNER TO {owner}"),
            CreateExtension { extension, owner } => {
                // SCHEMA public: sessions pin search_path to pg_catalog first.
                format!(
                    "SET ROLE {owner}; CREATE EXTENSION IF NOT EXISTS {extension} SCHEMA public; RESET ROLE"
                )
            }
            GrantUsageOnSchema { schema, role } => {
                format!("GRANT USAGE ON SCHEMA {schema} TO {role}")
            }
            RevokeHistoryWrites { table, role } => {
                format!(
                    "REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON TABLE public.{table} FROM {role}"
                )
            }
            DefaultPrivileges {
                owner,
                schema,
                objects,
                privileges,
                role,
            } => format!(
                "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {schema} GRANT {privileges} ON {} TO {role}",
                objects.keyword()
            ),
            TerminateSessions { database } => format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = {} AND pid <> pg_backend_pid()",
                quote_literal(database.as_str())
            ),
            DropDatabase { database } => format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"),
            DropOwned { role } => format!("DROP OWNED BY {role}"),
            DropRole { role } => format!("DROP ROLE IF EXISTS {role}"),
            ReleaseDatabase { database } => format!(
                "DELETE FROM servicedb.databases WHERE database_name = {}",
                quote_literal(database.as_str())
            ),
        }
    }
}

fn option_for(grant_option: bool) -> &'static str {
    if grant_option {
        "GRANT OPTION FOR "
    } else {
        ""
    }
}

/// `"s"."a", "s"."b"`.
fn qualified(targets: &[(Ident, Ident)]) -> String {
    targets
        .iter()
        .map(|(schema, name)| format!("{schema}.{name}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A role, or PUBLIC.
fn grantee(role: &Option<Ident>) -> String {
    role.as_ref()
        .map_or_else(|| "PUBLIC".to_string(), ToString::to_string)
}

impl fmt::Display for Action {
    /// The statement as it may be logged, shown in events or compared in tests: passwords
    /// are replaced by `<redacted>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> Ident {
        Ident::new(s).unwrap()
    }

    #[test]
    fn display_never_shows_passwords_but_sql_sets_a_verifier() {
        let a = Action::CreateRole {
            role: id("shop_orders_app"),
            connection_limit: 50,
            password: Password::from_existing("hunter2hunter2"),
        };
        let shown = a.to_string();
        assert!(shown.contains("PASSWORD '<redacted>'"), "{shown}");
        let sql = a.sql();
        assert!(sql.contains("PASSWORD 'SCRAM-SHA-256$4096:"), "{sql}");
        assert!(!sql.contains("hunter2"));
        assert!(!format!("{a:?}").contains("hunter2"));
    }

    #[test]
    fn hostile_names_stay_inside_their_quotes() {
        let a = Action::CreateDatabase {
            database: id("x\"; DROP DATABASE y; --"),
            owner: id("o"),
        };
        assert_eq!(
            a.sql(),
            "CREATE DATABASE \"x\"\"; DROP DATABASE y; --\" OWNER \"o\""
        );
        let c = Action::ReleaseDatabase {
            database: id("a'b"),
        };
        assert!(c.sql().ends_with("= 'a''b'"));
    }
}
