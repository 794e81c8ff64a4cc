//! Conformance of the test support around the fake: fault injection, request
//! recording, Events, and a real kube-runtime Controller (the Job controller stand-in:
//! `fake_apiserver_jobs.rs`).
//! Shared kinds and helpers: `fake_apiserver_common`; how the suites are held to a real
//! cluster: see there.

#[allow(dead_code)] // the PostgreSQL half of the support module is not used here
mod support;

mod fake_apiserver_common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fake_apiserver_common::*;
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Error as FinalizerError, Event as Finalizer, finalizer};
use kube::runtime::watcher::{self};
use kube::{Resource, ResourceExt};
use serde_json::json;
use support::kube::{Fault, eventually, parse_request, wait_for};

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

/// kube-runtime's event `Recorder` (what the operator uses for Kubernetes Events)
/// creates an events.k8s.io/v1 Event, then merge-patches its `series` when it repeats;
/// an Event about a cluster-scoped object goes to `default`. The server refuses (422) a
/// note over 1024 bytes, and an Event about a cluster-scoped object in another namespace.
#[tokio::test]
async fn event_recorder() {
    use k8s_openapi::api::events::v1::Event as K8sEvent;
    use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
    let cluster = start().await;
    let ns = cluster.namespace();
    let widgets: Api<Widget> = Api::namespaced(cluster.client(), ns);
    let w = widgets
        .create(&PostParams::default(), &widget("w", "red"))
        .await
        .unwrap();
    let inst = cluster.instrumented_client();
    let recorder = Recorder::new(
        inst.client.clone(),
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
    let verbs: Vec<String> = inst
        .requests
        .all()
        .iter()
        .filter(|r| r.info.rbac_resource() == "events.events.k8s.io")
        .map(|r| format!("{} {}", r.verb(), r.status))
        .collect();
    assert_eq!(verbs, ["create 201", "patch 200"]);
    let events: Api<K8sEvent> = Api::namespaced(cluster.client(), ns);
    let list = events.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1, "a repeat patches the same Event");
    let e = &list.items[0];
    assert_eq!(e.reason.as_deref(), Some("Painted"));
    assert_eq!(e.reporting_controller.as_deref(), Some("conformance"));
    assert!(e.event_time.is_some());
    assert_eq!(
        e.regarding.as_ref().and_then(|r| r.name.as_deref()),
        Some("w")
    );
    let series = e.series.as_ref().expect("a series");
    assert_eq!(series.count, 2);

    let long = KubeEvent {
        type_: EventType::Warning,
        reason: "TooLong".into(),
        note: Some("x".repeat(1025)),
        action: "Paint".into(),
        secondary: None,
    };
    let status = status_of(recorder.publish(&long, &reference).await);
    assert_eq!(
        (status.code, status.reason.as_str()),
        (422, "Invalid"),
        "{status:?}"
    );

    // a cluster-scoped object's Events live in `default`
    let namespace = Api::<Namespace>::all(cluster.client())
        .get(ns)
        .await
        .unwrap();
    let cluster_ref = namespace.object_ref(&());
    recorder.publish(&event, &cluster_ref).await.unwrap();
    let in_default: Api<K8sEvent> = Api::namespaced(cluster.client(), "default");
    let found = in_default
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .any(|e| e.regarding.and_then(|r| r.name).as_deref() == Some(ns));
    assert!(found, "the Event about namespace {ns} is in default");
    let misplaced: K8sEvent = serde_json::from_value(json!({
        "metadata": {"name": "misplaced"},
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "reportingController": "conformance", "reportingInstance": "conformance",
        "action": "Paint", "reason": "Painted", "type": "Normal",
        "regarding": {"kind": "Namespace", "apiVersion": "v1", "name": ns},
    }))
    .unwrap();
    let status = status_of(events.create(&PostParams::default(), &misplaced).await);
    assert_eq!(status.code, 422, "{status:?}");
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
/// `SERVICEDB_FAKE_KUBECONFIG=/tmp/kc cargo test --test fake_apiserver_runtime serve_fake -- --ignored`
/// then `SERVICEDB_TEST_KUBECONFIG=/tmp/kc cargo test --test 'fake_apiserver_*'`.
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
