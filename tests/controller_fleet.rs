//! The fleet rollout end to end: tenant migration Jobs started only as the ServiceDatabase's
//! `status.rollout` admits them (canaries first, maxParallel, maxFailures, resume), fresh
//! tenants straight to the target. `controller::run` against the fake API server (or
//! SERVICEDB_TEST_KUBECONFIG's cluster), the tests' PostgreSQL, and `JobRunner` playing the
//! Job controller with the `servicedb` binary built with these tests.

mod controller_common;
mod support;
mod tenant_common;

use std::collections::BTreeSet;
use std::time::Duration;

use controller_common::*;
use kube::ResourceExt;
use serde_json::json;
use servicedb::api::RolloutPhase;
use servicedb::api::conditions::types;
use support::kube::eventually;
use support::postgres::server as pg;
use tenant_common::fleet::{all_at, rollout_phase, version_of};
use tenant_common::rollout::setup;
use tenant_common::*;

const V1: &str = "CREATE TABLE items (id int PRIMARY KEY);\n";
const V2: &str = "ALTER TABLE items ADD COLUMN name text;\n";
const V3: &str = "CREATE TABLE orders (id int PRIMARY KEY);\n";

/// Locks the main path: 6 tenants (2 canaries) reach V2 and the service Ready; V3 rolls
/// out canaries first with at most, and at times exactly, maxParallel (2) tenant Jobs
/// unfinished at once; then nothing is written at steady state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_rolls_out_canaries_first_within_max_parallel() {
    let s = setup().await;
    s.config_map(
        "app-migrations",
        &[("V1__items.sql", V1), ("V2__name.sql", V2)],
    )
    .await;
    per_tenant(
        &s.client,
        &s.ns,
        "app",
        json!({"server": s.server, "migrations": {
            "configMaps": ["app-migrations"],
            "rollout": {"maxParallel": 2, "maxFailures": 0},
        }}),
    )
    .await;
    let names = ["t-0", "t-1", "t-2", "t-3", "t-4", "t-5"];
    for (i, n) in names.iter().enumerate() {
        s.tenant(n, i < 2).await;
    }
    // Fresh tenants go straight to the target, not one slot at a time: all six Jobs
    // exist at once, with none run yet, although maxParallel is 2.
    eventually("a Job for each of the six fresh tenants", || async {
        (s.pending().await.len() == 6).then_some(())
    })
    .await;
    s.play_until(
        "every tenant at V2",
        |_| {},
        |t, _| t.len() == 6 && all_at(t, "2"),
    )
    .await;
    let sdb = s
        .wait_sdb("Ready with the rollout Complete", |o| {
            ready_now(o) && rollout_phase(o) == Some(RolloutPhase::Complete)
        })
        .await;
    let r = sdb.status.as_ref().unwrap().rollout.clone().unwrap();
    assert_eq!(
        (r.total, r.at_target, r.target_version.as_deref()),
        (6, 6, Some("2"))
    );

    // V3: the rollout.
    s.config_map(
        "app-migrations",
        &[
            ("V1__items.sql", V1),
            ("V2__name.sql", V2),
            ("V3__orders.sql", V3),
        ],
    )
    .await;
    let canaries: BTreeSet<String> = ["t-0", "t-1"].map(String::from).into();
    // Both bounds of maxParallel 2: never more than two Jobs, and both slots used (a
    // rollout one Job at a time would stay under the bound too). Nothing is run while
    // waiting, so the two Jobs are unfinished at once.
    let two_at_once = |what: &'static str| {
        eventually(what, || async {
            let p = s.pending().await;
            assert!(
                p.len() <= 2,
                "more than maxParallel (2) Jobs at once: {p:?}"
            );
            (p.len() == 2).then_some(p)
        })
    };
    let first = two_at_once("both canaries' V3 Jobs at once").await;
    let tenants_of =
        |p: &[(String, String)]| -> BTreeSet<String> { p.iter().map(|(t, _)| t.clone()).collect() };
    assert_eq!(tenants_of(&first), canaries, "the canaries first");
    for (_, job) in &first {
        assert!(s.run(job).await);
    }
    let second = two_at_once("two non-canary V3 Jobs at once, once the canaries succeeded").await;
    assert!(tenants_of(&second).is_disjoint(&canaries), "{second:?}");
    let mut most = 0;
    s.play_until(
        "every tenant at V3",
        |p| {
            most = most.max(p.len());
            assert!(
                tenants_of(p).is_disjoint(&canaries),
                "a canary ran again: {p:?}"
            );
        },
        |t, _| t.len() == 6 && all_at(t, "3"),
    )
    .await;
    assert!(
        most <= 2,
        "at most maxParallel tenant Jobs at once: saw {most}"
    );
    let sdb = s
        .wait_sdb("the V3 rollout Complete", |o| {
            ready_now(o)
                && o.status
                    .as_ref()
                    .and_then(|s| s.rollout.as_ref())
                    .is_some_and(|r| {
                        r.phase == Some(RolloutPhase::Complete)
                            && r.target_version.as_deref() == Some("3")
                    })
        })
        .await;
    let r = sdb.status.as_ref().unwrap().rollout.clone().unwrap();
    assert_eq!((r.total, r.at_target, r.failed), (6, 6, 0));
    let tenants = sdb.status.as_ref().unwrap().tenants.clone().unwrap();
    assert_eq!((tenants.total, tenants.at_target_version), (6, 6));

    // At steady state (a few resyncs of 2 s), the fleet causes no writes.
    let mark = s
        .operator
        .requests
        .settle(Duration::from_secs(2), |w| w.info.path.contains(&s.ns))
        .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let writes: Vec<String> = s
        .operator
        .requests
        .writes_since(mark)
        .into_iter()
        .filter(|w| w.info.path.contains(&s.ns))
        .map(|w| w.to_string())
        .collect();
    assert!(
        writes.is_empty(),
        "writes at steady state:\n{}",
        writes.join("\n")
    );
}

