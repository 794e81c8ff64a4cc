use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::reflector::ObjectRef;
use tokio::time::Instant;

use futures::FutureExt;

use super::*;

mod slots;

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
