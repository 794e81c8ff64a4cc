use std::collections::BTreeMap;

use super::*;

const HASH: &str = "h1";

fn settings(max_parallel: usize, max_failures: usize, batch_size: usize) -> Settings {
    Settings {
        max_parallel,
        max_failures,
        batch_size,
    }
}

fn t(name: &str, canary: bool, state: TenantState) -> TenantMigration {
    TenantMigration {
        name: name.to_string(),
        canary,
        fresh: false,
        state,
    }
}

fn started(d: &Decision) -> Vec<String> {
    d.start.iter().flatten().cloned().collect()
}

/// A fleet played to the end: each round the decision's starts become Running, and the
/// running ones finish by `fails` (a name in it fails, every other succeeds). Returns the
/// order tenants started in, the most running at once, and the last decision.
fn play(
    fleet: &mut BTreeMap<String, TenantMigration>,
    settings: Settings,
    fails: &[&str],
    finish_per_round: usize,
) -> (Vec<String>, usize, Decision) {
    let mut order = Vec::new();
    let mut most = 0;
    for _ in 0..1000 {
        let list: Vec<TenantMigration> = fleet.values().cloned().collect();
        let d = decide(HASH, Some("2"), settings, None, &list);
        for name in started(&d) {
            order.push(name.clone());
            fleet.get_mut(&name).unwrap().state = TenantState::Running;
        }
        let running: Vec<String> = fleet
            .values()
            .filter(|t| t.state == TenantState::Running && !t.fresh)
            .map(|t| t.name.clone())
            .collect();
        most = most.max(running.len());
        if running.is_empty() && d.start.is_empty() {
            return (order, most, d);
        }
        for name in running.iter().take(finish_per_round) {
            fleet.get_mut(name).unwrap().state = if fails.contains(&name.as_str()) {
                TenantState::Failed
            } else {
                TenantState::AtTarget
            };
        }
    }
    panic!("the rollout never settled");
}

fn fleet(canaries: &[&str], others: &[&str]) -> BTreeMap<String, TenantMigration> {
    canaries
        .iter()
        .map(|n| t(n, true, TenantState::Pending))
        .chain(others.iter().map(|n| t(n, false, TenantState::Pending)))
        .map(|t| (t.name.clone(), t))
        .collect()
}

/// Locks "canaries first, and all of them must succeed before any other starts".
#[test]
fn canaries_go_first_and_all_must_succeed_before_the_rest() {
    let mut f = fleet(&["c1", "c2"], &["a", "b", "d", "e", "g"]);
    let list: Vec<_> = f.values().cloned().collect();
    let d = decide(HASH, Some("2"), settings(4, 0, 1), None, &list);
    assert_eq!(started(&d), ["c1", "c2"]);
    assert_eq!(d.status.phase, Some(RolloutPhase::Progressing));

    // One canary done, the other still running: nobody else starts.
    f.get_mut("c1").unwrap().state = TenantState::AtTarget;
    f.get_mut("c2").unwrap().state = TenantState::Running;
    let list: Vec<_> = f.values().cloned().collect();
    let d = decide(HASH, Some("2"), settings(4, 0, 1), None, &list);
    assert!(d.start.is_empty(), "{:?}", d.start);
    assert_eq!(d.status.admitted, ["c2"]);

    // Both done: the others, in name order, up to maxParallel.
    f.get_mut("c2").unwrap().state = TenantState::AtTarget;
    let list: Vec<_> = f.values().cloned().collect();
    let d = decide(HASH, Some("2"), settings(4, 0, 1), None, &list);
    assert_eq!(started(&d), ["a", "b", "d", "e"]);

    let mut f = fleet(&["zz"], &["a", "b", "c"]);
    let (order, _, last) = play(&mut f, settings(2, 0, 1), &[], 1);
    assert_eq!(order, ["zz", "a", "b", "c"]);
    assert_eq!(last.status.phase, Some(RolloutPhase::Complete));
    assert_eq!((last.status.total, last.status.at_target), (4, 4));
}

/// Locks "a failing canary stops the fleet before any non-canary runs", even with a
/// failure budget.
#[test]
fn a_failing_canary_stops_the_fleet() {
    let mut f = fleet(&["c1"], &["a", "b"]);
    let (order, _, last) = play(&mut f, settings(4, 5, 1), &["c1"], 1);
    assert_eq!(order, ["c1"]);
    assert_eq!(last.status.phase, Some(RolloutPhase::Paused));
    assert_eq!(last.status.failed_tenants, ["c1"]);
    let why = last.paused_because.unwrap();
    assert!(why.contains("canary tenant c1 failed"), "{why}");
    assert!(
        f.values()
            .filter(|t| !t.canary)
            .all(|t| t.state == TenantState::Pending)
    );
}

