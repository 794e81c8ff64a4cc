//! The fleet rollout end to end: tenant migration Jobs started only as the ServiceDatabase's
//! `status.rollout` admits them (canaries first, maxParallel, maxFailures, resume), fresh
//! tenants straight to the target. `controller::run` against the fake API server (or
//! SERVICEDB_TEST_KUBECONFIG's cluster), the tests' PostgreSQL, and `JobRunner` playing the
//! Job controller with the `servicedb` binary built with these tests.

mod controller_common;
mod support;
mod tenant_common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use controller_common::*;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;
use servicedb::api::conditions::types;
use servicedb::api::{RolloutPhase, ServiceDatabase, Tenant};
use support::kube::{JobRunner, TestCluster, eventually};
use support::postgres::server as pg;
use tenant_common::fleet::{self, all_at, rollout_phase, version_of};
use tenant_common::*;

struct Setup {
    _cluster: TestCluster,
    ns: String,
    client: kube::Client,
    server: String,
    runner: JobRunner,
    operator: support::kube::Instrumented,
    _controller: Running,
}

async fn setup() -> Setup {
    let cluster = TestCluster::start().await;
    let ns = cluster.namespace().to_string();
    let client = cluster.client();
    admin_secret(&client, &ns, "pg-admin", pg().admin_password()).await;
    let server = database_server(&cluster, &ns, "pg-admin").await;
    let operator = cluster.instrumented_client();
    let controller = start(operator.client.clone(), fast_config(&ns));
    let runner = cluster
        .job_runner()
        .program("servicedb", env!("CARGO_BIN_EXE_servicedb"));
    Setup {
        _cluster: cluster,
        ns,
        client,
        server,
        runner,
        operator,
        _controller: controller,
    }
}

impl Setup {
    async fn config_map(&self, name: &str, files: &[(&str, &str)]) {
        let data: serde_json::Map<String, serde_json::Value> = files
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.ns);
        // Replaced as a whole (a file taken out goes).
        let _ = api.delete(name, &Default::default()).await;
        eventually("the old ConfigMap to be gone", || {
            let api = api.clone();
            async move { matches!(api.get_opt(name).await, Ok(None)).then_some(()) }
        })
        .await;
        apply(
            &api,
            name,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}),
        )
        .await;
    }

    async fn tenant(&self, name: &str, canary: bool) {
        let api: Api<Tenant> = Api::namespaced(self.client.clone(), &self.ns);
        let labels = if canary {
            json!({"servicedb.io/canary": "true"})
        } else {
            json!({})
        };
        apply(
            &api,
            name,
            json!({
                "apiVersion": "servicedb.io/v1alpha1", "kind": "Tenant",
                "metadata": {"name": name, "namespace": self.ns, "labels": labels},
                "spec": {"services": ["app"]},
            }),
        )
        .await;
    }

    /// Unfinished tenant Jobs of `app`, as (tenant, Job name).
    async fn pending(&self) -> Vec<(String, String)> {
        self.runner
            .pending(Some(&self.ns), Some("servicedb.io/service-database=app"))
            .await
            .expect("listing Jobs")
            .into_iter()
            .map(|j| {
                let tenant = j.labels().get("servicedb.io/tenant").cloned();
                (tenant.unwrap_or_default(), j.name_any())
            })
            .collect()
    }

    /// Every Job of `app`'s tenants, per tenant.
    async fn jobs(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        let jobs: Vec<Job> = Api::<Job>::namespaced(self.client.clone(), &self.ns)
            .list(&ListParams::default().labels("servicedb.io/service-database=app"))
            .await
            .expect("listing Jobs")
            .items;
        for j in jobs {
            let t = j.labels().get("servicedb.io/tenant").cloned();
            *out.entry(t.unwrap_or_default()).or_default() += 1;
        }
        out
    }

    async fn run(&self, job: &str) -> bool {
        self.runner
            .run(&self.ns, job)
            .await
            .expect("running the Job")
            .succeeded
    }

    /// Plays Jobs as they appear until `done`: each round lets the controllers settle,
    /// lists the unfinished Jobs, calls `seen` with them, runs them.
    async fn play_until(
        &self,
        what: &str,
        mut seen: impl FnMut(&[(String, String)]),
        done: impl Fn(&[Tenant], &ServiceDatabase) -> bool,
    ) {
        let deadline = std::time::Instant::now() + Duration::from_secs(240);
        loop {
            if done(&self.tenants().await, &self.sdb().await) {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let pending = self.pending().await;
            seen(&pending);
            for (_, job) in &pending {
                self.run(job).await;
            }
        }
    }

    async fn tenants(&self) -> Vec<Tenant> {
        fleet::tenants(&self.client, &self.ns).await
    }

    async fn sdb(&self) -> ServiceDatabase {
        fleet::app(&self.client, &self.ns).await
    }

    async fn wait_sdb(
        &self,
        what: &str,
        cond: impl Fn(&ServiceDatabase) -> bool + Send + 'static,
    ) -> ServiceDatabase {
        fleet::wait_app(&self.client, &self.ns, what, cond).await
    }

    /// RolloutPaused Warnings about `app`, each repetition of a series counted.
    async fn pauses(&self) -> i32 {
        Api::<Event>::namespaced(self.client.clone(), &self.ns)
            .list(&ListParams::default())
            .await
            .expect("listing Events")
            .items
            .into_iter()
            .filter(|e| {
                e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("app")
                    && e.reason.as_deref() == Some("RolloutPaused")
                    && e.type_.as_deref() == Some("Warning")
            })
            .map(|e| e.series.map_or(1, |s| s.count))
            .sum()
    }

    async fn annotate(&self, key: &str, value: &str) {
        Api::<ServiceDatabase>::namespaced(self.client.clone(), &self.ns)
            .patch(
                "app",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": {key: value}}})),
            )
            .await
            .expect("annotating the ServiceDatabase");
    }
}

