//! The Tenant controller end to end: `controller::run` in process against the fake API
//! server (or SERVICEDB_TEST_KUBECONFIG's cluster) and real PostgreSQL, with a
//! non-superuser admin: a database and Secrets per (Tenant, PerTenant service), placement
//! across DatabaseServers, offboarding by the Tenant's reclaimPolicy.

mod controller_common;
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use controller_common::*;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;
use servicedb::api::conditions::{find_condition, is_ready, types};
use servicedb::api::{DatabaseServer, Tenant};
use support::kube::{TestCluster, eventually, wait_for};
use support::postgres::{TestServer, server as pg};

/// A PerTenant ServiceDatabase with `extra` merged into its spec.
async fn per_tenant(client: &kube::Client, ns: &str, name: &str, extra: serde_json::Value) {
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

async fn tenant(client: &kube::Client, ns: &str, name: &str, spec: serde_json::Value) -> Tenant {
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

fn tenant_ready(t: &Tenant) -> bool {
    t.status
        .as_ref()
        .is_some_and(|s| is_ready(&s.conditions, t.metadata.generation))
}

async fn wait_tenant(
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

async fn wait_tenant_ready(client: &kube::Client, ns: &str, name: &str) -> Tenant {
    wait_tenant(client, ns, name, "the Tenant to be Ready", tenant_ready).await
}

/// (status, reason, message) of the Tenant's condition `type_`.
fn tenant_condition(t: &Tenant, type_: &str) -> Option<(String, String, String)> {
    t.status
        .as_ref()
        .and_then(|s| find_condition(&s.conditions, type_))
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// service -> server, as the Tenant's status records it.
fn placed(t: &Tenant) -> BTreeMap<String, String> {
    t.status
        .iter()
        .flat_map(|s| &s.databases)
        .filter_map(|d| Some((d.service.clone(), d.server.clone()?)))
        .collect()
}

async fn delete_tenant(client: &kube::Client, ns: &str, name: &str) {
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
async fn own_server(cluster: &TestCluster, ns: &str, pg: &TestServer, max: i32) -> String {
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
    cluster.cleanup_later::<DatabaseServer>(&name);
    let api: Api<DatabaseServer> = Api::all(client);
    apply(
        &api,
        &name,
        json!({
            "apiVersion": "servicedb.io/v1alpha1", "kind": "DatabaseServer",
            "metadata": {"name": name},
            "spec": {
                "host": pg.host(), "port": pg.port(), "sslMode": "disable",
                "maxDatabases": max,
                "adminSecretRef": {"namespace": ns, "name": secret},
            },
        }),
    )
    .await;
    name
}

/// Locks the main path at fleet size: 2 PerTenant services x 20 Tenants all Ready; each
/// tenant's app Secret (owned by its Tenant, labelled) logs in to its own database and not
/// to another tenant's; the status records server, database and Secret per service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_services_times_twenty_tenants_each_get_their_own_database() {
    let cluster = TestCluster::start().await;
    let ns = cluster.namespace().to_string();
    let client = cluster.client();
    admin_secret(&client, &ns, "pg-admin", pg().admin_password()).await;
    let server = database_server(&cluster, &ns, "pg-admin").await;
    // Resync is not what this test is about: 40 databases checked every 2s would swamp it.
    let config = servicedb::controller::Config {
        resync: Duration::from_secs(60),
        ..fast_config(&ns)
    };
    let _controller = start(cluster.instrumented_client().client, config);
    // Pinned through the services, so other tests' servers on a shared cluster stay out.
    per_tenant(&client, &ns, "app", json!({"server": server})).await;
    per_tenant(&client, &ns, "crm", json!({"server": server})).await;
    let names: Vec<String> = (0..20).map(|i| format!("gym-{i:02}")).collect();
    for name in &names {
        tenant(&client, &ns, name, json!({"services": ["app", "crm"]})).await;
    }
    let api: Api<Tenant> = Api::namespaced(client.clone(), &ns);
    let started = tokio::time::Instant::now();
    let deadline = started + Duration::from_secs(180);
    loop {
        let list = api.list(&Default::default()).await.unwrap().items;
        let ready = list.iter().filter(|t| tenant_ready(t)).count();
        if ready == names.len() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {ready} of 20 Tenants Ready after 180s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    eprintln!("40 tenant databases Ready in {:?}", started.elapsed());
    let db_base = ns.replace('-', "_");
    let mut first_app: Option<BTreeMap<String, String>> = None;
    for name in &names {
        let t = api.get(name).await.unwrap();
        let status = t.status.clone().unwrap();
        assert_eq!(
            (status.database_count, status.ready_count),
            (Some(2), Some(2))
        );
        for (service, d) in ["app", "crm"].iter().zip(&status.databases) {
            assert_eq!(d.service, *service);
            assert_eq!(d.server.as_deref(), Some(server.as_str()));
            let db = format!("{db_base}_{service}_{}", name.replace('-', "_"));
            assert_eq!(d.database.as_deref(), Some(db.as_str()));
            let secret = format!("{service}-db-{name}");
            assert_eq!(d.secret_name.as_deref(), Some(secret.as_str()));
            assert!(d.ready && d.message.is_none(), "{d:?}");
            let data = secret_data(&client, &ns, &secret).await.unwrap();
            assert_eq!(data["PGDATABASE"], db);
            let conn = login(&data).await.expect("the tenant's Secret logs in");
            let here: String = conn
                .query_one("SELECT current_database()::text", &[])
                .await
                .unwrap()
                .get(0);
            assert_eq!(here, db);
        }
        let app = secret_data(&client, &ns, &format!("app-db-{name}"))
            .await
            .unwrap();
        match &first_app {
            None => first_app = Some(app),
            Some(first) => {
                // gym-00's credentials cannot open this tenant's database.
                let url = &first["DATABASE_URL"];
                let (base, query) = url.split_once('?').unwrap_or((url, ""));
                let (prefix, _) = base.rsplit_once('/').unwrap();
                let mut other = first.clone();
                other.insert(
                    "DATABASE_URL".into(),
                    format!("{prefix}/{}?{query}", app["PGDATABASE"]),
                );
                let refused = login(&other).await.err().unwrap_or_else(|| {
                    panic!("gym-00's app role connected to {}", app["PGDATABASE"])
                });
                assert!(refused.contains("permission denied"), "{refused}");
            }
        }
    }
    // The services count their fleet.
    let sdbs: Api<servicedb::api::ServiceDatabase> = Api::namespaced(client.clone(), &ns);
    for service in ["app", "crm"] {
        let want = servicedb::api::TenantsSummary {
            total: 20,
            ready: 20,
            at_target_version: 20,
            failed: 0,
        };
        wait_for(
            &sdbs,
            service,
            "status.tenants to count 20 ready",
            move |o: Option<&servicedb::api::ServiceDatabase>| {
                o.and_then(|s| s.status.as_ref()?.tenants.clone()) == Some(want.clone())
            },
        )
        .await;
    }
    let secret = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), &ns)
        .get("app-db-gym-07")
        .await
        .unwrap();
    let owner = &secret.owner_references()[0];
    let t = api.get("gym-07").await.unwrap();
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("Tenant", t.uid().unwrap().as_str(), Some(true))
    );
    assert_eq!(secret.labels()["servicedb.io/tenant"], "gym-07");
    assert_eq!(secret.labels()["servicedb.io/service-database"], "app");
}

/// Locks placement as specified: least databases first (by share of maxDatabases), the
/// Tenant's pin respected, a placed tenant never moving (also across a controller
/// restart), and a clear NoCapacity condition when no server has room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_are_placed_by_load_and_pin_and_told_when_there_is_no_room() {
    let cluster = TestCluster::start().await;
    // Unpinned placement looks at every DatabaseServer of the cluster, and a shared real
    // cluster holds other tests' servers too.
    if cluster
        .fake_only("placement over exactly this test's DatabaseServers")
        .is_none()
    {
        return;
    }
    let ns = cluster.namespace().to_string();
    let client = cluster.client();
    let (pg_a, pg_b) = (
        support::postgres::private_server(),
        support::postgres::private_server(),
    );
    let a = own_server(&cluster, &ns, &pg_a, 2).await;
    let b = own_server(&cluster, &ns, &pg_b, 4).await;
    let controller = start(cluster.instrumented_client().client, fast_config(&ns));
    wait_server_ready(&client, &a).await;
    wait_server_ready(&client, &b).await;
    per_tenant(&client, &ns, "app", json!({})).await;
    let where_ = |t: &Tenant| placed(t).get("app").cloned().unwrap();

    // Two at once: whichever goes first, the other goes to the emptier server.
    tenant(&client, &ns, "t1", json!({"services": ["app"]})).await;
    tenant(&client, &ns, "t2", json!({"services": ["app"]})).await;
    let t1 = where_(&wait_tenant_ready(&client, &ns, "t1").await);
    let t2 = where_(&wait_tenant_ready(&client, &ns, "t2").await);
    assert_ne!(t1, t2, "one on each server");
    // a 1/2, b 1/4: b.
    tenant(&client, &ns, "t3", json!({"services": ["app"]})).await;
    assert_eq!(where_(&wait_tenant_ready(&client, &ns, "t3").await), b);
    // Pinned to a (its last place).
    tenant(&client, &ns, "p", json!({"services": ["app"], "server": a})).await;
    assert_eq!(where_(&wait_tenant_ready(&client, &ns, "p").await), a);
    // a is full: b, until b is full too.
    tenant(&client, &ns, "t4", json!({"services": ["app"]})).await;
    assert_eq!(where_(&wait_tenant_ready(&client, &ns, "t4").await), b);
    tenant(&client, &ns, "t5", json!({"services": ["app"]})).await;
    assert_eq!(where_(&wait_tenant_ready(&client, &ns, "t5").await), b);
    tenant(&client, &ns, "t6", json!({"services": ["app"]})).await;
    let full = wait_tenant(&client, &ns, "t6", "NoCapacity", |t| {
        tenant_condition(t, types::STALLED)
            .is_some_and(|(s, r, _)| s == "True" && r == "NoCapacity")
    })
    .await;
    let (_, _, message) = tenant_condition(&full, types::READY).unwrap();
    assert!(
        message.contains("app: no DatabaseServer has room")
            && message.contains("every DatabaseServer is at its maxDatabases"),
        "{message}"
    );
    assert!(placed(&full).is_empty());

    // A restart keeps every placement, even where the load would now say otherwise.
    controller.stop().await;
    let api: Api<DatabaseServer> = Api::all(client.clone());
    api.patch(
        &a,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"maxDatabases": 100}})),
    )
    .await
    .unwrap();
    let _controller = start(cluster.instrumented_client().client, fast_config(&ns));
    // Room on a again: t6 goes there; nobody else moved.
    let t6 = wait_tenant_ready(&client, &ns, "t6").await;
    assert_eq!(where_(&t6), a);
    let tenants: Api<Tenant> = Api::namespaced(client.clone(), &ns);
    for (name, server) in [
        ("t1", &t1),
        ("t2", &t2),
        ("t3", &b),
        ("p", &a),
        ("t4", &b),
        ("t5", &b),
    ] {
        let t = tenants.get(name).await.unwrap();
        assert_eq!(&where_(&t), server, "{name} stayed");
        // The database really is there, and only there.
        let db = t.status.unwrap().databases[0].database.clone().unwrap();
        let (here, there) = if server == &a {
            (&pg_a, &pg_b)
        } else {
            (&pg_b, &pg_a)
        };
        assert!(exists_on(here, &db).await, "{db} on {server}");
        assert!(!exists_on(there, &db).await, "{db} only on {server}");
    }
}

