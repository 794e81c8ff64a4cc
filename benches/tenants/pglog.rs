//! Reading the bench PostgreSQL's statement log (`log_statement = all`, prefix
//! `%m [%p] %u@%d `) and sampling its sessions: statements and resync passes per database,
//! connections open at once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::support::postgres::TestServer;

/// What one database saw over the window.
#[derive(Default, Debug)]
pub struct PerDatabase {
    pub statements: usize,
    pub logins: usize,
    /// Seconds of the day of each statement or login, in log order.
    times: Vec<f64>,
}

impl PerDatabase {
    /// Passes over the database: runs of activity separated by more than `gap` (half a
    /// resync period: a pass takes well under that).
    pub fn passes(&self, gap: Duration) -> usize {
        let mut times = self.times.clone();
        times.sort_by(f64::total_cmp);
        let gap = gap.as_secs_f64();
        times.windows(2).filter(|w| w[1] - w[0] > gap).count() + usize::from(!times.is_empty())
    }
}

/// "2026-12-01 13:40:00.123 UTC" -> seconds of the day.
fn seconds_of_day(stamp_time: &str) -> Option<f64> {
    let mut parts = stamp_time.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

/// Statements and logins per database, leaving out `skip_user`'s (the bench's own).
pub fn tally(log: &str, skip_user: &str) -> BTreeMap<String, PerDatabase> {
    let mut out: BTreeMap<String, PerDatabase> = BTreeMap::new();
    for line in log.lines() {
        // "<date> <time> <zone> [<pid>] <user>@<database> LOG:  ..."
        let Some((stamp, rest)) = line.split_once(" [") else {
            continue;
        };
        let Some(rest) = rest.split_once("] ").map(|(_, r)| r) else {
            continue;
        };
        let Some((who, message)) = rest.split_once(' ') else {
            continue;
        };
        let Some((user, db)) = who.split_once('@') else {
            continue;
        };
        if user == skip_user || db.is_empty() {
            continue;
        }
        let statement =
            message.starts_with("LOG:  statement: ") || message.starts_with("LOG:  execute ");
        let login = message.starts_with("LOG:  connection authorized");
        if !statement && !login {
            continue;
        }
        let entry = out.entry(db.to_string()).or_default();
        if statement {
            entry.statements += 1;
        } else {
            entry.logins += 1;
        }
        if let Some(t) = stamp.split(' ').nth(1).and_then(seconds_of_day) {
            entry.times.push(t);
        }
    }
    out
}

/// The most frequent statements in `log` (first 70 characters), leaving out `skip_user`'s.
pub fn top_statements(log: &str, skip_user: &str, n: usize) -> Vec<(usize, String)> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for line in log.lines() {
        let Some((_, rest)) = line.split_once("] ") else {
            continue;
        };
        let Some((who, message)) = rest.split_once(' ') else {
            continue;
        };
        if who.split('@').next() == Some(skip_user) {
            continue;
        }
        let text = message.strip_prefix("LOG:  statement: ").or_else(|| {
            message
                .strip_prefix("LOG:  execute ")
                .map(|m| m.split_once(": ").map_or(m, |(_, t)| t))
        });
        if let Some(text) = text {
            let text: String = text.chars().take(70).collect();
            *counts.entry(text).or_default() += 1;
        }
    }
    let mut top: Vec<(usize, String)> = counts.into_iter().map(|(t, c)| (c, t)).collect();
    top.sort_by_key(|e| std::cmp::Reverse(e.0));
    top.truncate(n);
    top
}

/// Logs every login too (for counting passes over a database that sees no statement).
pub async fn log_connections(pg: &TestServer) {
    let su = pg.superuser_client("postgres").await;
    // ALTER SYSTEM cannot share a batch (an implicit transaction) with anything.
    for statement in [
        "ALTER SYSTEM SET log_connections = on",
        "SELECT pg_reload_conf()",
    ] {
        su.batch_execute(statement).await.expect(statement);
    }
}

/// Samples the sessions of everyone but the superuser every 20 ms, keeping the highest
/// count, until dropped.
pub struct Sessions {
    pub most: Arc<AtomicUsize>,
    pub samples: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Sessions {
    pub async fn sample(pg: &'static TestServer) -> Sessions {
        let su = pg.superuser_client("postgres").await;
        let most = Arc::new(AtomicUsize::new(0));
        let samples = Arc::new(AtomicUsize::new(0));
        let (m, n) = (most.clone(), samples.clone());
        let me = pg.superuser().to_string();
        let task = tokio::spawn(async move {
            let query = su
                .prepare(
                    "SELECT count(*) FROM pg_stat_activity \
                     WHERE backend_type = 'client backend' AND usename <> $1",
                )
                .await
                .expect("preparing the sampling query");
            loop {
                if let Ok(row) = su.query_one(&query, &[&me]).await {
                    let count: i64 = row.get(0);
                    m.fetch_max(count as usize, Ordering::SeqCst);
                    n.fetch_add(1, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Sessions {
            most,
            samples,
            task,
        }
    }
}

impl Drop for Sessions {
    fn drop(&mut self) {
        self.task.abort();
    }
}
