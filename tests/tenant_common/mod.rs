//! What the Tenant controller tests share: the objects they apply (PerTenant services,
//! Tenants, DatabaseServers for servers of their own) and the checks they make. Included
//! with `mod tenant_common;` next to `mod support;` and `mod controller_common;`.
#![allow(dead_code)]

use std::collections::BTreeMap;

use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;
use servicedb::api::conditions::{find_condition, is_ready};
use servicedb::api::{DatabaseServer, Tenant};

use crate::controller_common::{apply, apply_database_server};
use crate::support::kube::{TestCluster, eventually, wait_for};
use crate::support::postgres::TestServer;

pub mod rollout;

/// A PerTenant ServiceDatabase with `extra` merged into its spec.
pub async fn per_tenant(client: &kube::Client, ns: &str, name: &str, extra: serde_json::Value) {
    let mut spec = json!({"tenancy": "PerTenant"});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    let api: Api<servicedb::api::ServiceDatabase> = Api::namespaced(client.clone(), ns);
    apply(
        &api,
        name,
        json!({
            "apiVersion": "servicedb.io/v1alpha1", "kind": "ServiceDatabase",
            "metadata": {"name": name, "namespace": ns},
            "spec": spec,
        }),
    )
    .await;
}

pub async fn tenant(
    client: &kube::Client,
    ns: &str,
    name: &str,
    spec: serde_json::Value,
) -> Tenant {
    let api: Api<Tenant> = Api::namespaced(client.clone(), ns);
    apply(
        &api,
        name,
        json!({
            "apiVersion": "servicedb.io/v1alpha1", "kind": "Tenant",
            "metadata": {"name": name, "namespace": ns},
            "spec": spec,
        }),
    )
    .await
}

pub fn tenant_ready(t: &Tenant) -> bool {
    t.status
        .as_ref()
        .is_some_and(|s| is_ready(&s.conditions, t.metadata.generation))
}

pub async fn wait_tenant(
    client: &kube::Client,
    ns: &str,
    name: &str,
    what: &str,
    cond: impl Fn(&Tenant) -> bool + Send + 'static,
) -> Tenant {
    let api: Api<Tenant> = Api::namespaced(client.clone(), ns);
    wait_for(&api, name, what, move |o: Option<&Tenant>| {
        o.is_some_and(&cond)
    })
    .await
    .expect("the Tenant exists")
}

pub async fn wait_tenant_ready(client: &kube::Client, ns: &str, name: &str) -> Tenant {
    wait_tenant(client, ns, name, "the Tenant to be Ready", tenant_ready).await
}

/// (status, reason, message) of the Tenant's condition `type_`.
pub fn tenant_condition(t: &Tenant, type_: &str) -> Option<(String, String, String)> {
    t.status
        .as_ref()
        .and_then(|s| find_condition(&s.conditions, type_))
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// service -> server, as the Tenant's status records it.
pub fn placed(t: &Tenant) -> BTreeMap<String, String> {
    t.status
        .iter()
        .flat_map(|s| &s.databases)
        .filter_map(|d| Some((d.service.clone(), d.server.clone()?)))
        .collect()
}

pub async fn delete_tenant(client: &kube::Client, ns: &str, name: &str) {
    let api: Api<Tenant> = Api::namespaced(client.clone(), ns);
    api.delete(name, &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("deleting Tenant {name}: {e}"));
    eventually(&format!("Tenant {name} to be gone"), || {
        let api = api.clone();
        async move { matches!(api.get_opt(name).await, Ok(None)).then_some(()) }
    })
    .await;
}

/// A DatabaseServer for a server of the test's own, with its own admin Secret.
pub async fn own_server(cluster: &TestCluster, ns: &str, pg: &TestServer, max: i32) -> String {
    let client = cluster.client();
    let name = cluster.unique_name("pg");
    let secret = format!("{name}-admin");
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), ns);
    apply(
        &secrets,
        &secret,
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": secret, "namespace": ns},
            "stringData": {"username": pg.admin_user(), "password": pg.admin_password()},
        }),
    )
    .await;
    let spec = json!({
        "host": pg.host(), "port": pg.port(), "sslMode": "disable",
        "maxDatabases": max,
        "adminSecretRef": {"namespace": ns, "name": secret},
    });
    apply_database_server(cluster, &name, spec).await;
    name
}