async fn exists_on(server: &TestServer, db: &str) -> bool {
    server
        .superuser_client("postgres")
        .await
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&db])
        .await
        .unwrap()
        .is_some()
}

/// Locks offboarding by the Tenant's reclaimPolicy: deleting a Retain Tenant keeps its
/// database (and roles), deleting a Delete Tenant drops them; both finalizers go and the
/// Secrets are garbage-collected with their Tenant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_tenant_keeps_or_drops_by_its_reclaim_policy() {
    let cluster = TestCluster::start().await;
    let ns = cluster.namespace().to_string();
    let client = cluster.client();
    admin_secret(&client, &ns, "pg-admin", pg().admin_password()).await;
    let server = database_server(&cluster, &ns, "pg-admin").await;
    let _controller = start(cluster.instrumented_client().client, fast_config(&ns));
    per_tenant(&client, &ns, "app", json!({"server": server})).await;
    tenant(&client, &ns, "keep", json!({"services": ["app"]})).await;
    tenant(
        &client,
        &ns,
        "gone",
        json!({"services": ["app"], "reclaimPolicy": "Delete"}),
    )
    .await;
    let keep = wait_tenant_ready(&client, &ns, "keep").await;
    let gone = wait_tenant_ready(&client, &ns, "gone").await;
    assert!(
        keep.finalizers()
            .iter()
            .any(|f| f == "servicedb.io/finalizer")
    );
    let db = |t: &Tenant| {
        t.status.as_ref().unwrap().databases[0]
            .database
            .clone()
            .unwrap()
    };
    let (keep_db, gone_db) = (db(&keep), db(&gone));
    assert!(database_exists(&gone_db).await);

    let sdbs: Api<servicedb::api::ServiceDatabase> = Api::namespaced(client.clone(), &ns);
    let total = |n: i32| {
        move |o: Option<&servicedb::api::ServiceDatabase>| {
            o.and_then(|s| s.status.as_ref()?.tenants.as_ref().map(|t| t.total)) == Some(n)
        }
    };
    wait_for(&sdbs, "app", "a fleet of 2", total(2)).await;
    delete_tenant(&client, &ns, "gone").await;
    wait_for(&sdbs, "app", "a fleet of 1", total(1)).await;
    delete_tenant(&client, &ns, "keep").await;
    wait_for(&sdbs, "app", "a fleet of 0", total(0)).await;
    assert!(
        !database_exists(&gone_db).await,
        "Delete drops the database"
    );
    assert!(!role_exists(&format!("{gone_db}_app")).await);
    assert!(!role_exists(&format!("{gone_db}_owner")).await);
    assert!(database_exists(&keep_db).await, "Retain keeps the database");
    assert!(role_exists(&format!("{keep_db}_app")).await);
    for secret in [
        "app-db-keep",
        "app-migrator-keep",
        "app-db-gone",
        "app-migrator-gone",
    ] {
        eventually(&format!("Secret {secret} to be garbage-collected"), || {
            let client = client.clone();
            let ns = ns.clone();
            async move {
                secret_data(&client, &ns, secret)
                    .await
                    .is_none()
                    .then_some(())
            }
        })
        .await;
    }
    wait_event(&client, &ns, "gone", "Normal", "Dropped").await;
    wait_event(&client, &ns, "keep", "Normal", "Retained").await;
}

