//! Steady state: once everything is Ready, resyncs read but never write. Alone in its test
//! binary, so no other test's database changes the server's databaseCount meanwhile.

mod controller_common;
mod support;

use std::time::Duration;

use controller_common::*;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use serde_json::json;
use servicedb::api::DatabaseServer;
use servicedb::controller::Config;
use support::kube::{TestCluster, eventually};
use support::postgres::server as pg;

/// Locks "no status-patch loops, no Secret rewrites, no Jobs, no Events at steady state",
/// for a ServiceDatabase with migrations (its Job done): over
/// five resync periods (1s each) the operator's client makes no write at all while it
/// keeps checking (its reads go on), and PostgreSQL sees no DDL or grant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_api_writes_at_steady_state_over_several_resyncs() {
    let cluster = TestCluster::start().await;
    let ns = cluster.namespace().to_string();
    let client = cluster.client();
    admin_secret(&client, &ns, "pg-admin", pg().admin_password()).await;
    let server = database_server(&cluster, &ns, "pg-admin").await;
    let operator = cluster.instrumented_client();
    let config = Config {
        resync: Duration::from_secs(1),
        ..fast_config(&ns)
    };
    let _controller = start(operator.client.clone(), config);
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let migrations = json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "orders-migrations"},
        "data": {"V1__items.sql": "CREATE TABLE items (id int);", "V2__more.sql": "ALTER TABLE items ADD COLUMN name text;"},
    });
    apply(&configmaps, "orders-migrations", migrations).await;
    let extra = json!({
        "roles": [{"name": "reporting", "access": "read"}],
        "secret": {"template": {"JDBC": "jdbc:postgresql://{{ host }}:{{ port }}/{{ database }}"}},
        "migrations": {"configMaps": ["orders-migrations"]},
    });
    service_database(&client, &ns, "orders", &server, extra).await;
    let run = cluster
        .job_runner()
        .program("servicedb", env!("CARGO_BIN_EXE_servicedb"))
        .run_next(Some(&ns), Some("servicedb.io/service-database=orders"))
        .await
        .expect("running the migration Job");
    assert!(run.succeeded, "{}", run.stderr);
    let sdb = wait_ready(&client, &ns, "orders").await;
    let schema = sdb.status.and_then(|s| s.schema).expect("status.schema");
    assert_eq!(schema.applied_version.as_deref(), Some("2"));
    wait_server_ready(&client, &server).await;
    let servers: Api<DatabaseServer> = Api::all(client.clone());
    eventually("databaseCount to settle at 1", || {
        let servers = servers.clone();
        let server = server.clone();
        async move {
            let d = servers.get(&server).await.ok()?;
            (d.status?.database_count == Some(1)).then_some(())
        }
    })
    .await;
    // Writes set off by the last change have happened.
    let mark = operator
        .requests
        .settle(Duration::from_secs(2), |w| {
            w.info.path.contains(&ns) || w.info.path.contains(&server)
        })
        .await;
    let log = pg().log_len();
    tokio::time::sleep(Duration::from_secs(5)).await;
    // On a shared real cluster the DatabaseServer controller also looks after other tests'
    // servers; only writes about this test's objects count.
    let writes: Vec<_> = operator
        .requests
        .writes_since(mark)
        .into_iter()
        .filter(|w| w.info.path.contains(&ns) || w.info.path.contains(&server))
        .collect();
    assert!(
        writes.is_empty(),
        "writes at steady state:\n{}",
        writes
            .iter()
            .map(|w| w.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
    let reads = operator
        .requests
        .since(mark)
        .into_iter()
        .filter(|r| r.info.verb == "get" && r.info.path.ends_with("/secrets/orders-db"))
        .count();
    assert!(
        // A 1 s resync counts from the end of each reconcile: at least two fit in 5 s
        // even when a loaded reconcile is slow.
        reads >= 2,
        "the resource was resynced ({reads} reads of its Secret)"
    );
    let job_lists = operator
        .requests
        .since(mark)
        .into_iter()
        .filter(|r| r.info.verb == "list" && r.info.path.contains("/jobs"))
        .count();
    assert!(
        // The last resync may still be on its way from the Secrets to the Jobs.
        job_lists + 1 >= reads,
        "its Jobs were looked at ({job_lists} lists, {reads} reads of its Secret)"
    );
    let statements = pg().log_since(log);
    for word in [
        "ALTER ROLE",
        "GRANT ",
        "CREATE ROLE",
        "CREATE DATABASE",
        "CREATE TABLE",
        "ALTER TABLE",
    ] {
        assert!(
            !statements.contains(word),
            "{word} at steady state:\n{statements}"
        );
    }
}
