//! A reconcile never starts from an object older than the operator's own last status
//! write. The operator's watches are made to lag (as an API server's watch cache does under
//! load): its reflector then holds a Tenant as it was before the Ready status the operator
//! wrote, and every resync in that window would write the same status again.

mod controller_common;
mod support;
mod tenant_common;

use std::time::Duration;

use controller_common::*;
use serde_json::json;
use support::kube::{Fault, TestCluster};
use support::postgres::server as pg;
use tenant_common::{per_tenant, tenant, wait_tenant_ready};

/// Locks "no status write from a stale cache": with the Tenant watch 3 s late and a 1 s
/// resync, the window after the Ready write holds no second write of the Tenant's status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_cache_causes_no_repeated_status_writes() {
    let cluster = TestCluster::start().await;
    let ns = cluster.namespace().to_string();
    let client = cluster.client();
    admin_secret(&client, &ns, "pg-admin", pg().admin_password()).await;
    let server = database_server(&cluster, &ns, "pg-admin").await;
    let operator = cluster.instrumented_client();
    operator.faults.inject(
        Fault::on("watch", &format!("*/namespaces/{ns}/tenants"))
            .watch_lag(Duration::from_secs(3))
            .always(),
    );
    let config = servicedb::controller::Config {
        resync: Duration::from_secs(1),
        ..fast_config(&ns)
    };
    let _controller = start(operator.client.clone(), config);
    per_tenant(&client, &ns, "app", json!({"server": server})).await;
    tenant(&client, &ns, "gym", json!({"services": ["app"]})).await;
    wait_tenant_ready(&client, &ns, "gym").await;
    // The status that made it Ready was just written; the operator's cache shows it 3 s
    // later, after about three resyncs.
    let since = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rewrites: Vec<String> = operator
        .requests
        .writes_sent_after(since)
        .into_iter()
        .filter(|w| w.info.path.ends_with("/tenants/gym/status"))
        .map(|w| w.to_string())
        .collect();
    assert!(
        rewrites.is_empty(),
        "the Tenant's status was written again from a stale cache:\n{}",
        rewrites.join("\n")
    );
}