/// Locks "removing a service from a Tenant offboards that one database": with Delete the
/// database and its Secrets go, the other service's database keeps working, and the status
/// lists only what is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_service_from_a_tenant_offboards_that_database_only() {
    let cluster = TestCluster::start().await;
    let ns = cluster.namespace().to_string();
    let client = cluster.client();
    admin_secret(&client, &ns, "pg-admin", pg().admin_password()).await;
    let server = database_server(&cluster, &ns, "pg-admin").await;
    let _controller = start(cluster.instrumented_client().client, fast_config(&ns));
    per_tenant(&client, &ns, "app", json!({"server": server})).await;
    per_tenant(&client, &ns, "crm", json!({"server": server})).await;
    let spec = |services: &[&str]| json!({"services": services, "reclaimPolicy": "Delete"});
    tenant(&client, &ns, "gym", spec(&["app", "crm"])).await;
    let t = wait_tenant_ready(&client, &ns, "gym").await;
    let crm_db = t.status.unwrap().databases[1].database.clone().unwrap();
    assert!(database_exists(&crm_db).await);

    tenant(&client, &ns, "gym", spec(&["app"])).await;
    let t = wait_tenant(&client, &ns, "gym", "only app left", |t| {
        tenant_ready(t) && placed(t).keys().eq(["app"].iter())
    })
    .await;
    assert_eq!(t.status.as_ref().unwrap().database_count, Some(1));
    assert!(
        !database_exists(&crm_db).await,
        "crm's database was dropped"
    );
    assert!(!role_exists(&format!("{crm_db}_app")).await);
    for secret in ["crm-db-gym", "crm-migrator-gym"] {
        assert!(
            secret_data(&client, &ns, secret).await.is_none(),
            "{secret}"
        );
    }
    let app = secret_data(&client, &ns, "app-db-gym").await.unwrap();
    login(&app).await.expect("app's database is untouched");
    wait_event(&client, &ns, "gym", "Normal", "Dropped").await;
}

