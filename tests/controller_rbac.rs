//! The chart's RBAC, proven: the chart is rendered by helm (both variants `.ci/check-ops`
//! renders: every namespace, and one watched namespace), its ServiceAccount, ClusterRole,
//! Roles and bindings are applied, and the controller runs as that ServiceAccount
//! (impersonation, so the fake's RBAC or the real cluster's decides) through the flows a
//! user goes through: a DatabaseServer whose admin password is wrong, fixed, broken and
//! fixed again; one whose admin Secret is outside the operator's namespace; ServiceDatabases
//! to Ready, a Secret deleted by hand coming back, a Conflict with its Event, an invalid
//! spec, Retain and Delete deletion. Then: no request was refused (403), and every rule the
//! chart grants, per (Role or ClusterRole, API group, resource, verb), was used by some
//! request it allows: the chart grants nothing the code never uses.
//!
//! The same flows feed the kstatus check: every status the controller wrote (every version
//! of the objects seen by a watch) has `observedGeneration`, is Current only when Ready=True,
//! and the final ones are Current (Ready), Failed (Conflict, invalid spec, misplaced
//! Secret) or gone.
//!
//! helm: `SERVICEDB_HELM`, else where `.ci/check-ops` installs it (`rbac_common`).

mod controller_common;
mod rbac_common;
mod support;
mod tenant_common;

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use controller_common::*;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Resource;
use kube::api::{Api, ListParams};
use kube::runtime::{WatchStreamExt, watcher};
use rbac_common::{Grant, grants, install, refused, render, uses};
use serde_json::{Value, json};
use servicedb::api::conditions::{find_condition, types};
use servicedb::api::{DatabaseServer, ServiceDatabase, Tenant};
use servicedb::controller::Config;
use servicedb::controller::leader::LeaderElection;
use support::kstatus::{self, Status};
use support::kube::{TestCluster, eventually, wait_for};
use support::postgres::server as pg;
use tenant_common::{delete_tenant, per_tenant, tenant, wait_tenant, wait_tenant_ready};

#[derive(Clone, Copy, Debug)]
enum Variant {
    /// The chart's defaults: everything in a ClusterRole.
    AllNamespaces,
    /// `watchNamespace` (with check-ops's other values): namespaced rules in Roles.
    OneNamespace,
}

/// Every version of the objects a watch sees, as JSON (the statuses the controller wrote).
#[derive(Clone, Default)]
struct History(Arc<Mutex<Vec<Value>>>);

impl History {
    fn watch<K>(&self, api: Api<K>) -> tokio::task::JoinHandle<()>
    where
        K: Resource + Clone + std::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned,
        K: Send + Sync + 'static,
        K::DynamicType: Default + Eq + std::hash::Hash + Clone,
    {
        let seen = self.0.clone();
        tokio::spawn(async move {
            // With backoff: a raw watcher retries a failing watch at once, a hot loop.
            let mut events = watcher(api, watcher::Config::default())
                .default_backoff()
                .boxed();
            while let Some(event) = events.next().await {
                if let Ok(watcher::Event::Apply(obj) | watcher::Event::InitApply(obj)) = event {
                    let mut value = serde_json::to_value(&obj).expect("JSON");
                    value["kind"] = json!(K::kind(&Default::default()));
                    seen.lock().unwrap().push(value);
                }
            }
        })
    }

    /// The versions of `kind` `name` that carry a status.
    fn statuses(&self, kind: &str, name: &str) -> Vec<Value> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|v| v["kind"] == kind && v["metadata"]["name"] == name)
            .filter(|v| v["status"].is_object())
            .cloned()
            .collect()
    }
}

