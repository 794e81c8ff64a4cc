use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::reflector::ObjectRef;
use tokio::time::Instant;

use futures::FutureExt;

use super::*;

fn object(name: &str) -> ConfigMap {
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some(name.into());
    cm.metadata.namespace = Some("ns".into());
    cm.metadata.uid = Some(format!("uid-{name}"));
    cm
}

fn names(picked: &[ObjectRef<ConfigMap>]) -> Vec<String> {
    picked.iter().map(|o| o.name.clone()).collect()
}

/// A pass that gets its slot at once (the tests that wait for one say so).
fn begin<'a>(pacer: &'a PacedResync<ConfigMap>, name: &str) -> Pass<'a, ConfigMap> {
    pacer
        .start(&object(name))
        .now_or_never()
        .flatten()
        .expect("a free slot")
}

const RESYNC: Duration = Duration::from_secs(100);

/// One pass of each object, ending now: each is due about a resync from now.
fn passed(pacer: &PacedResync<ConfigMap>, objects: &[&str]) {
    for name in objects {
        drop(begin(pacer, name));
    }
}

#[test]
fn the_most_overdue_go_first_and_no_more_than_there_are_free_slots() {
    let now = Instant::now();
    let s = Duration::from_secs;
    let candidates = [
        ("c", now - s(1)),
        ("a", now - s(30)),
        ("later", now + s(9)),
        ("b", now - s(5)),
    ];
    let (picked, waiting, overdue) = pick(candidates.into_iter(), now, 2);
    assert_eq!(picked, ["a", "b"]);
    assert_eq!(overdue, 3);
    assert_eq!(waiting, Waiting::Backlog, "c is due and waits for a slot");
    let (picked, waiting, _) = pick(candidates.into_iter(), now, 10);
    assert_eq!(picked, ["a", "b", "c"]);
    assert_eq!(waiting, Waiting::Next(now + s(9)));
    let (picked, waiting, _) = pick(candidates.into_iter(), now, 0);
    assert!(picked.is_empty());
    assert_eq!(waiting, Waiting::Backlog);
    let (picked, waiting, overdue) = pick(std::iter::empty::<(&str, Instant)>(), now, 4);
    assert_eq!(overdue, 0);
    assert!(picked.is_empty());
    assert_eq!(waiting, Waiting::Nothing);
}

#[test]
fn nothing_is_swept_before_its_resync() {
    let pacer = PacedResync::<ConfigMap>::new(RESYNC, 4);
    passed(&pacer, &["a", "b"]);
    let sweep = pacer.sweep(Instant::now());
    assert!(sweep.picked.is_empty());
    assert_eq!(sweep.overdue, 0);
    assert!(sweep.look_again <= Instant::now() + IDLE_LOOK);
    // Jittered by up to 10%.
    let sweep = pacer.sweep(Instant::now() + RESYNC * 2);
    assert_eq!(sweep.picked.len(), 2);
    assert_eq!(sweep.overdue, 0, "both got a slot");
}

#[test]
fn busy_slots_and_waiting_requests_leave_room_only_for_the_rest() {
    let pacer = PacedResync::<ConfigMap>::new(RESYNC, 3);
    passed(&pacer, &["a", "b", "c", "d", "e"]);
    let later = Instant::now() + RESYNC * 2;
    // A change to "x" is being reconciled: 2 slots are left for routine passes.
    let change = begin(&pacer, "x");
    let first = pacer.sweep(later).picked;
    assert_eq!(first.len(), 2, "{:?}", names(&first));
    // Triggered but not started: they hold their slots, nothing more is triggered.
    let held = pacer.sweep(later);
    assert!(held.picked.is_empty());
    assert_eq!(held.overdue, 3, "3 without a slot");
    // One of them starts: its slot is now a pass's, the other still waits for its own.
    let started = begin(&pacer, &first[0].name);
    assert!(pacer.sweep(later).picked.is_empty());
    drop(started);
    let second = pacer.sweep(later).picked;
    assert_eq!(second.len(), 1, "the ended pass freed its slot");
    assert_ne!(second[0].name, first[1].name, "already triggered");
    drop(change);
    let third = pacer.sweep(later).picked;
    assert_eq!(third.len(), 1, "the change's slot is free again");
    assert!(!names(&second).contains(&third[0].name));
}