const V1: &str = "CREATE TABLE items (id int PRIMARY KEY);\n";
const V2: &str = "ALTER TABLE items ADD COLUMN name text;\n";
const V3: &str = "CREATE TABLE orders (id int PRIMARY KEY);\n";

/// Locks the main path: 6 tenants (2 canaries) reach V2 and the service Ready; V3 rolls
/// out canaries first with at most maxParallel (2) tenant Jobs unfinished at once; then
/// nothing is written at steady state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_rolls_out_canaries_first_within_max_parallel() {
    let s = setup().await;
    s.config_map(
        "app-migrations",
        &[("V1__items.sql", V1), ("V2__name.sql", V2)],
    )
    .await;
    per_tenant(
        &s.client,
        &s.ns,
        "app",
        json!({"server": s.server, "migrations": {
            "configMaps": ["app-migrations"],
            "rollout": {"maxParallel": 2, "maxFailures": 0},
        }}),
    )
    .await;
    let names = ["t-0", "t-1", "t-2", "t-3", "t-4", "t-5"];
    for (i, n) in names.iter().enumerate() {
        s.tenant(n, i < 2).await;
    }
    // Fresh tenants go straight to the target, not one slot at a time: all six Jobs
    // exist at once, with none run yet, although maxParallel is 2.
    eventually("a Job for each of the six fresh tenants", || async {
        (s.pending().await.len() == 6).then_some(())
    })
    .await;
    s.play_until(
        "every tenant at V2",
        |_| {},
        |t, _| t.len() == 6 && all_at(t, "2"),
    )
    .await;
    let sdb = s
        .wait_sdb("Ready with the rollout Complete", |o| {
            ready_now(o) && rollout_phase(o) == Some(RolloutPhase::Complete)
        })
        .await;
    let r = sdb.status.as_ref().unwrap().rollout.clone().unwrap();
    assert_eq!(
        (r.total, r.at_target, r.target_version.as_deref()),
        (6, 6, Some("2"))
    );

    // V3: the rollout.
    s.config_map(
        "app-migrations",
        &[
            ("V1__items.sql", V1),
            ("V2__name.sql", V2),
            ("V3__orders.sql", V3),
        ],
    )
    .await;
    let canaries: BTreeSet<String> = ["t-0", "t-1"].map(String::from).into();
    let mut most = 0;
    let mut canaries_run = BTreeSet::new();
    s.play_until(
        "every tenant at V3",
        |p| {
            most = most.max(p.len());
            let canary: BTreeSet<String> = p
                .iter()
                .filter(|(t, _)| canaries.contains(t))
                .map(|(t, _)| t.clone())
                .collect();
            if p.iter().any(|(t, _)| !canaries.contains(t)) {
                assert!(
                    canaries_run == canaries && canary.is_empty(),
                    "a non-canary Job before every canary finished: {p:?}"
                );
            }
            canaries_run.extend(canary);
        },
        |t, _| t.len() == 6 && all_at(t, "3"),
    )
    .await;
    assert!(
        most <= 2,
        "at most maxParallel tenant Jobs at once: saw {most}"
    );
    assert_eq!(canaries_run, canaries);
    let sdb = s
        .wait_sdb("the V3 rollout Complete", |o| {
            ready_now(o)
                && o.status
                    .as_ref()
                    .and_then(|s| s.rollout.as_ref())
                    .is_some_and(|r| {
                        r.phase == Some(RolloutPhase::Complete)
                            && r.target_version.as_deref() == Some("3")
                    })
        })
        .await;
    let r = sdb.status.as_ref().unwrap().rollout.clone().unwrap();
    assert_eq!((r.total, r.at_target, r.failed), (6, 6, 0));
    let tenants = sdb.status.as_ref().unwrap().tenants.clone().unwrap();
    assert_eq!((tenants.total, tenants.at_target_version), (6, 6));

    // At steady state (a few resyncs of 2 s), the fleet causes no writes.
    let mark = s
        .operator
        .requests
        .settle(Duration::from_secs(2), |w| w.info.path.contains(&s.ns))
        .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let writes: Vec<String> = s
        .operator
        .requests
        .writes_since(mark)
        .into_iter()
        .filter(|w| w.info.path.contains(&s.ns))
        .map(|w| w.to_string())
        .collect();
    assert!(
        writes.is_empty(),
        "writes at steady state:\n{}",
        writes.join("\n")
    );
}