/// Locks the clear conditions: a listed service that does not exist or is Shared is named
/// (and a missing one, once created, is provisioned); a service with migrations leaves its
/// tenant databases MigrationsApplied=Unknown, never Ready, until migration Jobs run them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_shared_and_unmigrated_services_are_reported() {
    let cluster = TestCluster::start().await;
    let ns = cluster.namespace().to_string();
    let client = cluster.client();
    admin_secret(&client, &ns, "pg-admin", pg().admin_password()).await;
    let server = database_server(&cluster, &ns, "pg-admin").await;
    let _controller = start(cluster.instrumented_client().client, fast_config(&ns));
    service_database(&client, &ns, "shared", &server, json!({})).await;
    tenant(
        &client,
        &ns,
        "gym",
        json!({"services": ["later", "shared"]}),
    )
    .await;
    let t = wait_tenant(&client, &ns, "gym", "Stalled naming the services", |t| {
        tenant_condition(t, types::STALLED)
            .is_some_and(|(s, _, m)| s == "True" && m.contains("later"))
    })
    .await;
    let (_, reason, message) = tenant_condition(&t, types::READY).unwrap();
    assert_eq!(reason, "ServiceNotFound");
    assert!(
        message.contains(&format!("ServiceDatabase {ns}/later does not exist"))
            && message.contains(&format!("ServiceDatabase {ns}/shared is Shared")),
        "{message}"
    );

    // The missing one appears (with migrations); the Shared one is dropped from the list.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    apply(
        &cms,
        "later-migrations",
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "later-migrations", "namespace": ns},
            "data": {"V1__init.sql": "CREATE TABLE t (id int);"},
        }),
    )
    .await;
    per_tenant(
        &client,
        &ns,
        "later",
        json!({"server": server, "migrations": {"configMaps": ["later-migrations"]}}),
    )
    .await;
    tenant(&client, &ns, "gym", json!({"services": ["later"]})).await;
    let t = wait_tenant(&client, &ns, "gym", "MigrationsApplied=Unknown", |t| {
        t.status.as_ref().and_then(|s| s.observed_generation) == t.metadata.generation
            && tenant_condition(t, types::MIGRATIONS_APPLIED)
                .is_some_and(|(s, _, _)| s == "Unknown")
    })
    .await;
    assert!(!tenant_ready(&t), "unmigrated databases are not Ready");
    let (_, reason, _) = tenant_condition(&t, types::MIGRATIONS_APPLIED).unwrap();
    assert_eq!(reason, "MigrationsNotSupported");
    let entry = &t.status.as_ref().unwrap().databases[0];
    assert!(!entry.ready);
    let app = secret_data(&client, &ns, "later-db-gym").await.unwrap();
    login(&app)
        .await
        .expect("the database and Secret are in place");
}

