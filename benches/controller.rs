//! Benchmark: apply -> Ready through the controller against the in-process fake API server
//! and the tests' real PostgreSQL, for a ServiceDatabase without migrations and for one
//! with 3 migrations (a stand-in for the Job controller runs each Job as soon as it appears,
//! as the `servicedb` binary; its process start is part of the figure).
//! `cargo bench --bench controller` (release; the machine should be quiet).

#[path = "../tests/support/mod.rs"]
#[allow(dead_code)]
mod support;

#[path = "../tests/controller_common/mod.rs"]
mod controller_common;

use std::time::{Duration, Instant};

use controller_common::*;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use serde_json::json;
use support::kube::TestCluster;
use support::postgres::server as pg;

const ROUNDS: usize = 10;

fn summary(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{label:<36} n={:<3} min {:>7.1} ms  median {:>7.1} ms  max {:>7.1} ms",
        samples.len(),
        ms(samples[0]),
        ms(samples[samples.len() / 2]),
        ms(samples[samples.len() - 1]),
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(bench());
}

async fn bench() {
    let cluster = TestCluster::start().await;
    let ns = cluster.namespace().to_string();
    let client = cluster.client();
    admin_secret(&client, &ns, "pg-admin", pg().admin_password()).await;
    let server = database_server(&cluster, &ns, "pg-admin").await;
    let config = servicedb::controller::Config {
        // Only the watches bring reconciles while measuring.
        resync: Duration::from_secs(600),
        ..fast_config(&ns)
    };
    let controller = start(client.clone(), config);
    wait_server_ready(&client, &server).await;
    let runner = cluster
        .job_runner()
        .program("servicedb", env!("CARGO_BIN_EXE_servicedb"));
    let jobs_ns = ns.clone();
    let job_controller = tokio::spawn(async move {
        loop {
            let _ = runner.run_pending(Some(&jobs_ns), None).await;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    // One round to warm up connections and caches, not counted.
    service_database(&client, &ns, "warmup", &server, json!({})).await;
    wait_ready(&client, &ns, "warmup").await;

    let mut plain = Vec::new();
    for i in 0..ROUNDS {
        let name = format!("plain-{i}");
        let started = Instant::now();
        service_database(&client, &ns, &name, &server, json!({})).await;
        wait_ready(&client, &ns, &name).await;
        plain.push(started.elapsed());
    }

    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let mut migrated = Vec::new();
    for i in 0..ROUNDS {
        let name = format!("migrated-{i}");
        let cm = format!("{name}-migrations");
        let started = Instant::now();
        apply(
            &configmaps,
            &cm,
            json!({
                "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": cm},
                "data": {
                    "V1__items.sql": "CREATE TABLE items (id int PRIMARY KEY, name text);",
                    "V2__price.sql": "ALTER TABLE items ADD COLUMN price numeric;",
                    "V3__orders.sql": "CREATE TABLE orders (id int PRIMARY KEY, item int REFERENCES items);",
                },
            }),
        )
        .await;
        service_database(
            &client,
            &ns,
            &name,
            &server,
            json!({"migrations": {"configMaps": [cm]}}),
        )
        .await;
        let sdb = wait_ready(&client, &ns, &name).await;
        migrated.push(started.elapsed());
        let version = sdb
            .status
            .and_then(|s| s.schema)
            .and_then(|s| s.applied_version);
        assert_eq!(version.as_deref(), Some("3"));
    }
    job_controller.abort();
    controller.stop().await;
    println!("apply -> Ready through servicedb run (fake API server, real PostgreSQL):");
    summary("ServiceDatabase, no migrations", plain);
    summary("ServiceDatabase, 3 migrations (Job)", migrated);
}
