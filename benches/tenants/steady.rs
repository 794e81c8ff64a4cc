//! Steady state: N Tenants cached (5,000), D of them (1,000: disk allows no more, ~7.5 MB
//! each) with a database of the PerTenant service (1 migration), the rest listing no
//! service. Once all are Ready and one resync has passed, over three more resync periods:
//! the operator's RSS (its own process), its API writes (through a recording proxy), the
//! SQL statements per tenant database per resync pass and the sessions open at once on
//! the server, against the bounds of issue 11.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use servicedb::provision::server::{
    ADMIN_POOL_SIZE, CATALOG_POOL_SIZE, DEFAULT_DATABASE_CONNECTIONS,
};

use servicedb::api::Tenant;
use servicedb::api::conditions::{find_condition, types};

use crate::fixture::{Fixture, Operator, V1, at_version};
use crate::job_player::JobPlayer;
use crate::pglog::{Sessions, log_connections, tally, top_statements};
use crate::support::postgres::server as pg;
use crate::tenant_common::tenant_ready;
use crate::{env_duration, row, scaled, secs, table};

const MB: f64 = 1024.0 * 1024.0;
const RESYNCS: u32 = 3;

/// The DatabaseServer's own resync (its probe and its databaseCount): per server, not per
/// tenant database, so counted apart.
const SERVER_CHECKS: [&str; 2] = [
    "SELECT current_user::text, rolcreaterole",
    "SELECT count(*) FROM servicedb.databases",
];

