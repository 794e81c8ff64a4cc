//! What the tenant benchmarks share: the fake API server with a DatabaseServer for the
//! bench's PostgreSQL, the operator as a child process (`servicedb run`, the release binary
//! built with the bench), and waiting on the fleet; the Job controller stand-in is
//! `job_player`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};
use serde_json::json;
use servicedb::api::{ServiceDatabase, Tenant};

use crate::controller_common::{admin_secret, apply, database_server, wait_server_ready};
use crate::secs;
use crate::support::kube::{ClusterOptions, FakeOptions, Served, TestCluster, serve_instrumented};
use crate::support::postgres::server as pg;
use crate::tenant_common::tenant_ready;

/// No Tenant coming through for this long is worth a look at the ones missing.
const STALL: Duration = Duration::from_secs(300);

pub const SERVICE: &str = "app";
pub const V1: &str = "CREATE TABLE items (id int PRIMARY KEY, name text);\n";

pub struct Fixture {
    pub cluster: TestCluster,
    pub ns: String,
    pub client: kube::Client,
    pub server: String,
    /// Kept: the operator's log and kubeconfig, named in the output.
    pub dir: PathBuf,
}

impl Fixture {
    pub async fn start() -> Fixture {
        // A real API server keeps a paged list's continue token valid until etcd compacts
        // (every 5 minutes); the fake forgets all but its last `history_limit` changes. At
        // 1,000, a paged list of thousands of Tenants under a fleet's writes can expire
        // before its last page, and a watch that keeps re-listing delivers nothing new.
        let cluster = TestCluster::start_with(ClusterOptions {
            fake: FakeOptions {
                history_limit: 500_000,
                ..FakeOptions::default()
            },
            ..ClusterOptions::default()
        })
        .await;
        let ns = cluster.namespace().to_string();
        let client = cluster.client();
        admin_secret(&client, &ns, "pg-admin", pg().admin_password()).await;
        let server = database_server(&cluster, &ns, "pg-admin").await;
        let dir = tempfile::Builder::new()
            .prefix("servicedb-bench-")
            .tempdir()
            .expect("a temporary directory")
            .keep();
        eprintln!("  (the operator's log and kubeconfig: {})", dir.display());
        Fixture {
            cluster,
            ns,
            client,
            server,
            dir,
        }
    }