/// Locks "more than maxFailures pauses; within the budget the rollout goes on and
/// completes with the failures counted".
#[test]
fn failures_beyond_the_budget_pause_the_rollout() {
    let others = ["a", "b", "c", "d", "e", "f"];
    let mut f = fleet(&[], &others);
    let (order, _, last) = play(&mut f, settings(1, 1, 1), &["b", "c"], 1);
    assert_eq!(order, ["a", "b", "c"], "stops after the second failure");
    assert_eq!(last.status.phase, Some(RolloutPhase::Paused));
    assert_eq!(last.status.failed, 2);
    assert_eq!(last.status.failed_tenants, ["b", "c"]);
    assert!(
        last.paused_because
            .unwrap()
            .contains("more than maxFailures (1)")
    );

    let mut f = fleet(&[], &others);
    let (order, _, last) = play(&mut f, settings(2, 1, 1), &["b"], 1);
    assert_eq!(order.len(), 6);
    assert_eq!(last.status.phase, Some(RolloutPhase::Complete));
    assert_eq!((last.status.at_target, last.status.failed), (5, 1));
}

/// Locks "resume continues": a new servicedb.io/resume value makes failures before it
/// pending again, so the paused rollout admits them and goes on.
#[test]
fn resume_retries_the_failed_and_continues() {
    let failed_before = TenantRecord {
        at_target: false,
        fresh: false,
        last_attempt: Some(Attempt {
            inputs_hash: HASH.into(),
            resume: None,
            outcome: Outcome::Failed,
        }),
    };
    assert_eq!(classify(&failed_before, HASH, None), TenantState::Failed);
    assert_eq!(
        classify(&failed_before, HASH, Some("1")),
        TenantState::Pending
    );
    // New inputs forgive as well.
    assert_eq!(classify(&failed_before, "h2", None), TenantState::Pending);

    let records = [
        ("a", failed_before.clone()),
        ("b", failed_before),
        (
            "c",
            TenantRecord {
                at_target: false,
                fresh: false,
                last_attempt: None,
            },
        ),
    ];
    let tenants = |resume: Option<&str>| -> Vec<TenantMigration> {
        records
            .iter()
            .map(|(n, r)| TenantMigration {
                name: n.to_string(),
                canary: false,
                fresh: false,
                state: classify(r, HASH, resume),
            })
            .collect()
    };
    let paused = decide(HASH, None, settings(2, 0, 1), None, &tenants(None));
    assert_eq!(paused.status.phase, Some(RolloutPhase::Paused));
    assert!(paused.start.is_empty());
    let resumed = decide(
        HASH,
        None,
        settings(2, 0, 1),
        Some("1"),
        &tenants(Some("1")),
    );
    assert_eq!(resumed.status.phase, Some(RolloutPhase::Progressing));
    assert_eq!(started(&resumed), ["a", "b"]);
    assert_eq!(resumed.status.resume.as_deref(), Some("1"));
    assert_eq!(resumed.status.failed, 0);
}

/// Locks "a tenant added mid-rollout goes straight to the new target": not held by the
/// canary stage, a pause or maxParallel, and not holding a rollout slot.
#[test]
fn a_fresh_tenant_goes_straight_to_the_target() {
    let mut tenants = vec![
        t("c1", true, TenantState::Running),
        t("a", false, TenantState::Pending),
        TenantMigration {
            fresh: true,
            ..t("new", false, TenantState::Pending)
        },
    ];
    let d = decide(HASH, Some("2"), settings(1, 0, 1), None, &tenants);
    assert_eq!(started(&d), ["new"]);
    assert!(!d.status.admitted.contains(&"new".to_string()));

    // Paused by a failed canary: the fresh tenant still starts, "a" does not.
    tenants[0].state = TenantState::Failed;
    let d = decide(HASH, Some("2"), settings(1, 0, 1), None, &tenants);
    assert_eq!(d.status.phase, Some(RolloutPhase::Paused));
    assert_eq!(started(&d), ["new"]);

    // A fresh tenant's running Job does not take the rollout's only slot.
    tenants[0].state = TenantState::AtTarget;
    tenants[2].state = TenantState::Running;
    let d = decide(HASH, Some("2"), settings(1, 0, 1), None, &tenants);
    assert_eq!(started(&d), ["a"]);
}