#[test]
fn an_object_being_reconciled_is_not_due_until_its_pass_ends() {
    let pacer = PacedResync::<ConfigMap>::new(RESYNC, 4);
    passed(&pacer, &["a"]);
    let later = Instant::now() + RESYNC * 2;
    let running = begin(&pacer, "a");
    assert!(pacer.sweep(later).picked.is_empty(), "triggered twice");
    drop(running);
    assert!(pacer.sweep(Instant::now()).picked.is_empty());
    assert_eq!(pacer.sweep(Instant::now() + RESYNC * 2).picked.len(), 1);
}

#[test]
fn a_failed_or_final_pass_sets_no_routine_check() {
    let pacer = PacedResync::<ConfigMap>::new(RESYNC, 4);
    let mut failed = begin(&pacer, "failed");
    failed.failed();
    drop(failed);
    let mut gone = begin(&pacer, "gone");
    gone.gone();
    drop(gone);
    passed(&pacer, &["fine"]);
    let sweep = pacer.sweep(Instant::now() + RESYNC * 2);
    assert_eq!(
        names(&sweep.picked),
        ["fine"],
        "the backoff retries the failed one"
    );
}

#[test]
fn a_triggered_object_that_started_otherwise_is_no_longer_requested() {
    let pacer = PacedResync::<ConfigMap>::new(RESYNC, 4);
    passed(&pacer, &["a"]);
    let picked = pacer.sweep(Instant::now() + RESYNC * 2).picked;
    assert!(pacer.still_requested(&picked[0]));
    let _running = begin(&pacer, "a");
    assert!(!pacer.still_requested(&picked[0]));
}

#[test]
fn a_zero_resync_is_a_second() {
    let pacer = PacedResync::<ConfigMap>::new(Duration::ZERO, 4);
    passed(&pacer, &["a"]);
    assert!(pacer.sweep(Instant::now()).picked.is_empty());
    let later = Instant::now() + Duration::from_secs(2);
    assert_eq!(pacer.sweep(later).picked.len(), 1);
}

#[test]
fn a_request_that_never_starts_stops_holding_its_slot_after_a_resync() {
    let pacer = PacedResync::<ConfigMap>::new(RESYNC, 1);
    passed(&pacer, &["a", "b"]);
    let later = Instant::now() + RESYNC * 2;
    assert_eq!(pacer.sweep(later).picked.len(), 1);
    assert!(pacer.sweep(later).picked.is_empty());
    let again = pacer.sweep(later + RESYNC).picked;
    assert_eq!(again.len(), 1);
}

#[test]
fn a_forgotten_object_is_not_swept_again() {
    let pacer = PacedResync::<ConfigMap>::new(RESYNC, 4);
    passed(&pacer, &["a", "gone"]);
    pacer.forget(&ObjectRef::from_obj(&object("gone")));
    let sweep = pacer.sweep(Instant::now() + RESYNC * 2);
    assert_eq!(names(&sweep.picked), ["a"]);
}

#[test]
fn unbounded_concurrency_sweeps_everything_due() {
    let pacer = PacedResync::<ConfigMap>::new(RESYNC, 0);
    let many: Vec<String> = (0..50).map(|i| format!("t-{i}")).collect();
    passed(&pacer, &many.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(pacer.sweep(Instant::now() + RESYNC * 2).picked.len(), 50);
}

#[tokio::test]
async fn the_stream_triggers_due_objects_reports_the_rest_and_ends_at_shutdown() {
    let pacer = Arc::new(PacedResync::<ConfigMap>::new(Duration::from_secs(1), 1));
    passed(&pacer, &["a", "b"]);
    let (stop, stopped) = futures::channel::oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    }
    .boxed()
    .shared();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let report = seen.clone();
    let overdue = move |n| report.lock().unwrap().push(n);
    // Both due (their resyncs are spread by up to 10%) before the first sweep.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut triggers = pacer.clone().triggers(shutdown, overdue);
    let first = tokio::time::timeout(Duration::from_secs(10), triggers.next())
        .await
        .expect("triggered within its resync")
        .expect("a trigger");
    assert!(["a", "b"].contains(&first.name.as_str()));
    assert_eq!(
        seen.lock().unwrap().last(),
        Some(&1),
        "one slot: the other waits"
    );
    let _ = stop.send(());
    assert!(triggers.next().await.is_none());
    assert_eq!(
        seen.lock().unwrap().last(),
        Some(&0),
        "nothing is checked now"
    );
}

