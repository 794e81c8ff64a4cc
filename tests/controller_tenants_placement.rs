//! Tenant placement through the controller: least loaded by share of maxDatabases, pins,
//! never moving (also across a restart), NoCapacity. Two PostgreSQL servers of its own.

mod controller_common;
mod support;
mod tenant_common;

use controller_common::*;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use servicedb::api::conditions::types;
use servicedb::api::{DatabaseServer, Tenant};
use support::kube::TestCluster;
use tenant_common::*;

/// Locks placement as specified: least databases first (by share of maxDatabases), the
/// Tenant's pin respected, a placed tenant never moving (also across a controller
/// restart), and a clear NoCapacity condition when no server has room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_are_placed_by_load_and_pin_and_told_when_there_is_no_room() {
    let cluster = TestCluster::start().await;
    // Unpinned placement looks at every DatabaseServer of the cluster, and a shared real
    // cluster holds other tests' servers too.
    if cluster
        .fake_only("placement over exactly this test's DatabaseServers")
        .is_none()
    {
        return;
    }
    let ns = cluster.namespace().to_string();
    let client = cluster.client();
    let (pg_a, pg_b) = (
        support::postgres::private_server(),
        support::postgres::private_server(),
    );
    let a = own_server(&cluster, &ns, &pg_a, 2).await;
    let b = own_server(&cluster, &ns, &pg_b, 4).await;
    let controller = start(cluster.instrumented_client().client, fast_config(&ns));
    wait_server_ready(&client, &a).await;
    wait_server_ready(&client, &b).await;
    per_tenant(&client, &ns, "app", json!({})).await;
    let where_ = |t: &Tenant| placed(t).get("app").cloned().unwrap();

    // Two at once: whichever goes first, the other goes to the emptier server.
    tenant(&client, &ns, "t1", json!({"services": ["app"]})).await;
    tenant(&client, &ns, "t2", json!({"services": ["app"]})).await;
    let t1 = where_(&wait_tenant_ready(&client, &ns, "t1").await);
    let t2 = where_(&wait_tenant_ready(&client, &ns, "t2").await);
    assert_ne!(t1, t2, "one on each server");
    // a 1/2, b 1/4: b.
    tenant(&client, &ns, "t3", json!({"services": ["app"]})).await;
    assert_eq!(where_(&wait_tenant_ready(&client, &ns, "t3").await), b);
    // Pinned to a (its last place).
    tenant(&client, &ns, "p", json!({"services": ["app"], "server": a})).await;
    assert_eq!(where_(&wait_tenant_ready(&client, &ns, "p").await), a);
    // a is full: b, until b is full too.
    tenant(&client, &ns, "t4", json!({"services": ["app"]})).await;
    assert_eq!(where_(&wait_tenant_ready(&client, &ns, "t4").await), b);
    tenant(&client, &ns, "t5", json!({"services": ["app"]})).await;
    assert_eq!(where_(&wait_tenant_ready(&client, &ns, "t5").await), b);
    tenant(&client, &ns, "t6", json!({"services": ["app"]})).await;
    let full = wait_tenant(&client, &ns, "t6", "NoCapacity", |t| {
        tenant_condition(t, types::STALLED)
            .is_some_and(|(s, r, _)| s == "True" && r == "NoCapacity")
    })
    .await;
    let (_, _, message) = tenant_condition(&full, types::READY).unwrap();
    assert!(
        message.contains("app: no DatabaseServer has room")
            && message.contains("every DatabaseServer is at its maxDatabases"),
        "{message}"
    );
    assert!(placed(&full).is_empty());

    // A restart keeps every placement, even where the load would now say otherwise.
    controller.stop().await;
    let api: Api<DatabaseServer> = Api::all(client.clone());
    api.patch(
        &a,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"maxDatabases": 100}})),
    )
    .await
    .unwrap();
    let _controller = start(cluster.instrumented_client().client, fast_config(&ns));
    // Room on a again: t6 goes there; nobody else moved.
    let t6 = wait_tenant_ready(&client, &ns, "t6").await;
    assert_eq!(where_(&t6), a);
    let tenants: Api<Tenant> = Api::namespaced(client.clone(), &ns);
    for (name, server) in [
        ("t1", &t1),
        ("t2", &t2),
        ("t3", &b),
        ("p", &a),
        ("t4", &b),
        ("t5", &b),
    ] {
        let t = tenants.get(name).await.unwrap();
        assert_eq!(&where_(&t), server, "{name} stayed");
        // The database really is there, and only there.
        let db = t.status.unwrap().databases[0].database.clone().unwrap();
        let (here, there) = if server == &a {
            (&pg_a, &pg_b)
        } else {
            (&pg_b, &pg_a)
        };
        assert!(exists_on(here, &db).await, "{db} on {server}");
        assert!(!exists_on(there, &db).await, "{db} only on {server}");
    }
}