/// Locks "a deleted tenant neither blocks nor miscounts": it is not in the list, so its
/// admission lapses, its slot is free and the totals leave it out.
#[test]
fn a_deleted_tenant_neither_blocks_nor_counts() {
    let before = vec![
        t("a", false, TenantState::Running),
        t("b", false, TenantState::Pending),
        t("c", false, TenantState::Pending),
    ];
    let d = decide(HASH, None, settings(1, 0, 1), None, &before);
    assert_eq!(d.status.admitted, ["a"]);
    assert!(d.start.is_empty());
    let after: Vec<_> = before.into_iter().skip(1).collect();
    let d = decide(HASH, None, settings(1, 0, 1), None, &after);
    assert_eq!(d.status.admitted, ["b"]);
    assert_eq!(started(&d), ["b"]);
    assert_eq!((d.status.total, d.status.running), (2, 0));
    // A deleted tenant that failed no longer counts against the budget either.
    let d = decide(
        HASH,
        None,
        settings(1, 0, 1),
        None,
        &[t("b", false, TenantState::AtTarget)],
    );
    assert_eq!(d.status.phase, Some(RolloutPhase::Complete));
    assert_eq!(d.status.failed, 0);
}

/// Locks "never more than maxParallel Jobs", with and without batches, over fleets played
/// in different finishing orders.
#[test]
fn never_more_than_max_parallel_jobs() {
    let names: Vec<String> = (0..37).map(|i| format!("t{i:02}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    for (max_parallel, batch, per_round) in [(1, 1, 1), (4, 1, 1), (4, 1, 3), (3, 5, 2), (8, 1, 8)]
    {
        let mut f = fleet(&refs[..2], &refs[2..]);
        let (order, most, last) = play(&mut f, settings(max_parallel, 0, batch), &[], per_round);
        assert!(
            most <= max_parallel * batch,
            "{most} running with maxParallel {max_parallel} x batch {batch}"
        );
        assert_eq!(order.len(), 37);
        assert_eq!(last.status.phase, Some(RolloutPhase::Complete));
    }
    // Batches: one start is at most batchSize tenants, and no more Jobs than maxParallel.
    let f = fleet(&[], &refs);
    let list: Vec<_> = f.values().cloned().collect();
    let d = decide(HASH, None, settings(3, 0, 5), None, &list);
    assert_eq!(d.start.len(), 3);
    assert!(d.start.iter().all(|b| b.len() == 5));
    // 7 tenants running in 2 batches of 5: 1 Job free.
    let mut list = list;
    for t in list.iter_mut().take(7) {
        t.state = TenantState::Running;
    }
    let d = decide(HASH, None, settings(3, 0, 5), None, &list);
    assert_eq!(d.start.len(), 1);
}

#[test]
fn classify_running_beats_everything_and_target_beats_old_failures() {
    let record = |at_target, outcome: Option<Outcome>, hash: &str| TenantRecord {
        at_target,
        fresh: false,
        last_attempt: outcome.map(|outcome| Attempt {
            inputs_hash: hash.into(),
            resume: None,
            outcome,
        }),
    };
    let running_old = record(false, Some(Outcome::Running), "old");
    assert_eq!(classify(&running_old, HASH, None), TenantState::Running);
    let done = record(true, Some(Outcome::Succeeded), HASH);
    assert_eq!(classify(&done, HASH, None), TenantState::AtTarget);
    let never = record(false, None, HASH);
    assert_eq!(classify(&never, HASH, None), TenantState::Pending);
}

#[test]
fn settings_default_to_one_at_a_time_and_no_failures() {
    assert_eq!(Settings::from_spec(None), settings(1, 0, 1));
    let spec = RolloutSpec {
        max_parallel: 8,
        max_failures: 2,
        batch_size: 10,
    };
    assert_eq!(Settings::from_spec(Some(&spec)), settings(8, 2, 10));
}

#[test]
fn failed_names_are_capped() {
    let tenants: Vec<_> = (0..30)
        .map(|i| t(&format!("t{i:02}"), false, TenantState::Failed))
        .collect();
    let d = decide(HASH, None, settings(1, 100, 1), None, &tenants);
    assert_eq!(d.status.failed, 30);
    assert_eq!(d.status.failed_tenants.len(), MAX_FAILED_NAMES);
    assert_eq!(d.status.phase, Some(RolloutPhase::Complete));
}
