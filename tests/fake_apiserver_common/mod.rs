//! What the conformance suites of the fake API server (`tests/fake_apiserver_*.rs`)
//! share: their own small CRDs (`conformance.servicedb.io`, never the operator's), a
//! cluster with them installed, and helpers. Each suite runs against the in-process fake
//! by default and, with `SERVICEDB_TEST_KUBECONFIG=<kubeconfig>`, against a real cluster
//! (Job controller off): that is how the fake is held to the real thing.

// each suite uses a different part of this module
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, WatchEvent};
use kube::{CustomResource, CustomResourceExt, Resource};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::support::kube::{ClusterOptions, TestCluster, wait_for};

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
pub fn gadget_crd()
-> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
    let mut crd = Gadget::crd();
    for v in &mut crd.spec.versions {
        v.subresources = None;
    }
    crd
}

pub const GROUP: &str = "conformance.servicedb.io";
pub const WIDGETS: &str = "widgets.conformance.servicedb.io";

/// A cluster with the test CRDs; never the operator's (`crds/`).
pub async fn start() -> TestCluster {
    start_with(ClusterOptions::default()).await
}

pub async fn start_with(options: ClusterOptions) -> TestCluster {
    let cluster = TestCluster::start_with(ClusterOptions {
        install_repo_crds: false,
        ..options
    })
    .await;
    cluster.install_crd(&Widget::crd()).await;
    cluster
}

/// Waits until the object `name` does not exist.
pub async fn wait_gone<K>(api: &Api<K>, name: &str, what: &str)
where
    K: Clone + std::fmt::Debug + Send + serde::de::DeserializeOwned + Resource + 'static,
{
    wait_for(api, name, what, |o: Option<&K>| o.is_none()).await;
}

pub fn widget(name: &str, color: &str) -> Widget {
    Widget::new(
        name,
        WidgetSpec {
            color: color.into(),
            size: None,
        },
    )
}

pub fn config_map(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "data": data.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
    }))
    .expect("a valid ConfigMap")
}

/// The `Status` of a failed request; panics on success or another error.
pub fn status_of<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> kube::core::Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub async fn next_event<S>(stream: &mut S) -> WatchEvent<Widget>
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