    /// The migrations ConfigMap of the PerTenant service (server-side applied, so files
    /// are only ever added).
    pub async fn migrations(&self, files: &[(&str, &str)]) {
        let data: serde_json::Map<String, serde_json::Value> = files
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.ns);
        let name = format!("{SERVICE}-migrations");
        apply(
            &api,
            &name,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}),
        )
        .await;
    }

    /// The PerTenant ServiceDatabase `app` with its migrations ConfigMap and `rollout`.
    pub async fn service(&self, rollout: serde_json::Value) {
        crate::tenant_common::per_tenant(
            &self.client,
            &self.ns,
            SERVICE,
            json!({"server": self.server, "migrations": {
                "configMaps": [format!("{SERVICE}-migrations")],
                "rollout": rollout,
            }}),
        )
        .await;
    }

    /// Tenants `t-<i>` for `range`, 16 applies at once; with `services: false` they list no
    /// service (cached and reconciled, no database).
    pub async fn tenants(&self, range: std::ops::Range<usize>, services: bool) {
        let api: Api<Tenant> = Api::namespaced(self.client.clone(), &self.ns);
        let list = if services { vec![SERVICE] } else { vec![] };
        futures::stream::iter(range.map(|i| {
            let (api, ns, list) = (api.clone(), self.ns.clone(), list.clone());
            async move {
                let name = tenant_name(i);
                apply(
                    &api,
                    &name,
                    json!({
                        "apiVersion": "servicedb.io/v1alpha1", "kind": "Tenant",
                        "metadata": {"name": name, "namespace": ns},
                        "spec": {"services": list},
                    }),
                )
                .await;
            }
        }))
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    }

    pub async fn list_tenants(&self) -> Vec<Tenant> {
        Api::<Tenant>::namespaced(self.client.clone(), &self.ns)
            .list(&ListParams::default())
            .await
            .expect("listing Tenants")
            .items
    }

    pub async fn sdb(&self) -> ServiceDatabase {
        Api::<ServiceDatabase>::namespaced(self.client.clone(), &self.ns)
            .get(SERVICE)
            .await
            .expect("the ServiceDatabase")
    }

    /// Waits until `n` Tenants are Ready with `version` applied (if given); panics after
    /// `timeout` with how far the fleet got. Returns when it was seen.
    pub async fn wait_fleet(&self, n: usize, version: Option<&str>, timeout: Duration) -> Instant {
        self.wait_tenants(n, timeout, |t| {
            tenant_ready(t) && version.is_none_or(|v| at_version(t, v))
        })
        .await
    }

    /// Waits until `n` Tenants pass `done`. When the count stops moving for a while, and at
    /// the timeout, prints what the missing ones show (see `laggards`).
    pub async fn wait_tenants(
        &self,
        n: usize,
        timeout: Duration,
        done: impl Fn(&Tenant) -> bool,
    ) -> Instant {
        let started = Instant::now();
        let mut last_note = Instant::now();
        let (mut last_count, mut moved, mut reported) = (0, Instant::now(), false);
        loop {
            let tenants = self.list_tenants().await;
            let count = tenants.iter().filter(|t| done(t)).count();
            if count >= n {
                return Instant::now();
            }
            if count != last_count {
                (last_count, moved, reported) = (count, Instant::now(), false);
            }
            let stalled = !reported && moved.elapsed() > STALL;
            if stalled || started.elapsed() > timeout {
                let laggards: Vec<&Tenant> = tenants.iter().filter(|t| !done(t)).collect();
                eprintln!(
                    "  {count} of {n} Tenants there, none more for {}",
                    secs(moved.elapsed())
                );
                crate::laggards::report(&self.client, &self.ns, &laggards).await;
                reported = true;
            }
            if started.elapsed() > timeout {
                panic!("timed out after {timeout:?}: {count} of {n} Tenants there");
            }
            if last_note.elapsed() > Duration::from_secs(15) {
                eprintln!("  ... {count} of {n} Tenants there");
                last_note = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    pub async fn wait_server(&self) {
        wait_server_ready(&self.client, &self.server).await;
    }
}

pub fn tenant_name(i: usize) -> String {
    format!("t-{i:05}")
}

pub fn at_version(t: &Tenant, version: &str) -> bool {
    t.status
        .as_ref()
        .and_then(|s| s.databases.iter().find(|d| d.service == SERVICE))
        .and_then(|d| d.applied_version.as_deref())
        == Some(version)
}

/// `servicedb run` as a child process against the fake (through a recording proxy when
/// asked), its own process so that its memory is its own.
pub struct Operator {
    pub child: tokio::process::Child,
    pub log: PathBuf,
    /// The proxy recording the operator's requests, when started with `record`.
    pub recorded: Option<Served>,
}

impl Operator {
    pub async fn start(f: &Fixture, resync: Duration, record: bool) -> Operator {
        let (url, recorded) = if record {
            let served = serve_instrumented(f.cluster.client()).await;
            (served.url.clone(), Some(served))
        } else {
            (f.cluster.config().cluster_url.to_string(), None)
        };
        let kubeconfig = f.dir.join("kubeconfig");
        write_kubeconfig(&kubeconfig, url.trim_end_matches('/'), &f.ns);
        let log = f.dir.join("operator.log");
        let stderr = std::fs::File::create(&log).expect("the operator's log file");
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_servicedb"))
            .args(["run", "--namespace", &f.ns, "--operator-namespace", &f.ns])
            .args(["--installation-id", "bench"])
            .args(["--resync", &humantime::format_duration(resync).to_string()])
            .env("KUBECONFIG", &kubeconfig)
            // `SERVICEDB_BENCH_LOG` (a RUST_LOG filter) to profile the operator from its log.
            .env(
                "RUST_LOG",
                std::env::var("SERVICEDB_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .expect("starting servicedb run");
        Operator {
            child,
            log,
            recorded,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("the operator is running")
    }

    /// (VmRSS, VmHWM) in bytes, from /proc.
    pub fn memory(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("reading the operator's /proc status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map_or(0, |kb| kb * 1024)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

fn write_kubeconfig(path: &Path, url: &str, namespace: &str) {
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": url}}],
        "users": [{"name": "fake", "user": {}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": namespace}}],
        "current-context": "fake",
    });
    std::fs::write(path, serde_yaml::to_string(&doc).expect("YAML")).expect("the kubeconfig");
}
