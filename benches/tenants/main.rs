//! Benchmarks of the tenant fleet (issue 11), each figure printed next to its baseline or
//! bound from the same run:
//! - `onboard`: N Tenants (500) provisioned and migrated through `servicedb run` against
//!   the fake API server, time to all Ready; the same N through `servicedb dev up`.
//! - `steady`: N Tenants (5,000) cached, D of them (1,000) with a real database; over a few
//!   resyncs: the operator's RSS, its API writes, SQL statements per tenant database per
//!   resync, peak connections to the server against its bound.
//! - `rollout`: one new version (a migration taking 0.2 s) over N tenant databases (200) with
//!   maxParallel 8: wall time against (serial sum of the Job durations / 8).
//!
//! `cargo bench --bench tenants -- [onboard|steady|rollout]...` (all when none named).
//! `SERVICEDB_BENCH_SCALE=0.1` multiplies every size (at least 1); `SERVICEDB_BENCH_RESYNC`
//! (e.g. `30s`) sets the steady state's resync period; `SERVICEDB_BENCH_DATABASES` the
//! number of steady-state Tenants with a real database (about 7.5 MB of disk each).
//!
//! The operator runs as a child process (the release `servicedb` built with the bench),
//! Jobs are run by the tests' Job controller stand-in as soon as they appear, all at once.

#[path = "../../tests/support/mod.rs"]
#[allow(dead_code)]
mod support;

#[path = "../../tests/controller_common/mod.rs"]
mod controller_common;

#[path = "../../tests/tenant_common/mod.rs"]
mod tenant_common;

mod fixture;
mod job_player;
mod laggards;
mod onboard;
mod pglog;
mod rollout;
mod steady;

use std::time::Duration;

/// A size at full scale, times `SERVICEDB_BENCH_SCALE`.
pub fn scaled(full: usize) -> usize {
    let scale: f64 = std::env::var("SERVICEDB_BENCH_SCALE")
        .ok()
        .map(|s| {
            s.parse()
                .expect("SERVICEDB_BENCH_SCALE: a number such as 0.1")
        })
        .unwrap_or(1.0);
    ((full as f64 * scale).round() as usize).max(1)
}

pub fn env_duration(name: &str, default: Duration) -> Duration {
    std::env::var(name)
        .ok()
        .map(|s| {
            humantime::parse_duration(&s)
                .unwrap_or_else(|e| panic!("{name}: a duration such as 30s: {e}"))
        })
        .unwrap_or(default)
}

/// One row of a figure table: what, measured, baseline or bound, verdict.
pub struct Row {
    pub what: String,
    pub value: String,
    pub against: String,
    pub verdict: &'static str,
}

pub fn row(what: &str, value: String, against: String, ok: Option<bool>) -> Row {
    Row {
        what: what.into(),
        value,
        against,
        verdict: match ok {
            Some(true) => "ok",
            Some(false) => "OVER",
            None => "",
        },
    }
}

pub fn table(title: &str, rows: &[Row]) {
    println!("\n{title}");
    let w = rows.iter().map(|r| r.what.len()).max().unwrap_or(0);
    let v = rows.iter().map(|r| r.value.len()).max().unwrap_or(0);
    let a = rows.iter().map(|r| r.against.len()).max().unwrap_or(0);
    println!(
        "  {:<w$}  {:>v$}  {:<a$}",
        "figure", "measured", "baseline / bound"
    );
    for r in rows {
        println!(
            "  {:<w$}  {:>v$}  {:<a$}  {}",
            r.what, r.value, r.against, r.verdict
        );
    }
}

pub fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let all = ["onboard", "steady", "rollout"];
    for a in &args {
        assert!(
            all.contains(&a.as_str()),
            "unknown sub-benchmark {a:?}; one of {all:?}"
        );
    }
    let chosen: Vec<&str> = all
        .into_iter()
        .filter(|b| args.is_empty() || args.iter().any(|a| a == b))
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    for b in chosen {
        let started = std::time::Instant::now();
        match b {
            "onboard" => runtime.block_on(onboard::run()),
            "steady" => runtime.block_on(steady::run()),
            _ => runtime.block_on(rollout::run()),
        }
        println!("  ({b} took {} in all)", secs(started.elapsed()));
    }
}
