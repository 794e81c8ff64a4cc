//! Reading the server's catalogs into `observed` data. Read-only. Each side is one statement
//! returning JSON, sent without a separate prepare: a no-change pass over a fleet is mostly
//! these reads, on freshly opened connections.

use std::collections::BTreeMap;

use serde::Deserialize;
use tokio_postgres::Client;
use tokio_postgres::types::{ToSql, Type};

use super::catalog::CatalogError;
use super::desired::{Access, Claimant, DesiredDatabase};
use super::observed::{
    Claim, MissingRoutine, ObservedDatabase, ObservedRole, ObservedServer, RoleClaim,
};

mod privileges;

/// One statement, text parameters, one JSON value back.
async fn json<T: for<'de> Deserialize<'de>>(
    client: &Client,
    sql: &str,
    params: &[(&(dyn ToSql + Sync), Type)],
) -> Result<T, CatalogError> {
    let rows = client.query_typed(sql, params).await?;
    let text: String = rows
        .first()
        .map(|r| r.try_get(0))
        .transpose()?
        .unwrap_or_default();
    serde_json::from_str(&text).map_err(|e| CatalogError::Decode(e.to_string()))
}

// Run on the catalog database: the roles, memberships, role settings and databases are
// shared catalogs, visible from every database, so the claims and the server-wide state are
// one statement (a pass over a fleet is mostly such reads). The roles looked at are the
// desired ones ($1) and any this catalog records for the database ($2) that the spec no
// longer names.
const SERVER_SQL: &str = "\
WITH recorded AS (
  SELECT role_name, database_name, password_fingerprint FROM servicedb.roles
  WHERE role_name = ANY($1) OR database_name = $2
), names AS (
  SELECT unnest($1::text[]) AS name UNION SELECT role_name FROM recorded WHERE database_name = $2
)
SELECT json_build_object(
  'claim', (SELECT json_build_array(resource_kind, resource_namespace, resource_name, service,
              installation_id, database_oid::int8)
            FROM servicedb.databases WHERE database_name = $2),
  'role_claims', (SELECT coalesce(json_agg(json_build_array(role_name, database_name, password_fingerprint)), '[]')
            FROM recorded),
  'roles', (SELECT coalesce(json_agg(json_build_array(r.rolname, r.rolcanlogin, r.rolconnlimit,
              pg_has_role(current_user, r.oid, 'USAGE'),
              ARRAY(SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid
                 AND (m.grantor = (SELECT oid FROM pg_roles WHERE rolname = current_user)
                      OR current_setting('server_version_num')::int < 160000)),
              (SELECT c FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase,
                 unnest(s.setconfig) c WHERE s.setrole = r.oid AND d.datname = $2 AND c LIKE 'role=%' LIMIT 1))), '[]')
            FROM pg_roles r WHERE r.rolname = ANY(ARRAY(SELECT name FROM names)::name[])),
  'database', (SELECT json_build_array(d.oid::int8, pg_get_userbyid(d.datdba),
              d.datacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(d.datacl) a WHERE a.grantee = 0 AND a.privilege_type = 'CONNECT'),
              ARRAY(SELECT DISTINCT r.rolname FROM aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
                    JOIN pg_roles r ON r.oid = a.grantee WHERE a.privilege_type = 'CONNECT' AND a.grantee <> d.datdba),
              ARRAY(SELECT DISTINCT coalesce(r.rolname::text, 'PUBLIC') FROM aclexplode(d.datacl) a
                    LEFT JOIN pg_roles r ON r.oid = a.grantee WHERE a.privilege_type = 'CREATE' AND a.grantee <> d.datdba),
              ARRAY(SELECT DISTINCT r.rolname::text FROM aclexplode(d.datacl) a
                    JOIN pg_roles r ON r.oid = a.grantee WHERE a.is_grantable AND a.grantee <> d.datdba))
            FROM pg_database d WHERE d.datname = $2))::text";

/// name, can login, connection limit, admin may use it, member of, `role=` setting here.
type RoleRow = (String, bool, i32, bool, Vec<String>, Option<String>);

/// oid, owner, PUBLIC may connect, CONNECT grantees, CREATE grantees, grant option holders.
type DatabaseRow = (u32, String, bool, Vec<String>, Vec<String>, Vec<String>);

/// kind, namespace, name, service, installation, database oid.
type ClaimRow = (String, String, String, String, Option<String>, Option<u32>);

#[derive(Deserialize)]
struct ServerJson {
    claim: Option<ClaimRow>,
    role_claims: Vec<(String, String, Option<String>)>,
    roles: Vec<RoleRow>,
    database: Option<DatabaseRow>,
}