fn ready_status(v: &Value) -> Option<String> {
    v["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
        .and_then(|c| c["status"].as_str().map(str::to_string))
}

/// Checks every status of `kind/name` seen, and returns the kstatus of the last one.
fn check_statuses(history: &History, kind: &str, name: &str) -> Status {
    let versions = history.statuses(kind, name);
    assert!(!versions.is_empty(), "no status of {kind} {name} was seen");
    let mut last = None;
    for v in &versions {
        let rv = v["metadata"]["resourceVersion"].as_str().unwrap_or("?");
        assert!(
            v["status"]["observedGeneration"].is_i64(),
            "{kind} {name} (resourceVersion {rv}): a status without observedGeneration: {}",
            v["status"]
        );
        let k = kstatus::compute(v).unwrap_or_else(|e| panic!("{kind} {name}: {e}"));
        if k.status == Status::Current {
            assert_eq!(
                ready_status(v).as_deref(),
                Some("True"),
                "{kind} {name} (resourceVersion {rv}) is Current for kstatus without Ready=True: {}",
                v["status"]
            );
        }
        last = Some(k.status);
    }
    last.unwrap()
}

async fn wait_server_reason(client: &kube::Client, name: &str, reason: &'static str) -> String {
    let api: Api<DatabaseServer> = Api::all(client.clone());
    let dbs = wait_for(
        &api,
        name,
        &format!("Ready=False ({reason})"),
        move |o: Option<&DatabaseServer>| {
            o.and_then(|d| d.status.as_ref())
                .and_then(|s| find_condition(&s.conditions, types::READY))
                .is_some_and(|c| c.status == "False" && c.reason == reason)
        },
    )
    .await
    .unwrap();
    let status = dbs.status.unwrap();
    find_condition(&status.conditions, types::READY)
        .unwrap()
        .message
        .clone()
}

async fn count_events(client: &kube::Client, name: &str, type_: &str, reason: &str) -> usize {
    let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), "default");
    api.list(&ListParams::default())
        .await
        .expect("listing Events")
        .items
        .iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .filter(|e| e.type_.as_deref() == Some(type_) && e.reason.as_deref() == Some(reason))
        .map(|e| e.series.as_ref().map_or(1, |s| s.count as usize))
        .sum()
}

