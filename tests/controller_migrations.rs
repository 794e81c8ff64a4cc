//! Migration Jobs end to end: `controller::run` in process against the fake API server (or
//! SERVICEDB_TEST_KUBECONFIG's cluster, whose Job controller is off), the tests' real
//! PostgreSQL, and `JobRunner` playing the Job controller by running each Job's own command
//! (the `servicedb` binary built with these tests) with the Job's env and mounts.

mod controller_common;
mod support;

use std::time::Duration;

use controller_common::*;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use serde_json::json;
use servicedb::api::conditions::types;
use servicedb::api::{JobOutcome, Phase, ServiceDatabase};
use support::kube::{JobRunner, TestCluster, wait_for};
use support::postgres::server as pg;

/// A namespace with an admin Secret, a DatabaseServer and a running controller.
struct Setup {
    cluster: TestCluster,
    ns: String,
    client: kube::Client,
    server: String,
    runner: JobRunner,
    /// The controller's recorded client.
    operator: support::kube::Instrumented,
    controller: Option<Running>,
}

async fn setup() -> Setup {
    let cluster = TestCluster::start().await;
    let ns = cluster.namespace().to_string();
    let client = cluster.client();
    admin_secret(&client, &ns, "pg-admin", pg().admin_password()).await;
    let server = database_server(&cluster, &ns, "pg-admin").await;
    let operator = cluster.instrumented_client();
    let controller = Some(start(operator.client.clone(), fast_config(&ns)));
    let runner = cluster
        .job_runner()
        .program("servicedb", env!("CARGO_BIN_EXE_servicedb"));
    Setup {
        cluster,
        ns,
        client,
        server,
        runner,
        operator,
        controller,
    }
}

