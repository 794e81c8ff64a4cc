//! What a no-change pass costs the server: SQL statements and logins per database, counted
//! from the statement log of a server nobody else uses (`log_statement = all`).

mod support;

use std::collections::BTreeMap;

use servicedb::api::ReclaimPolicy;
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
/// at most 3 SQL statements in all (issue 11), and logs in once per role (the SCRAM probes,
/// the owner's session doubling as the one that looks inside).
#[tokio::test]
async fn a_no_change_pass_sends_at_most_three_statements_per_database() {
    let pg = private_server();
    log_connections(&pg).await;
    let server = Server::connect(spec_on(&pg, INSTALLATION)).await.unwrap();
    let store = Memory::default();
    let mut resource = sdb("shop", "orders", ReclaimPolicy::Retain);
    resource.spec.schemas = vec!["orders".into()];
    resource.spec.extensions = vec!["pgcrypto".into()];
    let first = reconcile_unit(&server, &store, &resource, None, &[])
        .await
        .unwrap();
    assert!(first.done.outcome.changed());
    let roles = first.desired.roles().count();

    // The pools are warm after the first pass, as in a resync; the log is quiet before we look.
    let start = pg.log_len();
    let again = reconcile_unit(&server, &store, &resource, None, &[])
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
    assert!(total <= 3, "{total} statements: {statements:?}");
    assert_eq!(
        logins.values().sum::<usize>(),
        roles,
        "one login per role: {logins:?}"
    );
}