async fn prove(variant: Variant) {
    let cluster = TestCluster::start().await;
    let client = cluster.client();
    let ns = cluster.namespace().to_string();
    let operator_ns = cluster.create_namespace("sdbop").await;
    let release = cluster.unique_name("rbac");
    let mut values = Vec::new();
    if let Variant::OneNamespace = variant {
        values.push(format!("watchNamespace={ns}"));
        values.push("serviceMonitor.enabled=true".into());
        values.push("installationId=ci-cluster".into());
    }
    let docs = render(&release, &operator_ns, &values);
    let sa = docs
        .iter()
        .find(|d| d["kind"] == "ServiceAccount")
        .expect("the chart renders a ServiceAccount");
    let user = format!(
        "system:serviceaccount:{operator_ns}:{}",
        sa["metadata"]["name"].as_str().unwrap()
    );
    install(&cluster, &docs).await;
    let operator = cluster.instrumented_client_as(&user);
    // A real cluster's RBAC cache takes a moment to see new bindings.
    let probe = cluster.impersonating_client(&user);
    eventually("the chart's bindings to take effect", || {
        let (probe, ns) = (probe.clone(), ns.clone());
        async move {
            let one = ListParams::default().limit(1);
            Api::<DatabaseServer>::all(probe.clone())
                .list_metadata(&one)
                .await
                .ok()?;
            Api::<ServiceDatabase>::namespaced(probe, &ns)
                .list_metadata(&one)
                .await
                .ok()
        }
    })
    .await;

    let config = Config {
        // All namespaces on the fake; a real cluster is shared with other tests' objects.
        namespace: match variant {
            Variant::AllNamespaces if !cluster.is_real() => None,
            _ => Some(ns.clone()),
        },
        operator_namespace: Some(operator_ns.clone()),
        installation_id: match variant {
            Variant::AllNamespaces => None,
            Variant::OneNamespace => Some("ci-cluster".into()),
        },
        // As the chart runs it: the Lease in the release namespace, under the name its Role
        // grants.
        leader_election: Some(LeaderElection {
            lease_name: "servicedb-leader".into(),
            namespace: operator_ns.clone(),
            identity: format!("{release}-0"),
            lease_duration: std::time::Duration::from_secs(30),
        }),
        ..fast_config(&ns)
    };
    let history = History::default();
    let _watches = [
        history.watch(Api::<ServiceDatabase>::namespaced(client.clone(), &ns)),
        history.watch(Api::<DatabaseServer>::all(client.clone())),
    ];
    let _controller = start(operator.client.clone(), config);

    // The flows; a failure in them is reported with the requests RBAC refused, its usual
    // cause here.
    let flows = async {
        // The admin password wrong, fixed, wrong again, fixed again: the operator namespace's
        // Secret watch brings each change, and each Event repeats once (create, then patch).
        admin_secret(&client, &operator_ns, "pg-admin", "not-the-password").await;
        let server = database_server(&cluster, &operator_ns, "pg-admin").await;
        for _ in 0..2 {
            wait_server_reason(&client, &server, "ConnectionFailed").await;
            admin_secret(&client, &operator_ns, "pg-admin", pg().admin_password()).await;
            wait_server_ready(&client, &server).await;
            admin_secret(&client, &operator_ns, "pg-admin", "not-the-password").await;
        }
        wait_server_reason(&client, &server, "ConnectionFailed").await;
        admin_secret(&client, &operator_ns, "pg-admin", pg().admin_password()).await;
        wait_server_ready(&client, &server).await;
        eventually("each DatabaseServer Event to repeat", || {
            let (client, server) = (client.clone(), server.clone());
            async move {
                let warnings = count_events(&client, &server, "Warning", "ConnectionFailed").await;
                let connected = count_events(&client, &server, "Normal", "Connected").await;
                (warnings >= 2 && connected >= 2).then_some(())
            }
        })
        .await;

        // An admin Secret outside the operator's namespace is refused, without reading it.
        admin_secret(&client, &ns, "pg-admin", pg().admin_password()).await;
        let misplaced = database_server(&cluster, &ns, "pg-admin").await;
        let message = wait_server_reason(&client, &misplaced, "AdminSecretInvalid").await;
        assert!(
            message.contains(&format!(
                "Secret {ns}/pg-admin is outside the operator's namespace {operator_ns}"
            )),
            "{message}"
        );

        // Ready, and a Secret deleted by hand comes back.
        service_database(&client, &ns, "orders", &server, json!({})).await;
        service_database(
            &client,
            &ns,
            "gone",
            &server,
            json!({"reclaimPolicy": "Delete"}),
        )
        .await;
        wait_ready(&client, &ns, "orders").await;
        let gone_db = wait_ready(&client, &ns, "gone")
            .await
            .status
            .unwrap()
            .database
            .unwrap();
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
        secrets
            .delete("orders-db", &Default::default())
            .await
            .unwrap();
        eventually("the deleted Secret to come back and log in", || {
            let (client, ns) = (client.clone(), ns.clone());
            async move {
                let data = secret_data(&client, &ns, "orders-db").await?;
                login(&data).await.ok()
            }
        })
        .await;

        // A Conflict, with its Event, and an invalid spec.
        let claimed = format!("claimed_{}", ns.replace('-', "_"));
        service_database(
            &client,
            &ns,
            "first",
            &server,
            json!({"databaseName": claimed}),
        )
        .await;
        wait_ready(&client, &ns, "first").await;
        service_database(
            &client,
            &ns,
            "second",
            &server,
            json!({"databaseName": claimed}),
        )
        .await;
        wait_condition(&client, &ns, "second", types::STALLED, "True", "Conflict").await;
        wait_event(&client, &ns, "second", "Warning", "Conflict").await;
        service_database(
            &client,
            &ns,
            "bad",
            &server,
            json!({"databaseName": "Not-Valid"}),
        )
        .await;
        wait_condition(&client, &ns, "bad", types::STALLED, "True", "InvalidSpec").await;

        // A migration Job: created from its ConfigMaps, run (the test plays the Job
        // controller), failed, and its Pod's termination message read.
        let files =
            json!({"V1__ok.sql": "CREATE TABLE t (id int);", "V2__bad.sql": "CREATE TABLE;"});
        apply(
            &Api::<ConfigMap>::namespaced(client.clone(), &ns),
            "mig",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mig"}, "data": files}),
        )
        .await;
        service_database(
            &client,
            &ns,
            "migrated",
            &server,
            json!({"migrations": {"configMaps": ["mig"]}}),
        )
        .await;
        cluster
            .job_runner()
            .program("servicedb", env!("CARGO_BIN_EXE_servicedb"))
            .run_next(Some(&ns), Some("servicedb.io/service-database=migrated"))
            .await
            .expect("running the migration Job");
        wait_condition(
            &client,
            &ns,
            "migrated",
            types::STALLED,
            "True",
            "MigrationFailed",
        )
        .await;

        // A batched rollout (batchSize 2): two tenants at V1 by their own Jobs, then V2
        // for both in one batch Job that the ServiceDatabase creates and finds by name.
        let fleet_migrations = Api::<ConfigMap>::namespaced(client.clone(), &ns);
        let v1 = json!({"V1__t.sql": "CREATE TABLE t (id int);"});
        let cm = |data: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fleet-mig"}, "data": data});
        apply(&fleet_migrations, "fleet-mig", cm(v1)).await;
        let rollout = json!({"configMaps": ["fleet-mig"], "rollout": {"batchSize": 2}});
        per_tenant(
            &client,
            &ns,
            "batched",
            json!({"server": server, "migrations": rollout}),
        )
        .await;
        let runner = cluster
            .job_runner()
            .program("servicedb", env!("CARGO_BIN_EXE_servicedb"));
        let at = |version: &'static str| {
            move |t: &Tenant| {
                t.status.as_ref().is_some_and(|s| {
                    s.databases
                        .iter()
                        .any(|d| d.applied_version.as_deref() == Some(version))
                })
            }
        };
        for name in ["b1", "b2"] {
            tenant(&client, &ns, name, json!({"services": ["batched"]})).await;
            let selector =
                format!("servicedb.io/service-database=batched,servicedb.io/tenant={name}");
            runner
                .run_next(Some(&ns), Some(&selector))
                .await
                .expect("running the tenant's Job");
            wait_tenant(&client, &ns, name, "at V1", at("1")).await;
        }
        let v2 = json!({"V1__t.sql": "CREATE TABLE t (id int);", "V2__u.sql": "CREATE TABLE u (id int);"});
        apply(&fleet_migrations, "fleet-mig", cm(v2)).await;
        runner
            .run_next(Some(&ns), Some("servicedb.io/migration-batch=true"))
            .await
            .expect("running the batch Job");
        for name in ["b1", "b2"] {
            wait_tenant(&client, &ns, name, "at V2", at("2")).await;
            delete_tenant(&client, &ns, name).await;
        }

        // A Tenant of two PerTenant services, then of one: the other's Secrets are deleted.
        for service in ["fleet", "fleet2"] {
            per_tenant(&client, &ns, service, json!({"server": server})).await;
        }
        tenant(&client, &ns, "t1", json!({"services": ["fleet", "fleet2"]})).await;
        wait_tenant_ready(&client, &ns, "t1").await;
        tenant(&client, &ns, "t1", json!({"services": ["fleet"]})).await;
        wait_tenant(&client, &ns, "t1", "one database left", |t| {
            t.status.as_ref().is_some_and(|s| s.databases.len() == 1)
        })
        .await;
        eventually("the removed service's Secret to be deleted", || {
            let (client, ns) = (client.clone(), ns.clone());
            async move {
                secret_data(&client, &ns, "fleet2-db-t1")
                    .await
                    .is_none()
                    .then_some(())
            }
        })
        .await;
        delete_tenant(&client, &ns, "t1").await;

        // Delete drops, Retain keeps.
        delete_sdb(&client, &ns, "gone").await;
        delete_sdb(&client, &ns, "orders").await;
        wait_gone(&client, &ns, "gone").await;
        wait_gone(&client, &ns, "orders").await;
        assert!(
            !database_exists(&gone_db).await,
            "Delete drops the database"
        );
        wait_event(&client, &ns, "orders", "Normal", "Retained").await;
        (server, misplaced)
    };
    let (server, misplaced) = match AssertUnwindSafe(flows).catch_unwind().await {
        Ok(names) => names,
        Err(panic) => {
            let refused = refused(&operator.requests.all());
            if !refused.is_empty() {
                eprintln!(
                    "{variant:?}: the chart's RBAC refused {} request(s):\n{}",
                    refused.len(),
                    refused.join("\n")
                );
            }
            std::panic::resume_unwind(panic)
        }
    };

    // No request refused; every grant used.
    let requests = operator.requests.all();
    let refused = refused(&requests);
    assert!(
        refused.is_empty(),
        "{variant:?}: the chart's RBAC refused {} request(s):\n{}",
        refused.len(),
        refused.join("\n")
    );
    let grants = grants(&docs);
    assert!(!grants.is_empty(), "the chart renders no RBAC rules");
    let unused: Vec<String> = grants
        .iter()
        .filter(|g| !requests.iter().any(|r| uses(g, r)))
        .filter(|g| !timing_dependent(g))
        .map(|g| g.to_string())
        .collect();
    assert!(
        unused.is_empty(),
        "{variant:?}: the chart grants what the operator never used; remove it from \
         charts/servicedb/templates/_helpers.tpl (or add the flow that needs it here):\n{}",
        unused.join("\n")
    );

    // kstatus over every status written.
    // Ready at the end: Current.
    assert_eq!(
        check_statuses(&history, "ServiceDatabase", "first"),
        Status::Current
    );
    for name in ["second", "bad"] {
        assert_eq!(
            check_statuses(&history, "ServiceDatabase", name),
            Status::Failed,
            "{name}"
        );
    }
    for name in ["orders", "gone"] {
        assert_eq!(
            check_statuses(&history, "ServiceDatabase", name),
            Status::Terminating,
            "{name}: its last version is the one being deleted"
        );
    }
    assert_eq!(
        check_statuses(&history, "DatabaseServer", &server),
        Status::Current
    );
    assert_eq!(
        check_statuses(&history, "DatabaseServer", &misplaced),
        Status::Failed
    );
    let server_versions = history.statuses("DatabaseServer", &server);
    let seen: Vec<Status> = server_versions
        .iter()
        .map(|v| kstatus::compute(v).unwrap().status)
        .collect();
    assert!(
        seen.contains(&Status::Failed) && seen.contains(&Status::Current),
        "the wrong password is Failed and the fixed one Current: {seen:?}"
    );
}

/// Locks the default chart (ClusterRole for everything) as exactly what the operator needs
/// watching every namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_rbac_watching_all_namespaces_is_enough_and_all_used() {
    prove(Variant::AllNamespaces).await;
}

/// Locks the watch-one-namespace chart (Roles in the watched, the operator's and the
/// `default` namespace; a ClusterRole for DatabaseServers only). Failed before admin
/// Secrets were confined to the operator's namespace: the DatabaseServer controller
/// watched Secrets in every namespace, which this chart refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_rbac_watching_one_namespace_is_enough_and_all_used() {
    prove(Variant::OneNamespace).await;
}

/// Grants whose use depends on timing, not on a flow: a reconcile reads its object (get)
/// only when the watch cache is older than the operator's own last status write of it
/// (`controller::freshness`). Every other grant must be used by the flows above.
fn timing_dependent(g: &Grant) -> bool {
    g.group == "servicedb.io"
        && g.verb == "get"
        && ["databaseservers", "servicedatabases", "tenants"].contains(&g.resource.as_str())
}