impl Setup {
    async fn config_map(&self, name: &str, files: &[(&str, &str)]) {
        let data: serde_json::Map<String, serde_json::Value> = files
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.ns);
        apply(
            &api,
            name,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}),
        )
        .await;
    }

    async fn sdb(&self, name: &str, migrations: serde_json::Value) -> ServiceDatabase {
        service_database(
            &self.client,
            &self.ns,
            name,
            &self.server,
            json!({ "migrations": migrations }),
        )
        .await
    }

    /// This ServiceDatabase's migration Jobs.
    async fn jobs(&self, sdb: &str) -> Vec<Job> {
        Api::<Job>::namespaced(self.client.clone(), &self.ns)
            .list(&ListParams::default().labels(&format!("servicedb.io/service-database={sdb}")))
            .await
            .expect("listing Jobs")
            .items
    }

    /// Runs the next migration Job of `sdb`; returns whether it succeeded.
    async fn run_job(&self, sdb: &str) -> support::kube::JobRun {
        self.runner
            .run_next(
                Some(&self.ns),
                Some(&format!("servicedb.io/service-database={sdb}")),
            )
            .await
            .expect("running the migration Job")
    }

    async fn wait(
        &self,
        name: &str,
        what: &str,
        cond: impl Fn(&ServiceDatabase) -> bool + Send + 'static,
    ) -> ServiceDatabase {
        let api: Api<ServiceDatabase> = Api::namespaced(self.client.clone(), &self.ns);
        wait_for(&api, name, what, move |o: Option<&ServiceDatabase>| {
            o.is_some_and(&cond)
        })
        .await
        .expect("the ServiceDatabase exists")
    }

    /// Ready for its generation with the schema at `version`.
    async fn wait_version(&self, name: &str, version: &'static str) -> ServiceDatabase {
        self.wait(name, &format!("Ready at version {version}"), move |s| {
            ready_now(s) && applied(s).as_deref() == Some(version)
        })
        .await
    }

    /// Events about `name` with `reason`, and whether any was repeated (a series).
    async fn events(&self, name: &str, reason: &str) -> (usize, bool) {
        let events: Vec<Event> = Api::<Event>::namespaced(self.client.clone(), &self.ns)
            .list(&ListParams::default())
            .await
            .expect("listing Events")
            .items
            .into_iter()
            .filter(|e| {
                e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                    && e.reason.as_deref() == Some(reason)
            })
            .collect();
        (events.len(), events.iter().any(|e| e.series.is_some()))
    }

    /// Waits a few resync periods (2 s each) for anything the controller would still do.
    async fn several_resyncs(&self) {
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

fn applied(s: &ServiceDatabase) -> Option<String> {
    s.status.as_ref()?.schema.as_ref()?.applied_version.clone()
}

fn database(s: &ServiceDatabase) -> String {
    s.status
        .as_ref()
        .and_then(|st| st.database.clone())
        .expect("status.database")
}

const V1: &str = "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);\n";
const V2: &str =
    "ALTER TABLE items ADD COLUMN price numeric;\nINSERT INTO items VALUES (1, 'one', 9.5);\n";
const V3: &str = "CREATE TABLE orders (id int PRIMARY KEY, item int REFERENCES items);\n";

/// Locks the main path: V1 and V2 in a ConfigMap -> one Job -> Ready at version 2, the app
/// Secret sees the migrated tables; adding V3 makes exactly one new Job -> version 3; and
/// resyncs after that create nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_reach_the_latest_version_and_a_new_file_makes_one_more_job() {
    let s = setup().await;
    s.config_map(
        "orders-migrations",
        &[("V1__items.sql", V1), ("V2__price.sql", V2)],
    )
    .await;
    s.sdb("orders", json!({"configMaps": ["orders-migrations"]}))
        .await;
    let running = s
        .wait(
            "orders",
            "MigrationsApplied=False (MigrationRunning)",
            |o| {
                condition(o, types::MIGRATIONS_APPLIED)
                    .is_some_and(|(st, r, _)| st == "False" && r == "MigrationRunning")
            },
        )
        .await;
    assert_eq!(condition(&running, types::RECONCILING).unwrap().0, "True");
    assert_eq!(
        running.status.as_ref().unwrap().phase,
        Some(Phase::Migrating)
    );
    let run = s.run_job("orders").await;
    assert!(run.succeeded, "{}", run.stderr);
    assert!(!run.env.contains_key("PGPASSWORD") && run.env.contains_key("DATABASE_URL"));
    let sdb = s.wait_version("orders", "2").await;
    let schema = sdb.status.as_ref().unwrap().schema.clone().unwrap();
    assert_eq!(schema.target_version.as_deref(), Some("2"));
    assert_eq!(schema.pending, Some(0));
    assert_eq!(schema.last_job_outcome, Some(JobOutcome::Succeeded));
    assert_eq!(schema.last_job.as_deref(), Some(run.name.as_str()));
    assert_eq!(
        condition(&sdb, types::MIGRATIONS_APPLIED).unwrap().0,
        "True"
    );
    assert!(condition(&sdb, types::RECONCILING).is_none());

    // The Job: named for its inputs, labelled, owned.
    let jobs = s.jobs("orders").await;
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    assert!(job.name_any().starts_with("orders-mig-") && job.name_any().len() == 21);
    assert_eq!(job.labels()["app.kubernetes.io/managed-by"], "servicedb");
    assert_eq!(job.owner_references()[0].uid, sdb.uid().unwrap());
    assert_eq!(job.owner_references()[0].controller, Some(true));

    let app = secret_data(&s.client, &s.ns, "orders-db").await.unwrap();
    let conn = login(&app).await.expect("the app Secret logs in");
    let row = conn
        .query_one("SELECT name, price::text FROM items WHERE id = 1", &[])
        .await
        .expect("the app reads the migrated table");
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, String>(1)),
        ("one".into(), "9.5".into())
    );
    assert!(conn.batch_execute("DROP TABLE items").await.is_err());
    // The Event follows the status write the wait saw.
    wait_event(&s.client, &s.ns, "orders", "Normal", "MigrationSucceeded").await;
    let (succeeded, _) = s.events("orders", "MigrationSucceeded").await;
    assert_eq!(succeeded, 1);

    s.config_map(
        "orders-migrations",
        &[
            ("V1__items.sql", V1),
            ("V2__price.sql", V2),
            ("V3__orders.sql", V3),
        ],
    )
    .await;
    let run = s.run_job("orders").await;
    assert!(run.succeeded, "{}", run.stderr);
    s.wait_version("orders", "3").await;
    s.several_resyncs().await;
    assert_eq!(
        s.jobs("orders").await.len(),
        2,
        "one Job per new set of inputs"
    );
    assert!(
        s.runner
            .pending(Some(&s.ns), None)
            .await
            .unwrap()
            .is_empty()
    );
    let n: i64 = conn
        .query_one("SELECT count(*) FROM orders", &[])
        .await
        .expect("V3's table, with the app's grants")
        .get(0);
    assert_eq!(n, 0);
}

