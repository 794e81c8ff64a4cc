//! What the controller tests share: starting `servicedb::controller::run` in-process
//! against the test cluster, the objects a test applies, and the checks a user would make
//! (the Secret logs in, the status says Ready). Included with `mod controller_common;`
//! next to `mod support;`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use servicedb::api::conditions::{find_condition, is_ready};
use servicedb::api::{DatabaseServer, ServiceDatabase};
use servicedb::controller::Config;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::support::kube::{TEST_FIELD_MANAGER, TestCluster, eventually, wait_for};
use crate::support::postgres::server as pg;

/// A controller running in this process; stopped gracefully by [`Running::stop`], killed
/// (mid-reconcile, as a crash would) by [`Running::kill`] or on drop.
pub struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), servicedb::controller::Error>>,
}

impl Running {
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let task = std::mem::replace(&mut self.task, tokio::spawn(async { Ok(()) }));
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("the controller stops within 30s")
            .expect("the controller task does not panic")
            .expect("the controller ends without error");
    }

    pub fn kill(self) {
        self.task.abort();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Settings that make a test fast: short resync and backoff. The watched namespace is
/// also the operator's (where [`admin_secret`] puts the admin Secret).
pub fn fast_config(namespace: &str) -> Config {
    Config {
        namespace: Some(namespace.to_string()),
        operator_namespace: Some(namespace.to_string()),
        resync: Duration::from_secs(2),
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_secs(2),
        ..Config::default()
    }
}

pub fn start(client: kube::Client, config: Config) -> Running {
    log_if_asked();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(servicedb::controller::run(client, config, async move {
        let _ = rx.await;
    }));
    Running {
        stop: Some(tx),
        task,
    }
}

/// With `SERVICEDB_TEST_LOG` set (an `EnvFilter`, e.g. `servicedb=debug`), the controller's
/// logs go to the test's output: what to read when a test times out.
fn log_if_asked() {
    if let Ok(filter) = std::env::var("SERVICEDB_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

/// Applies any object (server-side apply, as `kubectl apply --server-side` does).
pub async fn apply<K>(api: &Api<K>, name: &str, body: serde_json::Value) -> K
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(
        name,
        &PatchParams::apply(TEST_FIELD_MANAGER).force(),
        &Patch::Apply(body),
    )
    .await
    .unwrap_or_else(|e| panic!("applying {name}: {e}"))
}

/// An admin Secret in `ns` with the test server's admin and `password`.
pub async fn admin_secret(client: &kube::Client, ns: &str, name: &str, password: &str) {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    apply(
        &api,
        name,
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": ns},
            "stringData": {"username": pg().admin_user(), "password": password},
        }),
    )
    .await;
}

/// A DatabaseServer for the test PostgreSQL, reading its admin from `ns/secret`.
pub async fn database_server(cluster: &TestCluster, ns: &str, secret: &str) -> String {
    database_server_at(cluster, ns, secret, pg().port()).await
}

pub async fn database_server_at(
    cluster: &TestCluster,
    ns: &str,
    secret: &str,
    port: u16,
) -> String {
    let spec = json!({
        "host": pg().host(), "port": port, "sslMode": "disable",
        "adminSecretRef": {"namespace": ns, "name": secret},
    });
    let name = cluster.unique_name("pg");
    apply_database_server(cluster, &name, spec).await;
    name
}

/// The DatabaseServer `name` with `spec`, deleted when the test ends (cluster-scoped: the
/// namespace's deletion does not take it).
pub async fn apply_database_server(cluster: &TestCluster, name: &str, spec: serde_json::Value) {
    cluster.cleanup_later::<DatabaseServer>(name);
    let api: Api<DatabaseServer> = Api::all(cluster.client());
    apply(
        &api,
        name,
        json!({
            "apiVersion": "servicedb.io/v1alpha1", "kind": "DatabaseServer",
            "metadata": {"name": name},
            "spec": spec,
        }),
    )
    .await;
}

/// A Shared ServiceDatabase on `server` with `extra` merged into its spec.
pub async fn service_database(
    client: &kube::Client,
    ns: &str,
    name: &str,
    server: &str,
    extra: serde_json::Value,
) -> ServiceDatabase {
    let mut spec = json!({"server": server});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    let api: Api<ServiceDatabase> = Api::namespaced(client.clone(), ns);
    apply(
        &api,
        name,
        json!({
            "apiVersion": "servicedb.io/v1alpha1", "kind": "ServiceDatabase",
            "metadata": {"name": name, "namespace": ns},
            "spec": spec,
        }),
    )
    .await
}

pub fn ready_now(s: &ServiceDatabase) -> bool {
    s.status
        .as_ref()
        .is_some_and(|st| is_ready(&st.conditions, s.metadata.generation))
}

