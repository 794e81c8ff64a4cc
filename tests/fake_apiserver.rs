//! Conformance tests of the Kubernetes test support (`tests/support/kube`).
//!
//! Each test locks one behaviour of the real API server that the operator relies on.
//! They run against the in-process fake by default and, with
//! `SERVICEDB_TEST_KUBECONFIG=<kubeconfig>`, against a real cluster (Job controller off):
//! that is how the fake is held to the real thing. They use their own small CRDs
//! (`conformance.servicedb.io`) and core kinds, never the operator's CRDs.

#[allow(dead_code)] // the PostgreSQL half of the support module is not used here
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Error as FinalizerError, Event as Finalizer, finalizer};
use kube::runtime::reflector::{self, reflector};
use kube::runtime::watcher::{self, Event};
use kube::{CustomResource, CustomResourceExt, Resource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use support::kube::{
    ClusterOptions, FakeOptions, Fault, TestCluster, eventually, parse_request, wait_for,
};

/// The namespaced test kind, with a status subresource.
#[derive(CustomResource, Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[kube(
    group = "conformance.servicedb.io",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus",
    shortname = "wdg"
)]
pub struct WidgetSpec {
    pub color: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WidgetStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// A cluster-scoped test kind; its CRD (see [`gadget_crd`]) has a status in its schema
/// but no status subresource.
#[derive(CustomResource, Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "conformance.servicedb.io",
    version = "v1",
    kind = "Gadget",
    status = "GadgetStatus"
)]
pub struct GadgetSpec {
    pub level: i64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct GadgetStatus {
    #[serde(default)]
    pub seen: bool,
}

/// The Gadget CRD without the status subresource that `status = ..` implies.
fn gadget_crd()
-> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
    let mut crd = Gadget::crd();
    for v in &mut crd.spec.versions {
        v.subresources = None;
    }
    crd
}

const GROUP: &str = "conformance.servicedb.io";
const WIDGETS: &str = "widgets.conformance.servicedb.io";

/// A cluster with the test CRDs; never the operator's (`crds/`).
async fn start() -> TestCluster {
    start_with(ClusterOptions::default()).await
}

async fn start_with(options: ClusterOptions) -> TestCluster {
    let cluster = TestCluster::start_with(ClusterOptions {
        install_repo_crds: false,
        ..options
    })
    .await;
    cluster.install_crd(&Widget::crd()).await;
    cluster
}

/// Waits until the object `name` does not exist.
async fn wait_gone<K>(api: &Api<K>, name: &str, what: &str)
where
    K: Clone + std::fmt::Debug + Send + serde::de::DeserializeOwned + Resource + 'static,
{
    wait_for(api, name, what, |o: Option<&K>| o.is_none()).await;
}

fn widget(name: &str, color: &str) -> Widget {
    Widget::new(
        name,
        WidgetSpec {
            color: color.into(),
            size: None,
        },
    )
}

fn config_map(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "data": data.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
    }))
    .expect("a valid ConfigMap")
}

/// The `Status` of a failed request; panics on success or another error.
fn status_of<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> kube::core::Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Discovery serves core, built-in groups and CRD kinds (legacy and aggregated), and
/// unknown things are 404 with a proper `Status` body (kind Status, reason NotFound).
#[tokio::test]
async fn discovery_and_not_found() {
    let cluster = start().await;
    let client = cluster.client();
    let version = client.apiserver_version().await.unwrap();
    assert!(!version.major.is_empty() && !version.minor.is_empty());

    let discovery = kube::Discovery::new(client.clone()).run().await.unwrap();
    let (ar, caps) = discovery
        .get(GROUP)
        .and_then(|g| g.recommended_kind("Widget"))
        .expect("widgets are discoverable");
    assert_eq!(ar.plural, "widgets");
    assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
    assert!(
        caps.subresources
            .iter()
            .any(|(sub, _)| sub.plural == "widgets/status" || sub.plural == "status")
    );
    let batch = discovery.get("batch").expect("batch is served");
    assert!(batch.recommended_kind("Job").is_some());
    let core = discovery.get("").expect("the core group is served");
    assert!(core.recommended_kind("Secret").is_some());

    let aggregated = kube::Discovery::new(client.clone())
        .run_aggregated()
        .await
        .unwrap();
    assert!(
        aggregated
            .get(GROUP)
            .and_then(|g| g.recommended_kind("Widget"))
            .is_some()
    );

    let ns = cluster.namespace();
    let widgets: Api<Widget> = Api::namespaced(client.clone(), ns);
    let status = status_of(widgets.get("missing").await);
    assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));

    // the raw body, as any client sees it
    let req = axum::http::Request::get(format!("/apis/{GROUP}/v1/namespaces/{ns}/widgets/missing"))
        .body(Vec::new())
        .unwrap();
    let resp = client
        .send(req.map(kube::client::Body::from))
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let body: Value =
        serde_json::from_slice(&resp.into_body().collect_bytes().await.unwrap()).unwrap();
    assert_eq!(body["kind"], "Status");
    assert_eq!(body["apiVersion"], "v1");
    assert_eq!(body["status"], "Failure");
    assert_eq!(body["reason"], "NotFound");
    assert_eq!(body["code"], 404);
    assert_eq!(body["details"]["name"], "missing");
    assert_eq!(body["details"]["group"], GROUP);
    assert_eq!(body["details"]["kind"], "widgets");

    let req = axum::http::Request::get(format!("/apis/{GROUP}/v1/nosuchthings"))
        .body(Vec::new())
        .unwrap();
    let status = status_of(client.request::<Value>(req).await);
    assert_eq!(status.code, 404);
}

