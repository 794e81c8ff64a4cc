//! `servicedb run` as a process: what it says without a cluster or without the CRDs, and
//! runs against the test cluster (with and without leader election) that provision and stop
//! cleanly on SIGTERM.

mod controller_common;
mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use controller_common::*;
use serde_json::json;
use support::kube::{ClusterOptions, TestCluster};
use support::postgres::server as pg;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Locks the error for a machine with no cluster: exit 1 and what was tried.
#[test]
fn run_without_a_cluster_fails_with_a_clear_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_servicedb"))
        .arg("run")
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("error: cannot build a Kubernetes client"),
        "{err}"
    );
}

/// Locks the early check: against a cluster without the CRDs, run exits 1 and says how to
/// install them, instead of logging watch errors forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_without_the_crds_says_how_to_install_them() {
    let cluster = TestCluster::start_with(ClusterOptions {
        install_repo_crds: false,
        ..ClusterOptions::default()
    })
    .await;
    if cluster
        .fake_only("a cluster without the servicedb CRDs")
        .is_none()
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = cluster.kubeconfig(dir.path());
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_servicedb"))
        .arg("run")
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("CustomResourceDefinitions are not installed"),
        "{err}"
    );
    assert!(err.contains("servicedb crd | kubectl apply -f -"), "{err}");
}

/// Locks the process lifecycle: `servicedb run --namespace NS --resync 1s --log-format
/// json` provisions a ServiceDatabase, logs JSON lines, and on SIGTERM stops with exit 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_provisions_and_stops_on_sigterm() {
    let cluster = TestCluster::start().await;
    let ns = cluster.namespace().to_string();
    let client = cluster.client();
    admin_secret(&client, &ns, "pg-admin", pg().admin_password()).await;
    let server = database_server(&cluster, &ns, "pg-admin").await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = cluster.kubeconfig(dir.path());
    let probe_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let probe_addr = format!("127.0.0.1:{probe_port}");
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_servicedb"))
        .args([
            "run",
            "--namespace",
            &ns,
            "--operator-namespace",
            &ns,
            "--resync",
            "1s",
            "--log-format",
            "json",
            "--metrics-addr",
            &probe_addr,
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    service_database(&client, &ns, "orders", &server, json!({})).await;
    wait_ready(&client, &ns, "orders").await;
    let app = secret_data(&client, &ns, "orders-db").await.unwrap();
    login(&app).await.expect("the app Secret logs in");
    // The kubelet's probes, as the chart configures them.
    for path in ["/healthz", "/readyz"] {
        let status = http_status(&probe_addr, path).await;
        assert_eq!(status, 200, "GET {path}");
    }
    assert_eq!(http_status(&probe_addr, "/metrics").await, 200);

    let pid = child.id().unwrap().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("run stops within 30s of SIGTERM")
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("SIGTERM"), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for line in lines {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
    }
}

/// Locks the leader-election flags of `servicedb run`: with `--leader-election` the
/// process takes the Lease named by the flags in the given namespace under its pod name
/// (POD_NAME), says `ready: leader` on /readyz, provisions, and on SIGTERM stops and
/// releases the Lease so that a standby can take over at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_with_leader_election_leads_and_releases_the_lease_on_sigterm() {
    use k8s_openapi::api::coordination::v1::Lease;
    let cluster = TestCluster::start().await;
    let ns = cluster.namespace().to_string();
    let client = cluster.client();
    admin_secret(&client, &ns, "pg-admin", pg().admin_password()).await;
    let server = database_server(&cluster, &ns, "pg-admin").await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = cluster.kubeconfig(dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_servicedb"))
        .args([
            "run",
            "--namespace",
            &ns,
            "--resync",
            "1s",
            "--metrics-addr",
            &addr,
        ])
        .args(["--leader-election", "--leader-election-namespace", &ns])
        .args(["--leader-election-lease-name", "sdb-test-leader"])
        .args(["--leader-election-lease-duration", "6s"])
        .env("KUBECONFIG", &kubeconfig)
        .env("POD_NAME", "servicedb-7d9f-abcde")
        .env_remove("POD_NAMESPACE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    service_database(&client, &ns, "orders", &server, json!({})).await;
    wait_ready(&client, &ns, "orders").await;
    let leases: kube::Api<Lease> = kube::Api::namespaced(client.clone(), &ns);
    let spec = leases.get("sdb-test-leader").await.unwrap().spec.unwrap();
    assert_eq!(
        spec.holder_identity.as_deref(),
        Some("servicedb-7d9f-abcde")
    );
    assert_eq!(spec.lease_duration_seconds, Some(6));
    assert_eq!(
        http_get(&addr, "/readyz").await,
        (200, "ready: leader\n".to_string())
    );

    let pid = child.id().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("run stops within 30s of SIGTERM")
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let spec = leases.get("sdb-test-leader").await.unwrap().spec.unwrap();
    assert_eq!(spec.holder_identity, None, "the Lease is released");
}

/// The status code of `GET path` on `addr`, over plain HTTP/1.1.
async fn http_status(addr: &str, path: &str) -> u16 {
    http_get(addr, path).await.0
}

/// `GET path` on `addr`, over plain HTTP/1.1: the status code and the body.
async fn http_get(addr: &str, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}
