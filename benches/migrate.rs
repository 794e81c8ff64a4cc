//! Benchmark: 300 generated migrations applied to an empty database, then a no-op re-run, by
//! `servicedb migrate apply` and by `sqlx migrate run` on the same SQL in the same run.
//! Both are timed as whole processes (what a migration Job pays), against one PostgreSQL.
//!
//! servicedb pipelines consecutive transactional migrations (each still `BEGIN; script; history
//! row; COMMIT` on its own) and reads user, table and history in one round trip, taking no lock
//! when nothing is pending; sqlx-cli runs one migration per several round trips.
//!
//! `cargo bench --bench migrate` (installs sqlx-cli into .cache/sqlx on first use).

#[path = "../tests/support/postgres.rs"]
#[allow(dead_code)]
mod postgres;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MIGRATIONS: usize = 300;
const ROUNDS: usize = 3;
const RERUNS: usize = 15;

fn main() {
    let sqlx = sqlx_binary();
    let servicedb = PathBuf::from(env!("CARGO_BIN_EXE_servicedb"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = postgres::server();
    // The test server logs every statement; a benchmark measures the tools, not the log.
    rt.block_on(async {
        let su = server.superuser_client("postgres").await;
        su.batch_execute("ALTER SYSTEM SET log_statement = 'none'")
            .await
            .unwrap();
        su.batch_execute("SELECT pg_reload_conf()").await.unwrap();
    });

    let dir = tempfile::tempdir().unwrap();
    let (flyway_dir, sqlx_dir) = (dir.path().join("flyway"), dir.path().join("sqlx"));
    generate(&flyway_dir, &sqlx_dir);

    let mut ours = Times::default();
    let mut theirs = Times::default();
    for round in 0..ROUNDS {
        let db_a = rt.block_on(server.create_database("bench_servicedb"));
        let db_b = rt.block_on(server.create_database("bench_sqlx"));
        let ours_cmd = |db: &str| {
            let mut c = Command::new(&servicedb);
            c.args(["migrate", "apply", "--dir"])
                .arg(&flyway_dir)
                .env("DATABASE_URL", server.admin_url(db));
            c
        };
        let theirs_cmd = |db: &str| {
            let mut c = Command::new(&sqlx);
            c.args(["migrate", "run", "--source"])
                .arg(&sqlx_dir)
                .args(["--database-url", &server.admin_url(db)]);
            c
        };
        // Alternate who goes first so neither always meets a warmer server.
        let order: [bool; 2] = if round % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for first_ours in order {
            if first_ours {
                ours.apply.push(time(ours_cmd(&db_a)));
            } else {
                theirs.apply.push(time(theirs_cmd(&db_b)));
            }
        }
        for _ in 0..RERUNS / ROUNDS {
            ours.rerun.push(time(ours_cmd(&db_a)));
            theirs.rerun.push(time(theirs_cmd(&db_b)));
        }
        rt.block_on(async {
            let c = server.admin_client(&db_a).await;
            let n: i64 = c
                .query_one("SELECT count(*) FROM flyway_schema_history", &[])
                .await
                .unwrap()
                .get(0);
            assert_eq!(n as usize, MIGRATIONS, "servicedb applied everything");
        });
    }
    for _ in 0..RERUNS {
        let mut c = Command::new(&servicedb);
        c.arg("--version");
        ours.start.push(time(c));
        let mut c = Command::new(&sqlx);
        c.arg("--version");
        theirs.start.push(time(c));
    }

    println!(
        "\n{MIGRATIONS} migrations (CREATE TABLE + INSERT each), median of {ROUNDS} applies and {RERUNS} re-runs, whole processes:"
    );
    println!(
        "{:<34} {:>12} {:>12} {:>8}",
        "", "servicedb", "sqlx-cli", "ratio"
    );
    row(
        "apply to an empty database",
        ours.apply_ms(),
        theirs.apply_ms(),
    );
    row("re-run, nothing to do", ours.rerun_ms(), theirs.rerun_ms());
    row(
        "process start (--version)",
        ours.start_ms(),
        theirs.start_ms(),
    );
    row(
        "re-run beyond process start",
        ours.rerun_ms() - ours.start_ms(),
        theirs.rerun_ms() - theirs.start_ms(),
    );
    println!(
        "\ngoals (issue 7 item 16): apply 300 at 0.60x sqlx or better, each migration still in its own \
         transaction with its history row; a no-op re-run no slower than sqlx (ratio <= 1.00)"
    );
}

#[derive(Default)]
struct Times {
    apply: Vec<Duration>,
    rerun: Vec<Duration>,
    start: Vec<Duration>,
}

impl Times {
    fn apply_ms(&self) -> f64 {
        median(&self.apply)
    }
    fn rerun_ms(&self) -> f64 {
        median(&self.rerun)
    }
    fn start_ms(&self) -> f64 {
        median(&self.start)
    }
}

fn row(label: &str, ours: f64, theirs: f64) {
    println!(
        "{label:<34} {ours:>9.1} ms {theirs:>9.1} ms {:>7.2}x",
        ours / theirs
    );
}

fn median(v: &[Duration]) -> f64 {
    let mut ms: Vec<f64> = v.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    ms[ms.len() / 2]
}

fn time(mut cmd: Command) -> Duration {
    let start = Instant::now();
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

fn generate(flyway: &Path, sqlx: &Path) {
    std::fs::create_dir_all(flyway).unwrap();
    std::fs::create_dir_all(sqlx).unwrap();
    for i in 1..=MIGRATIONS {
        let sql = format!("CREATE TABLE t_{i} (id int);\nINSERT INTO t_{i} VALUES (1);\n");
        std::fs::write(flyway.join(format!("V{i}__t_{i}.sql")), &sql).unwrap();
        std::fs::write(sqlx.join(format!("{i}_t_{i}.sql")), &sql).unwrap();
    }
}

/// sqlx-cli from .cache/sqlx (or SQLX_BIN), installed there from crates.io when missing.
fn sqlx_binary() -> PathBuf {
    if let Ok(p) = std::env::var("SQLX_BIN") {
        return PathBuf::from(p);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/sqlx");
    let bin = root.join("bin/sqlx");
    if !bin.exists() {
        eprintln!("installing sqlx-cli into {} (once)", root.display());
        let status = Command::new("cargo")
            .args([
                "install",
                "sqlx-cli",
                "--locked",
                "--no-default-features",
                "--features",
                "postgres,rustls",
                "--root",
            ])
            .arg(&root)
            .status()
            .unwrap();
        assert!(status.success(), "cargo install sqlx-cli failed");
    }
    bin
}
