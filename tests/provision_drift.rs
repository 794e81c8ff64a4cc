//! Drift judged from the server itself, and connections: a password changed by hand, grants
//! and memberships nobody asked for, a bounded number of connections, dropped sessions.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use servicedb::pg::{ErrorClass, describe_pg};
use servicedb::provision::execute::{ProvisionError, reconcile, reconcile_inside};
use servicedb::provision::server::DEFAULT_DATABASE_CONNECTIONS;
use support::postgres::server as pg;
use support::provision::{assert_converged, connect_server, desired, login, unique};

/// A password changed by hand with ALTER ROLE stops the Secret from logging in; the next
/// pass notices by logging in (SCRAM) and sets the Secret's password again.
#[tokio::test]
async fn a_password_changed_by_hand_is_set_back() {
    let server = connect_server().await;
    let d = desired("shop", &unique("pw"));
    reconcile(&server, &d).await.unwrap();
    let app = d.app.as_ref().unwrap();
    pg().superuser_client("postgres")
        .await
        .batch_execute(&format!(
            "ALTER ROLE {} PASSWORD 'changed-by-hand'; ALTER ROLE {} PASSWORD 'also-changed'",
            app.name, d.owner.name
        ))
        .await
        .unwrap();
    assert!(login(d.database.as_str(), app).await.is_err());
    let outcome = reconcile(&server, &d).await.unwrap();
    let shown = outcome.executed();
    for role in [&app.name, &d.owner.name] {
        assert!(
            shown.contains(&format!(
                "ALTER ROLE {role} PASSWORD '<redacted>' VALID UNTIL 'infinity'"
            )),
            "{shown:?}"
        );
    }
    assert!(login(d.database.as_str(), app).await.is_ok());
    assert!(login(d.database.as_str(), &d.owner).await.is_ok());
    assert!(!reconcile(&server, &d).await.unwrap().changed());
}

/// Grants and memberships the spec does not give, made by hand, are revoked: the app gets
/// back to data only (no DDL through the owner role, no CREATE anywhere, no TRUNCATE), and
/// the read role to reading.
#[tokio::test]
async fn grants_nobody_asked_for_are_revoked() {
    let server = connect_server().await;
    let d = desired("shop", &unique("extra"));
    reconcile(&server, &d).await.unwrap();
    let db = d.database.as_str();
    let (app, reader) = (d.app.as_ref().unwrap(), &d.extra[0]);
    login(db, &d.owner)
        .await
        .unwrap()
        .batch_execute("CREATE TABLE orders.items (id int); CREATE SEQUENCE orders.s;")
        .await
        .unwrap();
    reconcile(&server, &d).await.unwrap();
    // As someone holding the admin credentials might do by hand.
    let admin = pg().admin_client(db).await;
    admin
        .batch_execute(&format!(
            "GRANT {owner} TO {app}; \
             GRANT CREATE ON DATABASE {db} TO {app}; \
             GRANT CREATE ON SCHEMA public TO PUBLIC; \
             GRANT CREATE ON SCHEMA orders TO {app}; \
             GRANT TRUNCATE, TRIGGER ON orders.items TO {app}; \
             GRANT INSERT, DELETE ON orders.items TO {reader}; \
             GRANT UPDATE ON SEQUENCE orders.s TO {reader};",
            owner = d.owner.name,
            app = app.name,
            reader = reader.name,
            db = d.database,
        ))
        .await
        .unwrap();
    let app_session = login(db, app).await.unwrap();
    app_session
        .batch_execute("CREATE TABLE public.sneaky (id int); DROP TABLE public.sneaky;")
        .await
        .expect("the hand-made grants give the app DDL before the repair");
    drop(app_session);

    let outcome = reconcile(&server, &d).await.unwrap();
    assert!(outcome.changed());
    let app_session = login(db, app).await.unwrap();
    for ddl in [
        "CREATE TABLE public.evil (id int)",
        "CREATE TABLE orders.evil (id int)",
        "CREATE SCHEMA evil",
        "TRUNCATE orders.items",
        "DROP TABLE orders.items",
    ] {
        let err = describe_pg(&app_session.batch_execute(ddl).await.expect_err(ddl));
        assert!(
            err.contains("permission denied") || err.contains("must be owner"),
            "{ddl}: {err}"
        );
    }
    let set_role = format!("SET ROLE {}", d.owner.name);
    assert!(
        app_session.batch_execute(&set_role).await.is_err(),
        "the app is no longer a member of the owner role"
    );
    app_session
        .batch_execute("INSERT INTO orders.items VALUES (1); DELETE FROM orders.items;")
        .await
        .expect("data access stays");
    let reader_session = login(db, reader).await.unwrap();
    for write in [
        "INSERT INTO orders.items VALUES (2)",
        "DELETE FROM orders.items",
        "SELECT setval('orders.s', 5)",
    ] {
        assert!(
            reader_session.batch_execute(write).await.is_err(),
            "{write}"
        );
    }
    assert_converged(&server, &d).await;
}