pub async fn run() {
    let n = scaled(5000);
    let d = std::env::var("SERVICEDB_BENCH_DATABASES")
        .ok()
        .map(|s| s.parse().expect("SERVICEDB_BENCH_DATABASES: a number"))
        .unwrap_or_else(|| scaled(1000))
        .min(n);
    let resync = env_duration("SERVICEDB_BENCH_RESYNC", Duration::from_secs(30));
    println!(
        "\nsteady: {n} Tenants cached, {d} with a real database (the others list no service, so get none), \
         resync {}",
        humantime::format_duration(resync)
    );
    let f = Fixture::start().await;
    log_connections(pg()).await;
    let operator = Operator::start(&f, resync, true).await;
    let player = JobPlayer::start(&f);
    f.wait_server().await;
    f.migrations(&[("V1__items.sql", V1)]).await;
    f.service(serde_json::json!({"maxParallel": 8})).await;
    let started = Instant::now();
    f.tenants(0..d, true).await;
    f.tenants(d..n, false).await;
    // A Tenant listing no service is refused (Ready=False, InvalidSpec) once reconciled.
    // Each real database is a CREATE DATABASE and a Job while earlier ones resync.
    let timeout = Duration::from_secs(300 + n as u64 / 10 + d as u64);
    f.wait_tenants(n, timeout, |t| {
        if t.spec.services.is_empty() {
            reconciled(t)
        } else {
            tenant_ready(t) && at_version(t, "1")
        }
    })
    .await;
    eprintln!("  all {n} Ready after {}", secs(started.elapsed()));
    // One whole resync (and its spread) after the last change, so what it caused is done.
    tokio::time::sleep(resync + resync / 5).await;

    let placed: Vec<(String, String)> = f
        .list_tenants()
        .await
        .iter()
        .filter_map(|t| {
            let d = t.status.as_ref()?.databases.first()?;
            Some((d.database.clone()?, d.secret_name.clone()?))
        })
        .collect();
    let databases: Vec<String> = placed.iter().map(|(db, _)| db.clone()).collect();
    let app_secrets: std::collections::BTreeSet<String> = placed
        .iter()
        .map(|(_, secret)| format!("/secrets/{secret}"))
        .collect();
    let recorded = operator.recorded.as_ref().expect("recording");
    let mark = recorded.requests.mark();
    let log = pg().log_len();
    let sessions = Sessions::sample(pg()).await;
    let window = resync * RESYNCS;
    let window_start = Instant::now();
    let mut rss_most = 0;
    while window_start.elapsed() < window {
        rss_most = rss_most.max(operator.memory().0);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (rss_now, hwm) = operator.memory();
    let most_sessions = sessions.most.load(Ordering::SeqCst);
    let samples = sessions.samples.load(Ordering::SeqCst);
    drop(sessions);
    let requests = recorded.requests.since(mark);
    let writes: Vec<_> = requests.iter().filter(|r| r.is_write()).collect();
    let reads = requests.len() - writes.len();
    // Each pass over a tenant database reads its app Secret once.
    let secret_reads = requests
        .iter()
        .filter(|r| r.verb() == "get")
        .filter(|r| {
            r.info
                .path
                .rfind("/secrets/")
                .is_some_and(|i| app_secrets.contains(&r.info.path[i..]))
        })
        .count();
    let statements_log = pg().log_since(log);
    let per_db = tally(&statements_log, pg().superuser());
    let top = top_statements(&statements_log, pg().superuser(), 8);
    let server_checks: usize = top_statements(&statements_log, pg().superuser(), usize::MAX)
        .iter()
        .filter(|(_, text)| SERVER_CHECKS.iter().any(|c| text.starts_with(c)))
        .map(|(n, _)| n)
        .sum();
    drop(player);
    let operator_log = operator.log.display().to_string();
    operator.stop().await;

    let mut passes = 0;
    let mut in_tenant_dbs = 0;
    let mut worst = 0.0f64;
    for db in &databases {
        let Some(seen) = per_db.get(db) else { continue };
        let p = seen.passes(resync / 2);
        passes += p;
        in_tenant_dbs += seen.statements;
        if p > 0 {
            worst = worst.max(seen.statements as f64 / p as f64);
        }
    }
    let elsewhere: usize = per_db
        .iter()
        .filter(|(db, _)| !databases.contains(db))
        .map(|(_, s)| s.statements)
        .sum::<usize>()
        .saturating_sub(server_checks);
    // The passes the operator made: its reads of the tenants' app Secrets, and the log's
    // runs of activity per database. A pass at the window's edge may show in one count and
    // not the other (its Secret read just before the mark, say): the larger is the passes
    // the window's statements came from.
    let per_pass = |x: usize| x as f64 / secret_reads.max(passes).max(1) as f64;
    let total_per_pass = per_pass(in_tenant_dbs + elsewhere);
    let bound = DEFAULT_DATABASE_CONNECTIONS + ADMIN_POOL_SIZE + CATALOG_POOL_SIZE;
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    for w in &writes {
        *by_kind
            .entry(format!("{} {}", w.verb(), w.info.rbac_resource()))
            .or_default() += 1;
    }
    table(
        &format!(
            "steady: {n} Tenants cached, {d} tenant databases, over {RESYNCS} resyncs of {}",
            humantime::format_duration(resync)
        ),
        &[
            row(
                "operator RSS, highest in the window",
                format!("{:.1} MB", rss_most.max(rss_now) as f64 / MB),
                "at most 150 MB".into(),
                Some((rss_most.max(rss_now) as f64) <= 150.0 * MB),
            ),
            row(
                "operator peak RSS (VmHWM, whole run)",
                format!("{:.1} MB", hwm as f64 / MB),
                "(includes onboarding)".into(),
                None,
            ),
            row(
                "API writes by the operator",
                writes.len().to_string(),
                format!("0 (reads meanwhile: {reads})"),
                Some(writes.is_empty()),
            ),
            row(
                "tenant database passes (app Secret reads)",
                secret_reads.to_string(),
                format!(
                    "~{} expected ({d} x {RESYNCS}); runs of activity in the log: {passes}",
                    d * RESYNCS as usize
                ),
                None,
            ),
            row(
                "statements per tenant db per pass, all",
                format!("{total_per_pass:.2}"),
                "at most 3".into(),
                Some(total_per_pass <= 3.0),
            ),
            row(
                "  of which inside the tenant database",
                format!("{:.2}", per_pass(in_tenant_dbs)),
                format!("worst database: {worst:.2} per run of activity"),
                None,
            ),
            row(
                "  of which on postgres / the catalog",
                format!("{:.2}", per_pass(elsewhere)),
                String::new(),
                None,
            ),
            row(
                "the DatabaseServer's own checks (per server)",
                server_checks.to_string(),
                "not per tenant database: its probe and databaseCount, each resync".into(),
                None,
            ),
            row(
                "sessions open at once on the server",
                most_sessions.to_string(),
                format!(
                    "at most {bound} ({DEFAULT_DATABASE_CONNECTIONS} database + {ADMIN_POOL_SIZE} admin + {CATALOG_POOL_SIZE} catalog); {samples} samples"
                ),
                Some(most_sessions <= bound),
            ),
        ],
    );
    println!("  most frequent statements in the window (count, first 70 characters):");
    for (count, text) in &top {
        println!("    {count:>6}  {text}");
    }
    if !by_kind.is_empty() {
        println!("  writes: {by_kind:?}");
    }
    println!(
        "  note: statements and sessions are measured over the {d} Tenants with a database; \
         the other {} list no service (refused: Ready=False InvalidSpec), cached and reconciled without a database. Operator log: {operator_log}",
        n - d,
    );
}

/// Whether the controller has written the Tenant's Ready condition for its generation.
fn reconciled(t: &Tenant) -> bool {
    t.status
        .as_ref()
        .and_then(|s| find_condition(&s.conditions, types::READY))
        .is_some_and(|c| c.observed_generation == t.metadata.generation)
}
