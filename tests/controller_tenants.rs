//! The Tenant controller end to end: `controller::run` in process against the fake API
//! server (or SERVICEDB_TEST_KUBECONFIG's cluster) and real PostgreSQL, with a
//! non-superuser admin: a database and Secrets per (Tenant, PerTenant service), the fleet's
//! counts, offboarding by the Tenant's reclaimPolicy, clear conditions, steady state.
//! Placement across servers is in `controller_tenants_placement.rs`.

mod controller_common;
mod support;
mod tenant_common;

use std::collections::BTreeMap;
use std::time::Duration;

use controller_common::*;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::Api;
use serde_json::json;
use servicedb::api::Tenant;
use servicedb::api::conditions::types;
use support::kube::{TestCluster, eventually, wait_for};
use support::postgres::server as pg;
use tenant_common::*;

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
    // Generous for 2 loaded cores; the time taken is printed below.
    let deadline = started + Duration::from_secs(300);
    loop {
        let list = api.list(&Default::default()).await.unwrap().items;
        let ready = list.iter().filter(|t| tenant_ready(t)).count();
        if ready == names.len() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {ready} of 20 Tenants Ready after 300s"
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
    // A fresh tenant database gets its migration Job at once (nobody plays it here).
    let t = wait_tenant(&client, &ns, "gym", "MigrationsApplied=False", |t| {
        t.status.as_ref().and_then(|s| s.observed_generation) == t.metadata.generation
            && tenant_condition(t, types::MIGRATIONS_APPLIED)
                .is_some_and(|(s, r, _)| s == "False" && r == "MigrationRunning")
    })
    .await;
    assert!(!tenant_ready(&t), "unmigrated databases are not Ready");
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
    let mark = operator
        .requests
        .settle(Duration::from_secs(2), |w| w.info.path.contains(&ns))
        .await;
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

/// Locks the per-database status write: with the second service's server slow (its
/// CREATE DATABASE waits on a session in template1 for longer than the reconcile may take),
/// every reconcile is cut short by the reconcile timeout, and the first service's
/// placement is in the status all the same. Once the server is free, the Tenant is Ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_placement_is_recorded_before_a_slow_database_after_it() {
    let cluster = TestCluster::start().await;
    let ns = cluster.namespace().to_string();
    let client = cluster.client();
    admin_secret(&client, &ns, "pg-admin", pg().admin_password()).await;
    let fast = database_server(&cluster, &ns, "pg-admin").await;
    let pg_slow = support::postgres::private_server();
    let slow = own_server(&cluster, &ns, &pg_slow, 10).await;
    let config = servicedb::controller::Config {
        reconcile_timeout: Duration::from_secs(3),
        ..fast_config(&ns)
    };
    let _controller = start(cluster.instrumented_client().client, config);
    wait_server_ready(&client, &slow).await;
    per_tenant(&client, &ns, "app", json!({"server": fast})).await;
    per_tenant(&client, &ns, "crm", json!({"server": slow})).await;
    // PostgreSQL lets CREATE DATABASE wait up to 5s for other sessions to leave its template.
    let blocker = pg_slow.superuser_client("template1").await;
    tenant(&client, &ns, "t1", json!({"services": ["app", "crm"]})).await;
    let t1 = wait_tenant(&client, &ns, "t1", "app's placement in the status", |t| {
        placed(t).contains_key("app")
    })
    .await;
    assert_eq!(placed(&t1).get("app"), Some(&fast));
    assert!(!tenant_ready(&t1), "crm is not done");
    drop(blocker);
    let t1 = wait_tenant_ready(&client, &ns, "t1").await;
    let placed = placed(&t1);
    assert_eq!(
        (placed.get("app"), placed.get("crm")),
        (Some(&fast), Some(&slow))
    );
}