/// create, get, list, replace (PUT), delete, plus the metadata-only API and dry run; a
/// second create of the same name is 409 AlreadyExists; a deleted object is 404.
#[tokio::test]
async fn crud() {
    let cluster = start().await;
    let ns = cluster.namespace();
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client(), ns);
    let created = cms
        .create(&PostParams::default(), &config_map("one", &[("a", "1")]))
        .await
        .unwrap();
    assert_eq!(created.metadata.namespace.as_deref(), Some(ns));
    let status = status_of(
        cms.create(&PostParams::default(), &config_map("one", &[]))
            .await,
    );
    assert_eq!(
        (status.code, status.reason.as_str()),
        (409, "AlreadyExists")
    );

    let mut got = cms.get("one").await.unwrap();
    assert_eq!(got.data.as_ref().unwrap()["a"], "1");
    got.data.as_mut().unwrap().insert("b".into(), "2".into());
    let replaced = cms
        .replace("one", &PostParams::default(), &got)
        .await
        .unwrap();
    assert_eq!(replaced.data.as_ref().unwrap()["b"], "2");
    assert_ne!(replaced.resource_version(), got.resource_version());

    // the metadata-only API (what metadata watchers use)
    let meta = cms.get_metadata("one").await.unwrap();
    assert_eq!(meta.metadata.resource_version, replaced.resource_version());
    let metas = cms.list_metadata(&ListParams::default()).await.unwrap();
    assert_eq!(metas.items.len(), 1);

    // dry run answers as if, and stores nothing
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    cms.create(&dry, &config_map("dry", &[])).await.unwrap();
    assert_eq!(status_of(cms.get("dry").await).code, 404);

    let listed = cms.list(&ListParams::default()).await.unwrap();
    assert_eq!(
        listed
            .items
            .iter()
            .map(|c| c.name_any())
            .collect::<Vec<_>>(),
        vec!["one"]
    );
    assert!(
        listed
            .metadata
            .resource_version
            .is_some_and(|rv| !rv.is_empty())
    );

    cms.delete("one", &DeleteParams::default()).await.unwrap();
    assert_eq!(status_of(cms.get("one").await).code, 404);
    assert_eq!(
        status_of(cms.delete("one", &DeleteParams::default()).await).code,
        404
    );

    let widgets: Api<Widget> = Api::namespaced(cluster.client(), ns);
    widgets
        .create(&PostParams::default(), &widget("w", "red"))
        .await
        .unwrap();
    let mut w = widgets.get("w").await.unwrap();
    w.spec.color = "blue".into();
    assert_eq!(
        widgets
            .replace("w", &PostParams::default(), &w)
            .await
            .unwrap()
            .spec
            .color,
        "blue"
    );
    // a custom resource deleted at once is answered with a Status (no ReturnDeletedObject)
    let deleted = widgets.delete("w", &DeleteParams::default()).await.unwrap();
    let status = deleted.right().expect("a Status");
    assert!(status.is_success());
    assert_eq!(status.details.map(|d| d.name).as_deref(), Some("w"));
}

/// JSON merge patch (null deletes) and JSON patch (RFC 6902), including `test` ops:
/// a failing test is 422, and a test of a missing member against null passes, which the
/// finalizer helper of kube-runtime relies on.
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
}

/// Strategic merge patch on core kinds merges lists that have a merge key (a
/// ServiceAccount's `secrets`, by name; `$patch: delete` removes an item) and replaces
/// atomic ones (its `imagePullSecrets`); custom resources refuse it with 415.
#[tokio::test]
async fn strategic_merge_patch() {
    let cluster = start().await;
    let ns = cluster.namespace();
    let sas: Api<ServiceAccount> = Api::namespaced(cluster.client(), ns);
    let sa: ServiceAccount = serde_json::from_value(json!({
        "metadata": {"name": "robot", "labels": {"a": "1"}},
        "secrets": [{"name": "one"}],
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
    assert_eq!(secrets(&patched), ["one", "two"], "merged by name");
    assert_eq!(pulls(&patched), ["pull-two"], "atomic: replaced");
    assert_eq!(patched.labels().len(), 2);
    let patched = sas
        .patch(
            "robot",
            &pp,
            &Patch::Strategic(json!({"secrets": [{"name": "one", "$patch": "delete"}]})),
        )
        .await
        .unwrap();
    assert_eq!(secrets(&patched), ["two"]);

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

/// resourceVersion: a write carrying a stale one is 409 Conflict; lists carry the
/// collection's; every write changes the object's.
#[tokio::test]
async fn resource_version_conflicts() {
    let cluster = start().await;
    let widgets: Api<Widget> = Api::namespaced(cluster.client(), cluster.namespace());
    let created = widgets
        .create(&PostParams::default(), &widget("w", "red"))
        .await
        .unwrap();
    let mut stale = created.clone();
    let mut fresh = created.clone();
    fresh.spec.color = "green".into();
    let updated = widgets
        .replace("w", &PostParams::default(), &fresh)
        .await
        .unwrap();
    assert_ne!(updated.resource_version(), created.resource_version());

    stale.spec.color = "blue".into();
    let status = status_of(widgets.replace("w", &PostParams::default(), &stale).await);
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    let status = status_of(
        widgets
            .patch(
                "w",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"resourceVersion": created.resource_version()}, "spec": {"color": "blue"}})),
            )
            .await,
    );
    assert_eq!(status.code, 409);
    // custom resources need a resourceVersion on PUT
    stale.metadata.resource_version = None;
    assert_eq!(
        status_of(widgets.replace("w", &PostParams::default(), &stale).await).code,
        422
    );

    let list = widgets.list(&ListParams::default()).await.unwrap();
    assert!(
        list.metadata
            .resource_version
            .is_some_and(|rv| !rv.is_empty())
    );
    assert_eq!(widgets.get("w").await.unwrap().spec.color, "green");
}

async fn next_event<S>(stream: &mut S) -> WatchEvent<Widget>
where
    S: futures::Stream<Item = Result<WatchEvent<Widget>, kube::Error>> + Unpin,
{
    loop {
        let event = tokio::time::timeout(Duration::from_secs(20), stream.next())
            .await
            .expect("a watch event within 20s")
            .expect("the watch stream is open")
            .expect("a valid watch event");
        if !matches!(event, WatchEvent::Bookmark(_)) {
            return event;
        }
    }
}