/// Locks targetVersion: a fresh database stops at the target (V3 not applied), and raising
/// the target promotes it with one more Job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_version_stops_there_and_raising_it_promotes() {
    let s = setup().await;
    s.config_map(
        "catalog-migrations",
        &[
            ("V1__items.sql", V1),
            ("V2__price.sql", V2),
            ("V3__orders.sql", V3),
        ],
    )
    .await;
    let spec = |t: &str| json!({"configMaps": ["catalog-migrations"], "targetVersion": t});
    s.sdb("catalog", spec("2")).await;
    let run = s.run_job("catalog").await;
    assert!(
        run.argv.windows(2).any(|w| w == ["--target", "2"]),
        "{:?}",
        run.argv
    );
    let sdb = s.wait_version("catalog", "2").await;
    let schema = sdb.status.as_ref().unwrap().schema.clone().unwrap();
    assert_eq!(
        (schema.target_version.as_deref(), schema.pending),
        (Some("2"), Some(0))
    );
    let migrator = secret_data(&s.client, &s.ns, "catalog-migrator")
        .await
        .unwrap();
    let owner = login(&migrator).await.unwrap();
    let orders: Option<String> = owner
        .query_one("SELECT to_regclass('orders')::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(orders, None, "V3 is beyond the target");
    s.several_resyncs().await;
    assert_eq!(s.jobs("catalog").await.len(), 1);

    s.sdb("catalog", spec("3")).await;
    let run = s.run_job("catalog").await;
    assert!(run.succeeded, "{}", run.stderr);
    let sdb = s.wait_version("catalog", "3").await;
    assert_eq!(
        database(&sdb),
        format!("{}_catalog", s.ns.replace('-', "_"))
    );
    assert_eq!(s.jobs("catalog").await.len(), 2);
}

