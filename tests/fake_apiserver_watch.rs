//! Conformance of the fake API server: watches (order, selectors, 410 Gone, re-list).
//! Shared kinds and helpers: `fake_apiserver_common`; how the suites are held to a real
//! cluster: see there.

#[allow(dead_code)] // the PostgreSQL half of the support module is not used here
mod support;

mod fake_apiserver_common;

use std::time::{Duration, Instant};

use fake_apiserver_common::*;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, reflector};
use kube::runtime::watcher::{self, Event};
use serde_json::{Value, json};
use support::kube::{ClusterOptions, FakeOptions, Fault, eventually};

/// A watch from a list's resourceVersion streams ADDED, MODIFIED, DELETED in order,
/// filtered by label selector (an object that stops matching is DELETED for the
/// watcher, carrying its previous, still matching state at the new resourceVersion);
/// `timeoutSeconds` ends the stream.
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
    let relabeled = widgets
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
        WatchEvent::Deleted(w) => {
            assert_eq!(w.labels()["color"], "red", "the last state that matched");
            assert_eq!(
                w.resource_version(),
                relabeled.resource_version(),
                "at the resourceVersion of the change"
            );
        }
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
            // long enough for the create and the compaction below on a loaded machine
            .delay(Duration::from_secs(5))
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

/// Metadata-only list and watch (the `as=PartialObjectMetadataList` /
/// `as=PartialObjectMetadata` Accept headers that `Controller::owns` and
/// `watcher(Api<PartialObjectMeta<K>>)` send): objects come as `meta.k8s.io/v1`
/// PartialObjectMetadata, their metadata without their data.
#[tokio::test]
async fn metadata_only_list_and_watch() {
    let cluster = start().await;
    let ns = cluster.namespace();
    let client = cluster.client();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let mut cm = config_map("meta", &[("secret-ish", "not in metadata")]);
    cm.metadata.labels = Some(labels(&[("suite", "meta")]));
    cms.create(&PostParams::default(), &cm).await.unwrap();

    let req = axum::http::Request::get(format!(
        "/api/v1/namespaces/{ns}/configmaps?labelSelector=suite%3Dmeta"
    ))
    .header(
        "accept",
        "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
    )
    .body(Vec::new())
    .unwrap();
    let list: Value = client.request(req).await.unwrap();
    assert_eq!(list["kind"], "PartialObjectMetadataList");
    assert_eq!(list["apiVersion"], "meta.k8s.io/v1");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["metadata"]["name"], "meta");
    assert!(items[0].get("data").is_none(), "{}", items[0]);
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();

    let mut stream = cms
        .watch_metadata(&WatchParams::default().labels("suite=meta"), &rv)
        .await
        .unwrap()
        .boxed();
    cms.patch(
        "meta",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"seen": "yes"}}})),
    )
    .await
    .unwrap();
    let event = loop {
        let e = tokio::time::timeout(Duration::from_secs(20), stream.next())
            .await
            .expect("an event within 20s")
            .expect("open")
            .expect("valid");
        if !matches!(e, WatchEvent::Bookmark(_)) {
            break e;
        }
    };
    match event {
        WatchEvent::Modified(m) => {
            assert_eq!(m.annotations()["seen"], "yes");
            let types = m.types.expect("typed");
            assert_eq!(
                (types.api_version.as_str(), types.kind.as_str()),
                ("meta.k8s.io/v1", "PartialObjectMetadata")
            );
        }
        other => panic!("expected MODIFIED, got {other:?}"),
    }

    // kube-runtime's watcher on Api<PartialObjectMeta<K>> uses the same requests
    let metas: Api<PartialObjectMeta<ConfigMap>> = Api::namespaced(client.clone(), ns);
    let (reader, writer) = reflector::store();
    let reflecting = tokio::spawn(
        reflector(
            writer,
            watcher::watcher(metas, watcher::Config::default().labels("suite=meta")),
        )
        .for_each(|_| async {}),
    );
    eventually("the metadata reflector to list the ConfigMap", || async {
        reader
            .state()
            .iter()
            .any(|m| m.name_any() == "meta" && m.annotations().contains_key("seen"))
            .then_some(())
    })
    .await;
    reflecting.abort();
}

/// `allowWatchBookmarks=true`: a watch gets a BOOKMARK with a current resourceVersion
/// before it times out (the watch cache sends one 2 s before the end, and every minute
/// otherwise), metadata-only watches too.
#[tokio::test]
async fn watch_bookmarks_before_timeout() {
    let cluster = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client(), cluster.namespace());
    let rv = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let wp = WatchParams::default().timeout(3);
    assert!(wp.bookmarks, "kube asks for bookmarks by default");
    let full = cms.watch(&wp, &rv).await.unwrap().boxed();
    let meta = cms.watch_metadata(&wp, &rv).await.unwrap().boxed();
    assert!(!first_bookmark(full).await.is_empty());
    assert!(!first_bookmark(meta).await.is_empty());
}

/// The resourceVersion of the first event of `stream`, which must be a BOOKMARK.
async fn first_bookmark<K: std::fmt::Debug>(
    mut stream: impl futures::Stream<Item = Result<WatchEvent<K>, kube::Error>> + Unpin,
) -> String {
    let next = tokio::time::timeout(Duration::from_secs(20), stream.next())
        .await
        .expect("a bookmark before the end");
    match next {
        Some(Ok(WatchEvent::Bookmark(b))) => b.metadata.resource_version,
        other => panic!("expected a BOOKMARK, got {other:?}"),
    }
}
