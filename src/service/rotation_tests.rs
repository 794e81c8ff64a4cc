use super::*;

const HOUR: Duration = Duration::from_secs(3600);

fn at(s: i64) -> Timestamp {
    Timestamp::from_second(s).unwrap()
}

fn secret(name: &str, role: &str, created: i64, record: &[(&str, &str)]) -> SecretState {
    SecretState {
        name: name.into(),
        role: role.into(),
        existing: Some(Existing {
            annotations: record
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            created: Some(at(created)),
        }),
    }
}

fn missing(name: &str, role: &str) -> SecretState {
    SecretState {
        name: name.into(),
        role: role.into(),
        existing: None,
    }
}

fn requested(v: &str) -> Policy {
    Policy {
        requested: Some(v.into()),
        every: None,
        ..Default::default()
    }
}

fn every(d: Duration) -> Policy {
    Policy {
        requested: None,
        every: Some(d),
        ..Default::default()
    }
}

/// Locks "a new annotation value rotates every role once": the records written answer it,
/// and deciding again over those records rotates nothing.
#[test]
fn a_new_request_rotates_every_role_once() {
    let secrets = [
        secret("orders-db", "app", 0, &[]),
        secret("orders-migrator", "owner", 0, &[]),
    ];
    let d = decide(&requested("1"), &secrets, at(100));
    assert_eq!(
        d.rotate,
        BTreeMap::from([
            ("app".to_string(), Cause::Requested("1".into())),
            ("owner".to_string(), Cause::Requested("1".into())),
        ])
    );
    let written = &d.annotations["orders-db"];
    assert_eq!(written[ROTATION_ANNOTATION], "1");
    assert_eq!(written[ROTATED_AT_ANNOTATION], at(100).to_string());
    // The next pass sees the records the rotation wrote.
    let after: Vec<_> = secrets
        .iter()
        .map(|s| {
            let mut s = s.clone();
            s.existing.as_mut().unwrap().annotations = d.annotations[&s.name].clone();
            s
        })
        .collect();
    let again = decide(&requested("1"), &after, at(5000));
    assert!(again.rotate.is_empty(), "{again:?}");
    assert_eq!(
        again.annotations, d.annotations,
        "records carried over as they are"
    );
    // A newer value rotates again.
    assert_eq!(decide(&requested("2"), &after, at(5000)).rotate.len(), 2);
}

/// Locks "no rotation without a reason": no annotation, no `every`, or an old Secret
/// without a record under `every` that has not passed since its creation.
#[test]
fn nothing_rotates_without_a_request_or_a_due_interval() {
    let secrets = [secret("orders-db", "app", 0, &[])];
    let d = decide(&Policy::default(), &secrets, at(1_000_000));
    assert!(d.rotate.is_empty());
    assert!(d.annotations["orders-db"].is_empty(), "no record invented");
    assert_eq!(d.next_due, None);
    // First upgrade: counted from creation, not "never rotated".
    let d = decide(&every(HOUR), &secrets, at(1800));
    assert!(d.rotate.is_empty());
    assert_eq!(d.next_due, Some(Duration::from_secs(1800)));
}

/// Locks the periodic rotation on an injected clock: due exactly `every` after the last
/// rotation, and the next one counted from this one.
#[test]
fn every_rotates_when_the_interval_has_passed_since_the_last_rotation() {
    let last = at(10_000).to_string();
    let secrets = [
        secret("orders-db", "app", 0, &[(ROTATED_AT_ANNOTATION, &last)]),
        secret("orders-migrator", "owner", 9_000, &[]),
    ];
    let d = decide(&every(HOUR), &secrets, at(12_599));
    assert!(d.rotate.is_empty(), "{d:?}");
    // The owner (created at 9000, no record) is due first, a second later.
    assert_eq!(d.next_due, Some(Duration::from_secs(1)));
    let d = decide(&every(HOUR), &secrets, at(12_600));
    assert_eq!(
        d.rotate,
        BTreeMap::from([("owner".to_string(), Cause::Due)])
    );
    assert_eq!(d.next_due, Some(Duration::from_secs(1000)), "app next");
    let d = decide(&every(HOUR), &secrets, at(13_600));
    assert_eq!(d.rotate.len(), 2);
    assert_eq!(d.next_due, Some(HOUR));
    assert_eq!(
        d.annotations["orders-migrator"][ROTATED_AT_ANNOTATION],
        at(13_600).to_string()
    );
    // A clock behind the record never rotates.
    assert!(decide(&every(HOUR), &secrets, at(5_000)).rotate.is_empty());
}