/// Locks the no-storm rule: a failing migration -> Stalled with file, line and SQLSTATE, one
/// Warning Event, not Ready, and still exactly one Job after several resyncs; fixing the
/// file starts one new Job that recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_migration_stalls_once_and_fixing_the_file_recovers() {
    let s = setup().await;
    let bad = "ALTER TABLE items ADD COLUMN price numeric;\nSELEC 1;\n";
    s.config_map(
        "shop-migrations",
        &[("V1__items.sql", V1), ("V2__bad.sql", bad)],
    )
    .await;
    s.sdb("shop", json!({"configMaps": ["shop-migrations"]}))
        .await;
    let run = s.run_job("shop").await;
    assert!(!run.succeeded);
    let sdb = s
        .wait("shop", "Stalled=True (MigrationFailed)", |o| {
            condition(o, types::STALLED)
                .is_some_and(|(st, r, _)| st == "True" && r == "MigrationFailed")
        })
        .await;
    let (_, _, message) = condition(&sdb, types::MIGRATIONS_APPLIED).unwrap();
    for part in [
        "V2__bad.sql",
        "line 2",
        "SQLSTATE 42601",
        "servicedb.io/retry",
    ] {
        assert!(message.contains(part), "{part} in {message}");
    }
    assert!(!ready_now(&sdb));
    assert_eq!(sdb.status.as_ref().unwrap().phase, Some(Phase::Failed));
    let schema = sdb.status.as_ref().unwrap().schema.clone().unwrap();
    assert_eq!(
        schema.applied_version.as_deref(),
        Some("1"),
        "V1 stays applied"
    );
    assert_eq!(schema.last_job_outcome, Some(JobOutcome::Failed));
    assert!(schema.last_error.unwrap().contains("V2__bad.sql line 2"));

    s.several_resyncs().await;
    assert_eq!(
        s.jobs("shop").await.len(),
        1,
        "no new Job on the same inputs"
    );
    assert!(
        s.runner
            .pending(Some(&s.ns), None)
            .await
            .unwrap()
            .is_empty()
    );
    let (failures, repeated) = s.events("shop", "MigrationFailed").await;
    assert_eq!(
        (failures, repeated),
        (1, false),
        "one Warning Event, published once"
    );
    let still = Api::<ServiceDatabase>::namespaced(s.client.clone(), &s.ns)
        .get("shop")
        .await
        .unwrap();
    assert_eq!(condition(&still, types::STALLED).unwrap().0, "True");

    s.config_map(
        "shop-migrations",
        &[("V1__items.sql", V1), ("V2__price.sql", V2)],
    )
    .await;
    let run = s.run_job("shop").await;
    assert!(run.succeeded, "{}", run.stderr);
    let sdb = s.wait_version("shop", "2").await;
    assert!(condition(&sdb, types::STALLED).is_none());
    assert_eq!(s.jobs("shop").await.len(), 2);
}

/// Locks the retry annotation: a migration that failed because of something outside its
/// files runs again, on the same inputs, when `servicedb.io/retry` gets a new value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_annotation_runs_failed_inputs_again() {
    let s = setup().await;
    let needs = "INSERT INTO legacy VALUES (1);\n";
    s.config_map("legacy-migrations", &[("V1__copy.sql", needs)])
        .await;
    s.sdb("legacy", json!({"configMaps": ["legacy-migrations"]}))
        .await;
    assert!(!s.run_job("legacy").await.succeeded);
    s.wait("legacy", "Stalled=True", |o| {
        condition(o, types::STALLED).is_some_and(|(st, _, _)| st == "True")
    })
    .await;
    // A person fixes the database, then asks for a retry.
    let migrator = secret_data(&s.client, &s.ns, "legacy-migrator")
        .await
        .unwrap();
    login(&migrator)
        .await
        .unwrap()
        .batch_execute("CREATE TABLE legacy (id int)")
        .await
        .unwrap();
    s.several_resyncs().await;
    assert_eq!(
        s.jobs("legacy").await.len(),
        1,
        "fixing the database alone runs nothing"
    );
    let api: Api<ServiceDatabase> = Api::namespaced(s.client.clone(), &s.ns);
    apply(
        &api,
        "legacy",
        json!({
            "apiVersion": "servicedb.io/v1alpha1", "kind": "ServiceDatabase",
            "metadata": {"name": "legacy", "annotations": {"servicedb.io/retry": "1"}},
            "spec": {"server": s.server, "migrations": {"configMaps": ["legacy-migrations"]}},
        }),
    )
    .await;
    let run = s.run_job("legacy").await;
    assert!(run.succeeded, "{}", run.stderr);
    s.wait_version("legacy", "1").await;
    assert_eq!(s.jobs("legacy").await.len(), 2);
}

