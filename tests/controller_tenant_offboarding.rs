//! Offboarding tenants. Deleting a PerTenant ServiceDatabase waits for its Tenants: their cleanup needs it, so
//! going first would leave every tenant's database and roles on the servers (a namespace
//! deletion, or a GitOps prune, removes both at once).

mod controller_common;
mod support;
mod tenant_common;

use controller_common::*;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use servicedb::api::{ServiceDatabase, Tenant};
use support::kube::{TestCluster, eventually};
use support::postgres::server as pg;
use tenant_common::*;

/// A cluster with one PerTenant service `app` and its Tenant `t1` (reclaimPolicy Delete)
/// Ready under a running controller; returns them and t1's database.
async fn one_tenant() -> (TestCluster, kube::Client, String, Running, String) {
    let cluster = TestCluster::start().await;
    let ns = cluster.namespace().to_string();
    let client = cluster.client();
    admin_secret(&client, &ns, "pg-admin", pg().admin_password()).await;
    let server = database_server(&cluster, &ns, "pg-admin").await;
    let controller = start(cluster.instrumented_client().client, fast_config(&ns));
    per_tenant(&client, &ns, "app", json!({"server": server})).await;
    tenant(
        &client,
        &ns,
        "t1",
        json!({"services": ["app"], "reclaimPolicy": "Delete"}),
    )
    .await;
    let t1 = wait_tenant_ready(&client, &ns, "t1").await;
    let database = t1.status.unwrap().databases[0].database.clone().unwrap();
    (cluster, client, ns, controller, database)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_tenant_service_goes_after_its_tenants_have_dropped_their_databases() {
    let (cluster, client, ns, _controller, database) = one_tenant().await;
    assert!(database_exists(&database).await);

    // The service first: it waits while the Tenant still holds a database of it.
    let services: Api<ServiceDatabase> = Api::namespaced(client.clone(), &ns);
    services.delete("app", &Default::default()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert!(
        services.get_opt("app").await.unwrap().is_some(),
        "the service waits for its Tenant"
    );

    // Then the Tenant: its Delete policy drops the database, and the service goes.
    delete_tenant(&client, &ns, "t1").await;
    assert!(
        !database_exists(&database).await,
        "the tenant's database is dropped"
    );
    eventually("the service to go once its Tenant has", || {
        let services = services.clone();
        async move { matches!(services.get_opt("app").await, Ok(None)).then_some(()) }
    })
    .await;
    cluster.cleanup().await;
}

/// Locks that offboarding never reports dropping a tenant database it left alone: one
/// dropped and created again by hand under the same name is someone else's; the Tenant's
/// Delete policy keeps it, and the Event (reason Retained) says so instead of "dropped".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_tenant_leaves_a_replaced_database_alone_and_says_so() {
    let (cluster, client, ns, controller, db) = one_tenant().await;
    // Replaced while no controller looks.
    controller.stop().await;
    let admin = pg().admin_client("postgres").await;
    for sql in [
        format!("DROP DATABASE \"{db}\" WITH (FORCE)"),
        format!("CREATE DATABASE \"{db}\""),
    ] {
        admin
            .batch_execute(&sql)
            .await
            .expect("the admin replaces it");
    }
    let _controller = start(cluster.instrumented_client().client, fast_config(&ns));

    delete_tenant(&client, &ns, "t1").await;
    assert!(database_exists(&db).await, "the replacement is kept");
    let events = events_about(&client, &ns, "t1").await;
    let (_, _, note) = events
        .iter()
        .find(|(_, r, note)| r == "Retained" && note.contains("left database"))
        .unwrap_or_else(|| panic!("an Event says the database was left alone: {events:?}"));
    assert!(note.contains(&db) && note.contains("service app"), "{note}");
    assert!(
        !events.iter().any(|(_, r, _)| r == "Dropped"),
        "nothing claims it was dropped: {events:?}"
    );
    admin
        .batch_execute(&format!("DROP DATABASE \"{db}\""))
        .await
        .expect("the test drops the replacement");
    cluster.cleanup().await;
}

/// Locks offboarding without a status: a Tenant whose status was lost (restored from a
/// backup without it) is deleted with reclaimPolicy Delete; its app Secret's
/// `servicedb.io/database-server` annotation says where the database is, and it is dropped
/// (before, the cleanup took it for never provisioned and left it on the server).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_deleted_after_losing_its_status_still_drops_its_database() {
    let (cluster, client, ns, controller, database) = one_tenant().await;
    assert!(database_exists(&database).await);

    controller.stop().await;
    let tenants: Api<Tenant> = Api::namespaced(client.clone(), &ns);
    tenants
        .patch_status(
            "t1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": null})),
        )
        .await
        .expect("the status is wiped");
    tenants
        .delete("t1", &Default::default())
        .await
        .expect("deleting the Tenant");
    let _controller = start(cluster.instrumented_client().client, fast_config(&ns));
    eventually("the Tenant to be gone", || {
        let tenants = tenants.clone();
        async move { matches!(tenants.get_opt("t1").await, Ok(None)).then_some(()) }
    })
    .await;
    assert!(
        !database_exists(&database).await,
        "the database is dropped by its Tenant's reclaimPolicy"
    );
    cluster.cleanup().await;
}
