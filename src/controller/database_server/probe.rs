//! What the DatabaseServer controller checks on a connected server: the admin's privileges
//! and how many databases servicedb manages there.

use crate::provision::server::Server;

/// The admin's privileges as the server reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Privileges {
    pub create_role: bool,
    pub create_db: bool,
    pub superuser: bool,
}

/// What is missing, as a message a person can act on; None when the admin may provision.
pub fn missing_privileges(user: &str, p: Privileges) -> Option<String> {
    if p.superuser || (p.create_role && p.create_db) {
        return None;
    }
    let missing: Vec<&str> = [(!p.create_role, "CREATEROLE"), (!p.create_db, "CREATEDB")]
        .into_iter()
        .filter_map(|(lacks, name)| lacks.then_some(name))
        .collect();
    Some(format!(
        "role {user} lacks {}; run ALTER ROLE {user} {} as a superuser",
        missing.join(" and "),
        missing.join(" ")
    ))
}

pub struct Probe {
    pub user: String,
    pub privileges: Privileges,
    pub database_count: i32,
}

pub async fn probe(server: &Server) -> Result<Probe, String> {
    let maintenance = server.maintenance().await.map_err(|e| e.to_string())?;
    let row = maintenance
        .query_one(
            "SELECT current_user::text, rolcreaterole, rolcreatedb, rolsuper FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .map_err(|e| format!("reading the admin's privileges: {}", crate::pg::describe_pg(&e)))?;
    let count = crate::controller::provisioning::managed_databases(server).await?;
    Ok(Probe {
        user: row.get(0),
        privileges: Privileges {
            create_role: row.get(1),
            create_db: row.get(2),
            superuser: row.get(3),
        },
        database_count: i32::try_from(count).unwrap_or(i32::MAX),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn createrole_and_createdb_are_enough() {
        let p = |r, d, s| Privileges {
            create_role: r,
            create_db: d,
            superuser: s,
        };
        assert_eq!(missing_privileges("a", p(true, true, false)), None);
        assert_eq!(missing_privileges("a", p(false, false, true)), None);
        assert_eq!(
            missing_privileges("a", p(true, false, false)).unwrap(),
            "role a lacks CREATEDB; run ALTER ROLE a CREATEDB as a superuser"
        );
    }
}