/// A watch from a list's resourceVersion streams ADDED, MODIFIED, DELETED in order,
/// filtered by label selector (an object that stops matching is DELETED for the
/// watcher); `timeoutSeconds` ends the stream.
#[tokio::test]
async fn watch_streams_changes_in_order() {
    let cluster = start().await;
    let widgets: Api<Widget> = Api::namespaced(cluster.client(), cluster.namespace());
    let rv = widgets
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut all = widgets
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    let mut red = widgets
        .watch(&WatchParams::default().labels("color=red"), &rv)
        .await
        .unwrap()
        .boxed();

    let mut w = widget("w", "red");
    w.metadata.labels = Some(labels(&[("color", "red")]));
    widgets.create(&PostParams::default(), &w).await.unwrap();
    widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 2}})),
        )
        .await
        .unwrap();
    widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"color": "blue"}}})),
        )
        .await
        .unwrap();
    widgets.delete("w", &DeleteParams::default()).await.unwrap();

    let kinds: Vec<String> = {
        let mut out = vec![];
        for _ in 0..4 {
            out.push(match next_event(&mut all).await {
                WatchEvent::Added(_) => "ADDED".to_string(),
                WatchEvent::Modified(w) => format!(
                    "MODIFIED {}",
                    w.labels().get("color").cloned().unwrap_or_default()
                ),
                WatchEvent::Deleted(_) => "DELETED".to_string(),
                other => panic!("unexpected {other:?}"),
            });
        }
        out
    };
    assert_eq!(kinds, ["ADDED", "MODIFIED red", "MODIFIED blue", "DELETED"]);

    assert!(matches!(next_event(&mut red).await, WatchEvent::Added(_)));
    assert!(matches!(
        next_event(&mut red).await,
        WatchEvent::Modified(_)
    ));
    match next_event(&mut red).await {
        WatchEvent::Deleted(w) => assert_eq!(w.labels()["color"], "blue", "it stopped matching"),
        other => panic!("expected DELETED when the label stops matching, got {other:?}"),
    }

    let started = Instant::now();
    let mut short = widgets
        .watch(&WatchParams::default().timeout(1), "0")
        .await
        .unwrap()
        .boxed();
    while tokio::time::timeout(Duration::from_secs(20), short.next())
        .await
        .expect("ends")
        .is_some()
    {}
    assert!(started.elapsed() < Duration::from_secs(15));
}

/// A watch from a resourceVersion older than the server's history gets an ERROR event
/// with a 410 Expired Status (how kube-runtime learns it must re-list).
#[tokio::test]
async fn watch_from_expired_version_is_gone() {
    let options = ClusterOptions {
        fake: FakeOptions {
            history_limit: 5,
            ..FakeOptions::default()
        },
        ..ClusterOptions::default()
    };
    let cluster = start_with(options).await;
    let Some(fake) = cluster.fake_only("forcing a watch history overflow") else {
        return;
    };
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client(), cluster.namespace());
    let rv = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    for i in 0..10 {
        cms.create(&PostParams::default(), &config_map(&format!("c{i}"), &[]))
            .await
            .unwrap();
    }
    let mut stream = cms
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    match stream.next().await {
        Some(Ok(WatchEvent::Error(e))) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
    assert!(fake.resource_version() > rv.parse::<u64>().unwrap());
}

/// A watcher whose watch gets 410 Gone re-lists and carries on: first from an injected
/// fault (works on any cluster), then (fake only) from the server itself after its
/// history was compacted while the watcher was away.
#[tokio::test]
async fn watcher_relists_after_410() {
    let cluster = start().await;
    let ns = cluster.namespace();
    let plain: Api<Widget> = Api::namespaced(cluster.client(), ns);
    plain
        .create(&PostParams::default(), &widget("w1", "red"))
        .await
        .unwrap();

    let inst = cluster.instrumented_client();
    inst.faults
        .inject(Fault::on("watch", "*/widgets").watch_expired().times(1));
    let api: Api<Widget> = Api::namespaced(inst.client.clone(), ns);
    let (reader, writer) = reflector::store();
    let mut events = reflector(writer, watcher::watcher(api, watcher::Config::default())).boxed();

    let mut seen = vec![];
    let mut next = async || -> String {
        let event = tokio::time::timeout(Duration::from_secs(20), events.next())
            .await
            .expect("a watcher event within 20s")
            .expect("the watcher runs forever");
        match event {
            Ok(Event::Init) => "init".into(),
            Ok(Event::InitApply(w)) => format!("init-apply {}", w.name_any()),
            Ok(Event::InitDone) => "init-done".into(),
            Ok(Event::Apply(w)) => format!("apply {}", w.name_any()),
            Ok(Event::Delete(w)) => format!("delete {}", w.name_any()),
            Err(watcher::Error::WatchError(s)) => format!("error {}", s.code),
            Err(e) => format!("error {e}"),
        }
    };
    for _ in 0..7 {
        seen.push(next().await);
    }
    assert_eq!(
        seen,
        [
            "init",
            "init-apply w1",
            "init-done",
            "error 410",
            "init",
            "init-apply w1",
            "init-done"
        ]
    );
    assert_eq!(
        inst.requests.count("list", WIDGETS),
        2,
        "the watcher re-listed"
    );
    plain
        .create(&PostParams::default(), &widget("w2", "blue"))
        .await
        .unwrap();
    assert_eq!(next().await, "apply w2");
    assert_eq!(reader.state().len(), 2);

    let Some(fake) = cluster.fake_only("410 from the server after history compaction") else {
        return;
    };
    // hold the watcher's reconnect back while the history moves past it
    inst.faults.inject(
        Fault::on("watch", "*/widgets")
            .delay(Duration::from_secs(1))
            .times(1),
    );
    inst.faults.close_watches();
    plain
        .create(&PostParams::default(), &widget("w3", "green"))
        .await
        .unwrap();
    fake.compact_history();
    let mut rest = vec![];
    loop {
        let e = next().await;
        let done = e == "init-done";
        rest.push(e);
        if done {
            break;
        }
    }
    assert_eq!(
        rest.first().map(String::as_str),
        Some("error 410"),
        "{rest:?}"
    );
    assert!(rest.contains(&"init-apply w3".to_string()), "{rest:?}");
    assert_eq!(reader.state().len(), 3);
}