/// Locks: a tenant added mid-rollout lands at the new target outside the rollout's slots,
/// and a Tenant deleted mid-rollout neither blocks nor is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_added_or_deleted_mid_rollout() {
    let s = setup().await;
    s.config_map("app-migrations", &[("V1__items.sql", V1)])
        .await;
    per_tenant(
        &s.client,
        &s.ns,
        "app",
        json!({"server": s.server, "migrations": {
            "configMaps": ["app-migrations"],
            "rollout": {"maxParallel": 1},
        }}),
    )
    .await;
    for n in ["m-0", "m-1", "m-2", "m-3"] {
        s.tenant(n, n == "m-0").await;
    }
    s.play_until(
        "every tenant at V1",
        |_| {},
        |t, _| t.len() == 4 && all_at(t, "1"),
    )
    .await;
    s.config_map(
        "app-migrations",
        &[("V1__items.sql", V1), ("V2__name.sql", V2)],
    )
    .await;
    // The canary first, alone.
    eventually("the canary's V2 Job", || async {
        let p = s.pending().await;
        (p.len() == 1 && p[0].0 == "m-0").then_some(())
    })
    .await;
    let p = s.pending().await;
    assert!(s.run(&p[0].1).await);
    // Mid-rollout: one tenant goes, one comes.
    delete_tenant(&s.client, &s.ns, "m-3").await;
    s.tenant("m-new", false).await;
    let mut rollout_most = 0;
    s.play_until(
        "every tenant at V2",
        |p| {
            let n = p.iter().filter(|(t, _)| t != "m-new").count();
            rollout_most = rollout_most.max(n);
        },
        |t, _| t.len() == 4 && all_at(t, "2"),
    )
    .await;
    assert!(rollout_most <= 1, "maxParallel 1: {rollout_most}");
    let sdb = s
        .wait_sdb("the rollout Complete without the deleted tenant", |o| {
            ready_now(o) && rollout_phase(o) == Some(RolloutPhase::Complete)
        })
        .await;
    let r = sdb.status.as_ref().unwrap().rollout.clone().unwrap();
    assert_eq!((r.total, r.at_target, r.running), (4, 4, 0));
    let new = s
        .tenants()
        .await
        .into_iter()
        .find(|t| t.name_any() == "m-new")
        .unwrap();
    assert_eq!(version_of(&new).as_deref(), Some("2"));
}