/// Locks that a periodic rotation keeps the last answered request, so the same annotation
/// value never asks again.
#[test]
fn a_periodic_rotation_keeps_the_answered_request() {
    let secrets = [secret(
        "orders-db",
        "app",
        0,
        &[
            (ROTATION_ANNOTATION, "1"),
            (ROTATED_AT_ANNOTATION, "1970-01-01T00:00:00Z"),
        ],
    )];
    let policy = Policy {
        requested: Some("1".into()),
        every: Some(HOUR),
        ..Default::default()
    };
    let d = decide(&policy, &secrets, at(3600));
    assert_eq!(d.rotate["app"], Cause::Due);
    assert_eq!(d.annotations["orders-db"][ROTATION_ANNOTATION], "1");
    // The annotation removed meanwhile: the last answer still stays on record.
    let d = decide(&every(HOUR), &secrets, at(3600));
    assert_eq!(d.annotations["orders-db"][ROTATION_ANNOTATION], "1");
}

/// Locks new Secrets: a resource created with the annotation already set does not rotate
/// right after creation (its first Secrets answer it), and a Secret added for a role that
/// has one already takes that Secret's record.
#[test]
fn new_secrets_answer_the_standing_request() {
    let d = decide(
        &requested("1"),
        &[
            missing("orders-db", "app"),
            missing("orders-migrator", "owner"),
        ],
        at(100),
    );
    assert!(d.rotate.is_empty());
    assert_eq!(d.annotations["orders-db"][ROTATION_ANNOTATION], "1");
    let older = at(50).to_string();
    let d = decide(
        &requested("1"),
        &[
            secret(
                "orders-migrator",
                "owner",
                0,
                &[(ROTATION_ANNOTATION, "1"), (ROTATED_AT_ANNOTATION, &older)],
            ),
            // spec.secret.access: owner, the app's Secret deleted by hand.
            missing("orders-db", "owner"),
        ],
        at(100),
    );
    assert!(d.rotate.is_empty());
    assert_eq!(d.annotations["orders-db"], d.annotations["orders-migrator"]);
    assert_eq!(d.annotations["orders-db"][ROTATED_AT_ANNOTATION], older);
}

/// Locks that one due Secret rotates its role, so every Secret of the role gets the new
/// password and a new record.
#[test]
fn one_due_secret_rotates_its_role_everywhere() {
    let d = decide(
        &requested("2"),
        &[
            secret("orders-db", "owner", 0, &[(ROTATION_ANNOTATION, "1")]),
            secret("orders-migrator", "owner", 0, &[(ROTATION_ANNOTATION, "2")]),
        ],
        at(100),
    );
    assert_eq!(d.roles(), ["owner"]);
    for s in ["orders-db", "orders-migrator"] {
        assert_eq!(
            d.annotations[s][ROTATED_AT_ANNOTATION],
            at(100).to_string(),
            "{s}"
        );
    }
}

#[test]
fn the_policy_comes_from_the_annotation_and_the_spec() {
    use crate::api::{PasswordRotationSpec, ServiceDatabaseSpec};
    let mut sdb = ServiceDatabase::new(
        "orders",
        ServiceDatabaseSpec {
            password_rotation: Some(PasswordRotationSpec {
                every: "720h".into(),
            }),
            ..Default::default()
        },
    );
    assert_eq!(
        Policy::of(&sdb),
        Policy {
            requested: None,
            every: Some(720 * HOUR),
            ..Default::default()
        }
    );
    sdb.metadata.annotations = Some(BTreeMap::from([(
        ROTATE_ANNOTATION.to_string(),
        "2026-12-01".to_string(),
    )]));
    assert_eq!(Policy::of(&sdb).requested.as_deref(), Some("2026-12-01"));
}

/// Locks "a rotation waits for a running migration": the role a running Job logs in as is
/// not rotated (its Secret keeps its record, and it sets no due time), the others are.
#[test]
fn a_role_held_by_a_running_migration_is_not_rotated_yet() {
    let secrets = [
        secret("orders-db", "app", 0, &[]),
        secret("orders-migrator", "owner", 0, &[]),
    ];
    let policy = Policy {
        held: BTreeSet::from(["owner".to_string()]),
        ..every(HOUR)
    };
    let d = decide(&policy, &secrets, at(7200));
    assert_eq!(d.rotate, BTreeMap::from([("app".to_string(), Cause::Due)]));
    assert!(d.annotations["orders-migrator"].is_empty(), "{d:?}");
    assert_eq!(
        d.next_due,
        Some(HOUR),
        "the app's next; not the held owner's"
    );
    let free = decide(&every(HOUR), &secrets, at(7200));
    assert!(free.rotate.contains_key("owner"));
}