/// Label selectors (=, ==, !=, in, notin, exists, !exists) and the field selectors
/// metadata.name / metadata.namespace, on lists in one and in all namespaces; an unknown
/// field selector is 400.
#[tokio::test]
async fn selectors() {
    let cluster = start().await;
    let client = cluster.client();
    let ns1 = cluster.namespace().to_string();
    let ns2 = cluster.create_namespace("sdbtest-other").await;
    // a label unique to this test, so that all-namespace lists on a shared cluster work
    let run = cluster.unique_name("run");
    for (ns, name, tier) in [
        (&ns1, "a", Some("db")),
        (&ns1, "b", Some("web")),
        (&ns2, "c", None),
    ] {
        let mut l = labels(&[("run", &run)]);
        if let Some(t) = tier {
            l.insert("tier".into(), t.into());
        }
        let mut cm = config_map(name, &[]);
        cm.metadata.labels = Some(l);
        Api::<ConfigMap>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &cm)
            .await
            .unwrap();
    }
    let all: Api<ConfigMap> = Api::all(client.clone());
    let names = async |api: &Api<ConfigMap>, labels: &str, fields: Option<&str>| -> Vec<String> {
        let mut lp =
            ListParams::default().labels(format!("run={run},{labels}").trim_end_matches(','));
        if let Some(f) = fields {
            lp = lp.fields(f);
        }
        let mut names: Vec<String> = api
            .list(&lp)
            .await
            .unwrap()
            .items
            .iter()
            .map(|c| c.name_any())
            .collect();
        names.sort();
        names
    };
    assert_eq!(names(&all, "", None).await, ["a", "b", "c"]);
    assert_eq!(names(&all, "tier==db", None).await, ["a"]);
    assert_eq!(names(&all, "tier!=db", None).await, ["b", "c"]);
    assert_eq!(names(&all, "tier in (db,web)", None).await, ["a", "b"]);
    assert_eq!(names(&all, "tier notin (db)", None).await, ["b", "c"]);
    assert_eq!(names(&all, "tier", None).await, ["a", "b"]);
    assert_eq!(names(&all, "!tier", None).await, ["c"]);
    assert_eq!(names(&all, "", Some("metadata.name=b")).await, ["b"]);
    assert_eq!(
        names(&all, "", Some(&format!("metadata.namespace={ns2}"))).await,
        ["c"]
    );
    assert_eq!(names(&all, "", Some("metadata.name!=b")).await, ["a", "c"]);
    let one: Api<ConfigMap> = Api::namespaced(client.clone(), &ns1);
    assert_eq!(names(&one, "", None).await, ["a", "b"]);
    let status = status_of(one.list(&ListParams::default().fields("data.x=1")).await);
    assert_eq!(status.code, 400);

    // watches filter the same way
    let rv = one
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = one
        .watch(&WatchParams::default().fields("metadata.name=d"), &rv)
        .await
        .unwrap()
        .boxed();
    one.create(&PostParams::default(), &config_map("e", &[]))
        .await
        .unwrap();
    one.create(&PostParams::default(), &config_map("d", &[]))
        .await
        .unwrap();
    let event = loop {
        match tokio::time::timeout(Duration::from_secs(20), stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            WatchEvent::Bookmark(_) => continue,
            e => break e,
        }
    };
    assert!(matches!(event, WatchEvent::Added(cm) if cm.name_any() == "d"));
}

/// Lists honour `limit` and hand out `continue` tokens until the last page.
#[tokio::test]
async fn list_pagination() {
    let cluster = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client(), cluster.namespace());
    for i in 0..5 {
        let mut cm = config_map(&format!("page-{i}"), &[]);
        cm.metadata.labels = Some(labels(&[("paged", "yes")]));
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }
    let mut lp = ListParams::default().labels("paged=yes").limit(2);
    let mut names = vec![];
    let mut pages = 0;
    loop {
        let page = cms.list(&lp).await.unwrap();
        pages += 1;
        assert!(page.items.len() <= 2);
        names.extend(page.items.iter().map(|c| c.name_any()));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => lp = lp.continue_token(&token),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names, ["page-0", "page-1", "page-2", "page-3", "page-4"]);
}

/// Namespaces: writes into a namespace that does not exist are 404 NotFound; deleting a
/// namespace deletes its objects, waits for their finalizers (the namespace stays
/// Terminating, and creating in it is 403 Forbidden), then goes.
#[tokio::test]
async fn namespaces_scope_and_cascade() {
    let cluster = start().await;
    let client = cluster.client();
    let missing = cluster.unique_name("sdbtest-missing");
    let status = status_of(
        Api::<ConfigMap>::namespaced(client.clone(), &missing)
            .create(&PostParams::default(), &config_map("x", &[]))
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));

    let ns = cluster.create_namespace("sdbtest-doomed").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    cms.create(&PostParams::default(), &config_map("x", &[]))
        .await
        .unwrap();
    let widgets: Api<Widget> = Api::namespaced(client.clone(), &ns);
    let mut held = widget("held", "red");
    held.metadata.finalizers = Some(vec!["conformance.servicedb.io/hold".into()]);
    widgets.create(&PostParams::default(), &held).await.unwrap();

    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .delete(&ns, &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(
        &cms,
        "x",
        "the namespace controller to delete the ConfigMap",
    )
    .await;
    let w = widgets.get("held").await.unwrap();
    assert!(
        w.metadata.deletion_timestamp.is_some(),
        "finalizers hold the widget"
    );
    let terminating = namespaces.get(&ns).await.unwrap();
    assert_eq!(
        terminating.status.unwrap().phase.as_deref(),
        Some("Terminating")
    );
    let status = status_of(
        cms.create(&PostParams::default(), &config_map("y", &[]))
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));

    widgets
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    wait_gone(&namespaces, &ns, "the namespace to go").await;
}

/// The status subresource: writes to the main resource ignore `status`, writes to
/// `/status` ignore everything else; generation starts at 1 and moves only with spec
/// changes. A cluster-scoped kind without a status subresource counts status changes as
/// spec changes, as Kubernetes does.
#[tokio::test]
async fn status_subresource_and_generation() {
    let cluster = start().await;
    let widgets: Api<Widget> = Api::namespaced(cluster.client(), cluster.namespace());
    let mut w = widget("w", "red");
    w.status = Some(WidgetStatus {
        phase: Some("ignored".into()),
        observed_generation: None,
    });
    let created = widgets.create(&PostParams::default(), &w).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.status.is_none(), "status is dropped on create");

    let pp = PatchParams::default();
    let relabeled = widgets
        .patch(
            "w",
            &pp,
            &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        relabeled.metadata.generation,
        Some(1),
        "metadata changes keep the generation"
    );
    let main = widgets
        .patch(
            "w",
            &pp,
            &Patch::Merge(json!({"spec": {"color": "blue"}, "status": {"phase": "main"}})),
        )
        .await
        .unwrap();
    assert_eq!(main.metadata.generation, Some(2));
    assert!(main.status.is_none(), "the main resource ignores status");

    let status = widgets
        .patch_status("w", &pp, &Patch::Merge(json!({"spec": {"color": "green"}, "status": {"phase": "Ready", "observedGeneration": 2}})))
        .await
        .unwrap();
    assert_eq!(status.spec.color, "blue", "/status ignores spec");
    assert_eq!(
        status.status.as_ref().unwrap().phase.as_deref(),
        Some("Ready")
    );
    assert_eq!(status.metadata.generation, Some(2));

    let mut replaced = status.clone();
    replaced.status = Some(WidgetStatus {
        phase: Some("Replaced".into()),
        observed_generation: Some(2),
    });
    let replaced = widgets
        .replace_status("w", &PostParams::default(), &replaced)
        .await
        .unwrap();
    assert_eq!(replaced.status.unwrap().phase.as_deref(), Some("Replaced"));

    cluster.install_crd(&gadget_crd()).await;
    let name = cluster.unique_name("gadget");
    cluster.cleanup_later::<Gadget>(&name);
    let gadgets: Api<Gadget> = Api::all(cluster.client());
    let g = gadgets
        .create(
            &PostParams::default(),
            &Gadget::new(&name, GadgetSpec { level: 1 }),
        )
        .await
        .unwrap();
    assert!(g.metadata.namespace.is_none(), "cluster-scoped");
    assert_eq!(g.metadata.generation, Some(1));
    let g = gadgets
        .patch(&name, &pp, &Patch::Merge(json!({"status": {"seen": true}})))
        .await
        .unwrap();
    assert_eq!(
        g.metadata.generation,
        Some(2),
        "no status subresource: status is spec"
    );
    gadgets
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
}

