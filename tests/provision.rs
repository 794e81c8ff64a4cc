//! The provisioning core against a real PostgreSQL with a non-superuser admin (CREATEROLE,
//! CREATEDB), as on managed clouds.

mod support;

use servicedb::password::Password;
use servicedb::pg::{Ident, describe_pg};
use servicedb::provision::execute::{
    HistoryWanted, ProvisionError, delete, reconcile, reconcile_inside,
};
use servicedb::provision::{Access, RolePurpose};
use support::postgres::server as pg;
use support::provision::{
    assert_converged, connect_server, database_exists, desired, login, role, unique,
};

/// Provisioning creates everything, with a non-superuser admin, and planning again finds
/// nothing to do; a second reconcile executes nothing.
#[tokio::test]
async fn provisions_and_converges() {
    let server = connect_server().await;
    let d = desired("shop", &unique("conv"));
    let first = reconcile(&server, &d).await.unwrap();
    assert!(
        first
            .executed()
            .iter()
            .any(|s| s.starts_with("CREATE DATABASE"))
    );
    assert_converged(&server, &d).await;
    let log_start = pg().log_len();
    let second = reconcile(&server, &d).await.unwrap();
    assert!(
        !second.changed(),
        "second pass executed {:?}",
        second.executed()
    );
    // The log is shared with concurrent tests: look at lines naming this test's objects.
    let name = d.database.as_str();
    let log = pg().log_since(log_start);
    for line in log.lines().filter(|l| l.contains(name)) {
        for ddl in ["CREATE", "ALTER", "GRANT", "REVOKE", "DROP"] {
            assert!(
                !line.contains(&format!("statement: {ddl}")),
                "second pass sent {ddl}: {line}"
            );
        }
    }
    // pgcrypto was created by the owner, as a non-superuser may.
    let app = login(d.database.as_str(), d.app.as_ref().unwrap())
        .await
        .unwrap();
    let row = app
        .query_one("SELECT length(gen_random_uuid()::text)", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 36);
}

