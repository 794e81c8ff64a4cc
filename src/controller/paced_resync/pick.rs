//! Which due objects a sweep triggers: a pure choice, most overdue first.

use tokio::time::Instant;

/// What is left after a sweep: due objects without a slot, the next due time, or nothing.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Waiting {
    Backlog,
    Next(Instant),
    Nothing,
}

/// The due objects (due at or before `now`) to trigger, most overdue first, at most `free`
/// of them; what is left; how many were due. Pure.
pub(super) fn pick<T>(
    candidates: impl Iterator<Item = (T, Instant)>,
    now: Instant,
    free: usize,
) -> (Vec<T>, Waiting, usize) {
    let mut due = Vec::new();
    let mut next: Option<Instant> = None;
    for (object, at) in candidates {
        if at <= now {
            due.push((at, object));
        } else {
            next = Some(next.map_or(at, |n| n.min(at)));
        }
    }
    let overdue = due.len();
    let backlog = overdue > free;
    if backlog {
        due.select_nth_unstable_by_key(free, |(at, _)| *at);
        due.truncate(free);
    }
    due.sort_by_key(|(at, _)| *at);
    let waiting = match (backlog, next) {
        (true, _) => Waiting::Backlog,
        (false, Some(at)) => Waiting::Next(at),
        (false, None) => Waiting::Nothing,
    };
    let picked = due.into_iter().map(|(_, object)| object).collect();
    (picked, waiting, overdue)
}