/// Finalizers: deleting an object that has them only sets deletionTimestamp (and
/// deletionGracePeriodSeconds 0); no finalizer may be added meanwhile (422); removing
/// the last one deletes it (one DELETED event).
#[tokio::test]
async fn finalizers_and_deletion_timestamp() {
    let cluster = start().await;
    let widgets: Api<Widget> = Api::namespaced(cluster.client(), cluster.namespace());
    let mut w = widget("w", "red");
    w.metadata.finalizers = Some(vec![
        "conformance.servicedb.io/a".into(),
        "conformance.servicedb.io/b".into(),
    ]);
    let created = widgets.create(&PostParams::default(), &w).await.unwrap();

    let deleted = widgets.delete("w", &DeleteParams::default()).await.unwrap();
    let marked = deleted
        .left()
        .expect("still there, so the object comes back");
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert_eq!(marked.metadata.deletion_grace_period_seconds, Some(0));
    assert_eq!(widgets.get("w").await.unwrap().finalizers().len(), 2);

    let pp = PatchParams::default();
    let status = status_of(
        widgets
            .patch("w", &pp, &Patch::Merge(json!({"metadata": {"finalizers": ["conformance.servicedb.io/a", "conformance.servicedb.io/b", "conformance.servicedb.io/c"]}})))
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    // other updates still work while deleting
    widgets
        .patch("w", &pp, &Patch::Merge(json!({"spec": {"color": "blue"}})))
        .await
        .unwrap();

    let rv = widgets.get("w").await.unwrap().resource_version().unwrap();
    let mut stream = widgets
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    widgets
        .patch(
            "w",
            &pp,
            &Patch::Merge(json!({"metadata": {"finalizers": ["conformance.servicedb.io/b"]}})),
        )
        .await
        .unwrap();
    widgets
        .patch(
            "w",
            &pp,
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    assert!(matches!(
        next_event(&mut stream).await,
        WatchEvent::Modified(_)
    ));
    match next_event(&mut stream).await {
        WatchEvent::Deleted(w) => assert_eq!(w.uid(), created.uid()),
        other => panic!("expected DELETED, got {other:?}"),
    }
    assert_eq!(status_of(widgets.get("w").await).code, 404);
}

fn owned_by(name: &str, owners: &[&Widget], block: bool) -> ConfigMap {
    let mut cm = config_map(name, &[]);
    cm.metadata.owner_references = Some(
        owners
            .iter()
            .map(|o| {
                let mut r = o.controller_owner_ref(&()).expect("named, with uid");
                r.controller = Some(false);
                r.block_owner_deletion = Some(block);
                r
            })
            .collect(),
    );
    cm
}

/// ownerReferences: deleting an owner deletes its dependents (background cascade by
/// default), Orphan keeps them (without the reference), Foreground keeps the owner until
/// the blocking dependents are gone; a dependent with another live owner survives.
#[tokio::test]
async fn owner_references_garbage_collection() {
    let cluster = start().await;
    let ns = cluster.namespace();
    let widgets: Api<Widget> = Api::namespaced(cluster.client(), ns);
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client(), ns);
    let mk = async |name: &str| {
        widgets
            .create(&PostParams::default(), &widget(name, "red"))
            .await
            .unwrap()
    };
    let (bg, orphan, fg, other) = (
        mk("bg").await,
        mk("orphan").await,
        mk("fg").await,
        mk("other").await,
    );
    cms.create(&PostParams::default(), &owned_by("bg-child", &[&bg], false))
        .await
        .unwrap();
    cms.create(
        &PostParams::default(),
        &owned_by("shared-child", &[&bg, &other], false),
    )
    .await
    .unwrap();
    cms.create(
        &PostParams::default(),
        &owned_by("orphan-child", &[&orphan], false),
    )
    .await
    .unwrap();
    let mut blocking = owned_by("fg-child", &[&fg], true);
    blocking.metadata.finalizers = Some(vec!["conformance.servicedb.io/hold".into()]);
    cms.create(&PostParams::default(), &blocking).await.unwrap();

    widgets
        .delete("bg", &DeleteParams::background())
        .await
        .unwrap();
    wait_gone(&cms, "bg-child", "background cascade").await;
    let shared = wait_for(
        &cms,
        "shared-child",
        "the dangling owner reference to go",
        |cm: Option<&ConfigMap>| cm.is_some_and(|c| c.owner_references().len() == 1),
    )
    .await
    .unwrap();
    assert_eq!(shared.owner_references()[0].name, "other");

    widgets
        .delete("orphan", &DeleteParams::orphan())
        .await
        .unwrap();
    wait_gone(&widgets, "orphan", "the orphaning owner to go").await;
    let kept = wait_for(
        &cms,
        "orphan-child",
        "the reference to be removed",
        |cm: Option<&ConfigMap>| cm.is_some_and(|c| c.owner_references().is_empty()),
    )
    .await;
    assert!(kept.is_some());

    widgets
        .delete("fg", &DeleteParams::foreground())
        .await
        .unwrap();
    let child = wait_for(
        &cms,
        "fg-child",
        "foreground deletion of the dependent",
        |cm: Option<&ConfigMap>| cm.is_some_and(|c| c.metadata.deletion_timestamp.is_some()),
    )
    .await
    .unwrap();
    let owner = widgets.get("fg").await.unwrap();
    assert!(owner.metadata.deletion_timestamp.is_some());
    assert!(
        owner
            .finalizers()
            .contains(&"foregroundDeletion".to_string()),
        "the owner waits"
    );
    cms.patch(
        &child.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    wait_gone(&widgets, "fg", "the foreground owner to go").await;
}

/// generateName, uid, creationTimestamp; Secret `stringData` folded into base64 `data`
/// and type Opaque; the Job defaults the operator reads back; label values over 63
/// characters are 422.
#[tokio::test]
async fn server_set_fields_and_defaults() {
    let cluster = start().await;
    let ns = cluster.namespace();
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client(), ns);
    let mut generated = config_map("", &[]);
    generated.metadata.name = None;
    generated.metadata.generate_name = Some("gen-".into());
    let cm = cms
        .create(&PostParams::default(), &generated)
        .await
        .unwrap();
    let name = cm.name_any();
    assert!(
        name.starts_with("gen-") && name.len() == "gen-".len() + 5,
        "{name}"
    );
    assert!(cm.uid().is_some_and(|u| u.len() == 36));
    assert!(cm.metadata.creation_timestamp.is_some());

    let secrets: Api<Secret> = Api::namespaced(cluster.client(), ns);
    let secret: Secret = serde_json::from_value(
        json!({"metadata": {"name": "s"}, "stringData": {"password": "hunter2"}}),
    )
    .unwrap();
    let s = secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    assert_eq!(s.type_.as_deref(), Some("Opaque"));
    assert!(s.string_data.is_none());
    assert_eq!(s.data.unwrap()["password"].0, b"hunter2");
    let raw: Value = cluster
        .client()
        .request(
            axum::http::Request::get(format!("/api/v1/namespaces/{ns}/secrets/s"))
                .body(Vec::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(raw["data"]["password"], "aHVudGVyMg==");

    let jobs: Api<Job> = Api::namespaced(cluster.client(), ns);
    let job: Job = serde_json::from_value(json!({
        "metadata": {"name": "j"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox", "command": ["true"]}]}}},
    }))
    .unwrap();
    let job = jobs.create(&PostParams::default(), &job).await.unwrap();
    let spec = job.spec.unwrap();
    assert_eq!(spec.backoff_limit, Some(6));
    assert_eq!(spec.completions, Some(1));
    assert_eq!(spec.parallelism, Some(1));
    assert_eq!(
        spec.template.spec.unwrap().restart_policy.as_deref(),
        Some("Never")
    );

    let mut long = config_map("long", &[]);
    long.metadata.labels = Some(labels(&[("too-long", &"x".repeat(64))]));
    let status = status_of(cms.create(&PostParams::default(), &long).await);
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
}

/// Fault injection on a client (works against any cluster): the next N matching
/// requests fail with the given status (409, 500, 429 with Retry-After), responses can be
/// delayed, and the client's open watches can be closed.
#[tokio::test]
async fn client_side_fault_injection() {
    let cluster = start().await;
    let inst = cluster.instrumented_client();
    let widgets: Api<Widget> = Api::namespaced(inst.client.clone(), cluster.namespace());
    widgets
        .create(&PostParams::default(), &widget("w", "red"))
        .await
        .unwrap();
    let pp = PatchParams::default();
    let patch = Patch::Merge(json!({"spec": {"size": 1}}));

    inst.faults.fail_next("patch", "*/widgets/w", 409, 1);
    assert_eq!(status_of(widgets.patch("w", &pp, &patch).await).code, 409);
    widgets
        .patch("w", &pp, &patch)
        .await
        .expect("only the next request fails");

    inst.faults.fail_next("get", "*/widgets/*", 500, 2);
    assert_eq!(status_of(widgets.get("w").await).code, 500);
    assert_eq!(status_of(widgets.get("w").await).code, 500);
    widgets.get("w").await.unwrap();

    inst.faults.inject(
        Fault::on("create|patch", "*")
            .status(429)
            .retry_after(3)
            .times(1),
    );
    let status = status_of(widgets.patch("w", &pp, &patch).await);
    assert_eq!(
        (status.code, status.reason.as_str()),
        (429, "TooManyRequests")
    );
    assert_eq!(status.details.map(|d| d.retry_after_seconds), Some(3));

    inst.faults.inject(
        Fault::on("get", "*")
            .delay(Duration::from_millis(200))
            .times(1),
    );
    let started = Instant::now();
    widgets.get("w").await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(200));

    let mut stream = widgets
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    assert!(matches!(
        next_event(&mut stream).await,
        WatchEvent::Added(_)
    ));
    inst.faults.close_watches();
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(e) = stream.next().await {
            e.unwrap();
        }
    })
    .await;
    assert!(end.is_ok(), "the watch ended when closed");
    assert_eq!(inst.faults.injected(), 4);
    assert_eq!(inst.requests.all().iter().filter(|r| r.injected).count(), 4);
}

/// Request recording: what an instrumented client did, in RBAC terms (resource, verb),
/// and which of it were writes.
#[tokio::test]
async fn request_recording() {
    let cluster = start().await;
    let inst = cluster.instrumented_client();
    let ns = cluster.namespace();
    let widgets: Api<Widget> = Api::namespaced(inst.client.clone(), ns);
    widgets
        .create(&PostParams::default(), &widget("w", "red"))
        .await
        .unwrap();
    widgets
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "x"}})),
        )
        .await
        .unwrap();
    let mark = inst.requests.mark();
    widgets.get("w").await.unwrap();
    widgets.list(&ListParams::default()).await.unwrap();
    assert!(inst.requests.writes_since(mark).is_empty(), "reads only");
    Api::<Job>::namespaced(inst.client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap();

    let used = inst.requests.permissions();
    let expected: BTreeSet<(String, String)> = [
        (WIDGETS, "create"),
        ("widgets.conformance.servicedb.io/status", "patch"),
        (WIDGETS, "get"),
        (WIDGETS, "list"),
        ("jobs.batch", "list"),
    ]
    .iter()
    .map(|(r, v)| (r.to_string(), v.to_string()))
    .collect();
    assert_eq!(used, expected);
    let info = parse_request(
        "GET",
        &format!("/api/v1/namespaces/{ns}/secrets"),
        "watch=true",
    );
    assert_eq!(
        (info.verb.as_str(), info.rbac_resource().as_str()),
        ("watch", "secrets")
    );
}

