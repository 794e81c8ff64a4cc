//! Who gets a free slot, and when: first come first served, first passes one at a time,
//! and nothing for the waiting once the pacer closes.

use super::*;

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