/// Locks: a tenant added mid-rollout lands at the new target outside the rollout's slots,
/// and deleting the Tenant whose Job holds the only slot neither blocks the rollout nor
/// is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_added_or_deleted_mid_rollout() {
    let s = setup().await;
    s.service(&[("V1__items.sql", V1)], json!({"maxParallel": 1}))
        .await;
    for n in ["m-0", "m-1", "m-2", "m-3"] {
        s.tenant(n, n == "m-0").await;
    }
    s.play_until(
        "every tenant at V1",
        |_| {},
        |t, _| t.len() == 4 && all_at(t, "1"),
    )
    .await;
    s.config_map(
        "app-migrations",
        &[("V1__items.sql", V1), ("V2__name.sql", V2)],
    )
    .await;
    // The canary first, alone.
    eventually("the canary's V2 Job", || async {
        let p = s.pending().await;
        (p.len() == 1 && p[0].0 == "m-0").then_some(())
    })
    .await;
    let p = s.pending().await;
    assert!(s.run(&p[0].1).await);
    // Mid-rollout: the tenant whose Job holds the only slot goes, its Job never run, and
    // a tenant comes.
    let held = eventually("the first non-canary's V2 Job", || async {
        let p = s.pending().await;
        (p.len() == 1 && p[0].0 != "m-0").then(|| p[0].0.clone())
    })
    .await;
    delete_tenant(&s.client, &s.ns, &held).await;
    s.tenant("m-new", false).await;
    let rest = |t: &str| t != held && t != "m-new" && t != "m-0";
    // Its Job goes with it (garbage collection), never run.
    eventually("the deleted tenant's Job to be gone", || async {
        (!s.jobs().await.contains_key(&held)).then_some(())
    })
    .await;
    // Neither run yet: the slot passed on, and the new tenant's Job is there beside it,
    // outside the one slot.
    eventually(
        "a remaining tenant's V2 Job beside the new tenant's",
        || async {
            let p = s.pending().await;
            let slot = p.iter().filter(|(t, _)| rest(t)).count();
            (slot == 1 && p.iter().any(|(t, _)| t == "m-new")).then_some(())
        },
    )
    .await;
    let mut rollout_most = 0;
    s.play_until(
        "every tenant at V2",
        |p| {
            let n = p.iter().filter(|(t, _)| rest(t)).count();
            rollout_most = rollout_most.max(n);
        },
        |t, _| t.len() == 4 && all_at(t, "2"),
    )
    .await;
    assert!(rollout_most <= 1, "maxParallel 1: {rollout_most}");
    let sdb = s
        .wait_sdb("the rollout Complete without the deleted tenant", |o| {
            ready_now(o) && rollout_phase(o) == Some(RolloutPhase::Complete)
        })
        .await;
    let r = sdb.status.as_ref().unwrap().rollout.clone().unwrap();
    assert_eq!((r.total, r.at_target, r.running), (4, 4, 0));
    let new = s
        .tenants()
        .await
        .into_iter()
        .find(|t| t.name_any() == "m-new")
        .unwrap();
    assert_eq!(version_of(&new).as_deref(), Some("2"));
}