/// The app role reads and writes tables the owner (the migrations) created, before or after
/// provisioning, and can create, drop or alter nothing; a read role only reads.
#[tokio::test]
async fn app_writes_data_but_no_ddl_and_read_role_only_reads() {
    let server = connect_server().await;
    let d = desired("shop", &unique("priv"));
    reconcile(&server, &d).await.unwrap();
    let db = d.database.as_str();
    let owner = login(db, &d.owner).await.unwrap();
    owner
        .batch_execute("CREATE TABLE orders.orders (id BIGSERIAL PRIMARY KEY, item text); CREATE TABLE public.notes (n text);")
        .await
        .unwrap();
    let app = login(db, d.app.as_ref().unwrap()).await.unwrap();
    app.batch_execute("INSERT INTO orders.orders (item) VALUES ('book'); UPDATE orders.orders SET item = 'pen'; INSERT INTO notes VALUES ('x'); DELETE FROM notes;")
        .await
        .unwrap();
    let n: i64 = app
        .query_one("SELECT count(*) FROM orders.orders", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    for ddl in [
        "CREATE TABLE orders.evil (id int)",
        "CREATE TABLE public.evil (id int)",
        "DROP TABLE orders.orders",
        "ALTER TABLE orders.orders ADD COLUMN x int",
        "TRUNCATE orders.orders",
        "CREATE SCHEMA evil",
    ] {
        let err = describe_pg(&app.batch_execute(ddl).await.expect_err(ddl));
        assert!(
            err.contains("permission denied") || err.contains("must be owner"),
            "{ddl}: {err}"
        );
    }
    let reader = login(db, &d.extra[0]).await.unwrap();
    let n: i64 = reader
        .query_one("SELECT count(*) FROM orders.orders", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    for write in [
        "INSERT INTO orders.orders (item) VALUES ('x')",
        "DELETE FROM orders.orders",
        "SELECT nextval('orders.orders_id_seq')",
    ] {
        let err = describe_pg(&reader.batch_execute(write).await.expect_err(write));
        assert!(err.contains("permission denied"), "{write}: {err}");
    }
    // A schema a migration creates later gets its grants on the next pass.
    owner
        .batch_execute("CREATE SCHEMA billing; CREATE TABLE billing.invoices (id int);")
        .await
        .unwrap();
    let mut outcome = Default::default();
    reconcile_inside(&server, &d, &mut outcome).await.unwrap();
    app.batch_execute("INSERT INTO billing.invoices VALUES (1)")
        .await
        .unwrap();
    assert_converged(&server, &d).await;
}

/// Service A's credentials cannot connect to service B's database, nor can any other role.
#[tokio::test]
async fn databases_are_isolated() {
    let server = connect_server().await;
    let a = desired("shop", &unique("isoa"));
    let b = desired("shop2", &unique("isob"));
    reconcile(&server, &a).await.unwrap();
    reconcile(&server, &b).await.unwrap();
    for role in [a.app.as_ref().unwrap(), &a.owner, &a.extra[0]] {
        let err = login(b.database.as_str(), role)
            .await
            .expect_err("cross-database login");
        assert!(err.contains("permission denied for database"), "{err}");
    }
    assert!(
        login(a.database.as_str(), a.app.as_ref().unwrap())
            .await
            .is_ok()
    );
}

/// With log_statement=all, no plaintext password reaches the server log.
#[tokio::test]
async fn no_plaintext_password_in_the_server_log() {
    let server = connect_server().await;
    let mut d = desired("shop", &unique("log"));
    let start = pg().log_len();
    reconcile(&server, &d).await.unwrap();
    d.app.as_mut().unwrap().password = Password::generate();
    reconcile(&server, &d).await.unwrap();
    let log = pg().log_since(start);
    assert!(
        log.contains("SCRAM-SHA-256$4096:"),
        "verifiers were sent:\n{log}"
    );
    for r in d.roles() {
        assert!(
            !log.contains(r.password.expose()),
            "{} password in the log",
            r.name.as_str()
        );
    }
    assert!(
        login(d.database.as_str(), d.app.as_ref().unwrap())
            .await
            .is_ok(),
        "the new password works"
    );
}

/// A role dropped by hand and a revoked grant come back on the next pass.
#[tokio::test]
async fn drift_is_repaired() {
    let server = connect_server().await;
    let d = desired("shop", &unique("drift"));
    reconcile(&server, &d).await.unwrap();
    let db = d.database.as_str();
    login(db, &d.owner)
        .await
        .unwrap()
        .batch_execute("CREATE TABLE t (id int)")
        .await
        .unwrap();
    let su = pg().superuser_client(db).await;
    su.batch_execute(&format!(
        "REVOKE INSERT ON t FROM {app}; DROP OWNED BY {r}; DROP ROLE {r}; GRANT CONNECT ON DATABASE {db} TO PUBLIC",
        app = d.app.as_ref().unwrap().name,
        r = d.extra[0].name,
        db = d.database
    ))
    .await
    .unwrap();
    assert!(login(db, &d.extra[0]).await.is_err());
    let outcome = reconcile(&server, &d).await.unwrap();
    assert!(outcome.changed());
    login(db, d.app.as_ref().unwrap())
        .await
        .unwrap()
        .batch_execute("INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    let reader = login(db, &d.extra[0]).await.unwrap();
    reader
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap();
    assert_converged(&server, &d).await;
}

/// Two resources in different namespaces naming one database: the second gets a Conflict
/// and nothing of the first changes.
#[tokio::test]
async fn second_claimant_gets_conflict_and_changes_nothing() {
    let server = connect_server().await;
    let name = unique("conflict");
    let first = desired("team-a", &name);
    reconcile(&server, &first).await.unwrap();
    let mut second = desired("team-b", &name);
    second.owner.name = Ident::new(format!("{name}_b_owner")).unwrap();
    second.app.as_mut().unwrap().name = Ident::new(format!("{name}_b_app")).unwrap();
    second.extra.clear();
    let start = pg().log_len();
    let err = reconcile(&server, &second).await.unwrap_err();
    assert!(matches!(err, ProvisionError::Conflict(_)), "{err}");
    assert!(
        err.to_string()
            .contains("belongs to ServiceDatabase team-a/orders"),
        "{err}"
    );
    let log = pg().log_since(start);
    for line in log.lines().filter(|l| l.contains(&name)) {
        assert!(
            !line.contains("CREATE ROLE") && !line.contains("statement: ALTER"),
            "{line}"
        );
    }
    assert!(
        login(name.as_str(), first.app.as_ref().unwrap())
            .await
            .is_ok()
    );
    assert_converged(&server, &first).await;
    // A database servicedb did not create is never taken over either.
    let foreign = unique("foreign");
    pg().admin_client("postgres")
        .await
        .batch_execute(&format!("CREATE DATABASE {foreign}"))
        .await
        .unwrap();
    let err = reconcile(&server, &desired("shop", &foreign))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("was not created by servicedb"),
        "{err}"
    );
}

/// Delete drops the database even with a live connection, then its roles; an unrelated
/// database is untouched.
#[tokio::test]
async fn delete_drops_despite_live_connections() {
    let server = connect_server().await;
    let d = desired("shop", &unique("del"));
    reconcile(&server, &d).await.unwrap();
    let live = login(d.database.as_str(), d.app.as_ref().unwrap())
        .await
        .unwrap();
    live.query_one("SELECT 1", &[]).await.unwrap();
    delete(&server, &d).await.unwrap();
    let admin = pg().admin_client("postgres").await;
    let dbs: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname = $1",
            &[&d.database.as_str()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(dbs, 0);
    let names: Vec<&str> = d.roles().map(|r| r.name.as_str()).collect();
    let roles: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_roles WHERE rolname = ANY($1)",
            &[&names],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(roles, 0);
    assert!(
        live.query_one("SELECT 1", &[]).await.is_err(),
        "the live session was ended"
    );
    // Deleting again is a no-op, and the name can be provisioned anew.
    assert!(!delete(&server, &d).await.unwrap().changed());
    reconcile(&server, &d).await.unwrap();
}

mod reclaim {
    use super::*;
    use servicedb::api::ReclaimPolicy;
    use servicedb::service::reconcile::{Cleanup, cleanup_unit, reconcile_unit};
    use support::provision::{Memory, sdb};

    /// Retain (the default) keeps the database, its roles and working credentials when the
    /// resource goes; the resource applied again gets the same database back.
    #[tokio::test]
    async fn retain_keeps_everything_and_the_same_resource_adopts_it_again() {
        let server = connect_server().await;
        let store = Memory::default();
        let resource = sdb(
            "reclaim",
            &unique("keep").replace('_', "-"),
            ReclaimPolicy::Retain,
        );
        let first = reconcile_unit(&server, &store, &resource, None, &[], HistoryWanted::No)
            .await
            .unwrap();
        let db = first.layout.database.clone();
        assert!(matches!(
            cleanup_unit(&server, &resource, None, ReclaimPolicy::Retain)
                .await
                .unwrap(),
            Cleanup::Retained
        ));
        assert!(database_exists(&db).await);
        assert!(
            login(&db, first.desired.app.as_ref().unwrap())
                .await
                .is_ok()
        );
        let again = reconcile_unit(&server, &store, &resource, None, &[], HistoryWanted::No)
            .await
            .unwrap();
        assert!(
            !again.done.outcome.changed(),
            "{:?}",
            again.done.outcome.executed()
        );
    }

    /// Delete drops the database and roles when the resource goes, and works even when
    /// provisioning never ran.
    #[tokio::test]
    async fn delete_drops_and_is_safe_when_nothing_was_made() {
        let server = connect_server().await;
        let store = Memory::default();
        let resource = sdb(
            "reclaim",
            &unique("drop").replace('_', "-"),
            ReclaimPolicy::Delete,
        );
        let first = reconcile_unit(&server, &store, &resource, None, &[], HistoryWanted::No)
            .await
            .unwrap();
        let db = first.layout.database.clone();
        assert!(
            matches!(cleanup_unit(&server, &resource, None, ReclaimPolicy::Delete).await.unwrap(), Cleanup::Dropped(o) if o.changed())
        );
        assert!(!database_exists(&db).await);
        let never = sdb(
            "reclaim",
            &unique("never").replace('_', "-"),
            ReclaimPolicy::Delete,
        );
        assert!(
            matches!(cleanup_unit(&server, &never, None, ReclaimPolicy::Delete).await.unwrap(), Cleanup::Dropped(o) if !o.changed())
        );
    }
}

mod review_fixes {
    use super::*;

    /// Two resources claiming one database at the same time on one shared Server: exactly
    /// one wins, the loser leaves no trace, and the winner stays whole on later passes.
    #[tokio::test]
    async fn concurrent_claims_have_one_winner_and_no_damage() {
        let server = connect_server().await;
        for _ in 0..5 {
            let name = unique("race");
            let a = desired("team-a", &name);
            let mut b = desired("team-b", &name);
            b.owner.name = Ident::new(format!("{name}_b_owner")).unwrap();
            b.app.as_mut().unwrap().name = Ident::new(format!("{name}_b_app")).unwrap();
            b.extra.clear();
            let (ra, rb) = futures::join!(reconcile(&server, &a), reconcile(&server, &b));
            assert!(
                ra.is_ok() != rb.is_ok(),
                "exactly one wins: {ra:?} / {rb:?}"
            );
            let winner = if ra.is_ok() { &a } else { &b };
            assert!(!reconcile(&server, winner).await.unwrap().changed());
            assert_converged(&server, winner).await;
        }
    }

    /// A role removed from the spec can no longer log in; named again, it works again.
    #[tokio::test]
    async fn removed_role_is_disabled_and_can_come_back() {
        let server = connect_server().await;
        let mut d = desired("shop", &unique("retire"));
        reconcile(&server, &d).await.unwrap();
        let reporting = d.extra.pop().unwrap();
        assert!(login(d.database.as_str(), &reporting).await.is_ok());
        reconcile(&server, &d).await.unwrap();
        assert!(login(d.database.as_str(), &reporting).await.is_err());
        assert_converged(&server, &d).await;
        d.extra.push(reporting);
        reconcile(&server, &d).await.unwrap();
        assert!(login(d.database.as_str(), &d.extra[0]).await.is_ok());
        assert_converged(&server, &d).await;
        delete(&server, &d).await.unwrap();
    }

    /// The app reads the migration history (for `servicedb wait`) but cannot change it;
    /// procedures the migrations create are callable by the app; an owner-access role's
    /// tables belong to the owner.
    #[tokio::test]
    async fn history_is_read_only_procedures_callable_owner_role_creates_as_owner() {
        let server = connect_server().await;
        let mut d = desired("shop", &unique("hist"));
        d.extra.push(role(
            &format!("{}_dba", d.database.as_str()),
            RolePurpose::Extra {
                name: "dba".into(),
                access: Access::Owner,
            },
        ));
        reconcile(&server, &d).await.unwrap();
        let db = d.database.as_str();
        let owner = login(db, &d.owner).await.unwrap();
        owner
            .batch_execute(
                "CREATE TABLE flyway_schema_history (installed_rank int primary key, success bool); \
                 INSERT INTO flyway_schema_history VALUES (1, true); \
                 CREATE SCHEMA billing; \
                 CREATE PROCEDURE billing.touch() LANGUAGE sql AS 'SELECT 1'; \
                 REVOKE EXECUTE ON ALL ROUTINES IN SCHEMA billing FROM PUBLIC;",
            )
            .await
            .unwrap();
        let mut outcome = Default::default();
        reconcile_inside(&server, &d, &mut outcome).await.unwrap();
        assert_converged(&server, &d).await;
        let app = login(db, d.app.as_ref().unwrap()).await.unwrap();
        let n: i64 = app
            .query_one("SELECT count(*) FROM flyway_schema_history", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 1);
        let err = describe_pg(
            &app.batch_execute("DELETE FROM flyway_schema_history")
                .await
                .unwrap_err(),
        );
        assert!(err.contains("permission denied"), "{err}");
        app.batch_execute("CALL billing.touch()").await.unwrap();

        let dba = login(db, &d.extra[1]).await.unwrap();
        dba.batch_execute("CREATE TABLE by_dba (id int)")
            .await
            .unwrap();
        let table_owner: String = owner
            .query_one(
                "SELECT tableowner::text FROM pg_tables WHERE tablename = 'by_dba'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(table_owner, d.owner.name.as_str());
        owner
            .batch_execute("ALTER TABLE by_dba ADD COLUMN x int")
            .await
            .unwrap();
    }
}

/// What the docs promise about the app role outside its tables: temporary tables yes (on
/// purpose), nothing in `public`; PostgreSQL's own `postgres` database is reachable (servicedb's
/// admin cannot close it) but holds nothing it may change; the ownership catalog is closed.
#[tokio::test]
async fn app_role_scratch_space_and_the_databases_it_can_reach() {
    let server = connect_server().await;
    let d = desired("shop", &unique("temp"));
    reconcile(&server, &d).await.unwrap();
    let app = d.app.as_ref().unwrap();
    let own = login(d.database.as_str(), app).await.unwrap();
    own.batch_execute("CREATE TEMP TABLE scratch (id int); INSERT INTO scratch VALUES (1)")
        .await
        .expect("temporary tables are allowed");
    let maintenance = login("postgres", app).await.expect("PostgreSQL's default");
    let err = describe_pg(
        &maintenance
            .batch_execute("CREATE TABLE public.t (id int)")
            .await
            .unwrap_err(),
    );
    assert!(err.contains("permission denied"), "{err}");
    let err = login("servicedb", app).await.unwrap_err();
    assert!(err.contains("permission denied"), "{err}");
}
