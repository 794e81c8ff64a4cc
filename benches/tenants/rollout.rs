//! A rollout of one new version over N tenant databases (200) with maxParallel 8: the
//! fleet comes up at V1, then V2 (`SELECT pg_sleep(0.2)`, a migration of known length) is
//! added; wall time from the change until the ServiceDatabase reports the rollout Complete
//! at V2 with every tenant there, against the serial sum of the rollout's Job durations / 8.

use std::time::{Duration, Instant};

use servicedb::api::RolloutPhase;

use crate::fixture::{Fixture, Operator, V1};
use crate::job_player::JobPlayer;
use crate::{row, scaled, secs, table};

const MAX_PARALLEL: usize = 8;
const V2: &str = "SELECT pg_sleep(0.2);\n";

pub async fn run() {
    let n = scaled(200);
    println!(
        "\nrollout: V1 -> V2 (pg_sleep 0.2 s) over {n} tenant databases, maxParallel {MAX_PARALLEL}"
    );
    let f = Fixture::start().await;
    let operator = Operator::start(&f, Duration::from_secs(600), false).await;
    let player = JobPlayer::start(&f);
    f.wait_server().await;
    f.migrations(&[("V1__items.sql", V1)]).await;
    f.service(serde_json::json!({"maxParallel": MAX_PARALLEL, "maxFailures": 0}))
        .await;
    f.tenants(0..n, true).await;
    f.wait_fleet(n, Some("1"), Duration::from_secs(120 + n as u64))
        .await;
    // The rollout status settles at V1 before the change.
    wait_complete(&f, "1", n, Duration::from_secs(120)).await;

    player.reset_most();
    let started = Instant::now();
    f.migrations(&[("V1__items.sql", V1), ("V2__wait.sql", V2)])
        .await;
    let complete = wait_complete(&f, "2", n, Duration::from_secs(120 + 2 * n as u64)).await;
    let wall = complete - started;
    let fleet = f.wait_fleet(n, Some("2"), Duration::from_secs(60)).await - started;
    let jobs = player.since(started);
    let most = player.most();
    drop(player);
    operator.stop().await;

    let serial: Duration = jobs.iter().map(|j| j.ended - j.started).sum();
    let failed = jobs.iter().filter(|j| !j.succeeded).count();
    // Fewer Jobs than slots cannot fill them: the baseline divides by the slots usable.
    let slots = MAX_PARALLEL.min(jobs.len()).max(1);
    let ideal = serial / slots as u32;
    let ratio = wall.as_secs_f64() / ideal.as_secs_f64().max(f64::EPSILON);
    let last_job = jobs
        .iter()
        .map(|j| j.ended - started)
        .max()
        .unwrap_or_default();
    let first_job = jobs
        .iter()
        .map(|j| j.started - started)
        .min()
        .unwrap_or_default();
    let mean = serial / (jobs.len().max(1) as u32);
    table(
        &format!("rollout: {n} tenant databases, maxParallel {MAX_PARALLEL}"),
        &[
            row(
                "wall time, change -> rollout Complete",
                secs(wall),
                format!("serial sum / {slots}: {}", secs(ideal)),
                None,
            ),
            row(
                &format!("wall / (serial sum / {slots})"),
                format!("{ratio:.2}"),
                "at most 1.50".into(),
                Some(ratio <= 1.5),
            ),
            row(
                "serial sum of Job durations",
                secs(serial),
                format!("{} Jobs, mean {}", jobs.len(), secs(mean)),
                None,
            ),
            row(
                "Jobs running at once, most",
                most.to_string(),
                format!("maxParallel {MAX_PARALLEL}"),
                Some(most <= MAX_PARALLEL),
            ),
            row(
                "first Job started / last Job ended",
                format!("{} / {}", secs(first_job), secs(last_job)),
                "after the change".into(),
                None,
            ),
            row(
                "every Tenant at V2 (status)",
                secs(fleet),
                format!("{failed} Jobs failed"),
                Some(failed == 0),
            ),
        ],
    );
}

/// Waits until the ServiceDatabase's rollout is Complete at `version` over `n` tenants.
async fn wait_complete(f: &Fixture, version: &str, n: usize, timeout: Duration) -> Instant {
    let started = Instant::now();
    loop {
        let sdb = f.sdb().await;
        let rollout = sdb.status.as_ref().and_then(|s| s.rollout.as_ref());
        if rollout.is_some_and(|r| {
            r.phase == Some(RolloutPhase::Complete)
                && r.target_version.as_deref() == Some(version)
                && r.at_target as usize >= n
        }) {
            return Instant::now();
        }
        assert!(
            started.elapsed() < timeout,
            "timed out after {timeout:?} waiting for the rollout to V{version}: {rollout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
