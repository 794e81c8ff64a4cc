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
use kube::api::Api;
use serde_json::json;
use support::kube::eventually;
use tenant_common::fleet::all_at;
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
