//! A time bound on work that does not count the time the work spends queueing for a
//! shared limit (a turn on a server, a connection slot).
//!
//! A reconcile is bounded so that a replica which lost its lease stops acting soon, but a
//! reconcile waiting for one of a server's 8 turns is not acting. Counting the wait would
//! make a busy server a livelock: with hundreds of reconciles queued behind the turns,
//! each one's bound runs out in the queue, its work is cancelled part-way, and it queues
//! again. So the queues call [`paused`] while they wait, and [`bounded`] counts only the
//! rest (up to ten times the bound: a wait that never ends is still cut).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

tokio::task_local! {
    static BUDGET: Arc<Mutex<Budget>>;
}

/// Waiting is not counted up to this many times the bound: a wait that never ends (a turn
/// that is never given back) still gets the work cut, as a plain timeout would.
const MOST_PAUSED: u32 = 10;

#[derive(Debug)]
struct Budget {
    limit: Duration,
    started: Instant,
    /// Waiting time already over.
    paused_for: Duration,
    /// The waits under way (the work may wait for several limits at once).
    waits: usize,
    waiting_since: Option<Instant>,
}

impl Budget {
    /// The time counted against the bound by `now`.
    fn used(&self, now: Instant) -> Duration {
        let waiting = self.waiting_since.map_or(Duration::ZERO, |s| now - s);
        let paused = (self.paused_for + waiting).min(self.limit * MOST_PAUSED);
        (now - self.started).saturating_sub(paused)
    }
}

/// Runs `work` for at most `limit` of time that is not spent in a [`paused`] wait. None when
/// the bound ran out (the work is dropped, as `tokio::time::timeout` drops it).
pub async fn bounded<F: Future>(limit: Duration, work: F) -> Option<F::Output> {
    let budget = Arc::new(Mutex::new(Budget {
        limit,
        started: Instant::now(),
        paused_for: Duration::ZERO,
        waits: 0,
        waiting_since: None,
    }));
    let work = BUDGET.scope(budget.clone(), work);
    tokio::pin!(work);
    let mut deadline = Instant::now() + limit;
    loop {
        tokio::select! {
            out = &mut work => return Some(out),
            _ = tokio::time::sleep_until(deadline) => {
                let now = Instant::now();
                let used = budget.lock().unwrap_or_else(|e| e.into_inner()).used(now);
                if used >= limit {
                    return None;
                }
                deadline = now + (limit - used);
            }
        }
    }
}

/// While the returned guard lives, the enclosing [`bounded`] work's clock stands still.
/// Outside `bounded` it does nothing.
pub fn paused() -> Paused {
    let budget = BUDGET.try_with(Arc::clone).ok();
    if let Some(b) = &budget {
        let mut b = b.lock().unwrap_or_else(|e| e.into_inner());
        if b.waits == 0 {
            b.waiting_since = Some(Instant::now());
        }
        b.waits += 1;
    }
    Paused { budget }
}

/// See [`paused`].
pub struct Paused {
    budget: Option<Arc<Mutex<Budget>>>,
}

impl Drop for Paused {
    fn drop(&mut self) {
        let Some(b) = &self.budget else { return };
        let mut b = b.lock().unwrap_or_else(|e| e.into_inner());
        b.waits = b.waits.saturating_sub(1);
        if b.waits == 0
            && let Some(since) = b.waiting_since.take()
        {
            b.paused_for += Instant::now() - since;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real time, with wide margins: the counted work is far from the bound either way.
    const MS: Duration = Duration::from_millis(1);

    #[tokio::test]
    async fn work_past_its_bound_is_cut() {
        let out = bounded(100 * MS, tokio::time::sleep(600 * MS)).await;
        assert!(out.is_none());
    }

    #[tokio::test]
    async fn time_spent_waiting_is_not_counted() {
        // 2 x 50 ms of work around 900 ms queued: about 100 ms counted, within 500.
        let out = bounded(500 * MS, async {
            tokio::time::sleep(50 * MS).await;
            {
                let _queued = paused();
                tokio::time::sleep(900 * MS).await;
            }
            tokio::time::sleep(50 * MS).await;
            7
        })
        .await;
        assert_eq!(out, Some(7));
    }

    #[tokio::test]
    async fn the_work_after_a_wait_is_still_bounded() {
        let out = bounded(100 * MS, async {
            {
                let _queued = paused();
                tokio::time::sleep(300 * MS).await;
            }
            tokio::time::sleep(600 * MS).await;
        })
        .await;
        assert!(
            out.is_none(),
            "600 ms of work after the wait is over the bound"
        );
    }

    #[tokio::test]
    async fn overlapping_waits_pause_once() {
        let out = bounded(400 * MS, async {
            let a = paused();
            tokio::time::sleep(400 * MS).await;
            let b = paused();
            drop(a);
            tokio::time::sleep(400 * MS).await;
            drop(b);
            tokio::time::sleep(50 * MS).await;
        })
        .await;
        assert!(out.is_some(), "800 ms paused, 50 ms counted");
    }

    #[tokio::test]
    async fn a_wait_that_never_ends_is_cut_after_ten_bounds() {
        let out = bounded(40 * MS, async {
            let _queued = paused();
            std::future::pending::<()>().await;
        })
        .await;
        assert!(out.is_none());
    }
}
