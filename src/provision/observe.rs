//! Reading the server's catalogs into `observed` data. Read-only.

use std::collections::BTreeSet;

use tokio_postgres::Client;

use super::catalog::{self, CatalogError};
use super::desired::{Access, DesiredDatabase};
use super::observed::{ObservedDatabase, ObservedRole, ObservedServer, SchemaGrants};

/// Roles and the database, from the maintenance database; claims from the catalog.
pub async fn observe_server(
    maintenance: &Client,
    catalog_client: &Client,
    desired: &DesiredDatabase,
) -> Result<ObservedServer, CatalogError> {
    let names: Vec<&str> = desired.roles().map(|r| r.name.as_str()).collect();
    let db = desired.database.as_str();
    let roles = maintenance
        .query(
            "SELECT r.rolname::text, r.rolcanlogin, r.rolconnlimit, pg_has_role(current_user, r.oid, 'MEMBER'), \
             ARRAY(SELECT g.rolname::text FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid) \
             FROM pg_roles r WHERE r.rolname = ANY($1)",
            &[&names],
        )
        .await?;
    let database = maintenance
        .query_opt(
            "SELECT pg_get_userbyid(d.datdba)::text, \
             d.datacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(d.datacl) a WHERE a.grantee = 0 AND a.privilege_type = 'CONNECT'), \
             ARRAY(SELECT DISTINCT r.rolname::text FROM aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a \
                   JOIN pg_roles r ON r.oid = a.grantee WHERE a.privilege_type = 'CONNECT' AND a.grantee <> d.datdba) \
             FROM pg_database d WHERE d.datname = $1",
            &[&db],
        )
        .await?;
    let mut observed = ObservedServer {
        claim: catalog::claim_of(catalog_client, db).await?,
        role_claims: catalog::role_claims(catalog_client, &names).await?,
        ..Default::default()
    };
    for r in roles {
        let member_of: Vec<String> = r.get(4);
        observed.roles.insert(
            r.get(0),
            ObservedRole {
                can_login: r.get(1),
                connection_limit: r.get(2),
                admin_is_member: r.get(3),
                member_of: member_of.into_iter().collect(),
            },
        );
    }
    if let Some(d) = database {
        observed.database_exists = true;
        observed.database_owner = Some(d.get(0));
        observed.public_connect = d.get(1);
        let grantees: Vec<String> = d.get(2);
        observed.connect_grantees = grantees.into_iter().collect();
    }
    Ok(observed)
}

/// Schemas, extensions, privileges and default privileges, connected to the database itself.
pub async fn observe_database(
    db: &Client,
    desired: &DesiredDatabase,
) -> Result<ObservedDatabase, CatalogError> {
    let owner = desired.owner.name.as_str();
    let mut wanted: Vec<&str> = desired.schemas.iter().map(|s| s.as_str()).collect();
    wanted.push("public");
    let mut observed = ObservedDatabase::default();
    for r in db
        .query(
            "SELECT n.nspname::text, pg_get_userbyid(n.nspowner)::text FROM pg_namespace n \
             WHERE n.nspname = ANY($1) OR n.nspowner = (SELECT oid FROM pg_roles WHERE rolname = $2)",
            &[&wanted, &owner],
        )
        .await?
    {
        observed.schemas.insert(r.get(0), r.get(1));
    }
    for r in db
        .query("SELECT extname::text FROM pg_extension", &[])
        .await?
    {
        observed.extensions.insert(r.get(0));
    }
    let schemas: Vec<&str> = observed.schemas.keys().map(String::as_str).collect();
    // CASE keeps has_sequence_privilege away from rows that are not sequences: PostgreSQL may
    // evaluate the conditions of a WHERE in any order.
    for role in desired.grantees() {
        let write = role.purpose.access() == Access::Write;
        let rows = db
            .query(
                "SELECT n.nspname::text, has_schema_privilege($1, n.oid, 'USAGE'), \
                 EXISTS (SELECT 1 FROM pg_class c WHERE c.relnamespace = n.oid AND c.relkind IN ('r', 'p', 'v', 'm', 'f') \
                   AND NOT (has_table_privilege($1, c.oid, 'SELECT') AND (NOT $3 OR (has_table_privilege($1, c.oid, 'INSERT') \
                   AND has_table_privilege($1, c.oid, 'UPDATE') AND has_table_privilege($1, c.oid, 'DELETE'))))), \
                 EXISTS (SELECT 1 FROM pg_class c WHERE c.relnamespace = n.oid AND c.relkind = 'S' \
                   AND NOT CASE WHEN c.relkind = 'S' THEN has_sequence_privilege($1, c.oid, 'SELECT') \
                     AND (NOT $3 OR has_sequence_privilege($1, c.oid, 'USAGE')) END), \
                 $3 AND EXISTS (SELECT 1 FROM pg_proc p WHERE p.pronamespace = n.oid AND NOT has_function_privilege($1, p.oid, 'EXECUTE')) \
                 FROM pg_namespace n WHERE n.nspname = ANY($2)",
                &[&role.name.as_str(), &schemas, &write],
            )
            .await?;
        for r in rows {
            observed.grants.insert(
                (role.name.as_str().to_string(), r.get(0)),
                SchemaGrants {
                    usage: r.get(1),
                    tables_missing: r.get(2),
                    sequences_missing: r.get(3),
                    functions_missing: r.get(4),
                },
            );
        }
    }
    let rows = db
        .query(
            "SELECT n.nspname::text, d.defaclobjtype::text, a.privilege_type::text, coalesce(r.rolname::text, 'PUBLIC') \
             FROM pg_default_acl d JOIN pg_namespace n ON n.oid = d.defaclnamespace \
             CROSS JOIN LATERAL aclexplode(d.defaclacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee \
             WHERE d.defaclrole = (SELECT oid FROM pg_roles WHERE rolname = $1)",
            &[&owner],
        )
        .await?;
    observed.default_privileges = rows
        .iter()
        .map(|r| {
            let objtype: String = r.get(1);
            (
                r.get(0),
                objtype.chars().next().unwrap_or(' '),
                r.get(2),
                r.get(3),
            )
        })
        .collect::<BTreeSet<_>>();
    Ok(observed)
}
