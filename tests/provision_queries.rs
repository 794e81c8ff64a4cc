//! What a no-change pass costs the server: SQL statements and logins per database, counted
//! from the statement log of a server nobody else uses (`log_statement = all`).

mod support;

use std::collections::BTreeMap;

use servicedb::api::ReclaimPolicy;
use servicedb::provision::execute::HistoryWanted;
use servicedb::provision::server::Server;
use servicedb::service::reconcile::reconcile_unit;
use support::postgres::{TestServer, private_server};
use support::provision::{INSTALLATION, Memory, sdb, spec_on};

/// Statements (`statement:` for simple queries, `execute` for extended ones) and logins
/// (`connection authorized`) in `log`, by `user@database`.
fn tally(log: &str) -> (BTreeMap<String, usize>, BTreeMap<String, usize>) {
    let (mut statements, mut logins) = (BTreeMap::new(), BTreeMap::new());
    for line in log.lines() {
        // "<time> [<pid>] <user>@<database> LOG:  ..."
        let Some(rest) = line.split_once("] ").map(|(_, r)| r) else {
            continue;
        };
        let Some((who, message)) = rest.split_once(' ') else {
            continue;
        };
        if message.starts_with("LOG:  statement: ") || message.starts_with("LOG:  execute ") {
            *statements.entry(who.to_string()).or_default() += 1;
        } else if message.starts_with("LOG:  connection authorized") {
            *logins.entry(who.to_string()).or_default() += 1;
        }
    }
    (statements, logins)
}

async fn log_connections(pg: &TestServer) {
    let su = pg.superuser_client("postgres").await;
    // ALTER SYSTEM cannot share a batch (an implicit transaction) with anything.
    for statement in [
        "ALTER SYSTEM SET log_connections = on",
        "SELECT pg_reload_conf()",
    ] {
        su.batch_execute(statement).await.unwrap();
    }
}

/// A no-change pass over one database (a resync in the controller, a second `dev up`) sends
/// 2 SQL statements in all: the claims and the server's roles and database in one, on the
/// catalog, and one inside the database (issue 11 allows 3 per resync; the controller's read
/// of the migration history is the third). It logs in once per role (the SCRAM probes, the
/// owner's session doubling as the one that looks inside).
#[tokio::test]
async fn a_no_change_pass_sends_two_statements_per_database() {
    let pg = private_server();
    log_connections(&pg).await;
    let server = Server::connect(spec_on(&pg, INSTALLATION)).await.unwrap();
    let store = Memory::default();
    let mut resource = sdb("shop", "orders", ReclaimPolicy::Retain);
    resource.spec.schemas = vec!["orders".into()];
    resource.spec.extensions = vec!["pgcrypto".into()];
    let first = reconcile_unit(&server, &store, &resource, None, &[], HistoryWanted::No)
        .await
        .unwrap();
    assert!(first.done.outcome.changed());
    let roles = first.desired.roles().count();

    // The pools are warm after the first pass, as in a resync; the log is quiet before we look.
    let start = pg.log_len();
    let again = reconcile_unit(&server, &store, &resource, None, &[], HistoryWanted::No)
        .await
        .unwrap();
    assert!(
        !again.done.outcome.changed(),
        "{:?}",
        again.done.outcome.executed()
    );
    let (statements, logins) = tally(&pg.log_since(start));
    let total: usize = statements.values().sum();
    eprintln!("no-change pass: {total} statements {statements:?}, logins {logins:?}");
    assert!(total <= 2, "{total} statements: {statements:?}");
    assert_eq!(
        logins.values().sum::<usize>(),
        roles,
        "one login per role: {logins:?}"
    );
}