/// Locks crash safety: the controller killed after creating the Job (before it ran), and a
/// new one started, converge with exactly one Job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_killed_mid_way_converges_with_one_job() {
    let mut s = setup().await;
    s.config_map("crash-migrations", &[("V1__items.sql", V1)])
        .await;
    s.sdb("crash", json!({"configMaps": ["crash-migrations"]}))
        .await;
    support::kube::eventually("the migration Job to be created", || async {
        (!s.jobs("crash").await.is_empty()).then_some(())
    })
    .await;
    s.controller.take().expect("running").kill();
    s.controller = Some(start(s.client.clone(), fast_config(&s.ns)));
    s.several_resyncs().await;
    assert_eq!(s.jobs("crash").await.len(), 1);
    let run = s.run_job("crash").await;
    assert!(run.succeeded, "{}", run.stderr);
    s.wait_version("crash", "1").await;
    s.several_resyncs().await;
    assert_eq!(s.jobs("crash").await.len(), 1);
    let _ = &s.cluster;
}

/// Locks the failure report of a migration that cannot run in a transaction: it fails
/// half-way and leaves a failed row, yet the status names the Job's file and error
/// (MigrationFailed, one Warning Event), not just the history's complaint; new inputs
/// without a repair are refused before any Job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_non_transactional_migration_is_reported_from_its_job() {
    let s = setup().await;
    let concurrently = "CREATE INDEX CONCURRENTLY items_name ON missing_table (name);\n";
    s.config_map(
        "idx-migrations",
        &[("V1__items.sql", V1), ("V2__index.sql", concurrently)],
    )
    .await;
    s.sdb("idx", json!({"configMaps": ["idx-migrations"]}))
        .await;
    assert!(!s.run_job("idx").await.succeeded);
    let sdb = s
        .wait("idx", "Stalled=True (MigrationFailed)", |o| {
            condition(o, types::STALLED)
                .is_some_and(|(st, r, _)| st == "True" && r == "MigrationFailed")
        })
        .await;
    let (_, _, message) = condition(&sdb, types::STALLED).unwrap();
    assert!(
        message.contains("V2__index.sql") && message.contains("42P01"),
        "{message}"
    );
    s.several_resyncs().await;
    assert_eq!(s.events("idx", "MigrationFailed").await, (1, false));
    assert_eq!(s.jobs("idx").await.len(), 1);

    s.config_map(
        "idx-migrations",
        &[
            ("V1__items.sql", V1),
            (
                "V2__index.sql",
                "CREATE INDEX CONCURRENTLY items_name ON items (name);\n",
            ),
        ],
    )
    .await;
    let invalid = s
        .wait("idx", "Stalled=True (MigrationsInvalid)", |o| {
            condition(o, types::STALLED)
                .is_some_and(|(st, r, _)| st == "True" && r == "MigrationsInvalid")
        })
        .await;
    let (_, _, message) = condition(&invalid, types::STALLED).unwrap();
    assert!(message.contains("servicedb migrate repair"), "{message}");
    s.several_resyncs().await;
    assert_eq!(s.jobs("idx").await.len(), 1, "refused before any Job");
}

/// Locks convergence under API errors: the Job's creation answered with 500 twice and a
/// 409 Conflict once is retried with backoff and ends with exactly one Job and the schema
/// migrated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_errors_on_job_creation_converge_with_one_job() {
    let s = setup().await;
    let jobs = format!("*/namespaces/{}/jobs", s.ns);
    // Each request uses up one turn of every matching rule; the first rule's status wins:
    // 500, 500, then 409.
    s.operator.faults.fail_next("create", &jobs, 500, 2);
    s.operator.faults.fail_next("create", &jobs, 409, 3);
    s.config_map(
        "faulty-migrations",
        &[("V1__items.sql", V1), ("V2__price.sql", V2)],
    )
    .await;
    s.sdb("faulty", json!({"configMaps": ["faulty-migrations"]}))
        .await;
    let run = s.run_job("faulty").await;
    assert!(run.succeeded, "{}", run.stderr);
    s.wait_version("faulty", "2").await;
    assert_eq!(s.operator.faults.injected(), 3);
    s.several_resyncs().await;
    assert_eq!(s.jobs("faulty").await.len(), 1);
}
