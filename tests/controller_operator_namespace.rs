//! Admin Secrets live in the operator's namespace: a DatabaseServer pointing elsewhere is
//! refused with a clear status, and two installations in two namespaces (each with its own
//! servers' Secrets) never overwrite each other's reports.

mod controller_common;
mod support;

use std::time::Duration;

use controller_common::*;
use kube::api::Api;
use servicedb::api::DatabaseServer;
use servicedb::api::conditions::{find_condition, types};
use servicedb::controller::Config;
use support::kube::{TestCluster, wait_for};
use support::postgres::server as pg;

fn ready(d: &DatabaseServer) -> Option<(String, String, String)> {
    let c = find_condition(&d.status.as_ref()?.conditions, types::READY)?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

async fn wait_reason(
    client: &kube::Client,
    name: &str,
    status: &'static str,
    reason: &'static str,
) -> String {
    let api: Api<DatabaseServer> = Api::all(client.clone());
    let d = wait_for(&api, name, reason, move |o: Option<&DatabaseServer>| {
        o.and_then(ready)
            .is_some_and(|(s, r, _)| s == status && r == reason)
    })
    .await
    .unwrap();
    ready(&d).unwrap().2
}

/// Locks both halves: installation A (namespace `a`) and B (namespace `b`) each report their
/// own server Ready, the server whose Secret is in a namespace with no operator is Stalled
/// (AdminSecretInvalid, naming where the Secret must be), and while A's server is failing B
/// leaves A's report alone: no status write from B about it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_installation_reports_only_its_own_servers() {
    let cluster = TestCluster::start().await;
    let ns = cluster.namespace().to_string();
    let a = cluster.create_namespace("sdbopa").await;
    let b = cluster.create_namespace("sdbopb").await;
    let client = cluster.client();
    for op in [&a, &b, &ns] {
        admin_secret(&client, op, "pg-admin", pg().admin_password()).await;
    }
    let server_a = database_server(&cluster, &a, "pg-admin").await;
    let server_b = database_server(&cluster, &b, "pg-admin").await;
    let nowhere = database_server(&cluster, &ns, "pg-admin").await;
    let op_a = cluster.instrumented_client();
    let op_b = cluster.instrumented_client();
    let config = |op: &str| Config {
        operator_namespace: Some(op.to_string()),
        ..fast_config(&ns)
    };
    let _a = start(op_a.client.clone(), config(&a));
    let _b = start(op_b.client.clone(), config(&b));

    wait_server_ready(&client, &server_a).await;
    wait_server_ready(&client, &server_b).await;
    let message = wait_reason(&client, &nowhere, "False", "AdminSecretInvalid").await;
    assert!(
        message.contains(&format!(
            "Secret {ns}/pg-admin is outside the operator's namespace"
        )),
        "{message}"
    );

    // A's server fails; A says so, and B does not argue.
    admin_secret(&client, &a, "pg-admin", "not-the-password").await;
    wait_reason(&client, &server_a, "False", "ConnectionFailed").await;
    let mark = op_b.requests.mark();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let b_writes: Vec<String> = op_b
        .requests
        .writes_since(mark)
        .iter()
        .filter(|w| w.info.path.contains(&server_a))
        .map(|w| w.to_string())
        .collect();
    assert!(
        b_writes.is_empty(),
        "B wrote about A's server: {b_writes:?}"
    );
    let servers: Api<DatabaseServer> = Api::all(client.clone());
    let (_, reason, _) = ready(&servers.get(&server_a).await.unwrap()).unwrap();
    assert_eq!(reason, "ConnectionFailed");
}
