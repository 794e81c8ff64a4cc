//! Conformance of the fake API server: the four patch formats (merge, JSON patch,
//! strategic merge, server-side apply).
//! Shared kinds and helpers: `fake_apiserver_common`; how the suites are held to a real
//! cluster: see there.

#[allow(dead_code)] // the PostgreSQL half of the support module is not used here
mod support;

mod fake_apiserver_common;

use std::collections::{BTreeMap, BTreeSet};

use fake_apiserver_common::*;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

/// JSON merge patch (null deletes) and JSON patch (RFC 6902), including `test` ops:
/// a failing test is 422, and a test of a missing member against null passes, which the
/// finalizer helper of kube-runtime relies on (as on its test-then-append and
/// test-then-remove patches).
#[tokio::test]
async fn merge_and_json_patch() {
    let cluster = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client(), cluster.namespace());
    cms.create(
        &PostParams::default(),
        &config_map("p", &[("a", "1"), ("b", "2")]),
    )
    .await
    .unwrap();
    let pp = PatchParams::default();
    let merged = cms
        .patch(
            "p",
            &pp,
            &Patch::Merge(
                json!({"data": {"a": null, "c": "3"}, "metadata": {"labels": {"x": "y"}}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        merged.data.unwrap(),
        BTreeMap::from([("b".into(), "2".into()), ("c".into(), "3".into())])
    );
    assert_eq!(merged.metadata.labels.unwrap()["x"], "y");

    let ops = |v: Value| Patch::Json::<()>(serde_json::from_value(v).expect("valid JSON patch"));
    let patched = cms
        .patch(
            "p",
            &pp,
            &ops(json!([
                {"op": "test", "path": "/metadata/finalizers", "value": null},
                {"op": "add", "path": "/metadata/finalizers", "value": ["conformance.servicedb.io/x"]},
                {"op": "replace", "path": "/data/b", "value": "20"},
                {"op": "copy", "from": "/data/b", "path": "/data/d"},
                {"op": "move", "from": "/data/c", "path": "/data/e"},
                {"op": "remove", "path": "/metadata/labels/x"},
            ])),
        )
        .await
        .unwrap();
    let data = patched.data.clone().unwrap();
    assert_eq!(data["b"], "20");
    assert_eq!(data["d"], "20");
    assert_eq!(data["e"], "3");
    assert!(!data.contains_key("c"));
    assert_eq!(patched.finalizers(), ["conformance.servicedb.io/x"]);

    let status = status_of(
        cms.patch(
            "p",
            &pp,
            &ops(json!([
                {"op": "test", "path": "/metadata/finalizers/0", "value": "someone-else/finalizer"},
                {"op": "remove", "path": "/metadata/finalizers/0"},
            ])),
        )
        .await,
    );
    assert_eq!(status.code, 422);
    assert_eq!(
        cms.get("p").await.unwrap().finalizers().len(),
        1,
        "a failed test changes nothing"
    );

    // kube's finalizer helper adds to an existing list by testing the whole list, then
    // appending with `/-`; a list that changed meanwhile fails the test
    let appended = cms
        .patch(
            "p",
            &pp,
            &ops(json!([
                {"op": "test", "path": "/metadata/finalizers", "value": ["conformance.servicedb.io/x"]},
                {"op": "add", "path": "/metadata/finalizers/-", "value": "conformance.servicedb.io/y"},
            ])),
        )
        .await
        .unwrap();
    assert_eq!(
        appended.finalizers(),
        ["conformance.servicedb.io/x", "conformance.servicedb.io/y"]
    );
    let stale = status_of(
        cms.patch(
            "p",
            &pp,
            &ops(json!([
                {"op": "test", "path": "/metadata/finalizers", "value": ["conformance.servicedb.io/x"]},
                {"op": "add", "path": "/metadata/finalizers/-", "value": "conformance.servicedb.io/z"},
            ])),
        )
        .await,
    );
    assert_eq!(stale.code, 422);

    cms.patch(
        "p",
        &pp,
        &ops(json!([
            {"op": "test", "path": "/metadata/finalizers/0", "value": "conformance.servicedb.io/x"},
            {"op": "remove", "path": "/metadata/finalizers/0"},
        ])),
    )
    .await
    .unwrap();
    assert_eq!(
        cms.get("p").await.unwrap().finalizers(),
        ["conformance.servicedb.io/y"]
    );
    // nothing may hold the test namespace's deletion on a real cluster
    cms.patch(
        "p",
        &pp,
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
}

/// Strategic merge patch on core kinds merges lists that have a merge key (a
/// ServiceAccount's `secrets`, by name; `$patch: delete` removes an item) and replaces
/// atomic ones (its `imagePullSecrets`); custom resources refuse it with 415. Merged
/// lists are ordered as apimachinery's strategicpatch orders them: new patch items
/// before the server-only ones unless the live order says otherwise.
#[tokio::test]
async fn strategic_merge_patch() {
    let cluster = start().await;
    let ns = cluster.namespace();
    let sas: Api<ServiceAccount> = Api::namespaced(cluster.client(), ns);
    let sa: ServiceAccount = serde_json::from_value(json!({
        "metadata": {"name": "robot", "labels": {"a": "1"}},
        "secrets": [{"name": "one"}, {"name": "three"}],
        "imagePullSecrets": [{"name": "pull-one"}],
    }))
    .unwrap();
    sas.create(&PostParams::default(), &sa).await.unwrap();
    let pp = PatchParams::default();
    let patched = sas
        .patch(
            "robot",
            &pp,
            &Patch::Strategic(json!({
                "metadata": {"labels": {"b": "2"}},
                "secrets": [{"name": "two"}],
                "imagePullSecrets": [{"name": "pull-two"}],
            })),
        )
        .await
        .unwrap();
    let secrets = |sa: &ServiceAccount| -> Vec<String> {
        sa.secrets
            .iter()
            .flatten()
            .filter_map(|r| r.name.clone())
            .collect()
    };
    let pulls = |sa: &ServiceAccount| -> Vec<String> {
        sa.image_pull_secrets
            .iter()
            .flatten()
            .map(|r| r.name.clone())
            .collect()
    };
    assert_eq!(
        secrets(&patched),
        ["two", "one", "three"],
        "merged by name, the new item first"
    );
    assert_eq!(pulls(&patched), ["pull-two"], "atomic: replaced");
    assert_eq!(patched.labels().len(), 2);
    // a server-only item earlier in the live list than the next patch item goes first
    let patched = sas
        .patch(
            "robot",
            &pp,
            &Patch::Strategic(json!({"secrets": [{"name": "four"}, {"name": "one"}]})),
        )
        .await
        .unwrap();
    assert_eq!(secrets(&patched), ["four", "two", "one", "three"]);
    let patched = sas
        .patch(
            "robot",
            &pp,
            &Patch::Strategic(json!({"secrets": [{"name": "one", "$patch": "delete"}]})),
        )
        .await
        .unwrap();
    assert_eq!(secrets(&patched), ["four", "two", "three"]);
    // $setElementOrder (what kubectl sends) sets the order of the items it names
    let patched = sas
        .patch(
            "robot",
            &pp,
            &Patch::Strategic(json!({
                "$setElementOrder/secrets": [{"name": "three"}, {"name": "two"}],
                "secrets": [{"name": "two"}],
            })),
        )
        .await
        .unwrap();
    assert_eq!(secrets(&patched), ["four", "three", "two"]);

    let widgets: Api<Widget> = Api::namespaced(cluster.client(), ns);
    widgets
        .create(&PostParams::default(), &widget("w", "red"))
        .await
        .unwrap();
    let status = status_of(
        widgets
            .patch(
                "w",
                &pp,
                &Patch::Strategic(json!({"spec": {"color": "blue"}})),
            )
            .await,
    );
    assert_eq!(status.code, 415);
}

/// Server-side apply: a manager's fields are set, fields it stops sending are removed,
/// a different value for a field another manager owns is a 409 Conflict unless forced,
/// the same value is shared; managedFields name the managers; a repeated identical
/// apply is a no-op (same resourceVersion).
#[tokio::test]
async fn server_side_apply() {
    let cluster = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client(), cluster.namespace());
    let apply = |manager: &str, force: bool| {
        let mut pp = PatchParams::apply(manager);
        pp.force = force;
        pp
    };
    let cfg = |data: Value| {
        Patch::Apply(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": data}),
        )
    };

    let first = cms
        .patch(
            "ssa",
            &apply("alice", false),
            &cfg(json!({"a": "1", "b": "2"})),
        )
        .await
        .unwrap();
    assert_eq!(first.data.as_ref().unwrap().len(), 2);
    let again = cms
        .patch(
            "ssa",
            &apply("alice", false),
            &cfg(json!({"a": "1", "b": "2"})),
        )
        .await
        .unwrap();
    assert_eq!(
        again.resource_version(),
        first.resource_version(),
        "an identical apply changes nothing"
    );

    let dropped = cms
        .patch("ssa", &apply("alice", false), &cfg(json!({"a": "1"})))
        .await
        .unwrap();
    assert_eq!(
        dropped.data.unwrap(),
        BTreeMap::from([("a".into(), "1".into())])
    );

    let status = status_of(
        cms.patch("ssa", &apply("bob", false), &cfg(json!({"a": "other"})))
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    let shared = cms
        .patch(
            "ssa",
            &apply("bob", false),
            &cfg(json!({"a": "1", "z": "bob"})),
        )
        .await
        .unwrap();
    assert_eq!(shared.data.as_ref().unwrap()["z"], "bob");
    let managers: BTreeSet<String> = shared
        .managed_fields()
        .iter()
        .filter(|m| m.operation.as_deref() == Some("Apply"))
        .filter_map(|m| m.manager.clone())
        .collect();
    assert_eq!(
        managers,
        BTreeSet::from(["alice".to_string(), "bob".to_string()])
    );

    let forced = cms
        .patch("ssa", &apply("carol", true), &cfg(json!({"a": "carol"})))
        .await
        .unwrap();
    assert_eq!(forced.data.as_ref().unwrap()["a"], "carol");
    // alice no longer owns `a`: when she stops applying it, carol's value stays
    let after = cms
        .patch("ssa", &apply("alice", false), &cfg(json!({})))
        .await
        .unwrap();
    assert_eq!(after.data.as_ref().unwrap()["a"], "carol");

    // status through the status subresource by apply
    let widgets: Api<Widget> = Api::namespaced(cluster.client(), cluster.namespace());
    let w = json!({"apiVersion": format!("{GROUP}/v1"), "kind": "Widget", "metadata": {"name": "w"}, "spec": {"color": "red"}});
    widgets
        .patch("w", &apply("alice", false), &Patch::Apply(&w))
        .await
        .unwrap();
    let status = json!({"apiVersion": format!("{GROUP}/v1"), "kind": "Widget", "status": {"phase": "Ready"}});
    let w = widgets
        .patch_status("w", &apply("alice", true), &Patch::Apply(&status))
        .await
        .unwrap();
    assert_eq!(w.status.unwrap().phase.as_deref(), Some("Ready"));
    assert_eq!(w.spec.color, "red");
}

fn micro_time() -> String {
    humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string()
}

/// coordination.k8s.io/v1 Leases as kube-lease-manager 0.13.1 (leader election) uses
/// them: get (404), create with an empty spec (409 AlreadyExists for the second
/// contender), lock by a non-forced server-side apply under a per-identity field manager
/// (a 409 Conflict for a second holder while the first owns `holderIdentity`),
/// `leaseTransitions`, renewals and release by strategic merge patches (null deletes),
/// after which another identity's apply takes the lock.
#[tokio::test]
async fn leases_for_leader_election() {
    let cluster = start().await;
    let leases: Api<Lease> = Api::namespaced(cluster.client(), cluster.namespace());
    let name = "servicedb-leader";
    assert_eq!(status_of(leases.get(name).await).code, 404);
    let empty: Lease =
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": {}})).unwrap();
    leases.create(&PostParams::default(), &empty).await.unwrap();
    let status = status_of(leases.create(&PostParams::default(), &empty).await);
    assert_eq!(
        (status.code, status.reason.as_str()),
        (409, "AlreadyExists")
    );

    let manager = |identity: &str| PatchParams {
        field_manager: Some(format!("kube-lease-manager-{identity}")),
        ..PatchParams::default()
    };
    let lock = |identity: &str| {
        let now = micro_time();
        Patch::Apply(json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "spec": {"acquireTime": now, "renewTime": now, "holderIdentity": identity, "leaseDurationSeconds": 30},
        }))
    };
    let smp = |spec: Value| {
        Patch::Strategic(
            json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "spec": spec}),
        )
    };
    let holder = |l: &Lease| l.spec.as_ref().and_then(|s| s.holder_identity.clone());

    let locked = leases.patch(name, &manager("a"), &lock("a")).await.unwrap();
    assert_eq!(holder(&locked).as_deref(), Some("a"));
    let status = status_of(leases.patch(name, &manager("b"), &lock("b")).await);
    assert_eq!(
        (status.code, status.reason.as_str()),
        (409, "Conflict"),
        "{status:?}"
    );
    assert_eq!(
        holder(&leases.get(name).await.unwrap()).as_deref(),
        Some("a")
    );

    leases
        .patch(name, &manager("a"), &smp(json!({"leaseTransitions": 1})))
        .await
        .unwrap();
    let renewed_at = micro_time();
    let renewed = leases
        .patch(
            name,
            &manager("a"),
            &smp(json!({"renewTime": renewed_at, "leaseDurationSeconds": 30})),
        )
        .await
        .unwrap();
    let spec = renewed.spec.clone().unwrap();
    assert_eq!(spec.lease_transitions, Some(1));
    assert_eq!(
        serde_json::to_value(&spec.renew_time).unwrap(),
        json!(renewed_at),
        "MicroTime kept to the microsecond"
    );

    let released = leases
        .patch(
            name,
            &manager("a"),
            &smp(json!({"acquireTime": null, "renewTime": null, "holderIdentity": null, "leaseDurationSeconds": null})),
        )
        .await
        .unwrap();
    assert_eq!(holder(&released), None);
    let taken = leases.patch(name, &manager("b"), &lock("b")).await.unwrap();
    assert_eq!(holder(&taken).as_deref(), Some("b"));
    assert_eq!(taken.spec.unwrap().lease_transitions, Some(1));
}