/// The Job controller stand-in runs a Job's container locally with its env (values,
/// secretKeyRef, configMapKeyRef, envFrom), its ConfigMap and Secret volumes at rewritten
/// mount paths and a mapped program, then sets a status the API server accepts:
/// SuccessCriteriaMet + Complete, or FailureTarget + Failed. The server refuses
/// Complete without SuccessCriteriaMet.
#[tokio::test]
async fn job_runner_plays_the_job_controller() {
    let cluster = start().await;
    let ns = cluster.namespace();
    let client = cluster.client();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    cms.create(
        &PostParams::default(),
        &config_map(
            "scripts",
            &[("run.sh", "echo script-ran"), ("greeting", "hello")],
        ),
    )
    .await
    .unwrap();
    let secret: Secret = serde_json::from_value(
        json!({"metadata": {"name": "creds"}, "stringData": {"password": "s3cret", "user": "app"}}),
    )
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();

    let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
    let job = |name: &str, script: &str| -> Job {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"suite": "jobs"}},
            "spec": {"backoffLimit": 0, "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{
                    "name": "main",
                    "image": "registry.example/tools:1.0",
                    "command": ["/usr/bin/tool", "-c", script],
                    "env": [
                        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
                        {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "scripts", "key": "greeting"}}},
                        {"name": "SCRIPT", "value": "/scripts/run.sh"},
                        {"name": "WHO", "value": "$(GREETING) world"},
                    ],
                    "envFrom": [{"secretRef": {"name": "creds"}, "prefix": "DB_"}],
                    "volumeMounts": [{"name": "scripts", "mountPath": "/scripts"}, {"name": "creds", "mountPath": "/etc/creds"}],
                }],
                "volumes": [{"name": "scripts", "configMap": {"name": "scripts"}}, {"name": "creds", "secret": {"secretName": "creds"}}],
            }}},
        }))
        .unwrap()
    };
    // `/scripts-not-mounted` only starts like a mount path: it is left alone
    let script = "sh $SCRIPT; echo \"$PASSWORD $DB_user $WHO\"; cat /etc/creds/user; echo /scripts-not-mounted";
    jobs.create(&PostParams::default(), &job("ok", script))
        .await
        .unwrap();
    let runner = cluster.job_runner().program("tool", "/bin/sh");
    let run = runner.run_next(Some(ns), Some("suite=jobs")).await.unwrap();
    assert!(run.succeeded, "{run:?}");
    assert_eq!(
        run.stdout,
        "script-ran\ns3cret app hello world\napp/scripts-not-mounted\n"
    );
    let done = jobs.get_status("ok").await.unwrap().status.unwrap();
    let conditions: Vec<(String, String)> = done
        .conditions
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c.type_, c.status))
        .collect();
    assert!(conditions.contains(&("SuccessCriteriaMet".into(), "True".into())));
    assert!(conditions.contains(&("Complete".into(), "True".into())));
    assert_eq!(done.succeeded, Some(1));
    assert!(done.start_time.is_some() && done.completion_time.is_some());
    assert!(
        runner
            .pending(Some(ns), Some("suite=jobs"))
            .await
            .unwrap()
            .is_empty()
    );

    jobs.create(&PostParams::default(), &job("fails", "exit 3"))
        .await
        .unwrap();
    let run = runner.run(ns, "fails").await.unwrap();
    assert_eq!((run.succeeded, run.exit_code), (false, Some(3)));
    let failed = jobs.get_status("fails").await.unwrap().status.unwrap();
    let types: Vec<String> = failed
        .conditions
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.type_)
        .collect();
    assert!(types.contains(&"FailureTarget".to_string()) && types.contains(&"Failed".to_string()));
    assert_eq!(failed.failed, Some(1));

    jobs.create(&PostParams::default(), &job("invalid-status", "true"))
        .await
        .unwrap();
    let now = "2025-01-01T00:00:00Z";
    let status = status_of(
        jobs.patch_status(
            "invalid-status",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"startTime": now, "completionTime": now, "succeeded": 1, "conditions": [
                {"type": "Complete", "status": "True", "lastTransitionTime": now, "lastProbeTime": now}
            ]}})),
        )
        .await,
    );
    assert_eq!(status.code, 422);
}