/// A resync of many databases at once never opens more connections to them than the
/// server's bound, however many reconciles run concurrently.
#[tokio::test]
async fn many_databases_at_once_stay_within_the_connection_bound() {
    let server = Arc::new(connect_server().await);
    let prefix = unique("bound");
    let all: Vec<_> = (0..16)
        .map(|i| desired("bound", &format!("{prefix}_{i}")))
        .collect();
    for d in &all {
        reconcile(&server, d).await.unwrap();
    }
    let names: Vec<String> = all.iter().map(|d| d.database.as_str().into()).collect();
    let (stop, peak) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicI64::new(0)),
    );
    let sampler = {
        let (stop, peak, names) = (stop.clone(), peak.clone(), names.clone());
        tokio::spawn(async move {
            let su = pg().superuser_client("postgres").await;
            while !stop.load(Ordering::Relaxed) {
                let n: i64 = su
                    .query_one(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = ANY($1)",
                        &[&names],
                    )
                    .await
                    .unwrap()
                    .get(0);
                peak.fetch_max(n, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    // Every database at once, twice: more demand than the bound.
    for _ in 0..2 {
        let passes = all.iter().map(|d| {
            let server = server.clone();
            async move { reconcile(&server, d).await }
        });
        for result in futures::future::join_all(passes).await {
            assert!(!result.unwrap().changed());
        }
    }
    stop.store(true, Ordering::Relaxed);
    sampler.await.unwrap();
    let peak = peak.load(Ordering::Relaxed);
    assert!(peak > 0, "the sampler saw the probes");
    assert!(
        peak <= DEFAULT_DATABASE_CONNECTIONS as i64,
        "{peak} connections to the databases at once; the bound is {DEFAULT_DATABASE_CONNECTIONS}"
    );
}

/// The server's admin sessions dropped under it (a failover, an idle timeout) are replaced:
/// the next pass works instead of the server being broken for the process's life.
#[tokio::test]
async fn dropped_admin_sessions_are_replaced() {
    let server = connect_server().await;
    let d = desired("shop", &unique("reconnect"));
    reconcile(&server, &d).await.unwrap();
    let killed: i64 = pg()
        .superuser_client("postgres")
        .await
        .query_one(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE usename = 'servicedb_admin' AND datname IN ('postgres', 'servicedb') \
             AND application_name = 'servicedb') t",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(killed > 0, "the pools held sessions to kill");
    // The pool notices a closed session on checkout once its connection task has seen the
    // termination; give it that moment, then every later pass must work.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!reconcile(&server, &d).await.unwrap().changed());
    assert_converged(&server, &d).await;
}

/// With a bound smaller than a database's roles and more reconciles than slots, passes still
/// finish: no reconcile holds a slot while waiting for another.
#[tokio::test]
async fn a_tight_bound_never_deadlocks_concurrent_passes() {
    let mut spec = support::provision::spec(support::provision::INSTALLATION);
    spec.database_connections = 2;
    let server = Arc::new(
        servicedb::provision::server::Server::connect(spec)
            .await
            .unwrap(),
    );
    let prefix = unique("tight");
    let all: Vec<_> = (0..3)
        .map(|i| desired("tight", &format!("{prefix}_{i}")))
        .collect();
    for d in &all {
        reconcile(&server, d).await.unwrap();
    }
    let passes = all.iter().flat_map(|d| {
        let server = server.clone();
        (0..3).map(move |_| {
            let server = server.clone();
            async move { reconcile(&server, d).await }
        })
    });
    let results = tokio::time::timeout(Duration::from_secs(120), futures::future::join_all(passes))
        .await
        .expect("concurrent passes finished");
    assert!(results.into_iter().all(|r| !r.unwrap().changed()));
}

/// The owner (or anyone with the migrator credentials) may set the database's search_path
/// and create functions: none of them ever runs in servicedb's admin sessions, whose
/// search_path is pinned to pg_catalog first.
#[tokio::test]
async fn a_hostile_search_path_never_runs_code_as_the_admin() {
    let server = connect_server().await;
    let d = desired("shop", &unique("path"));
    reconcile(&server, &d).await.unwrap();
    let db = d.database.as_str();
    let owner = login(db, &d.owner).await.unwrap();
    owner
        .batch_execute(&format!(
            "CREATE TABLE public.calls (who text); GRANT INSERT ON public.calls TO PUBLIC; \
             CREATE FUNCTION public.pg_get_userbyid(oid) RETURNS name LANGUAGE sql AS \
               $$ INSERT INTO public.calls VALUES (current_user) RETURNING 'x'::name $$; \
             CREATE FUNCTION public.has_table_privilege(text, oid, text) RETURNS boolean \
               LANGUAGE sql AS $$ INSERT INTO public.calls VALUES (current_user) RETURNING true $$; \
             ALTER DATABASE {db} SET search_path = public, pg_catalog;"
        ))
        .await
        .unwrap();
    // Looking inside on an admin session (as after migrations) and a full pass.
    let mut outcome = Default::default();
    servicedb::provision::execute::reconcile_inside(&server, &d, &mut outcome)
        .await
        .unwrap();
    reconcile(&server, &d).await.unwrap();
    let calls: Vec<String> = owner
        .query("SELECT who FROM public.calls", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(calls.is_empty(), "the owner's functions ran as {calls:?}");
}

/// An expired password (VALID UNTIL in the past) fails a login like a wrong one; the repair
/// clears the expiry, so the Secret logs in again and the next pass changes nothing.
#[tokio::test]
async fn an_expired_password_is_repaired_for_good() {
    let server = connect_server().await;
    let d = desired("shop", &unique("expired"));
    reconcile(&server, &d).await.unwrap();
    let app = d.app.as_ref().unwrap();
    pg().superuser_client("postgres")
        .await
        .batch_execute(&format!("ALTER ROLE {} VALID UNTIL '2000-01-01'", app.name))
        .await
        .unwrap();
    assert!(login(d.database.as_str(), app).await.is_err());
    assert!(reconcile(&server, &d).await.unwrap().changed());
    assert!(login(d.database.as_str(), app).await.is_ok());
    assert!(!reconcile(&server, &d).await.unwrap().changed());
}

/// A membership granted by a superuser: PostgreSQL 15 lets the admin revoke it; 16 and
/// later only let it revoke what it granted itself, so there it stays (documented) and the
/// pass still converges instead of repeating a REVOKE that does nothing.
#[tokio::test]
async fn memberships_granted_by_a_superuser_converge_on_every_version() {
    let server = connect_server().await;
    let d = desired("shop", &unique("grantor"));
    reconcile(&server, &d).await.unwrap();
    let app = d.app.as_ref().unwrap();
    let su = pg().superuser_client("postgres").await;
    su.batch_execute(&format!("GRANT {} TO {}", d.owner.name, app.name))
        .await
        .unwrap();
    reconcile(&server, &d).await.unwrap();
    assert!(
        !reconcile(&server, &d).await.unwrap().changed(),
        "converges"
    );
    let version: i32 = su
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .unwrap()
        .get(0);
    let member: bool = su
        .query_one(
            "SELECT pg_has_role($1, $2, 'MEMBER')",
            &[&app.name.as_str(), &d.owner.name.as_str()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(member, version >= 160_000, "server {version}");
}

/// Many new databases at once (a first `dev up`, a controller start): claims and
/// observations take the two admin pools in one order, so nothing deadlocks.
#[tokio::test]
async fn many_new_databases_at_once_do_not_deadlock_the_pools() {
    let server = Arc::new(connect_server().await);
    let prefix = unique("fresh");
    let all: Vec<_> = (0..10)
        .map(|i| desired("fresh", &format!("{prefix}_{i}")))
        .collect();
    let passes = all.iter().map(|d| {
        let server = server.clone();
        async move { reconcile(&server, d).await }
    });
    // A deadlock would end each stuck pass with a "no admin connection became free" error
    // after the pools' 30 s wait; the timeout only keeps a hang from lasting forever.
    let results = tokio::time::timeout(Duration::from_secs(180), futures::future::join_all(passes))
        .await
        .expect("the passes finished");
    for r in results {
        r.unwrap();
    }
}

/// Rows of `aclexplode` on a schema (`object` None) or a table of `db`: (grantee or PUBLIC,
/// privilege, grantable), seen by the superuser.
async fn acl(db: &str, schema: &str, object: Option<&str>) -> Vec<(String, String, bool)> {
    let su = pg().superuser_client(db).await;
    let sql = match object {
        None => {
            "SELECT coalesce(r.rolname::text, 'PUBLIC'), a.privilege_type, a.is_grantable \
                 FROM pg_namespace n CROSS JOIN LATERAL aclexplode(n.nspacl) a \
                 LEFT JOIN pg_roles r ON r.oid = a.grantee WHERE n.nspname = $1 AND $2::text IS NULL ORDER BY 1, 2"
        }
        Some(_) => {
            "SELECT coalesce(r.rolname::text, 'PUBLIC'), a.privilege_type, a.is_grantable \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 CROSS JOIN LATERAL aclexplode(c.relacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee \
                 WHERE n.nspname = $1 AND c.relname = $2 ORDER BY 1, 2"
        }
    };
    su.query(sql, &[&schema, &object])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// Grants to PUBLIC on the managed schemas and their tables, and privileges our roles got
/// WITH GRANT OPTION, are revoked: an outside role that may connect reads nothing through
/// PUBLIC or through what the app re-granted, and the app can no longer hand its access on.
#[tokio::test]
async fn grants_to_public_and_grant_options_are_revoked() {
    let server = connect_server().await;
    let d = desired("shop", &unique("pub"));
    reconcile(&server, &d).await.unwrap();
    let db = d.database.as_str();
    let app = d.app.as_ref().unwrap();
    login(db, &d.owner)
        .await
        .unwrap()
        .batch_execute("CREATE TABLE orders.items (id int); INSERT INTO orders.items VALUES (1);")
        .await
        .unwrap();
    reconcile(&server, &d).await.unwrap();
    let outsider = unique("outsider");
    let su = pg().superuser_client(db).await;
    su.batch_execute(&format!(
        "CREATE ROLE {outsider} LOGIN PASSWORD 'outsider-pw'; \
         GRANT CONNECT ON DATABASE {db} TO {outsider}; \
         GRANT ALL ON TABLE orders.items TO PUBLIC; \
         GRANT USAGE, CREATE ON SCHEMA orders TO PUBLIC; \
         GRANT CREATE ON SCHEMA public TO PUBLIC; \
         GRANT SELECT ON TABLE orders.items TO {app} WITH GRANT OPTION; \
         GRANT USAGE ON SCHEMA orders TO {app} WITH GRANT OPTION; \
         GRANT CONNECT ON DATABASE {db} TO {app} WITH GRANT OPTION;",
        app = app.name
    ))
    .await
    .unwrap();
    // The app, holding a grant option, hands its access on.
    login(db, app)
        .await
        .unwrap()
        .batch_execute(&format!("GRANT SELECT ON orders.items TO {outsider}"))
        .await
        .unwrap();
    let outsider_url = format!(
        "postgresql://{outsider}:outsider-pw@{}:{}/{db}?sslmode=disable",
        pg().host(),
        pg().port()
    );
    let as_outsider = || async {
        servicedb::pg::ConnectOptions::from_url(&outsider_url)
            .unwrap()
            .connect()
            .await
            .unwrap()
    };
    as_outsider()
        .await
        .batch_execute("SELECT * FROM orders.items")
        .await
        .expect("PUBLIC's grants let an outsider read before the repair");

    reconcile(&server, &d).await.unwrap();
    let err = as_outsider()
        .await
        .batch_execute("SELECT * FROM orders.items")
        .await
        .expect_err("nothing left for the outsider");
    assert!(describe_pg(&err).contains("permission denied"), "{err}");
    for (schema, object) in [
        ("orders", Some("items")),
        ("orders", None),
        ("public", None),
    ] {
        let entries = acl(db, schema, object).await;
        assert!(
            !entries
                .iter()
                .any(|(who, _, _)| who == "PUBLIC" || *who == outsider),
            "{schema} {object:?}: {entries:?}"
        );
        assert!(
            !entries
                .iter()
                .any(|(who, _, grantable)| who.as_str() == app.name.as_str() && *grantable),
            "{schema} {object:?}: {entries:?}"
        );
    }
    let grantable: i64 = su
        .query_one(
            "SELECT count(*) FROM pg_database d CROSS JOIN LATERAL aclexplode(d.datacl) a \
             WHERE d.datname = $1 AND a.is_grantable AND a.grantee <> d.datdba",
            &[&db],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        grantable, 0,
        "no grant option on the database but the owner's"
    );
    login(db, app)
        .await
        .unwrap()
        .batch_execute("SELECT * FROM orders.items; INSERT INTO orders.items VALUES (2)")
        .await
        .expect("the app keeps its data access");
    assert_converged(&server, &d).await;
}

/// A table in a managed schema owned by a role the admin cannot act for (a superuser's),
/// with grants the spec does not give: everything else is still done (the grants are named
/// per object, so the foreign table never fails a statement), then a clear, permanent error
/// names the table, its owner and what to do; once that is fixed the pass is clean.
#[tokio::test]
async fn a_foreign_owned_table_never_wedges_the_pass() {
    let server = connect_server().await;
    let d = desired("shop", &unique("foreign"));
    reconcile(&server, &d).await.unwrap();
    let db = d.database.as_str();
    let app = d.app.as_ref().unwrap();
    login(db, &d.owner)
        .await
        .unwrap()
        .batch_execute("CREATE TABLE public.ours (id int)")
        .await
        .unwrap();
    let su = pg().superuser_client(db).await;
    // A routine of theirs that nobody but them may execute, beside one of ours: EXECUTE ON
    // ALL ROUTINES would fail on theirs.
    su.batch_execute(&format!(
        "CREATE TABLE public.theirs (id int); GRANT ALL ON public.theirs TO {app}; \
         GRANT TRUNCATE ON public.ours TO {app}; \
         CREATE FUNCTION public.their_fn() RETURNS int LANGUAGE sql AS 'SELECT 1'; \
         REVOKE EXECUTE ON FUNCTION public.their_fn() FROM PUBLIC;",
        app = app.name
    ))
    .await
    .unwrap();
    login(db, &d.owner)
        .await
        .unwrap()
        .batch_execute(
            "CREATE FUNCTION public.our_fn(n int) RETURNS int LANGUAGE sql AS 'SELECT n'; \
             REVOKE EXECUTE ON FUNCTION public.our_fn(int) FROM PUBLIC;",
        )
        .await
        .unwrap();
    let mut outcome = Default::default();
    let err = reconcile_inside(&server, &d, &mut outcome)
        .await
        .expect_err("the foreign table's excess cannot be revoked");
    let message = err.to_string();
    assert!(
        matches!(err, ProvisionError::Unrevocable { .. }),
        "{message}"
    );
    assert_eq!(err.class(), ErrorClass::Permanent, "{message}");
    assert!(
        message.contains(&format!(
            "table public.theirs (owned by {}) gives {}",
            pg().superuser(),
            app.name.as_str()
        )),
        "{message}"
    );
    assert!(message.contains("as the owner or a superuser"), "{message}");
    // The rest was done: the TRUNCATE on our own table is gone, our table got its grants.
    let shown = outcome.executed();
    assert!(
        shown
            .iter()
            .any(|s| s.starts_with("REVOKE TRUNCATE ON TABLE \"public\".\"ours\"")),
        "{shown:?}"
    );
    assert!(
        !shown
            .iter()
            .any(|s| s.contains("theirs") || s.contains("their_fn")),
        "never a statement on the foreign objects: {shown:?}"
    );
    login(db, app)
        .await
        .unwrap()
        .batch_execute("SELECT public.our_fn(1)")
        .await
        .expect("our routine got EXECUTE");
    let entries = acl(db, "public", Some("ours")).await;
    assert!(
        !entries
            .iter()
            .any(|(who, p, _)| who.as_str() == app.name.as_str() && p == "TRUNCATE"),
        "{entries:?}"
    );
    // Fixed by someone who can: the next pass is clean.
    su.batch_execute(&format!("REVOKE ALL ON public.theirs FROM {}", app.name))
        .await
        .unwrap();
    reconcile(&server, &d).await.unwrap();
    assert_converged(&server, &d).await;
}

/// PostgreSQL answers a REVOKE the admin may not make with a warning, not an error. With the
/// admin's membership in the owner made WITH INHERIT FALSE (16 and later), the REVOKE of
/// PUBLIC's CONNECT changes nothing: the pass must not report success while PUBLIC can
/// still connect. (A concurrent GRANT of the membership in another session can leave a
/// session's membership cache the same way on any version; that is not reproducible here.)
#[tokio::test]
async fn a_revoke_that_changed_nothing_is_not_reported_done() {
    let server = connect_server().await;
    let d = desired("shop", &unique("noeffect"));
    reconcile(&server, &d).await.unwrap();
    let su = pg().superuser_client("postgres").await;
    let version: i32 = su
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .unwrap()
        .get(0);
    if version < 160_000 {
        eprintln!("skipped: WITH INHERIT FALSE needs PostgreSQL 16 (server {version})");
        return;
    }
    su.batch_execute(&format!(
        "GRANT CONNECT ON DATABASE {} TO PUBLIC",
        d.database
    ))
    .await
    .unwrap();
    server
        .maintenance()
        .await
        .unwrap()
        .batch_execute(&format!(
            "GRANT {} TO CURRENT_USER WITH INHERIT FALSE",
            d.owner.name
        ))
        .await
        .unwrap();
    let public_connects = || async {
        pg().superuser_client("postgres")
            .await
            .query_one(
                "SELECT has_database_privilege('public', $1, 'CONNECT')",
                &[&d.database.as_str()],
            )
            .await
            .unwrap()
            .get::<_, bool>(0)
    };
    assert!(public_connects().await);
    let err = reconcile(&server, &d).await.unwrap_err();
    assert!(
        matches!(err, ProvisionError::NoEffect { .. }),
        "a pass that left PUBLIC able to connect: {err}"
    );
    assert_eq!(err.class(), ErrorClass::Transient);
    let shown = err.to_string();
    assert!(
        shown.contains(d.database.as_str()) && shown.contains("FROM PUBLIC"),
        "{shown}"
    );
    assert!(public_connects().await, "still open, and said so");
}