/// Claims, roles and the database in one statement on a session of the catalog database
/// (inside a claiming transaction, that transaction's).
pub async fn observe_server(
    catalog_client: &Client,
    desired: &DesiredDatabase,
) -> Result<ObservedServer, CatalogError> {
    let desired_names: Vec<&str> = desired.roles().map(|r| r.name.as_str()).collect();
    let db = desired.database.as_str();
    let params: [(&(dyn ToSql + Sync), Type); 2] =
        [(&desired_names, Type::TEXT_ARRAY), (&db, Type::TEXT)];
    let server: ServerJson = json(catalog_client, SERVER_SQL, &params).await?;
    let mut observed = ObservedServer {
        claim: server.claim.map(
            |(kind, namespace, name, service, installation, oid)| Claim {
                claimant: Claimant {
                    kind,
                    namespace,
                    name,
                },
                service,
                installation,
                oid,
            },
        ),
        role_claims: server
            .role_claims
            .into_iter()
            .map(|(role, database, fingerprint)| {
                (
                    role,
                    RoleClaim {
                        database,
                        fingerprint,
                    },
                )
            })
            .collect(),
        ..Default::default()
    };
    for (name, can_login, connection_limit, admin_is_member, member_of, setting) in server.roles {
        observed.roles.insert(
            name,
            ObservedRole {
                can_login,
                connection_limit,
                admin_is_member,
                member_of: member_of.into_iter().collect(),
                default_role: setting.and_then(|s| s.strip_prefix("role=").map(str::to_string)),
            },
        );
    }
    if let Some((oid, owner, public_connect, grantees, creators, granters)) = server.database {
        observed.database_creators = creators.into_iter().collect();
        observed.database_grant_options = granters.into_iter().collect();
        observed.database_exists = true;
        observed.database_oid = Some(oid);
        observed.database_owner = Some(owner);
        observed.public_connect = public_connect;
        observed.connect_grantees = grantees.into_iter().collect();
    }
    Ok(observed)
}

