//! Who may own a database: the claim checks, run before anything is written.

use super::super::desired::DesiredDatabase;
use super::super::observed::ObservedServer;

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

/// Checks the database's claim: absent (and no database of that name), or this resource's,
/// made by this installation, for the database it created.
pub(super) fn check_database_claim(
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