/// Locks the gates: a failing canary pauses the fleet before any other tenant's Job (one
/// RolloutPaused Event, Stalled with how to resume); new inputs go on; failures beyond
/// maxFailures pause again; the resume annotation runs the failed tenants again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_pause_the_rollout_until_resumed() {
    let s = setup().await;
    s.service(
        &[("V1__items.sql", V1)],
        json!({"maxParallel": 1, "maxFailures": 1}),
    )
    .await;
    for n in ["c-0", "n-0", "n-1", "n-2", "n-3"] {
        s.tenant(n, n == "c-0").await;
    }
    s.play_until(
        "every tenant at V1",
        |_| {},
        |t, _| t.len() == 5 && all_at(t, "1"),
    )
    .await;
    let before = s.jobs().await;

    // A canary that fails: nobody else starts.
    s.config_map(
        "app-migrations",
        &[("V1__items.sql", V1), ("V2__bad.sql", "SELECT 1/0;\n")],
    )
    .await;
    let p = eventually("the canary's Job", || async {
        let p = s.pending().await;
        (!p.is_empty()).then_some(p)
    })
    .await;
    assert_eq!(
        p.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>(),
        ["c-0"]
    );
    assert!(!s.run(&p[0].1).await);
    let paused = s
        .wait_sdb("the rollout paused by the canary", |o| {
            rollout_phase(o) == Some(RolloutPhase::Paused)
        })
        .await;
    let (st, reason, message) = condition(&paused, types::STALLED).unwrap();
    assert_eq!((st.as_str(), reason.as_str()), ("True", "RolloutPaused"));
    assert!(message.contains("canary tenant c-0"), "{message}");
    assert!(
        message.contains("servicedb.io/resume=$(date +%s)"),
        "{message}"
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = s.jobs().await;
    for n in ["n-0", "n-1", "n-2", "n-3"] {
        assert_eq!(
            after.get(n),
            before.get(n),
            "no Job for {n} after the failed canary"
        );
    }
    assert_eq!(s.pauses().await, 1);

    // Fixed for the canary, failing elsewhere until a role exists on the server.
    let go = format!("fleet_go_{}", s.ns.replace('-', "_"));
    let v2 = format!(
        "DO $$ BEGIN IF current_database() NOT LIKE '%c_0' AND NOT EXISTS \
         (SELECT 1 FROM pg_roles WHERE rolname = '{go}') THEN RAISE EXCEPTION 'not yet'; \
         END IF; END $$;\n"
    );
    s.config_map(
        "app-migrations",
        &[("V1__items.sql", V1), ("V2__gate.sql", &v2)],
    )
    .await;
    s.wait_sdb("the new inputs Progressing", |o| {
        rollout_phase(o) == Some(RolloutPhase::Progressing)
    })
    .await;
    let mut failed_runs = 0;
    s.play_until(
        "paused after two failures",
        |p| failed_runs += p.iter().filter(|(t, _)| t != "c-0").count(),
        |_, sdb| rollout_phase(sdb) == Some(RolloutPhase::Paused),
    )
    .await;
    let paused = s
        .wait_sdb("paused by maxFailures", |o| {
            rollout_phase(o) == Some(RolloutPhase::Paused)
        })
        .await;
    let r = paused.status.as_ref().unwrap().rollout.clone().unwrap();
    assert_eq!(r.failed, 2, "{r:?}");
    assert_eq!(r.failed_tenants, ["n-0", "n-1"]);
    assert_eq!(
        failed_runs, 2,
        "maxParallel 1, paused after the second failure"
    );
    let (_, reason, message) = condition(&paused, types::STALLED).unwrap();
    assert_eq!(reason, "RolloutPaused");
    assert!(message.contains("more than maxFailures (1)"), "{message}");
    // The Warning Event follows the status write that says Paused.
    eventually("the second RolloutPaused Event", || async {
        (s.pauses().await >= 2).then_some(())
    })
    .await;
    assert_eq!(s.pauses().await, 2);
    let jobs = s.jobs().await;
    for n in ["n-2", "n-3"] {
        assert_eq!(jobs.get(n), before.get(n), "no Job for {n} while paused");
    }

    // The cause fixed on the server, then resumed: everyone reaches V2.
    pg().admin_client("postgres")
        .await
        .batch_execute(&format!("CREATE ROLE {go}"))
        .await
        .expect("creating the gate role");
    s.annotate("servicedb.io/resume", "1").await;
    s.play_until(
        "every tenant at V2",
        |_| {},
        |t, _| t.len() == 5 && all_at(t, "2"),
    )
    .await;
    s.wait_sdb("Complete after the resume", |o| {
        ready_now(o) && rollout_phase(o) == Some(RolloutPhase::Complete)
    })
    .await;
    assert_eq!(s.pauses().await, 2);
    let _ = pg()
        .admin_client("postgres")
        .await
        .batch_execute(&format!("DROP ROLE {go}"))
        .await;
}
