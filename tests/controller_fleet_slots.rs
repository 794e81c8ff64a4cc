//! A rollout's slot turns over when its Job ends: the ServiceDatabase watches its tenants'
//! Jobs, so the next tenant starts while the one whose Job ended records it in its own time.
//! `controller::run` against the fake API server (or SERVICEDB_TEST_KUBECONFIG's cluster),
//! the tests' PostgreSQL, and `JobRunner` playing the Job controller.

mod controller_common;
mod support;
mod tenant_common;

use kube::ResourceExt;
use serde_json::json;
use servicedb::api::{JobOutcome, RolloutPhase, Tenant};
use support::kube::{Fault, eventually};
use tenant_common::fleet::{all_at, db, rollout_phase, version_of};
use tenant_common::rollout::setup;

const V1: &str = "CREATE TABLE items (id int PRIMARY KEY);\n";
const V2: &str = "ALTER TABLE items ADD COLUMN name text;\n";

fn outcome(tenants: &[Tenant], name: &str) -> Option<JobOutcome> {
    let t = tenants.iter().find(|t| t.name_any() == name)?;
    db(t)?.schema.as_ref()?.last_job_outcome
}

/// Locks "a Job's end frees its slot": with maxParallel 1, the second tenant's Job starts
/// once the first tenant's Job has ended, while that Tenant still cannot record the end
/// (its status writes fail); the rollout completes, and the first Tenant records V2 once
/// it can. Before, the first Tenant's status ("Running") held the only slot until it was
/// written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_end_frees_its_slot_before_its_tenant_records_it() {
    let s = setup().await;
    s.service(
        &[("V1__items.sql", V1)],
        json!({"maxParallel": 1, "maxFailures": 0}),
    )
    .await;
    for n in ["t-0", "t-1"] {
        s.tenant(n, false).await;
    }
    s.play_until(
        "both tenants at V1",
        |_| {},
        |t, _| t.len() == 2 && all_at(t, "1"),
    )
    .await;

    s.config_map(
        "app-migrations",
        &[("V1__items.sql", V1), ("V2__name.sql", V2)],
    )
    .await;
    // t-0 goes first (name order). Once its status says its Job runs, it can write no more.
    let first = eventually("t-0's V2 Job, recorded as running", || async {
        let tenants = s.tenants().await;
        (outcome(&tenants, "t-0") == Some(JobOutcome::Running)).then_some(())?;
        let pending = s.pending().await;
        pending
            .into_iter()
            .find(|(t, _)| t == "t-0")
            .map(|(_, j)| j)
    })
    .await;
    let faults = &s.operator.faults;
    faults.inject(
        Fault::on("patch", "*/tenants/t-0/status")
            .status(500)
            .always(),
    );
    assert!(s.run(&first).await, "t-0's V2 Job succeeds");

    let second = eventually("t-1's V2 Job", || async {
        let pending = s.pending().await;
        pending
            .into_iter()
            .find(|(t, _)| t == "t-1")
            .map(|(_, j)| j)
    })
    .await;
    let tenants = s.tenants().await;
    let t0 = tenants.iter().find(|t| t.name_any() == "t-0").unwrap();
    assert_eq!(
        (outcome(&tenants, "t-0"), version_of(t0).as_deref()),
        (Some(JobOutcome::Running), Some("1")),
        "t-1 started while t-0's status still said its Job runs"
    );
    assert!(s.run(&second).await, "t-1's V2 Job succeeds");
    let sdb = s
        .wait_sdb("the V2 rollout Complete", |o| {
            rollout_phase(o) == Some(RolloutPhase::Complete)
                && o.status
                    .as_ref()
                    .and_then(|s| s.rollout.as_ref())
                    .is_some_and(|r| r.target_version.as_deref() == Some("2"))
        })
        .await;
    let r = sdb.status.unwrap().rollout.unwrap();
    assert_eq!((r.total, r.at_target, r.failed), (2, 2, 0));

    eventually("t-0's attempt to record the end", || async {
        (faults.injected() > 0).then_some(())
    })
    .await;
    faults.clear();
    eventually("t-0 records V2 once it can write", || async {
        all_at(&s.tenants().await, "2").then_some(())
    })
    .await;
    assert_eq!(s.jobs().await.get("t-0"), Some(&2), "no second V2 Job");
}