#[test]
fn slots_go_first_come_first_served() {
    let pacer = PacedResync::<ConfigMap>::new(RESYNC, 1);
    let running = begin(&pacer, "a");
    let (b, c) = (object("b"), object("c"));
    let mut early = Box::pin(pacer.start(&b));
    let mut late = Box::pin(pacer.start(&c));
    assert!(early.as_mut().now_or_never().is_none(), "the slot is taken");
    assert!(late.as_mut().now_or_never().is_none());
    drop(running);
    assert!(
        late.as_mut().now_or_never().is_none(),
        "the freed slot is the one that asked first's"
    );
    let early = early.as_mut().now_or_never().flatten().expect("its turn");
    drop(early);
    assert!(late.as_mut().now_or_never().is_some(), "then the next's");
}

/// New objects queue one at a time: a follow-up for an object seen before (its Job ended)
/// goes ahead of every new one but the one already at the front.
#[test]
fn a_follow_up_waits_behind_at_most_one_first_pass() {
    let pacer = PacedResync::<ConfigMap>::new(RESYNC, 1);
    passed(&pacer, &["seen"]);
    let running = begin(&pacer, "a");
    let (n1, n2, seen) = (object("n1"), object("n2"), object("seen"));
    let mut first = Box::pin(pacer.start(&n1));
    let mut second = Box::pin(pacer.start(&n2));
    assert!(first.as_mut().now_or_never().is_none(), "the slot is taken");
    assert!(second.as_mut().now_or_never().is_none());
    let mut follow_up = Box::pin(pacer.start(&seen));
    assert!(follow_up.as_mut().now_or_never().is_none());
    drop(running);
    assert!(follow_up.as_mut().now_or_never().is_none());
    let first = first
        .as_mut()
        .now_or_never()
        .flatten()
        .expect("n1 was first");
    assert!(second.as_mut().now_or_never().is_none());
    drop(first);
    assert!(
        second.as_mut().now_or_never().is_none(),
        "the follow-up goes before the second new object"
    );
    let follow_up = follow_up
        .as_mut()
        .now_or_never()
        .flatten()
        .expect("its turn");
    drop(follow_up);
    assert!(
        second.as_mut().now_or_never().flatten().is_some(),
        "then n2"
    );
}

/// Gone objects are forgotten (no memory kept for deleted Tenants), and one of the same name
/// queues as a new one.
#[test]
fn a_gone_object_is_new_again() {
    let pacer = PacedResync::<ConfigMap>::new(RESYNC, 1);
    let mut pass = begin(&pacer, "x");
    pass.gone();
    drop(pass);
    passed(&pacer, &["y"]);
    let y = ObjectRef::from_obj(&object("y"));
    assert!(pacer.lock().seen.contains(&y));
    pacer.forget(&y);
    assert!(pacer.lock().seen.is_empty());
    // So x's next pass is a first pass again: it waits for the ticket, and a follow-up that
    // asks after it goes first.
    passed(&pacer, &["seen"]);
    let running = begin(&pacer, "a");
    let (n, x, seen) = (object("n"), object("x"), object("seen"));
    let mut new = Box::pin(pacer.start(&n));
    let mut again = Box::pin(pacer.start(&x));
    let mut follow_up = Box::pin(pacer.start(&seen));
    assert!(new.as_mut().now_or_never().is_none());
    assert!(again.as_mut().now_or_never().is_none());
    assert!(follow_up.as_mut().now_or_never().is_none());
    drop(running);
    drop(new.as_mut().now_or_never().flatten().expect("n was first"));
    assert!(
        again.as_mut().now_or_never().is_none(),
        "x waits as a new object"
    );
    drop(
        follow_up
            .as_mut()
            .now_or_never()
            .flatten()
            .expect("the follow-up"),
    );
    assert!(again.as_mut().now_or_never().flatten().is_some());
}