pub async fn wait_ready(client: &kube::Client, ns: &str, name: &str) -> ServiceDatabase {
    let api: Api<ServiceDatabase> = Api::namespaced(client.clone(), ns);
    wait_for(
        &api,
        name,
        "the ServiceDatabase to be Ready",
        |o: Option<&ServiceDatabase>| o.is_some_and(ready_now),
    )
    .await
    .expect("the ServiceDatabase exists")
}

pub async fn wait_server_ready(client: &kube::Client, name: &str) -> DatabaseServer {
    let api: Api<DatabaseServer> = Api::all(client.clone());
    wait_for(
        &api,
        name,
        "the DatabaseServer to be Ready",
        |o: Option<&DatabaseServer>| {
            o.is_some_and(|d| {
                d.status
                    .as_ref()
                    .is_some_and(|s| is_ready(&s.conditions, d.metadata.generation))
            })
        },
    )
    .await
    .expect("the DatabaseServer exists")
}

/// The condition `type_` of the ServiceDatabase as (status, reason, message).
pub fn condition(s: &ServiceDatabase, type_: &str) -> Option<(String, String, String)> {
    s.status
        .as_ref()
        .and_then(|st| find_condition(&st.conditions, type_))
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Waits until the ServiceDatabase's condition `type_` has `status` and `reason`.
pub async fn wait_condition(
    client: &kube::Client,
    ns: &str,
    name: &str,
    type_: &'static str,
    status: &'static str,
    reason: &'static str,
) -> ServiceDatabase {
    let api: Api<ServiceDatabase> = Api::namespaced(client.clone(), ns);
    wait_for(
        &api,
        name,
        &format!("{type_}={status} ({reason})"),
        move |o: Option<&ServiceDatabase>| {
            o.and_then(|s| condition(s, type_))
                .is_some_and(|(st, r, _)| st == status && r == reason)
        },
    )
    .await
    .expect("the ServiceDatabase exists")
}

pub async fn secret_data(
    client: &kube::Client,
    ns: &str,
    name: &str,
) -> Option<BTreeMap<String, String>> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let secret = api.get_opt(name).await.expect("reading a Secret")?;
    Some(
        secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8(v.0).expect("UTF-8")))
            .collect(),
    )
}

/// Logs in with a Secret's DATABASE_URL.
pub async fn login(data: &BTreeMap<String, String>) -> Result<tokio_postgres::Client, String> {
    servicedb::pg::ConnectOptions::from_url(&data["DATABASE_URL"])
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| e.to_string())
}

pub async fn delete_sdb(client: &kube::Client, ns: &str, name: &str) {
    let api: Api<ServiceDatabase> = Api::namespaced(client.clone(), ns);
    api.delete(name, &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("deleting {name}: {e}"));
}

pub async fn wait_gone(client: &kube::Client, ns: &str, name: &str) {
    let api: Api<ServiceDatabase> = Api::namespaced(client.clone(), ns);
    eventually(&format!("ServiceDatabase {name} to be gone"), || {
        let api = api.clone();
        async move {
            match api.get_opt(name).await {
                Ok(None) => Some(()),
                _ => None,
            }
        }
    })
    .await;
}

/// Events (events.k8s.io/v1) about the object `name` in `ns`, as (type, reason, note).
pub async fn events_about(
    client: &kube::Client,
    ns: &str,
    name: &str,
) -> Vec<(String, String, String)> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default())
        .await
        .expect("listing Events")
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .map(|e| {
            (
                e.type_.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.note.unwrap_or_default(),
            )
        })
        .collect()
}

/// Whether a database exists, asked as the superuser.
pub async fn database_exists(db: &str) -> bool {
    pg().superuser_client("postgres")
        .await
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&db])
        .await
        .unwrap()
        .is_some()
}

pub async fn role_exists(role: &str) -> bool {
    pg().superuser_client("postgres")
        .await
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role])
        .await
        .unwrap()
        .is_some()
}

pub async fn create_secret_raw(client: &kube::Client, ns: &str, name: &str) {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let s: Secret = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns},
        "stringData": {"note": "someone else's"},
    }))
    .unwrap();
    api.create(&PostParams::default(), &s).await.unwrap();
}

/// Waits for an Event of `type_` and `reason` about `name` (Events follow the status write
/// they go with) and returns its note.
pub async fn wait_event(
    client: &kube::Client,
    ns: &str,
    name: &str,
    type_: &str,
    reason: &str,
) -> String {
    eventually(
        &format!("a {type_} Event {reason} about {name}"),
        || async move {
            events_about(client, ns, name)
                .await
                .into_iter()
                .find(|(t, r, _)| t == type_ && r == reason)
                .map(|(_, _, note)| note)
        },
    )
    .await
}
