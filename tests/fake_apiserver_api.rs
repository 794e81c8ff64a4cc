//! Conformance of the fake API server: discovery, CRUD, resourceVersion, selectors,
//! pagination and the fields the server sets.
//! Shared kinds and helpers: `fake_apiserver_common`; how the suites are held to a real
//! cluster: see there.

#[allow(dead_code)] // the PostgreSQL half of the support module is not used here
mod support;

mod fake_apiserver_common;

use std::time::Duration;

use fake_apiserver_common::*;
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use kube::ResourceExt;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use serde_json::{Value, json};
use support::kube::eventually;

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
/// second create of the same name is 409 AlreadyExists; a deleted object is 404. A new
/// namespace is not empty: it holds the `kube-root-ca.crt` ConfigMap (key `ca.crt`) and
/// the `default` ServiceAccount, which kube-controller-manager creates shortly after the
/// namespace, and puts back when they are deleted.
#[tokio::test]
async fn crud() {
    let cluster = start().await;
    let ns = cluster.namespace();
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client(), ns);
    let root_ca = eventually("the kube-root-ca.crt ConfigMap", || async {
        cms.get_opt("kube-root-ca.crt").await.unwrap()
    })
    .await;
    assert!(
        root_ca.data.unwrap_or_default()["ca.crt"].contains("-----BEGIN CERTIFICATE-----"),
        "a PEM CA bundle"
    );
    let sas: Api<ServiceAccount> = Api::namespaced(cluster.client(), ns);
    eventually("the default ServiceAccount", || async {
        sas.get_opt("default").await.unwrap()
    })
    .await;

    let mut one = config_map("one", &[("a", "1")]);
    one.metadata.labels = Some(labels(&[("suite", "crud")]));
    let created = cms.create(&PostParams::default(), &one).await.unwrap();
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
    let mine = ListParams::default().labels("suite=crud");
    let metas = cms.list_metadata(&mine).await.unwrap();
    assert_eq!(metas.items.len(), 1);
    assert_eq!(metas.items[0].metadata.name.as_deref(), Some("one"));

    // dry run answers as if, and stores nothing
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    cms.create(&dry, &config_map("dry", &[])).await.unwrap();
    assert_eq!(status_of(cms.get("dry").await).code, 404);

    let listed = cms.list(&mine).await.unwrap();
    assert_eq!(
        listed
            .items
            .iter()
            .map(|c| c.name_any())
            .collect::<Vec<_>>(),
        vec!["one"]
    );
    let everything = cms.list(&ListParams::default()).await.unwrap();
    assert!(
        everything
            .items
            .iter()
            .any(|c| c.name_any() == "kube-root-ca.crt"),
        "an unfiltered list holds what the cluster put there too"
    );
    assert!(
        listed
            .metadata
            .resource_version
            .is_some_and(|rv| !rv.is_empty())
    );

    cms.delete("one", &DeleteParams::default()).await.unwrap();
    assert_eq!(status_of(cms.get("one").await).code, 404);
    // the root CA publisher puts its ConfigMap back
    let old_uid = cms.get("kube-root-ca.crt").await.unwrap().uid();
    cms.delete("kube-root-ca.crt", &DeleteParams::default())
        .await
        .unwrap();
    eventually("kube-root-ca.crt to be recreated", || async {
        cms.get_opt("kube-root-ca.crt")
            .await
            .unwrap()
            .filter(|c| c.uid() != old_uid)
    })
    .await;
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

/// Lists honour `limit` and hand out `continue` tokens until the last page; a token
/// older than the last compaction is 410 Expired (the client must list again).
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

    let Some(fake) = cluster.fake_only("a continue token outliving a compaction") else {
        return;
    };
    let first = cms
        .list(&ListParams::default().labels("paged=yes").limit(2))
        .await
        .unwrap();
    let token = first.metadata.continue_.unwrap();
    cms.create(&PostParams::default(), &config_map("later", &[]))
        .await
        .unwrap();
    fake.compact_history();
    let status = status_of(
        cms.list(
            &ListParams::default()
                .labels("paged=yes")
                .continue_token(&token),
        )
        .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
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
