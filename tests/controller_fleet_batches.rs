//! The batched fleet rollout end to end (`rollout.batchSize` > 1): the ServiceDatabase starts
//! batch Jobs of up to batchSize tenant databases, at most maxParallel at once, each tenant
//! with its own migrator Secret, each tenant's outcome reported in its own status.
//! `controller::run` against the fake API server (or SERVICEDB_TEST_KUBECONFIG's cluster), the
//! tests' PostgreSQL, and `JobRunner` playing the Job controller with the `servicedb` binary.

mod controller_common;
mod support;
mod tenant_common;

use std::collections::BTreeSet;
use std::time::Duration;

use controller_common::*;
use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use serde_json::json;
use servicedb::api::RolloutPhase;
use tenant_common::fleet::{all_at, db, rollout_phase, version_of};
use tenant_common::rollout::{Setup, setup};

const BATCH: &str = "servicedb.io/migration-batch=true";
const V1: &str = "CREATE TABLE items (id int PRIMARY KEY);\n";
const V2: &str = "ALTER TABLE items ADD COLUMN name text;\n";

impl Setup {
    /// The service `app` with V1, `names` onboarded and at V1 (their own Jobs, fresh).
    async fn fleet_at_v1(&self, names: &[&str], rollout: serde_json::Value) {
        self.service(&[("V1__items.sql", V1)], rollout).await;
        for n in names {
            self.tenant(n, false).await;
        }
        self.play_jobs_until(
            "every tenant at V1",
            |_| {},
            |t, _| t.len() == names.len() && all_at(t, "1"),
        )
        .await;
        assert!(
            self.batch_jobs().await.is_empty(),
            "fresh tenants: own Jobs"
        );
    }

    async fn batch_jobs(&self) -> Vec<Job> {
        Api::<Job>::namespaced(self.client.clone(), &self.ns)
            .list(&ListParams::default().labels(BATCH))
            .await
            .expect("listing Jobs")
            .items
    }
}

fn is_batch(j: &Job) -> bool {
    j.labels().contains_key("servicedb.io/migration-batch")
}

/// Locks batching: 6 tenants, batchSize 3, maxParallel 1: the new version rolls out in 2
/// batch Jobs, never more than 1 at once, no tenant Job of its own, each batch Job's
/// environment one DATABASE_URL_<i> per tenant from its own migrator Secret; every tenant
/// ends at the new version and the rollout Complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_tenants_in_two_batch_jobs_one_at_a_time() {
    let s = setup().await;
    let names = ["t-0", "t-1", "t-2", "t-3", "t-4", "t-5"];
    s.fleet_at_v1(
        &names,
        json!({"maxParallel": 1, "maxFailures": 0, "batchSize": 3}),
    )
    .await;
    s.config_map(
        "app-migrations",
        &[("V1__items.sql", V1), ("V2__name.sql", V2)],
    )
    .await;
    let mut most = 0;
    let mut own = BTreeSet::new();
    s.play_jobs_until(
        "every tenant at V2",
        |p| {
            most = most.max(p.len());
            own.extend(p.iter().filter(|j| !is_batch(j)).map(|j| j.name_any()));
        },
        |t, _| all_at(t, "2"),
    )
    .await;
    assert!(most <= 1, "at most maxParallel Jobs at once: saw {most}");
    assert!(own.is_empty(), "no tenant Job of its own: {own:?}");
    let batches = s.batch_jobs().await;
    assert_eq!(batches.len(), 2, "two batch Jobs in all");
    let mut members: Vec<String> = batches
        .iter()
        .flat_map(|j| {
            let a = j.annotations().get("servicedb.io/tenants").cloned();
            a.unwrap_or_default()
                .split(',')
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect();
    members.sort();
    assert_eq!(members, names);
    for j in &batches {
        let c = &j
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0];
        let secrets: Vec<String> = c
            .env
            .iter()
            .flatten()
            .map(|e| {
                let r = e
                    .value_from
                    .as_ref()
                    .unwrap()
                    .secret_key_ref
                    .as_ref()
                    .unwrap();
                format!("{}={}", e.name, r.name)
            })
            .collect();
        let tenants = j.annotations()["servicedb.io/tenants"].clone();
        let expected: Vec<String> = tenants
            .split(',')
            .enumerate()
            .map(|(i, t)| format!("DATABASE_URL_{i}=app-migrator-{t}"))
            .collect();
        assert_eq!(secrets, expected);
    }
    let sdb = s
        .wait_sdb("the rollout Complete", |o| {
            ready_now(o) && rollout_phase(o) == Some(RolloutPhase::Complete)
        })
        .await;
    let r = sdb.status.unwrap().rollout.unwrap();
    assert_eq!((r.total, r.at_target, r.failed), (6, 6, 0), "{r:?}");
    assert!(r.batches.is_empty(), "every batch reported: {r:?}");
}

/// Locks "a failure is reported per tenant": in a batch of 3, one tenant's migration fails;
/// the other two reach the target; only the failing one is failed (its lastError from its
/// report line), and past maxFailures (0) the rollout pauses before the next batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failing_tenant_in_a_batch_fails_alone_and_pauses_the_rollout() {
    let s = setup().await;
    let names = ["t-0", "t-1", "t-2", "t-3", "t-4", "t-5"];
    s.fleet_at_v1(
        &names,
        json!({"maxParallel": 1, "maxFailures": 0, "batchSize": 3}),
    )
    .await;
    let v2 = "DO $$ BEGIN IF current_database() LIKE '%t_1' THEN \
              RAISE EXCEPTION 'tenant one refuses'; END IF; END $$;\n";
    s.config_map(
        "app-migrations",
        &[("V1__items.sql", V1), ("V2__gate.sql", v2)],
    )
    .await;
    s.play_jobs_until(
        "the rollout paused with t-1 failed and t-0, t-2 counted at the target",
        |_| {},
        // The pause can be written before the last batch member's status reaches the
        // rollout's counts; both are eventually true together.
        |_, sdb| {
            let counts = sdb
                .status
                .as_ref()
                .and_then(|s| s.rollout.as_ref())
                .map(|r| (r.failed, r.at_target));
            rollout_phase(sdb) == Some(RolloutPhase::Paused) && counts == Some((1, 2))
        },
    )
    .await;
    let tenants = s.tenants().await;
    let by = |n: &str| tenants.iter().find(|t| t.name_any() == n).unwrap();
    assert_eq!(version_of(by("t-0")).as_deref(), Some("2"));
    assert_eq!(version_of(by("t-2")).as_deref(), Some("2"));
    assert_eq!(version_of(by("t-1")).as_deref(), Some("1"));
    let error = db(by("t-1"))
        .and_then(|d| d.schema.as_ref())
        .and_then(|s| s.last_error.clone())
        .unwrap_or_default();
    assert!(
        error.contains("V2__gate.sql") && error.contains("tenant one refuses"),
        "{error}"
    );
    for n in ["t-3", "t-4", "t-5"] {
        assert_eq!(
            version_of(by(n)).as_deref(),
            Some("1"),
            "{n} held by the pause"
        );
    }
    let sdb = s.sdb().await;
    let r = sdb.status.unwrap().rollout.unwrap();
    assert_eq!((r.failed, r.at_target), (1, 2), "{r:?}");
    assert_eq!(r.failed_tenants, ["t-1"]);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(s.batch_jobs().await.len(), 1, "no batch Job while paused");
    assert!(s.pending_jobs().await.is_empty());
}