#[test]
fn passes_waiting_for_a_slot_leave_none_to_routine_checks() {
    let pacer = PacedResync::<ConfigMap>::new(RESYNC, 2);
    passed(&pacer, &["old"]);
    let later = Instant::now() + RESYNC * 2;
    let (x, z) = (begin(&pacer, "x"), begin(&pacer, "z"));
    let y = object("y");
    let mut waiting = Box::pin(pacer.start(&y));
    assert!(waiting.as_mut().now_or_never().is_none());
    drop(z);
    // Its slot is the waiting pass's, not a routine check's.
    assert!(pacer.sweep(later).picked.is_empty());
    let y = waiting
        .as_mut()
        .now_or_never()
        .flatten()
        .expect("the freed slot");
    assert!(pacer.sweep(later).picked.is_empty());
    drop((x, y));
    // Both slots free (what is picked besides "old": one of the passes just ended, due
    // again by then too).
    assert_eq!(pacer.sweep(later).picked.len(), 2);
}

#[test]
fn a_pass_cancelled_while_waiting_leaves_its_object_due() {
    let pacer = PacedResync::<ConfigMap>::new(RESYNC, 1);
    let running = begin(&pacer, "a");
    let b = object("b");
    let mut waiting = Box::pin(pacer.start(&b));
    assert!(waiting.as_mut().now_or_never().is_none());
    drop(waiting);
    drop(running);
    let soon = Instant::now() + Duration::from_secs(1);
    assert_eq!(names(&pacer.sweep(soon).picked), ["b"]);
}

#[test]
fn closing_turns_away_the_passes_waiting_and_the_ones_to_come() {
    let pacer = PacedResync::<ConfigMap>::new(RESYNC, 1);
    let running = begin(&pacer, "a");
    let b = object("b");
    let mut waiting = Box::pin(pacer.start(&b));
    assert!(
        waiting.as_mut().now_or_never().is_none(),
        "the slot is taken"
    );
    pacer.close();
    assert!(
        matches!(waiting.as_mut().now_or_never(), Some(None)),
        "the waiting pass gives up"
    );
    drop(waiting);
    drop(running);
    let c = object("c");
    assert!(
        matches!(pacer.start(&c).now_or_never(), Some(None)),
        "none starts after, though the slot is free"
    );
    // Turned away, "b" and "c" stay due (for whoever checks them next); the slot is free.
    let soon = Instant::now() + Duration::from_secs(1);
    let mut picked = names(&pacer.sweep(soon).picked);
    picked.sort();
    assert_eq!(picked, ["b"], "one slot");
    // Unbounded: no slot to wait for, still none after closing.
    let unbounded = PacedResync::<ConfigMap>::new(RESYNC, 0);
    unbounded.close();
    assert!(matches!(unbounded.start(&c).now_or_never(), Some(None)));
}

#[test]
fn the_passes_waiting_are_reported_as_they_change() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let report = seen.clone();
    let pacer = PacedResync::<ConfigMap>::new(RESYNC, 1)
        .reporting_waiting(move |n| report.lock().unwrap().push(n));
    let running = begin(&pacer, "a");
    let (b, c) = (object("b"), object("c"));
    let mut second = Box::pin(pacer.start(&b));
    let mut third = Box::pin(pacer.start(&c));
    assert!(second.as_mut().now_or_never().is_none());
    assert!(third.as_mut().now_or_never().is_none());
    drop(running);
    drop(second.as_mut().now_or_never().flatten().expect("its turn"));
    drop(third);
    assert_eq!(
        *seen.lock().unwrap(),
        [0, 1, 0, 1, 2, 1, 0],
        "at first; a waits and starts; b and c wait; b starts; c is cancelled"
    );
}
