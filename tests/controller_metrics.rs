//! `/metrics`, `/healthz` and `/readyz` end to end: the controller in process against the
//! test API server and PostgreSQL, its endpoint served on a free port and scraped over HTTP.

mod controller_common;
mod support;

use std::collections::BTreeMap;

use controller_common::*;
use serde_json::json;
use servicedb::controller::health;
use support::kube::{TestCluster, eventually};
use support::postgres::server as pg;

/// One sample line of the Prometheus text format: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the Prometheus text format (0.0.4) strictly: every line is a `# HELP`/`# TYPE`
/// comment or a sample, every sample's family was declared by `# TYPE`.
fn parse(text: &str) -> Vec<Sample> {
    let name_re = regex::Regex::new(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$").unwrap();
    let label_re = regex::Regex::new(r#"^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"$"#).unwrap();
    let mut families = Vec::<String>::new();
    let mut samples = vec![];
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            families.push(name.to_string());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        let value: f64 = value.parse().unwrap_or_else(|e| panic!("{e}: {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let inner = rest.strip_suffix('}').unwrap_or_else(|| panic!("{line}"));
                let labels = split_labels(inner)
                    .into_iter()
                    .map(|pair| {
                        let c = label_re
                            .captures(&pair)
                            .unwrap_or_else(|| panic!("label {pair} in {line}"));
                        (c[1].to_string(), c[2].to_string())
                    })
                    .collect();
                (name, labels)
            }
            None => (series, BTreeMap::new()),
        };
        assert!(name_re.is_match(name), "{line}");
        assert!(
            families.iter().any(|f| name == f
                || ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|s| name.strip_suffix(s) == Some(f))),
            "{name} has no # TYPE"
        );
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    samples
}

/// `a="x",b="y,z"` into its pairs (commas inside quotes stay).
fn split_labels(inner: &str) -> Vec<String> {
    let (mut pairs, mut current, mut quoted, mut escaped) = (vec![], String::new(), false, false);
    for c in inner.chars() {
        match c {
            ',' if !quoted => pairs.push(std::mem::take(&mut current)),
            _ => {
                if c == '"' && !escaped {
                    quoted = !quoted;
                }
                escaped = c == '\\' && !escaped;
                current.push(c);
            }
        }
    }
    if !current.is_empty() {
        pairs.push(current);
    }
    pairs
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

/// `GET path` on `addr` over HTTP/1.1: status, Content-Type, body.
async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status code");
    let content_type = head
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_default();
    (status, content_type, body.to_string())
}

async fn scrape(addr: std::net::SocketAddr) -> Vec<Sample> {
    let (status, content_type, body) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    parse(&body)
}

/// Locks what `/metrics` reports after an end-to-end run: a DatabaseServer and a
/// ServiceDatabase reconciled to Ready count as successful reconciles with durations, the
/// database has its schema series (nothing pending without migrations), the replica says
/// it leads; and once the ServiceDatabase is deleted its series are gone. The probes answer
/// on the same port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_after_an_end_to_end_run() {
    let cluster = TestCluster::start().await;
    let ns = cluster.namespace().to_string();
    let client = cluster.client();
    admin_secret(&client, &ns, "pg-admin", pg().admin_password()).await;
    let server = database_server(&cluster, &ns, "pg-admin").await;
    let config = fast_config(&ns);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(health::serve_on(
        listener,
        config.health.clone(),
        config.metrics.clone(),
        async move {
            let _ = stop_rx.await;
        },
    ));
    let controller = start(cluster.instrumented_client().client, config);

    service_database(&client, &ns, "orders", &server, json!({})).await;
    let sdb = wait_ready(&client, &ns, "orders").await;
    wait_server_ready(&client, &server).await;
    let database = sdb.status.unwrap().database.unwrap();
    let ours = [("namespace", ns.as_str()), ("name", "orders")];
    // The status write that made it Ready is seen by the next reconcile.
    let samples = eventually("the schema series of orders", || async {
        let samples = scrape(addr).await;
        value(&samples, "servicedb_schema_pending", &ours).map(|_| samples)
    })
    .await;
    let sdb_kind = [("kind", "ServiceDatabase")];
    let success = [("kind", "ServiceDatabase"), ("result", "success")];
    assert!(value(&samples, "servicedb_reconcile_total", &success).unwrap() >= 1.0);
    let server_success = [("kind", "DatabaseServer"), ("result", "success")];
    assert!(value(&samples, "servicedb_reconcile_total", &server_success).unwrap() >= 1.0);
    let count = value(
        &samples,
        "servicedb_reconcile_duration_seconds_count",
        &sdb_kind,
    );
    assert!(count.unwrap() >= 1.0);
    let sum = value(
        &samples,
        "servicedb_reconcile_duration_seconds_sum",
        &sdb_kind,
    );
    assert!(sum.unwrap() > 0.0);
    let inf = [("kind", "ServiceDatabase"), ("le", "+Inf")];
    assert_eq!(
        value(
            &samples,
            "servicedb_reconcile_duration_seconds_bucket",
            &inf
        ),
        count
    );
    let pending = [
        ("namespace", ns.as_str()),
        ("name", "orders"),
        ("tenant", ""),
        ("database", database.as_str()),
    ];
    assert_eq!(
        value(&samples, "servicedb_schema_pending", &pending),
        Some(0.0)
    );
    assert_eq!(value(&samples, "servicedb_leader", &[]), Some(1.0));
    assert_eq!(
        value(&samples, "servicedb_resyncs_overdue", &[("kind", "Tenant")]),
        Some(0.0),
        "no Tenant waits for its drift check"
    );
    assert_eq!(
        value(
            &samples,
            "servicedb_reconciles_waiting",
            &[("kind", "Tenant")]
        ),
        Some(0.0),
        "no Tenant reconcile waits for a slot"
    );

    for (path, body) in [("/healthz", "ok\n"), ("/readyz", "ready\n")] {
        let (status, _, text) = get(addr, path).await;
        assert_eq!((status, text.as_str()), (200, body), "GET {path}");
    }

    delete_sdb(&client, &ns, "orders").await;
    wait_gone(&client, &ns, "orders").await;
    eventually("the series of orders to go", || async {
        let samples = scrape(addr).await;
        let left: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.labels.get("name").map(String::as_str) == Some("orders"))
            .collect();
        left.is_empty().then_some(())
    })
    .await;

    controller.stop().await;
    let _ = stop_tx.send(());
    serving.await.unwrap().unwrap();
}
