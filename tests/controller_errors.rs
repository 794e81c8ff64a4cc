//! The controllers under failure: a wrong admin password, API errors injected into the
//! operator's client, an unreachable server during deletion, and a controller killed in the
//! middle of its work.

mod controller_common;
mod support;

use std::time::Duration;

use controller_common::*;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use serde_json::json;
use servicedb::api::conditions::{find_condition, types};
use servicedb::api::{DatabaseServer, ServiceDatabase};
use support::kube::{Fault, TestCluster, eventually, wait_for};
use support::postgres::server as pg;

fn ready_condition(d: &DatabaseServer) -> Option<(String, String, String)> {
    d.status
        .as_ref()
        .and_then(|s| find_condition(&s.conditions, types::READY))
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Locks recovery without a restart: with a wrong admin password the DatabaseServer is
/// Ready=False (Stalled, with a message naming the Secret to fix) and the ServiceDatabase
/// waits with no Secret; fixing the Secret makes both Ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_admin_password_waits_and_fixing_the_secret_recovers_both() {
    let cluster = TestCluster::start().await;
    let ns = cluster.namespace().to_string();
    let client = cluster.client();
    admin_secret(&client, &ns, "pg-admin", "not-the-password").await;
    let server = database_server(&cluster, &ns, "pg-admin").await;
    let _controller = start(cluster.instrumented_client().client, fast_config(&ns));
    service_database(&client, &ns, "orders", &server, json!({})).await;

    let servers: Api<DatabaseServer> = Api::all(client.clone());
    let dbs = wait_for(
        &servers,
        &server,
        "Ready=False",
        |o: Option<&DatabaseServer>| {
            o.and_then(ready_condition)
                .is_some_and(|(s, _, _)| s == "False")
        },
    )
    .await
    .unwrap();
    let (_, reason, message) = ready_condition(&dbs).unwrap();
    assert_eq!(reason, "ConnectionFailed");
    assert!(
        message.contains(&format!(
            "fix the username and password in Secret {ns}/pg-admin"
        )),
        "{message}"
    );
    let stalled = find_condition(&dbs.status.as_ref().unwrap().conditions, types::STALLED);
    assert_eq!(stalled.map(|c| c.status.as_str()), Some("True"));
    let sdb = wait_condition(
        &client,
        &ns,
        "orders",
        types::READY,
        "False",
        "ServerNotReady",
    )
    .await;
    assert_eq!(condition(&sdb, types::RECONCILING).unwrap().0, "True");
    assert!(secret_data(&client, &ns, "orders-db").await.is_none());

    admin_secret(&client, &ns, "pg-admin", pg().admin_password()).await;
    wait_server_ready(&client, &server).await;
    wait_ready(&client, &ns, "orders").await;
    let app = secret_data(&client, &ns, "orders-db").await.unwrap();
    login(&app).await.expect("the app Secret logs in");
}

/// Locks convergence through API errors: 500s on Secret and status writes and 409s on the
/// finalizer patch reach error_policy, which backs off and retries until Ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_500_and_409_responses_converge() {
    let cluster = TestCluster::start().await;
    let ns = cluster.namespace().to_string();
    let client = cluster.client();
    admin_secret(&client, &ns, "pg-admin", pg().admin_password()).await;
    let server = database_server(&cluster, &ns, "pg-admin").await;
    let operator = cluster.instrumented_client();
    let f = &operator.faults;
    f.inject(
        Fault::on("patch", "*/servicedatabases/orders")
            .status(409)
            .times(2),
    );
    f.inject(Fault::on("patch", "*/secrets/*").status(500).times(2));
    f.inject(
        Fault::on("patch", "*/servicedatabases/orders/status")
            .status(500)
            .times(1),
    );
    f.inject(Fault::on("get", "*/secrets/orders-db").status(500).times(1));
    let _controller = start(operator.client.clone(), fast_config(&ns));
    service_database(&client, &ns, "orders", &server, json!({})).await;
    wait_ready(&client, &ns, "orders").await;
    assert_eq!(f.injected(), 6, "every injected fault was hit");
    let app = secret_data(&client, &ns, "orders-db").await.unwrap();
    login(&app).await.expect("the app Secret logs in");
    let sdbs: Api<ServiceDatabase> = Api::namespaced(client.clone(), &ns);
    let sdb = sdbs.get("orders").await.unwrap();
    assert_eq!(sdb.finalizers(), ["servicedb.io/finalizer"]);
}

