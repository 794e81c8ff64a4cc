//! A Tenant pass reuses a provisioning check made moments before (see
//! `controller::tenant::verified`), and that reuse never hides a change: the Secrets are
//! part of what it compares. `controller::run` against the fake API server (or
//! SERVICEDB_TEST_KUBECONFIG's cluster) and the tests' PostgreSQL.

mod controller_common;
mod support;
mod tenant_common;

use std::time::Duration;

use controller_common::*;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;
use serde_json::json;
use support::kube::eventually;
use tenant_common::fleet::{self, all_at};
use tenant_common::rollout::{Setup, setup_with};
use tenant_common::*;

const V1: &str = "CREATE TABLE items (id int PRIMARY KEY);\n";

/// The rig with a resync long enough that every pass of a test may reuse the last check.
async fn long_resync() -> Setup {
    setup_with(|c| servicedb::controller::Config {
        resync: Duration::from_secs(300),
        ..c
    })
    .await
}

/// Locks "a reused check never hides a Secret deleted by hand": with a resync of 5 minutes,
/// so that every pass of the test falls in the window where the last check may be reused,
/// a tenant's app Secret deleted right after its check is written again at once (not at
/// the resync), with a password that logs in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_tenant_secret_comes_back_before_the_resync() {
    let s = long_resync().await;
    let (client, ns) = (&s.client, &s.ns);
    per_tenant(client, ns, "app", json!({"server": s.server})).await;
    s.tenant("gym", false).await;
    wait_tenant_ready(client, ns, "gym").await;
    let before = secret_data(client, ns, "app-db-gym")
        .await
        .expect("the app Secret");

    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    secrets
        .delete("app-db-gym", &Default::default())
        .await
        .expect("deleting the app Secret");
    let after = eventually("the app Secret written again", || async {
        secret_data(client, ns, "app-db-gym").await
    })
    .await;
    // The Secret is written before the role gets its password: a moment apart.
    eventually("the new Secret to log in", || async {
        login(&after).await.ok()
    })
    .await;
    assert_ne!(
        before["password"], after["password"],
        "a new password: the deleted one may have leaked with the Secret"
    );
    wait_tenant_ready(client, ns, "gym").await;
}

/// Locks "the pass after a migration Job checks in full": a service that gains migrations
/// after its tenant was checked (and the check recorded) gets its first Job; the Job
/// creates the history table, which the owner's default privileges would let the app
/// write to. The pass that records the Job's end revokes that, although the last check is
/// seconds old.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pass_after_a_migration_checks_what_it_created() {
    let s = long_resync().await;
    per_tenant(&s.client, &s.ns, "app", json!({"server": s.server})).await;
    s.tenant("gym", false).await;
    wait_tenant_ready(&s.client, &s.ns, "gym").await;
    // One more pass, with nothing to change: its check is the one recorded.
    let tenants: Api<servicedb::api::Tenant> = Api::namespaced(s.client.clone(), &s.ns);
    tenants
        .patch(
            "gym",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"metadata": {"annotations": {"checked": "again"}}})),
        )
        .await
        .expect("annotating the Tenant");
    tokio::time::sleep(Duration::from_secs(2)).await;

    s.service(&[("V1__items.sql", V1)], json!({})).await;
    s.play_until("gym at V1", |_| {}, |t, _| all_at(t, "1"))
        .await;

    let app = secret_data(&s.client, &s.ns, "app-db-gym")
        .await
        .expect("the app Secret");
    let client = login(&app).await.expect("the app Secret logs in");
    client
        .batch_execute("INSERT INTO items VALUES (1)")
        .await
        .expect("the app writes the migration's table");
    let err = client
        .batch_execute("DELETE FROM public.flyway_schema_history")
        .await
        .expect_err("the app must not write the migration history");
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
        "{err}"
    );
}

/// Logins (`connection authorized`) into `database` in a slice of the server log (whose
/// lines start `<time> [<pid>] <user>@<database> `), by `user` if given.
fn logins_into(log: &str, database: &str, user: Option<&str>) -> usize {
    let at = format!("@{database} ");
    log.lines()
        .filter(|l| l.contains("connection authorized"))
        .filter_map(|l| l.split_once("] ").map(|(_, rest)| rest))
        .filter(|rest| rest.contains(&at))
        .filter(|rest| user.is_none_or(|u| rest.starts_with(&format!("{u}@"))))
        .count()
}

/// Locks "a promotion costs no login before a tenant's turn": the pass that records a
/// migration Job's end checks in full after the Job ended, and that check holds for the
/// passes a promotion brings every tenant moments later (their status learns the new
/// target). Before, each of those passes logged in to its database again, a burst of
/// logins over the whole fleet just as the rollout's first Jobs started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promotion_reaches_every_tenant_without_logging_in_again() {
    let pg = support::postgres::server();
    let su = pg.superuser_client("postgres").await;
    // ALTER SYSTEM cannot share a batch (an implicit transaction) with anything.
    for statement in [
        "ALTER SYSTEM SET log_connections = on",
        "SELECT pg_reload_conf()",
    ] {
        su.batch_execute(statement).await.expect(statement);
    }
    let s = long_resync().await;
    s.service(&[("V1__items.sql", V1)], json!({"maxParallel": 1}))
        .await;
    let names = ["gym-a", "gym-b", "gym-c"];
    for name in names {
        s.tenant(name, false).await;
    }
    s.play_until(
        "the fleet at V1",
        |_| {},
        |t, _| t.len() == 3 && all_at(t, "1"),
    )
    .await;
    // Each tenant's database and app role (which only a provisioning check logs in as: the
    // Job migrates as the owner).
    let mut databases = vec![];
    for t in s.tenants().await {
        let db = fleet::db(&t).and_then(|d| d.database.clone());
        let secret = secret_data(&s.client, &s.ns, &format!("app-db-{}", t.name_any())).await;
        let app = secret.and_then(|d| d.get("username").cloned());
        databases.push((
            db.expect("the database in the status"),
            app.expect("the app role"),
        ));
    }
    assert_eq!(databases.len(), 3, "{databases:?}");

    let promoted = pg.log_len();
    let api: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(s.client.clone(), &s.ns);
    apply(
        &api,
        "app-migrations",
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app-migrations"},
               "data": {"V1__items.sql": V1, "V2__more.sql": "ALTER TABLE items ADD COLUMN n int;\n"}}),
    )
    .await;
    let target_of = |t: &servicedb::api::Tenant| {
        fleet::db(t)
            .and_then(|d| d.schema.as_ref())
            .and_then(|s| s.target_version.clone())
    };
    eventually("every tenant's status to name target 2", || async {
        let tenants = s.tenants().await;
        (tenants.len() == 3 && tenants.iter().all(|t| target_of(t).as_deref() == Some("2")))
            .then_some(())
    })
    .await;
    let log = pg.log_since(promoted);
    for (db, _) in &databases {
        assert_eq!(
            logins_into(&log, db, None),
            0,
            "a login into {db} before its Job ran:\n{log}"
        );
    }

    // The detection itself: the pass after each Job checks in full, the app role's login
    // among it.
    let played = pg.log_len();
    s.play_until("the fleet at V2", |_| {}, |t, _| all_at(t, "2"))
        .await;
    let log = pg.log_since(played);
    for (db, app) in &databases {
        assert!(
            logins_into(&log, db, Some(app)) > 0,
            "no check logged in as {app} to {db} after its Job:\n{log}"
        );
    }
}
