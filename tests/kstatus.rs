//! The kstatus port (`tests/support/kstatus.rs`) on fixtures: the Argo CD health fixtures of
//! the three kinds (`docs/argocd/health/<Kind>/testdata/`), whose kstatus is known, and
//! hand-made objects for the rules' order and edge cases. `tests/controller_rbac.rs` then
//! applies it to every status the controller writes.

mod support;

use std::path::Path;

use serde_json::{Value, json};
use support::kstatus::{Status, compute};

fn fixture(kind: &str, name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/argocd/health")
        .join(kind)
        .join("testdata")
        .join(format!("{name}.yaml"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Locks what kstatus says for each health fixture, including where it differs from the
/// Argo CD scripts: no status (or no conditions) is Current for kstatus, Progressing for
/// Argo CD; a rollout paused while Ready=True is Failed (Stalled wins over Ready).
#[test]
fn argocd_health_fixtures_have_the_kstatus_cli_utils_computes() {
    let expected = [
        ("healthy", Status::Current),
        ("progressing", Status::InProgress),
        ("degraded-stalled", Status::Failed),
        ("deleting", Status::Terminating),
        ("generation-mismatch", Status::InProgress),
        ("ready-unknown-no-reason", Status::InProgress),
        ("no-status", Status::Current),
        ("no-conditions", Status::Current),
    ];
    let mut checked = 0;
    for kind in ["DatabaseServer", "ServiceDatabase", "Tenant"] {
        for (name, want) in expected {
            let obj = fixture(kind, name);
            let got = compute(&obj).unwrap();
            assert_eq!(got.status, want, "{kind}/{name}: {got:?}");
            checked += 1;
        }
    }
    let paused = compute(&fixture("ServiceDatabase", "rollout-paused")).unwrap();
    assert_eq!(paused.status, Status::Failed, "{paused:?}");
    assert!(paused.message.contains("paused"), "{paused:?}");
    assert_eq!(checked, 24);
}

fn object(generation: i64, status: Value) -> Value {
    json!({
        "apiVersion": "servicedb.io/v1alpha1", "kind": "ServiceDatabase",
        "metadata": {"name": "orders", "namespace": "shop", "generation": generation},
        "status": status,
    })
}

fn cond(type_: &str, status: &str, reason: &str) -> Value {
    json!({"type": type_, "status": status, "reason": reason, "message": format!("{type_} {reason}")})
}

/// Locks the order of the rules and the messages cli-utils gives.
#[test]
fn rules_apply_in_cli_utils_order() {
    // An unobserved generation wins over Ready=True and over Stalled.
    let obj = object(
        3,
        json!({"observedGeneration": 2, "conditions": [cond("Stalled", "True", "InvalidSpec"), cond("Ready", "True", "Reconciled")]}),
    );
    let got = compute(&obj).unwrap();
    assert_eq!(got.status, Status::InProgress);
    assert_eq!(
        got.message,
        "ServiceDatabase generation is 3, but latest observed generation is 2"
    );
    // Without observedGeneration the generation check is skipped.
    let obj = object(
        3,
        json!({"conditions": [cond("Ready", "True", "Reconciled")]}),
    );
    assert_eq!(compute(&obj).unwrap().status, Status::Current);
    // Reconciling and Stalled: the first True one in list order wins.
    let obj = object(
        1,
        json!({"observedGeneration": 1, "conditions": [cond("Reconciling", "True", "Provisioning"), cond("Stalled", "True", "Conflict")]}),
    );
    assert_eq!(compute(&obj).unwrap().status, Status::InProgress);
    let obj = object(
        1,
        json!({"observedGeneration": 1, "conditions": [cond("Stalled", "True", "Conflict"), cond("Reconciling", "True", "Provisioning")]}),
    );
    let got = compute(&obj).unwrap();
    assert_eq!(got.status, Status::Failed);
    assert_eq!(got.message, "Stalled Conflict");
    // Reconciling=False and Stalled=False say nothing; Ready decides.
    let obj = object(
        1,
        json!({"observedGeneration": 1, "conditions": [cond("Stalled", "False", "Reconciled"), cond("Ready", "False", "Waiting")]}),
    );
    let got = compute(&obj).unwrap();
    assert_eq!(got.status, Status::InProgress);
    assert_eq!(got.message, "Ready Waiting");
    // Ready=False alone is never Failed; a Ready with another status value is ignored.
    let obj = object(
        1,
        json!({"observedGeneration": 1, "conditions": [cond("Ready", "false", "Lowercase")]}),
    );
    assert_eq!(compute(&obj).unwrap().status, Status::Current);
    // Deletion wins over everything.
    let mut obj = object(
        2,
        json!({"observedGeneration": 1, "conditions": [cond("Stalled", "True", "X")]}),
    );
    obj["metadata"]["deletionTimestamp"] = json!("2026-12-01T08:00:00Z");
    let got = compute(&obj).unwrap();
    assert_eq!(got.status, Status::Terminating);
    assert_eq!(got.message, "Resource scheduled for deletion");
}

#[test]
fn a_mistyped_generation_is_an_error() {
    let obj = object(1, json!({"observedGeneration": "1"}));
    let err = compute(&obj).unwrap_err();
    assert!(err.contains("status.observedGeneration"), "{err}");
}