/// A DatabaseServer of another installation in the same cluster: its admin Secret in that
/// installation's namespace, reported Ready (empty, no maxDatabases) as that installation
/// would. Applied before this test's operator starts, so it finds the report there.
pub async fn foreign_server(cluster: &TestCluster, pg: &TestServer) -> String {
    let name = cluster.unique_name("theirs");
    let spec = json!({
        "host": pg.host(), "port": pg.port(), "sslMode": "disable",
        "adminSecretRef": {"namespace": format!("{name}-operator"), "name": "pg-admin"},
    });
    apply_database_server(cluster, &name, spec).await;
    let api: Api<DatabaseServer> = Api::all(cluster.client());
    let generation = api.get(&name).await.unwrap().metadata.generation;
    let status = json!({"status": {"databaseCount": 0, "observedGeneration": generation,
        "conditions": [{"type": "Ready", "status": "True", "reason": "Reconciled",
            "message": "reported by the other installation", "observedGeneration": generation,
            "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
    // On a shared cluster, another test's operator that saw the server before this report
    // may still write its own (Stalled: Secrets outside its namespace); once a report is
    // there for the generation, every installation leaves it alone. Reported until it
    // stays Ready.
    for _ in 0..10 {
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(status.clone()),
        )
        .await
        .unwrap_or_else(|e| panic!("reporting DatabaseServer {name} Ready: {e}"));
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        if server_is_ready(&api, &name).await {
            return name;
        }
    }
    panic!("DatabaseServer {name} does not stay Ready");
}

/// Whether the DatabaseServer `name` is Ready for its generation.
pub async fn server_is_ready(api: &Api<DatabaseServer>, name: &str) -> bool {
    let dbs = api.get(name).await.unwrap();
    dbs.status
        .as_ref()
        .is_some_and(|s| is_ready(&s.conditions, dbs.metadata.generation))
}

pub async fn exists_on(server: &TestServer, db: &str) -> bool {
    server
        .superuser_client("postgres")
        .await
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&db])
        .await
        .unwrap()
        .is_some()
}

/// The fleet tests' reads of the PerTenant service `app` and its Tenants.
pub mod fleet {
    use kube::api::{Api, ListParams};
    use servicedb::api::{RolloutPhase, ServiceDatabase, Tenant, TenantDatabaseStatus};

    use super::tenant_ready;
    use crate::support::kube::wait_for;

    pub async fn tenants(client: &kube::Client, ns: &str) -> Vec<Tenant> {
        Api::<Tenant>::namespaced(client.clone(), ns)
            .list(&ListParams::default())
            .await
            .expect("listing Tenants")
            .items
    }

    pub async fn app(client: &kube::Client, ns: &str) -> ServiceDatabase {
        Api::<ServiceDatabase>::namespaced(client.clone(), ns)
            .get("app")
            .await
            .expect("the ServiceDatabase")
    }

    pub async fn wait_app(
        client: &kube::Client,
        ns: &str,
        what: &str,
        cond: impl Fn(&ServiceDatabase) -> bool + Send + 'static,
    ) -> ServiceDatabase {
        let api: Api<ServiceDatabase> = Api::namespaced(client.clone(), ns);
        wait_for(&api, "app", what, move |o: Option<&ServiceDatabase>| {
            o.is_some_and(&cond)
        })
        .await
        .expect("the ServiceDatabase exists")
    }

    /// The tenant's database of `app`, as its status records it.
    pub fn db(t: &Tenant) -> Option<&TenantDatabaseStatus> {
        t.status
            .as_ref()?
            .databases
            .iter()
            .find(|d| d.service == "app")
    }

    pub fn version_of(t: &Tenant) -> Option<String> {
        db(t)?.applied_version.clone()
    }

    /// Every Tenant not being deleted is Ready at `version` (and there is one).
    pub fn all_at(tenants: &[Tenant], version: &str) -> bool {
        !tenants.is_empty()
            && tenants
                .iter()
                .filter(|t| t.metadata.deletion_timestamp.is_none())
                .all(|t| tenant_ready(t) && version_of(t).as_deref() == Some(version))
    }

    pub fn rollout_phase(s: &ServiceDatabase) -> Option<RolloutPhase> {
        s.status.as_ref()?.rollout.as_ref()?.phase
    }
}
