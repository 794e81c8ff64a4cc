//! A Job controller stand-in for the benches: plays every Job of the namespace the moment
//! the watch shows it (as many at once as exist), and keeps what it played.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::TryStreamExt;
use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use servicedb::controller::migration::observe::finished;

use crate::fixture::Fixture;

/// One Job run by [`JobPlayer`].
#[derive(Clone, Debug)]
pub struct Played {
    pub started: Instant,
    pub ended: Instant,
    pub succeeded: bool,
}

/// Plays every Job of the namespace the moment the watch shows it, all at once.
///
/// A Job counts as running, as the API tells it, from the moment the watch shows it until
/// the watch shows it ended (or its run returned, should that come first): the counting
/// follows the API's order of events, as the operator sees them, not the player's own
/// bookkeeping after its last status write.
pub struct JobPlayer {
    pub played: Arc<Mutex<Vec<Played>>>,
    running: Arc<Mutex<BTreeSet<String>>>,
    most: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl JobPlayer {
    pub fn start(f: &Fixture) -> JobPlayer {
        let runner = f
            .cluster
            .job_runner()
            .program("servicedb", env!("CARGO_BIN_EXE_servicedb"));
        let api: Api<Job> = Api::namespaced(f.client.clone(), &f.ns);
        let ns = f.ns.clone();
        let played = Arc::new(Mutex::new(Vec::new()));
        let running = Arc::new(Mutex::new(BTreeSet::new()));
        let most = Arc::new(AtomicUsize::new(0));
        let (p, r, m) = (played.clone(), running.clone(), most.clone());
        let task = tokio::spawn(async move {
            let mut seen = BTreeSet::new();
            let mut jobs = std::pin::pin!(
                watcher(api, watcher::Config::default())
                    .default_backoff()
                    .applied_objects()
            );
            while let Ok(Some(job)) = jobs.try_next().await {
                if finished(&job).is_some() {
                    r.lock().expect("running").remove(&job.name_any());
                }
                if job
                    .status
                    .as_ref()
                    .and_then(|s| s.start_time.as_ref())
                    .is_some()
                    || job.metadata.deletion_timestamp.is_some()
                    || !seen.insert(job.name_any())
                {
                    continue;
                }
                {
                    let mut running = r.lock().expect("running");
                    running.insert(job.name_any());
                    m.fetch_max(running.len(), Ordering::SeqCst);
                }
                let (runner, ns, name) = (runner.clone(), ns.clone(), job.name_any());
                let (p, r) = (p.clone(), r.clone());
                tokio::spawn(async move {
                    let started = Instant::now();
                    trace_job("seen", &name);
                    let run = runner.run(&ns, &name).await;
                    trace_job("ended", &name);
                    r.lock().expect("running").remove(&name);
                    let succeeded = match run {
                        Ok(run) => run.succeeded,
                        Err(e) => {
                            eprintln!("job {name}: {e}");
                            false
                        }
                    };
                    p.lock().expect("played").push(Played {
                        started,
                        ended: Instant::now(),
                        succeeded,
                    });
                });
            }
        });
        JobPlayer {
            played,
            running,
            most,
            task,
        }
    }

    /// Jobs played that started at or after `since`.
    pub fn since(&self, since: Instant) -> Vec<Played> {
        let played = self.played.lock().expect("played");
        played
            .iter()
            .filter(|p| p.started >= since)
            .cloned()
            .collect()
    }

    /// Resets the highest number at once seen (to the number running now).
    pub fn reset_most(&self) {
        let running = self.running.lock().expect("running").len();
        self.most.store(running, Ordering::SeqCst);
    }

    pub fn most(&self) -> usize {
        self.most.load(Ordering::SeqCst)
    }
}

/// With `SERVICEDB_BENCH_LOG` set, a timestamped line per Job seen and ended, to lay
/// beside the operator's log.
fn trace_job(what: &str, job: &str) {
    if std::env::var_os("SERVICEDB_BENCH_LOG").is_some() {
        let now = k8s_openapi::jiff::Timestamp::now();
        eprintln!("{{\"timestamp\":\"{now}\",\"player\":\"{what}\",\"job\":\"{job}\"}}");
    }
}

impl Drop for JobPlayer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
