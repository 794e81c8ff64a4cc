//! Tenant placement through the controller: least loaded by share of maxDatabases, pins,
//! never moving (also across a restart), NoCapacity, never on another installation's
//! servers. Two PostgreSQL servers of its own.

mod controller_common;
mod support;
mod tenant_common;

use controller_common::*;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use servicedb::api::conditions::{find_condition, types};
use servicedb::api::{DATABASE_SERVER_ANNOTATION, DatabaseServer, Tenant};
use support::kube::{TestCluster, wait_for};
use tenant_common::*;

/// Locks placement as specified: least databases first (by share of maxDatabases), the
/// Tenant's pin respected, a placed tenant never moving (also across a controller
/// restart), and a clear NoCapacity condition when no server has room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_are_placed_by_load_and_pin_and_told_when_there_is_no_room() {
    let cluster = TestCluster::start().await;
    let ns = cluster.namespace().to_string();
    let client = cluster.client();
    let (pg_a, pg_b) = (
        support::postgres::private_server(),
        support::postgres::private_server(),
    );
    let a = own_server(&cluster, &ns, &pg_a, 2).await;
    let b = own_server(&cluster, &ns, &pg_b, 4).await;
    // Emptier than both and without a limit, but another installation's (as other tests'
    // servers are on a shared real cluster): never placed on.
    let theirs = foreign_server(&cluster, &pg_b).await;
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
    // Still a candidate by its status (Ready, room), so only the filter kept it out.
    let servers: Api<DatabaseServer> = Api::all(client.clone());
    assert!(
        server_is_ready(&servers, &theirs).await,
        "{theirs} stayed Ready"
    );
    let all: Api<Tenant> = Api::namespaced(client.clone(), &ns);
    for t in all.list(&Default::default()).await.unwrap() {
        assert!(
            !placed(&t).values().any(|s| s == &theirs),
            "{} placed on another installation's server",
            t.metadata.name.unwrap_or_default()
        );
    }

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

/// Locks the double-placement guard: a Tenant whose status was lost (restored from a
/// backup without status) while the server holding its database is down is not placed
/// again on another server with room; its app Secret's `servicedb.io/database-server`
/// annotation says where the database is. Without the annotation, it waits for the server
/// that could not be checked rather than placing. When the server is back, the status
/// records it again and the Secret never changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_whose_status_was_lost_is_not_placed_again_while_its_server_is_down() {
    let cluster = TestCluster::start().await;
    let ns = cluster.namespace().to_string();
    let client = cluster.client();
    let (pg_a, pg_b) = (
        support::postgres::server(),
        &support::postgres::private_server(),
    );
    let a = own_server(&cluster, &ns, pg_a, 10).await;
    let _controller = start(cluster.instrumented_client().client, fast_config(&ns));
    wait_server_ready(&client, &a).await;
    per_tenant(&client, &ns, "app", json!({})).await;
    tenant(&client, &ns, "t1", json!({"services": ["app"]})).await;
    let t1 = wait_tenant_ready(&client, &ns, "t1").await;
    assert_eq!(placed(&t1).get("app"), Some(&a));
    let db = t1.status.unwrap().databases[0].database.clone().unwrap();
    // A second tenant's placement makes this process forget t1's (its status shows it),
    // as a restarted operator would have.
    tenant(&client, &ns, "t2", json!({"services": ["app"]})).await;
    wait_tenant_ready(&client, &ns, "t2").await;
    let secret = "app-db-t1";
    let before = secret_data(&client, &ns, secret).await.unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let annotations = secrets.get(secret).await.unwrap().metadata.annotations;
    assert_eq!(
        annotations
            .unwrap_or_default()
            .get(DATABASE_SERVER_ANNOTATION),
        Some(&a),
        "the Secret records the server"
    );

    // a goes down (its admin can no longer log in); b is Ready with room.
    let admin = |password: &str| {
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": format!("{a}-admin"), "namespace": ns},
            "stringData": {"username": pg_a.admin_user(), "password": password},
        })
    };
    apply(&secrets, &format!("{a}-admin"), admin("wrong")).await;
    let servers: Api<DatabaseServer> = Api::all(client.clone());
    wait_for(&servers, &a, "a not Ready", |o: Option<&DatabaseServer>| {
        o.and_then(|d| d.status.as_ref())
            .and_then(|s| find_condition(&s.conditions, types::READY))
            .is_some_and(|c| c.status == "False")
    })
    .await;
    let b = own_server(&cluster, &ns, pg_b, 10).await;
    wait_server_ready(&client, &b).await;

    let tenants: Api<Tenant> = Api::namespaced(client.clone(), &ns);
    let wipe = |tenants: Api<Tenant>| async move {
        let ops = json!([{"op": "replace", "path": "/status", "value": {}}]);
        tenants
            .patch_status(
                "t1",
                &PatchParams::default(),
                &Patch::Json::<()>(serde_json::from_value(ops).unwrap()),
            )
            .await
            .unwrap();
    };
    wipe(tenants.clone()).await;
    let waiting = wait_tenant(&client, &ns, "t1", "t1 to record a server again", |t| {
        !placed(t).is_empty()
    })
    .await;
    assert_eq!(placed(&waiting).get("app"), Some(&a), "not placed on b");
    assert!(!tenant_ready(&waiting));
    assert!(!exists_on(pg_b, &db).await, "no second database on b");
    assert_eq!(secret_data(&client, &ns, secret).await.unwrap(), before);

    // Without the annotation (a Secret written before servicedb recorded it), the server
    // that could not be checked is waited for.
    secrets
        .patch(
            secret,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {DATABASE_SERVER_ANNOTATION: null}}})),
        )
        .await
        .unwrap();
    wipe(tenants.clone()).await;
    let waiting = wait_tenant(&client, &ns, "t1", "t1 to wait for a", move |t| {
        tenant_condition(t, types::READY)
            .is_some_and(|(_, _, m)| m.contains("could not be checked"))
    })
    .await;
    let (_, reason, message) = tenant_condition(&waiting, types::READY).unwrap();
    assert!(
        message.contains(&format!("DatabaseServer {a} (")),
        "{reason}: {message}"
    );
    assert!(placed(&waiting).is_empty());
    assert!(!exists_on(pg_b, &db).await, "no second database on b");

    // a is back: found in its catalog, Ready there, the Secret unchanged.
    apply(
        &secrets,
        &format!("{a}-admin"),
        admin(pg_a.admin_password()),
    )
    .await;
    let back = wait_tenant_ready(&client, &ns, "t1").await;
    assert_eq!(placed(&back).get("app"), Some(&a));
    assert_eq!(secret_data(&client, &ns, secret).await.unwrap(), before);
    assert!(!exists_on(pg_b, &db).await);
}