/// Locks "no writes at steady state" for tenants: over several resyncs (1s each) the
/// operator writes nothing in the namespace (no Tenant or fleet status patch, no Secret,
/// no Event) while it keeps checking each tenant's Secrets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_at_steady_state_cause_no_writes() {
    let cluster = TestCluster::start().await;
    let ns = cluster.namespace().to_string();
    let client = cluster.client();
    admin_secret(&client, &ns, "pg-admin", pg().admin_password()).await;
    let server = database_server(&cluster, &ns, "pg-admin").await;
    let operator = cluster.instrumented_client();
    let config = servicedb::controller::Config {
        resync: Duration::from_secs(1),
        ..fast_config(&ns)
    };
    let _controller = start(operator.client.clone(), config);
    per_tenant(&client, &ns, "app", json!({"server": server})).await;
    for name in ["gym-1", "gym-2", "gym-3"] {
        tenant(&client, &ns, name, json!({"services": ["app"]})).await;
    }
    for name in ["gym-1", "gym-2", "gym-3"] {
        wait_tenant_ready(&client, &ns, name).await;
    }
    let sdbs: Api<servicedb::api::ServiceDatabase> = Api::namespaced(client.clone(), &ns);
    wait_for(
        &sdbs,
        "app",
        "3 ready tenants",
        |o: Option<&servicedb::api::ServiceDatabase>| {
            o.and_then(|s| s.status.as_ref()?.tenants.as_ref().map(|t| t.ready)) == Some(3)
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mark = operator.requests.mark();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let writes: Vec<String> = operator
        .requests
        .writes_since(mark)
        .into_iter()
        .filter(|w| w.info.path.contains(&ns))
        .map(|w| w.to_string())
        .collect();
    assert!(
        writes.is_empty(),
        "writes at steady state:\n{}",
        writes.join("\n")
    );
    let reads = operator
        .requests
        .since(mark)
        .into_iter()
        .filter(|r| r.info.verb == "get" && r.info.path.ends_with("/secrets/app-db-gym-2"))
        .count();
    // Five 1s resyncs; a loaded machine may fit fewer in, but more than one.
    assert!(
        reads >= 2,
        "the tenant was resynced ({reads} reads of its Secret)"
    );
}
