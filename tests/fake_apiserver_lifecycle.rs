//! Conformance of the fake API server: generation, the status subresource,
//! finalizers, garbage collection and namespaces.
//! Shared kinds and helpers: `fake_apiserver_common`; how the suites are held to a real
//! cluster: see there.

#[allow(dead_code)] // the PostgreSQL half of the support module is not used here
mod support;

mod fake_apiserver_common;

use fake_apiserver_common::*;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::{Resource, ResourceExt};
use serde_json::json;
use support::kube::wait_for;

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
/// deletionGracePeriodSeconds 0) and bumps its generation (the apiserver's
/// `BeforeDelete`), which later metadata and status changes do not; no finalizer may be
/// added meanwhile (422); removing the last one deletes it (one DELETED event).
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
    assert_eq!(
        marked.metadata.generation,
        created.metadata.generation.map(|g| g + 1),
        "deletion starting is a new generation"
    );

    let pp = PatchParams::default();
    let status = widgets
        .patch_status(
            "w",
            &pp,
            &Patch::Merge(json!({"status": {"phase": "Deleting"}})),
        )
        .await
        .unwrap();
    assert_eq!(
        status.metadata.generation, marked.metadata.generation,
        "status: none"
    );
    let relabeled = widgets
        .patch(
            "w",
            &pp,
            &Patch::Merge(json!({"metadata": {"labels": {"cleanup": "started"}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        relabeled.metadata.generation, marked.metadata.generation,
        "metadata: none"
    );
    // deleting again changes nothing
    let again = widgets.delete("w", &DeleteParams::default()).await.unwrap();
    assert_eq!(
        again.left().expect("still there").metadata.generation,
        marked.metadata.generation
    );
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
    // the real namespace controller deletes one kind at a time: the widget may come later
    wait_for(
        &widgets,
        "held",
        "the namespace controller to mark the widget deleted, its finalizer holding it",
        |w: Option<&Widget>| w.is_some_and(|w| w.metadata.deletion_timestamp.is_some()),
    )
    .await;
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