/// Locks the finalizer bound: with reclaimPolicy Delete and a server that never answers,
/// deletion waits for `finalizer_timeout`, then the finalizer goes with a Warning Event
/// that says what was left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_never_holds_the_finalizer_forever() {
    let cluster = TestCluster::start().await;
    let ns = cluster.namespace().to_string();
    let client = cluster.client();
    admin_secret(&client, &ns, "pg-admin", pg().admin_password()).await;
    let closed = servicedb::embedded::free_port().unwrap();
    let server = database_server_at(&cluster, &ns, "pg-admin", closed).await;
    let config = servicedb::controller::Config {
        finalizer_timeout: Duration::from_secs(3),
        ..fast_config(&ns)
    };
    let _controller = start(cluster.instrumented_client().client, config);
    service_database(
        &client,
        &ns,
        "orders",
        &server,
        json!({"reclaimPolicy": "Delete"}),
    )
    .await;
    let sdb = wait_condition(
        &client,
        &ns,
        "orders",
        types::READY,
        "False",
        "ServerNotReady",
    )
    .await;
    assert_eq!(sdb.finalizers(), ["servicedb.io/finalizer"]);
    // The ServiceDatabase waits on a server not checked yet too: the server's own
    // verdict comes from its reconcile.
    let servers: Api<DatabaseServer> = Api::all(client.clone());
    let dbs = wait_for(
        &servers,
        &server,
        "the server unreachable",
        |o: Option<&DatabaseServer>| {
            o.and_then(ready_condition)
                .is_some_and(|(status, _, message)| {
                    status == "False" && message.contains("cannot reach")
                })
        },
    )
    .await
    .unwrap();
    let (_, _, message) = ready_condition(&dbs).unwrap();
    assert!(message.contains("cannot reach"), "{message}");

    delete_sdb(&client, &ns, "orders").await;
    wait_gone(&client, &ns, "orders").await;
    let events = events_about(&client, &ns, "orders").await;
    let timeout = events
        .iter()
        .find(|(t, r, _)| t == "Warning" && r == "FinalizerTimeout")
        .unwrap_or_else(|| panic!("{events:?}"));
    assert!(
        timeout.2.contains("were left on the server"),
        "{}",
        timeout.2
    );
}

/// Locks crash safety: a controller killed while it is working (here, after it wrote the
/// app Secret and while its write of the migrator Secret hangs, so no role has a password
/// yet) and a new one started converge to one Ready resource with one finalizer, one set
/// of Secrets whose passwords log in (the app's unchanged: the Secret is the source of
/// truth), and one catalog claim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_killed_midway_and_restarted_converges_without_duplicates() {
    let cluster = TestCluster::start().await;
    let ns = cluster.namespace().to_string();
    let client = cluster.client();
    admin_secret(&client, &ns, "pg-admin", pg().admin_password()).await;
    let server = database_server(&cluster, &ns, "pg-admin").await;
    let first = cluster.instrumented_client();
    first.faults.inject(
        Fault::on("patch", "*/secrets/orders-migrator")
            .delay(Duration::from_secs(3600))
            .always(),
    );
    let controller = start(first.client.clone(), fast_config(&ns));
    service_database(&client, &ns, "orders", &server, json!({})).await;
    let written = eventually("the first controller to write the app Secret", || {
        let client = client.clone();
        let ns = ns.clone();
        async move { secret_data(&client, &ns, "orders-db").await }
    })
    .await;
    controller.kill();
    assert!(secret_data(&client, &ns, "orders-migrator").await.is_none());

    let _second = start(cluster.instrumented_client().client, fast_config(&ns));
    let sdb = wait_ready(&client, &ns, "orders").await;
    assert_eq!(sdb.finalizers(), ["servicedb.io/finalizer"]);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let ours = secrets
        .list(&ListParams::default().labels("servicedb.io/service-database=orders"))
        .await
        .unwrap();
    let mut names: Vec<String> = ours.items.iter().map(|s| s.name_any()).collect();
    names.sort();
    assert_eq!(names, ["orders-db", "orders-migrator"]);
    for name in &names {
        let data = secret_data(&client, &ns, name).await.unwrap();
        login(&data)
            .await
            .unwrap_or_else(|e| panic!("{name} logs in: {e}"));
    }
    let app = secret_data(&client, &ns, "orders-db").await.unwrap();
    assert_eq!(app["password"], written["password"]);
    let db = sdb.status.unwrap().database.unwrap();
    let claims: i64 = pg()
        .superuser_client("servicedb")
        .await
        .query_one(
            "SELECT count(*) FROM servicedb.databases WHERE database_name = $1",
            &[&db],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(claims, 1);
}