// Each schema and object comes back with its ACL exploded; what grantees have, lack and hold
// beyond the spec is judged from those entries in `privileges`. The query stays small: a
// session on a database is always fresh (catalog caches cold), and parsing and planning are
// most of what it costs. `ours`: the admin ($6) can act for the owner, so it can grant and
// revoke there; objects of anyone else are never granted on. Effective privileges (through
// PUBLIC and memberships) are asked of the server: routines and history tables.
const DATABASE_SQL: &str = "\
WITH schemas AS (
  SELECT n.oid, n.nspname::text AS name, pg_get_userbyid(n.nspowner)::text AS owner, n.nspowner AS owner_oid,
    n.nspacl AS acl, pg_has_role($6, n.nspowner, 'USAGE') AS ours FROM pg_namespace n
  WHERE n.nspname = ANY($2) OR n.nspowner = (SELECT oid FROM pg_roles WHERE rolname = $1)
), grantees AS (
  SELECT r.oid, r.rolname::text AS role, false AS write FROM pg_roles r WHERE r.rolname = ANY($3)
  UNION ALL SELECT r.oid, r.rolname::text, true FROM pg_roles r WHERE r.rolname = ANY($4)
), objects AS (
  SELECT c.oid, s.name AS schema, c.relname::text AS name, CASE WHEN c.relkind = 'S' THEN 'S' ELSE 'r' END AS kind,
    c.relacl AS acl, pg_get_userbyid(c.relowner)::text AS owner, pg_has_role($6, c.relowner, 'USAGE') AS ours,
    s.name = 'public' AND c.relname = ANY($5) AND c.relkind = 'r' AS history
  FROM schemas s JOIN pg_class c ON c.relnamespace = s.oid WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
), routines AS MATERIALIZED (
  -- Materialized so that the ownership check runs on the schemas' routines only, not on
  -- every routine of the catalog.
  SELECT p.oid, s.name AS schema, p.proname::text AS name, p.proowner FROM schemas s JOIN pg_proc p ON p.pronamespace = s.oid
)
SELECT json_build_object(
  'schemas', (SELECT coalesce(json_agg(json_build_array(name, owner, owner_oid::int8, ours,
      (SELECT coalesce(json_agg(json_build_array(a.grantee::int8, a.privilege_type, a.is_grantable)), '[]')
       FROM aclexplode(acl) a))), '[]') FROM schemas),
  'grantees', (SELECT coalesce(json_agg(json_build_array(oid::int8, role, write)), '[]') FROM grantees),
  'objects', (SELECT coalesce(json_agg(json_build_array(schema, name, kind, owner, ours, history,
      (SELECT coalesce(json_agg(json_build_array(a.grantee::int8, a.privilege_type, a.is_grantable)), '[]')
       FROM aclexplode(acl) a))), '[]') FROM objects),
  'extensions', (SELECT coalesce(json_agg(extname), '[]') FROM pg_extension),
  'routines_missing', (SELECT coalesce(json_agg(json_build_array(g.role, r.schema, r.name,
      pg_get_function_identity_arguments(r.oid))), '[]')
    FROM grantees g CROSS JOIN routines r
    WHERE g.write AND pg_has_role($6, r.proowner, 'USAGE') AND NOT has_function_privilege(g.oid, r.oid, 'EXECUTE')),
  'history_writers', (SELECT coalesce(json_agg(json_build_array(g.role, o.name)), '[]')
    FROM grantees g CROSS JOIN objects o WHERE o.history
      AND (has_table_privilege(g.oid, o.oid, 'INSERT') OR has_table_privilege(g.oid, o.oid, 'UPDATE')
        OR has_table_privilege(g.oid, o.oid, 'DELETE') OR has_table_privilege(g.oid, o.oid, 'TRUNCATE'))),
  'defaults', (SELECT coalesce(json_agg(json_build_array(n.nspname, d.defaclobjtype::text, a.privilege_type,
      coalesce(r.rolname::text, 'PUBLIC'))), '[]')
    FROM pg_default_acl d JOIN pg_namespace n ON n.oid = d.defaclnamespace
    CROSS JOIN LATERAL aclexplode(d.defaclacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee
    WHERE d.defaclrole = (SELECT oid FROM pg_roles WHERE rolname = $1)))::text";

#[derive(Deserialize)]
struct DatabaseJson {
    schemas: Vec<privileges::Schema>,
    grantees: Vec<privileges::Grantee>,
    objects: Vec<privileges::Object>,
    extensions: Vec<String>,
    routines_missing: Vec<(String, String, String, String)>,
    defaults: Vec<(String, String, String, String)>,
    history_writers: Vec<(String, String)>,
}

fn code(s: &str) -> char {
    s.chars().next().unwrap_or(' ')
}

/// Schemas, extensions, privileges and default privileges, connected to the database itself.
/// `admin` is the admin role's name: what it can act for decides what may be granted on.
pub async fn observe_database(
    db: &Client,
    desired: &DesiredDatabase,
    admin: &str,
) -> Result<ObservedDatabase, CatalogError> {
    let owner = desired.owner.name.as_str();
    let mut wanted: Vec<&str> = desired.schemas.iter().map(|s| s.as_str()).collect();
    wanted.push("public");
    let by_access = |access: Access| -> Vec<&str> {
        desired
            .grantees()
            .filter(|r| r.purpose.access() == access)
            .map(|r| r.name.as_str())
            .collect()
    };
    let (readers, writers) = (by_access(Access::Read), by_access(Access::Write));
    let found: DatabaseJson = json(
        db,
        DATABASE_SQL,
        &[
            (&owner, Type::TEXT),
            (&wanted, Type::TEXT_ARRAY),
            (&readers, Type::TEXT_ARRAY),
            (&writers, Type::TEXT_ARRAY),
            (&super::HISTORY_TABLES.as_slice(), Type::TEXT_ARRAY),
            (&admin, Type::TEXT),
        ],
    )
    .await?;
    let history_tables = found
        .objects
        .iter()
        .filter(|o| o.5)
        .map(|o| o.1.clone())
        .collect();
    Ok(ObservedDatabase {
        history_tables,
        grants: privileges::schema_grants(&found.grantees, &found.schemas),
        missing: privileges::missing(&found.grantees, &found.objects),
        excess: privileges::excess(&found.grantees, &found.schemas, &found.objects),
        schemas: found
            .schemas
            .into_iter()
            .map(|s| (s.0, s.1))
            .collect::<BTreeMap<_, _>>(),
        extensions: found.extensions.into_iter().collect(),
        routines_missing: found
            .routines_missing
            .into_iter()
            .map(|(role, schema, name, arguments)| MissingRoutine {
                role,
                schema,
                name,
                arguments,
            })
            .collect(),
        default_privileges: found
            .defaults
            .into_iter()
            .map(|(schema, objtype, privilege, grantee)| {
                (schema, code(&objtype), privilege, grantee)
            })
            .collect(),
        history_writers: found.history_writers.into_iter().collect(),
    })
}