/// Locks the controller's read of the history once its pass has seen the table: who the
/// session is and every row in one statement, planned exactly as the full read plans it (a
/// repeatable whose checksum depends on `${flyway:user}` included). Before the table exists
/// it reads as the full read does.
#[tokio::test]
async fn a_history_read_after_seeing_the_table_is_one_statement() {
    use servicedb::migrate::engine::{Engine, Quiet, Settings};
    use servicedb::migrate::placeholders::Placeholders;

    let pg = private_server();
    log_connections(&pg).await;
    let db = pg.create_database("seen").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("V1__t.sql"), "CREATE TABLE t (id int);\n").unwrap();
    std::fs::write(
        dir.path().join("R__v.sql"),
        "-- by ${flyway:user} in ${flyway:database}\nCREATE OR REPLACE VIEW v AS SELECT 1 AS one;\n",
    )
    .unwrap();
    let scan = || servicedb::migrate::source::scan(&[dir.path().to_path_buf()]).unwrap();
    // As the controller reads: placeholders on, none defined beyond the built-ins.
    let settings = support::migrate::flyway_settings(Placeholders::new(&[]).unwrap());
    let seen = |settings: Settings| async {
        let s = scan();
        Engine::with_table_seen(pg.admin_client(&db).await, settings, s.files, s.warnings)
            .await
            .unwrap()
    };
    let full = |settings: Settings| async {
        let s = scan();
        Engine::with_client(pg.admin_client(&db).await, settings, s.files, s.warnings)
            .await
            .unwrap()
    };

    let before = seen(settings.clone()).await.info();
    assert_eq!(before.pending.len(), 2, "no table yet: {before:?}");
    assert_eq!(before.entries, full(settings.clone()).await.info().entries);

    full(settings.clone())
        .await
        .apply(&mut Quiet)
        .await
        .unwrap();
    let expected = full(settings.clone()).await.info();
    assert!(expected.pending.is_empty() && expected.problems.is_empty());
    let start = pg.log_len();
    let got = seen(settings.clone()).await.info();
    let (statements, _) = tally(&pg.log_since(start));
    assert_eq!(got.entries, expected.entries);
    assert!(got.pending.is_empty(), "{got:?}");
    assert!(got.problems.is_empty(), "{got:?}");
    assert_eq!(got.current, expected.current);
    assert_eq!(
        statements.values().sum::<usize>(),
        1,
        "identity and history in one: {statements:?}"
    );
}

/// The controller's pass over a tenant database it migrates reads the history on the
/// owner's probe session (`HistoryWanted::Yes`): no login more than a pass that does not,
/// one statement more, and rows that plan exactly as a session of the owner's own plans
/// them (a repeatable whose checksum names `${flyway:user}` included).
#[tokio::test]
async fn the_owners_probe_session_reads_the_history_without_a_login_of_its_own() {
    use servicedb::migrate::effective::plan_read;
    use servicedb::migrate::engine::{Engine, Quiet};
    use servicedb::migrate::placeholders::Placeholders;

    let pg = private_server();
    log_connections(&pg).await;
    let server = Server::connect(spec_on(&pg, INSTALLATION)).await.unwrap();
    let store = Memory::default();
    let resource = sdb("shop", "orders", ReclaimPolicy::Retain);
    let first = reconcile_unit(&server, &store, &resource, None, &[], HistoryWanted::No)
        .await
        .unwrap();
    let roles = first.desired.roles().count();
    let database = first.desired.database.as_str().to_string();
    let owner = first.desired.owner.clone();

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("V1__t.sql"), "CREATE TABLE t (id int);\n").unwrap();
    std::fs::write(
        dir.path().join("R__v.sql"),
        "-- by ${flyway:user}\nCREATE OR REPLACE VIEW v AS SELECT 1 AS one;\n",
    )
    .unwrap();
    let scan = || servicedb::migrate::source::scan(&[dir.path().to_path_buf()]).unwrap();
    let settings = support::migrate::flyway_settings(Placeholders::new(&[]).unwrap());
    let as_owner = || async {
        let url = format!(
            "postgresql://{}:{}@{}:{}/{database}?sslmode=disable",
            owner.name.as_str(),
            owner.password.expose(),
            pg.host(),
            pg.port()
        );
        let s = scan();
        let client = servicedb::pg::ConnectOptions::from_url(&url)
            .unwrap()
            .connect()
            .await
            .unwrap();
        Engine::with_client(client, settings.clone(), s.files, s.warnings)
            .await
            .unwrap()
    };
    as_owner().await.apply(&mut Quiet).await.unwrap();

    let pass = |history| reconcile_unit(&server, &store, &resource, None, &[], history);
    // What the migration created inside may want a change (grants on its objects); settled.
    pass(HistoryWanted::No).await.unwrap();
    let start = pg.log_len();
    let without = pass(HistoryWanted::No).await.unwrap();
    assert!(without.done.outcome.history.is_none());
    let (plain_statements, plain_logins) = tally(&pg.log_since(start));
    let start = pg.log_len();
    let with = pass(HistoryWanted::Yes).await.unwrap();
    let (statements, logins) = tally(&pg.log_since(start));
    assert_eq!(logins.values().sum::<usize>(), roles, "{logins:?}");
    assert_eq!(logins, plain_logins, "the same logins");
    assert_eq!(
        statements.values().sum::<usize>(),
        plain_statements.values().sum::<usize>() + 1,
        "one statement more: {statements:?} against {plain_statements:?}"
    );

    let rows = with.done.outcome.history.expect("rows read on the probe");
    assert_eq!(rows.rows.len(), 2, "{rows:?}");
    let planned = plan_read(&settings, &scan().files, &rows).unwrap();
    let expected = as_owner().await.info();
    assert_eq!(planned.entries, expected.entries);
    assert!(
        planned.pending.is_empty() && planned.problems.is_empty(),
        "{planned:?}"
    );
}
