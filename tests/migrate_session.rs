//! Session state a migration changes (search_path, role, session_replication_role, any GUC)
//! never reaches the next migration, in or outside a transaction.

mod migrate_case;
mod support;

use migrate_case::*;
use support::postgres::server;

/// `SET search_path` in V1 must not make V2's table land in the other schema.
#[tokio::test]
async fn search_path_does_not_leak() {
    let case = Case::new("leakpath").await;
    case.write(
        "V1__other.sql",
        "CREATE SCHEMA other;\nSET search_path = other;\nCREATE TABLE in_other (id int);\n",
    )
    .write("V2__t.sql", "CREATE TABLE t (id int);\n")
    // Outside a transaction too.
    .write("V3__again.sql", "SET search_path = other;\nVACUUM;\n")
    .write("V3__again.sql.conf", "executeInTransaction=false\n")
    .write("V4__u.sql", "CREATE TABLE u (id int);\n");
    assert_ok(&case.migrate("apply", &[]));
    let schemas = case
        .client()
        .await
        .query(
            "SELECT relname::text, relnamespace::regnamespace::text FROM pg_class \
             WHERE relname IN ('in_other', 't', 'u') ORDER BY relname",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect::<Vec<_>>();
    assert_eq!(
        schemas,
        [
            ("in_other".into(), "other".into()),
            ("t".into(), "public".into()),
            ("u".into(), "public".into())
        ]
    );
}

/// `SET ROLE` in one migration must not make the next run as that role, and the history row
/// is still written by the connecting user.
#[tokio::test]
async fn role_does_not_leak() {
    let case = Case::new("leakrole").await;
    let role = format!("{}_owner", case.db);
    case.write(
        "V1__role.sql",
        &format!(
            "CREATE ROLE {role};\nGRANT {role} TO CURRENT_USER;\nGRANT CREATE ON SCHEMA public TO {role};\n\
             SET ROLE {role};\nCREATE TABLE owned_by_role (id int);\n"
        ),
    )
    .write("V2__t.sql", "CREATE TABLE t AS SELECT current_user::text AS who;\n")
    .write(
        "V3__role_again.sql",
        &format!("SET ROLE {role};\nCREATE INDEX CONCURRENTLY owned_id ON owned_by_role (id);\n"),
    )
    .write("V3__role_again.sql.conf", "executeInTransaction=false\n")
    .write("V4__u.sql", "CREATE TABLE u AS SELECT current_user::text AS who;\n");
    assert_ok(&case.migrate("apply", &[]));
    let c = case.client().await;
    let who = |table: &'static str| {
        let c = &c;
        async move {
            c.query_one(&format!("SELECT who FROM {table}"), &[])
                .await
                .unwrap()
                .get::<_, String>(0)
        }
    };
    assert_eq!(who("t").await, server().admin_user());
    assert_eq!(who("u").await, server().admin_user());
    let installed_by: Vec<String> = c
        .query(
            "SELECT DISTINCT installed_by FROM flyway_schema_history",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(installed_by, [server().admin_user()]);
    let owner: String = c
        .query_one(
            "SELECT tableowner::text FROM pg_tables WHERE tablename = 'owned_by_role'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(owner, role);
}

/// `session_replication_role = replica` (it disables triggers and foreign keys) and custom
/// settings are back to their defaults for the next migration.
#[tokio::test]
async fn settings_do_not_leak() {
    let case = Case::new("leakguc").await;
    // PostgreSQL 15+ lets a superuser allow a plain role to set it.
    server()
        .superuser_client("postgres")
        .await
        .batch_execute(&format!(
            "GRANT SET ON PARAMETER session_replication_role TO {}",
            server().admin_user()
        ))
        .await
        .unwrap();
    case.write(
        "V1__replica.sql",
        "SET session_replication_role = replica;\nSET myapp.tenant = 'acme';\nSET statement_timeout = '1ms';\n",
    )
    .write(
        "V2__seen.sql",
        "CREATE TABLE seen AS SELECT current_setting('session_replication_role') AS srr, \
         coalesce(current_setting('myapp.tenant', true), '') AS tenant, \
         current_setting('statement_timeout') AS timeout, pg_sleep(0.01)::text AS slept;\n",
    );
    assert_ok(&case.migrate("apply", &[]));
    let row = case
        .client()
        .await
        .query_one("SELECT srr, tenant, timeout FROM seen", &[])
        .await
        .unwrap();
    let got: (String, String, String) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(got, ("origin".into(), "".into(), "0".into()));
}