/// kube-runtime's event `Recorder` (what the operator uses for Kubernetes Events)
/// creates an events.k8s.io/v1 Event, then patches its series when it repeats.
#[tokio::test]
async fn event_recorder() {
    use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
    let cluster = start().await;
    let ns = cluster.namespace();
    let widgets: Api<Widget> = Api::namespaced(cluster.client(), ns);
    let w = widgets
        .create(&PostParams::default(), &widget("w", "red"))
        .await
        .unwrap();
    let recorder = Recorder::new(
        cluster.client(),
        Reporter {
            controller: "conformance".into(),
            instance: None,
        },
    );
    let event = KubeEvent {
        type_: EventType::Normal,
        reason: "Painted".into(),
        note: Some("painted red".into()),
        action: "Paint".into(),
        secondary: None,
    };
    let reference = w.object_ref(&());
    recorder.publish(&event, &reference).await.unwrap();
    recorder.publish(&event, &reference).await.unwrap();
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(cluster.client(), ns);
    let list = events.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1, "a repeat patches the same Event");
    let e = &list.items[0];
    assert_eq!(e.reason.as_deref(), Some("Painted"));
    assert_eq!(
        e.regarding.as_ref().and_then(|r| r.name.as_deref()),
        Some("w")
    );
    assert_eq!(e.series.as_ref().map(|s| s.count), Some(2));
}

/// What the test controller below saw and did.
#[derive(Default)]
struct Seen {
    cleaned_up: Mutex<Vec<String>>,
}

struct Ctx {
    client: kube::Client,
    seen: Arc<Seen>,
}

const CLEANUP: &str = "conformance.servicedb.io/cleanup";