/// Locks the gates: a failing canary pauses the fleet before any other tenant's Job (one
/// RolloutPaused Event, Stalled with how to resume); new inputs go on; failures beyond
/// maxFailures pause again; the resume annotation runs the failed tenants again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_pause_the_rollout_until_resumed() {
    let s = setup().await;
    s.config_map("app-migrations", &[("V1__items.sql", V1)])
        .await;
    per_tenant(
        &s.client,
        &s.ns,
        "app",
        json!({"server": s.server, "migrations": {
            "configMaps": ["app-migrations"],
            "rollout": {"maxParallel": 1, "maxFailures": 1},
        }}),
    )
    .await;
    for n in ["c-0", "n-0", "n-1", "n-2", "n-3"] {
        s.tenant(n, n == "c-0").await;
    }
    s.play_until(
        "every tenant at V1",
        |_| {},
        |t, _| t.len() == 5 && all_at(t, "1"),
    )
    .await;
    let before = s.jobs().await;

    // A canary that fails: nobody else starts.
    s.config_map(
        "app-migrations",
        &[("V1__items.sql", V1), ("V2__bad.sql", "SELECT 1/0;\n")],
    )
    .await;
    let p = eventually("the canary's Job", || async {
        let p = s.pending().await;
        (!p.is_empty()).then_some(p)
    })
    .await;
    assert_eq!(
        p.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>(),
        ["c-0"]
    );
    assert!(!s.run(&p[0].1).await);
    let paused = s
        .wait_sdb("the rollout paused by the canary", |o| {
            rollout_phase(o) == Some(RolloutPhase::Paused)
        })
        .await;
    let (st, reason, message) = condition(&paused, types::STALLED).unwrap();
    assert_eq!((st.as_str(), reason.as_str()), ("True", "RolloutPaused"));
    assert!(message.contains("canary tenant c-0"), "{message}");
    assert!(
        message.contains("servicedb.io/resume=$(date +%s)"),
        "{message}"
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = s.jobs().await;
    for n in ["n-0", "n-1", "n-2", "n-3"] {
        assert_eq!(
            after.get(n),
            before.get(n),
            "no Job for {n} after the failed canary"
        );
    }
    assert_eq!(s.pauses().await, 1);

    // Fixed for the canary, failing elsewhere until a role exists on the server.
    let go = format!("fleet_go_{}", s.ns.replace('-', "_"));
    let v2 = format!(
        "DO $$ BEGIN IF current_database() NOT LIKE '%c_0' AND NOT EXISTS \
         (SELECT 1 FROM pg_roles WHERE rolname = '{go}') THEN RAISE EXCEPTION 'not yet'; \
         END IF; END $$;\n"
    );
    s.config_map(
        "app-migrations",
        &[("V1__items.sql", V1), ("V2__gate.sql", &v2)],
    )
    .await;
    s.wait_sdb("the new inputs Progressing", |o| {
        rollout_phase(o) == Some(RolloutPhase::Progressing)
    })
    .await;
    let mut failed_runs = 0;
    s.play_until(
        "paused after two failures",
        |p| failed_runs += p.iter().filter(|(t, _)| t != "c-0").count(),
        |_, sdb| rollout_phase(sdb) == Some(RolloutPhase::Paused),
    )
    .await;
    let paused = s
        .wait_sdb("paused by maxFailures", |o| {
            rollout_phase(o) == Some(RolloutPhase::Paused)
        })
        .await;
    let r = paused.status.as_ref().unwrap().rollout.clone().unwrap();
    assert_eq!(r.failed, 2, "{r:?}");
    assert_eq!(r.failed_tenants, ["n-0", "n-1"]);
    assert_eq!(
        failed_runs, 2,
        "maxParallel 1, paused after the second failure"
    );
    let (_, reason, message) = condition(&paused, types::STALLED).unwrap();
    assert_eq!(reason, "RolloutPaused");
    assert!(message.contains("more than maxFailures (1)"), "{message}");
    // The Warning Event follows the status write that says Paused.
    eventually("the second RolloutPaused Event", || async {
        (s.pauses().await >= 2).then_some(())
    })
    .await;
    assert_eq!(s.pauses().await, 2);
    let jobs = s.jobs().await;
    for n in ["n-2", "n-3"] {
        assert_eq!(jobs.get(n), before.get(n), "no Job for {n} while paused");
    }

    // The cause fixed on the server, then resumed: everyone reaches V2.
    pg().admin_client("postgres")
        .await
        .batch_execute(&format!("CREATE ROLE {go}"))
        .await
        .expect("creating the gate role");
    s.annotate("servicedb.io/resume", "1").await;
    s.play_until(
        "every tenant at V2",
        |_| {},
        |t, _| t.len() == 5 && all_at(t, "2"),
    )
    .await;
    s.wait_sdb("Complete after the resume", |o| {
        ready_now(o) && rollout_phase(o) == Some(RolloutPhase::Complete)
    })
    .await;
    assert_eq!(s.pauses().await, 2);
    let _ = pg()
        .admin_client("postgres")
        .await
        .batch_execute(&format!("DROP ROLE {go}"))
        .await;
}
