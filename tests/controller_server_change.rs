//! A database never moves: once a ServiceDatabase is provisioned on a DatabaseServer,
//! pointing `spec.server` at another one is refused (Stalled, ServerChanged) and nothing is
//! created there, nor is the Secret repointed; naming the old server again recovers.

mod controller_common;
mod support;
mod tenant_common;

use controller_common::*;
use serde_json::json;
use servicedb::api::conditions::types;
use support::kube::TestCluster;
use support::postgres::server as pg;
use tenant_common::{exists_on, own_server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_server_is_refused_and_the_database_stays_where_it_is() {
    let cluster = TestCluster::start().await;
    let ns = cluster.namespace().to_string();
    let client = cluster.client();
    admin_secret(&client, &ns, "pg-admin", pg().admin_password()).await;
    let old = database_server(&cluster, &ns, "pg-admin").await;
    let other = support::postgres::private_server();
    let new = own_server(&cluster, &ns, &other, 10).await;
    let _controller = start(cluster.instrumented_client().client, fast_config(&ns));
    wait_server_ready(&client, &new).await;

    service_database(&client, &ns, "orders", &old, json!({})).await;
    let database = wait_ready(&client, &ns, "orders")
        .await
        .status
        .unwrap()
        .database
        .unwrap();
    let before = secret_data(&client, &ns, "orders-db").await.unwrap();

    service_database(&client, &ns, "orders", &new, json!({})).await;
    let stalled = wait_condition(
        &client,
        &ns,
        "orders",
        types::STALLED,
        "True",
        "ServerChanged",
    )
    .await;
    let (_, _, message) = condition(&stalled, types::STALLED).unwrap();
    assert!(
        message.contains(&format!("lives on DatabaseServer {old}")),
        "{message}"
    );
    wait_event(&client, &ns, "orders", "Warning", "ServerChanged").await;
    assert!(
        !exists_on(&other, &database).await,
        "nothing is created on the new server"
    );
    let after = secret_data(&client, &ns, "orders-db").await.unwrap();
    assert_eq!(after.get("host"), before.get("host"));
    assert_eq!(after.get("port"), before.get("port"));
    assert!(
        login(&after).await.is_ok(),
        "the Secret still logs in to its data"
    );

    service_database(&client, &ns, "orders", &old, json!({})).await;
    wait_ready(&client, &ns, "orders").await;
    assert!(database_exists(&database).await);
    cluster.cleanup().await;
}