async fn reconcile(w: Arc<Widget>, ctx: Arc<Ctx>) -> Result<Action, FinalizerError<kube::Error>> {
    let ns = w.namespace().unwrap_or_default();
    let api: Api<Widget> = Api::namespaced(ctx.client.clone(), &ns);
    finalizer(&api, CLEANUP, w, |event| async {
        match event {
            Finalizer::Apply(w) => {
                let owner = w.controller_owner_ref(&()).expect("named, with uid");
                let cm = json!({
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": format!("{}-cm", w.name_any()), "ownerReferences": [owner]},
                    "data": {"color": w.spec.color},
                });
                let pp = PatchParams::apply("conformance-controller").force();
                Api::<ConfigMap>::namespaced(ctx.client.clone(), &ns)
                    .patch(&format!("{}-cm", w.name_any()), &pp, &Patch::Apply(&cm))
                    .await?;
                let status = json!({
                    "apiVersion": format!("{GROUP}/v1"),
                    "kind": "Widget",
                    "status": {"phase": "Ready", "observedGeneration": w.metadata.generation},
                });
                api.patch_status(&w.name_any(), &pp, &Patch::Apply(&status)).await?;
                Ok(Action::await_change())
            }
            Finalizer::Cleanup(w) => {
                ctx.seen.cleaned_up.lock().unwrap().push(w.name_any());
                Ok(Action::await_change())
            }
        }
    })
    .await
}

fn error_policy(_: Arc<Widget>, _: &FinalizerError<kube::Error>, _: Arc<Ctx>) -> Action {
    Action::requeue(Duration::from_millis(100))
}

/// A real kube-runtime `Controller` (watches, owned ConfigMaps, `finalizer` helper with
/// its JSON patches, status by server-side apply) reconciles create, update and delete;
/// a no-op re-apply changes no resourceVersion; deletion runs Cleanup, then the owned
/// ConfigMap is garbage collected.
#[tokio::test]
async fn controller_reconciles_with_finalizer_and_owned_objects() {
    let cluster = start().await;
    let ns = cluster.namespace().to_string();
    let inst = cluster.instrumented_client();
    let seen = Arc::new(Seen::default());
    let ctx = Arc::new(Ctx {
        client: inst.client.clone(),
        seen: seen.clone(),
    });
    let widgets_ctl: Api<Widget> = Api::namespaced(inst.client.clone(), &ns);
    let cms_ctl: Api<ConfigMap> = Api::namespaced(inst.client.clone(), &ns);
    let controller = tokio::spawn(
        Controller::new(widgets_ctl, watcher::Config::default())
            .owns(cms_ctl, watcher::Config::default())
            .run(reconcile, error_policy, ctx)
            .for_each(|_| async {}),
    );

    let widgets: Api<Widget> = Api::namespaced(cluster.client(), &ns);
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client(), &ns);
    widgets
        .create(&PostParams::default(), &widget("w", "red"))
        .await
        .unwrap();
    let cm = wait_for(
        &cms,
        "w-cm",
        "the owned ConfigMap",
        |cm: Option<&ConfigMap>| {
            cm.is_some_and(|c| c.data.as_ref().is_some_and(|d| d["color"] == "red"))
        },
    )
    .await
    .unwrap();
    assert_eq!(cm.owner_references()[0].name, "w");
    let w = wait_for(&widgets, "w", "status Ready", |w: Option<&Widget>| {
        w.and_then(|w| w.status.as_ref())
            .is_some_and(|s| s.phase.as_deref() == Some("Ready"))
    })
    .await
    .unwrap();
    assert_eq!(w.finalizers(), [CLEANUP]);

    widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"color": "blue"}})),
        )
        .await
        .unwrap();
    wait_for(
        &cms,
        "w-cm",
        "the ConfigMap to follow the spec",
        |cm: Option<&ConfigMap>| {
            cm.is_some_and(|c| c.data.as_ref().is_some_and(|d| d["color"] == "blue"))
        },
    )
    .await;
    let settled = wait_for(
        &widgets,
        "w",
        "observedGeneration 2",
        |w: Option<&Widget>| {
            w.and_then(|w| w.status.as_ref())
                .is_some_and(|s| s.observed_generation == Some(2))
        },
    )
    .await
    .unwrap();

    // a metadata-only change triggers a reconcile whose applies change nothing
    let cm_rv = cms.get("w-cm").await.unwrap().resource_version();
    let mark = inst.requests.mark();
    widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"touch": "1"}}})),
        )
        .await
        .unwrap();
    eventually("the controller to re-reconcile", || async {
        (inst
            .requests
            .since(mark)
            .iter()
            .filter(|r| r.info.subresource.as_deref() == Some("status"))
            .count()
            > 0)
        .then_some(())
    })
    .await;
    assert_eq!(
        cms.get("w-cm").await.unwrap().resource_version(),
        cm_rv,
        "no-op apply"
    );
    let w = widgets.get("w").await.unwrap();
    assert_eq!(w.status, settled.status);

    widgets.delete("w", &DeleteParams::default()).await.unwrap();
    wait_gone(&widgets, "w", "cleanup to release the finalizer").await;
    assert_eq!(*seen.cleaned_up.lock().unwrap(), ["w"]);
    wait_gone(&cms, "w-cm", "garbage collection of the owned ConfigMap").await;
    controller.abort();

    let used = inst.requests.permissions();
    for (resource, verb) in [
        (WIDGETS, "list"),
        (WIDGETS, "watch"),
        (WIDGETS, "patch"),
        ("configmaps", "patch"),
        ("configmaps", "watch"),
    ] {
        assert!(
            used.contains(&(resource.to_string(), verb.to_string())),
            "{resource} {verb} in {used:?}"
        );
    }
}

/// Not a conformance test: serves a fake API server until killed, for kubectl or for
/// running this suite against it as if it were a real cluster (which exercises the
/// shared-cluster paths: namespace per test, CRDs installed concurrently, cleanup):
/// `SERVICEDB_FAKE_KUBECONFIG=/tmp/kc cargo test --test fake_apiserver serve_fake -- --ignored`
/// then `SERVICEDB_TEST_KUBECONFIG=/tmp/kc cargo test --test fake_apiserver`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a tool, not a test: serves until killed"]
async fn serve_fake() {
    let fake = support::kube::FakeApiServer::start().await;
    let path = std::env::var("SERVICEDB_FAKE_KUBECONFIG")
        .unwrap_or_else(|_| "/tmp/servicedb-fake-kubeconfig".into());
    fake.write_kubeconfig(std::path::Path::new(&path), "default");
    eprintln!("fake API server at {}, kubeconfig {path}", fake.url());
    std::future::pending::<()>().await;
}
