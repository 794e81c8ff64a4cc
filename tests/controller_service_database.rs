//! The ServiceDatabase and DatabaseServer controllers end to end: `controller::run` in
//! process against the fake API server (or SERVICEDB_TEST_KUBECONFIG's cluster) and the
//! tests' real PostgreSQL, with a non-superuser admin.

mod controller_common;
mod support;

use std::collections::BTreeSet;

use controller_common::*;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::ResourceExt;
use kube::api::Api;
use serde_json::json;
use servicedb::api::conditions::types;
use servicedb::api::{DatabaseServer, Phase};
use support::kube::TestCluster;
use support::postgres::server as pg;

/// Locks the main path: DatabaseServer + admin Secret + ServiceDatabase -> Ready with the
/// status DESIGN names; the DatabaseServer reports its version and count; the app Secret
/// (labelled, owned by the ServiceDatabase) logs in, reads and writes the data of a table
/// the owner created through the migrator Secret, and cannot create a table itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_service_database_gets_working_secrets() {
    let cluster = TestCluster::start().await;
    let ns = cluster.namespace().to_string();
    let operator = cluster.instrumented_client();
    let client = cluster.client();
    admin_secret(&client, &ns, "pg-admin", pg().admin_password()).await;
    let server = database_server(&cluster, &ns, "pg-admin").await;
    let _controller = start(operator.client.clone(), fast_config(&ns));

    service_database(&client, &ns, "orders", &server, json!({})).await;
    let sdb = wait_ready(&client, &ns, "orders").await;
    let status = sdb.status.clone().unwrap();
    let db = format!("{}_orders", ns.replace('-', "_"));
    assert_eq!(status.observed_generation, sdb.metadata.generation);
    assert_eq!(status.phase, Some(Phase::Ready));
    assert_eq!(status.server.as_deref(), Some(server.as_str()));
    assert_eq!(status.database.as_deref(), Some(db.as_str()));
    assert_eq!(status.secret_name.as_deref(), Some("orders-db"));
    for t in [types::DATABASE_READY, types::SECRET_READY] {
        assert_eq!(condition(&sdb, t).unwrap().0, "True", "{t}");
    }
    assert!(condition(&sdb, types::RECONCILING).is_none());
    assert!(condition(&sdb, types::STALLED).is_none());
    assert!(
        sdb.finalizers()
            .iter()
            .any(|f| f == "servicedb.io/finalizer")
    );

    let dbs = wait_server_ready(&client, &server).await;
    let dbs_status = dbs.status.unwrap();
    assert!(dbs_status.server_version.is_some_and(|v| !v.is_empty()));
    assert_eq!(dbs_status.observed_generation, dbs.metadata.generation);

    // The Secrets: labelled, owned, with working credentials.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let app_secret = secrets.get("orders-db").await.unwrap();
    let labels = app_secret.labels();
    assert_eq!(labels["app.kubernetes.io/managed-by"], "servicedb");
    assert_eq!(labels["servicedb.io/service-database"], "orders");
    let owner = &app_secret.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("ServiceDatabase", sdb.uid().unwrap().as_str())
    );
    assert_eq!(owner.controller, Some(true));
    let app = secret_data(&client, &ns, "orders-db").await.unwrap();
    let migrator = secret_data(&client, &ns, "orders-migrator").await.unwrap();
    assert_eq!(app["PGDATABASE"], db);

    let owner_conn = login(&migrator).await.expect("the migrator Secret logs in");
    owner_conn
        .batch_execute("CREATE TABLE items (id int PRIMARY KEY, name text)")
        .await
        .expect("the owner creates tables");
    let app_conn = login(&app).await.expect("the app Secret logs in");
    app_conn
        .execute("INSERT INTO items VALUES (1, 'one')", &[])
        .await
        .expect("the app writes data");
    let n: i64 = app_conn
        .query_one("SELECT count(*) FROM items", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    let ddl = app_conn.batch_execute("CREATE TABLE nope (x int)").await;
    assert!(ddl.is_err(), "the app role must not create tables");
    let drop = app_conn.batch_execute("DROP TABLE items").await;
    assert!(drop.is_err(), "the app role must not drop tables");

    // The DatabaseServer counted it (on its next resync).
    let api: Api<DatabaseServer> = Api::all(client.clone());
    support::kube::eventually("databaseCount to include the new database", || {
        let api = api.clone();
        let server = server.clone();
        async move {
            let d = api.get(&server).await.ok()?;
            (d.status?.database_count? >= 1).then_some(())
        }
    })
    .await;

    // What the RBAC of the chart must grant: nothing else was used.
    let allowed: BTreeSet<(&str, &str)> = [
        ("databaseservers.servicedb.io", "list"),
        ("databaseservers.servicedb.io", "watch"),
        ("databaseservers.servicedb.io/status", "patch"),
        ("servicedatabases.servicedb.io", "list"),
        ("servicedatabases.servicedb.io", "watch"),
        ("servicedatabases.servicedb.io", "patch"),
        // A reconcile whose cache predates its own last status write reads the object.
        ("databaseservers.servicedb.io", "get"),
        ("servicedatabases.servicedb.io", "get"),
        ("tenants.servicedb.io", "get"),
        ("servicedatabases.servicedb.io/status", "patch"),
        // The Tenant controller, and PerTenant fleets counting their Tenants.
        ("tenants.servicedb.io", "list"),
        ("tenants.servicedb.io", "watch"),
        ("secrets", "get"),
        ("secrets", "list"),
        ("secrets", "watch"),
        ("secrets", "patch"),
        ("configmaps", "list"),
        ("configmaps", "watch"),
        // Its migration Jobs are watched (label-selected) even without migrations.
        ("jobs.batch", "list"),
        ("jobs.batch", "watch"),
        ("events.events.k8s.io", "create"),
        ("events.events.k8s.io", "patch"),
        // The installation id: the kube-system namespace's uid, read once at start.
        ("namespaces", "get"),
    ]
    .into_iter()
    .collect();
    for (resource, verb) in operator.requests.permissions() {
        assert!(
            allowed.contains(&(resource.as_str(), verb.as_str())),
            "unexpected API use: {verb} {resource}"
        );
    }
}

/// Locks the ownership rule across namespaces: a second ServiceDatabase naming a database
/// another one owns gets Conflict (Stalled, DatabaseReady=False, a Warning Event) and no
/// Secret, and the owner's credentials keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_claim_in_another_namespace_gets_conflict_and_no_secret() {
    let cluster = TestCluster::start().await;
    let ns1 = cluster.namespace().to_string();
    let ns2 = cluster.create_namespace("sdbtest").await;
    let client = cluster.client();
    admin_secret(&client, &ns1, "pg-admin", pg().admin_password()).await;
    let server = database_server(&cluster, &ns1, "pg-admin").await;
    // One controller per namespace, as two `servicedb run --namespace` would.
    let _c1 = start(cluster.instrumented_client().client, fast_config(&ns1));
    // Both read the admin Secret from the operator's namespace, ns1.
    let c2_config = servicedb::controller::Config {
        operator_namespace: Some(ns1.clone()),
        ..fast_config(&ns2)
    };
    let _c2 = start(cluster.instrumented_client().client, c2_config);
    let db = format!("claimed_{}", ns1.replace('-', "_"));
    service_database(&client, &ns1, "first", &server, json!({"databaseName": db})).await;
    wait_ready(&client, &ns1, "first").await;

    service_database(
        &client,
        &ns2,
        "second",
        &server,
        json!({"databaseName": db}),
    )
    .await;
    let second = wait_condition(&client, &ns2, "second", types::STALLED, "True", "Conflict").await;
    let (status, reason, message) = condition(&second, types::DATABASE_READY).unwrap();
    assert_eq!((status.as_str(), reason.as_str()), ("False", "Conflict"));
    assert!(
        message.contains(&format!("ServiceDatabase {ns1}/first")),
        "{message}"
    );
    assert_eq!(condition(&second, types::READY).unwrap().0, "False");
    assert_eq!(second.status.as_ref().unwrap().phase, Some(Phase::Failed));
    assert!(secret_data(&client, &ns2, "second-db").await.is_none());
    assert!(
        secret_data(&client, &ns2, "second-migrator")
            .await
            .is_none()
    );
    wait_event(&client, &ns2, "second", "Warning", "Conflict").await;
    let first = secret_data(&client, &ns1, "first-db").await.unwrap();
    login(&first).await.expect("the owner's Secret still works");
}

/// Locks deletion by reclaim policy: Delete drops the database and its roles; Retain
/// keeps them and their claim, so the same resource applied again adopts the database;
/// both finalizers go and the Secrets are owned (garbage-collected) by the resource.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_drops_and_retain_keeps() {
    let cluster = TestCluster::start().await;
    let ns = cluster.namespace().to_string();
    let client = cluster.client();
    admin_secret(&client, &ns, "pg-admin", pg().admin_password()).await;
    let server = database_server(&cluster, &ns, "pg-admin").await;
    let _controller = start(cluster.instrumented_client().client, fast_config(&ns));
    service_database(&client, &ns, "keep", &server, json!({})).await;
    service_database(
        &client,
        &ns,
        "gone",
        &server,
        json!({"reclaimPolicy": "Delete"}),
    )
    .await;
    let keep = wait_ready(&client, &ns, "keep").await;
    let gone = wait_ready(&client, &ns, "gone").await;
    let keep_db = keep.status.unwrap().database.unwrap();
    let gone_db = gone.status.unwrap().database.unwrap();
    {
        let owner = login(&secret_data(&client, &ns, "keep-migrator").await.unwrap())
            .await
            .unwrap();
        owner
            .batch_execute("CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)")
            .await
            .unwrap();
    }
    assert!(database_exists(&gone_db).await);

    delete_sdb(&client, &ns, "gone").await;
    delete_sdb(&client, &ns, "keep").await;
    wait_gone(&client, &ns, "gone").await;
    wait_gone(&client, &ns, "keep").await;
    assert!(
        !database_exists(&gone_db).await,
        "Delete drops the database"
    );
    assert!(!role_exists(&format!("{gone_db}_app")).await);
    assert!(!role_exists(&format!("{gone_db}_owner")).await);
    assert!(database_exists(&keep_db).await, "Retain keeps the database");
    for secret in ["gone-db", "gone-migrator", "keep-db", "keep-migrator"] {
        support::kube::eventually(&format!("Secret {secret} to be garbage-collected"), || {
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
    assert!(role_exists(&format!("{keep_db}_app")).await);
    let events = events_about(&client, &ns, "gone").await;
    assert!(events.iter().any(|(_, r, _)| r == "Dropped"), "{events:?}");
    let events = events_about(&client, &ns, "keep").await;
    assert!(events.iter().any(|(_, r, _)| r == "Retained"), "{events:?}");

    // Applied again, the retained database is adopted with its data.
    service_database(&client, &ns, "keep", &server, json!({})).await;
    let again = wait_ready(&client, &ns, "keep").await;
    assert_eq!(again.status.unwrap().database.unwrap(), keep_db);
    let app = secret_data(&client, &ns, "keep-db").await.unwrap();
    let conn = login(&app).await.expect("the new Secret logs in");
    let x: i32 = conn
        .query_one("SELECT x FROM kept", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(x, 42);
}

/// Locks drift repair on resync: an app role dropped by hand comes back, and a Secret
/// deleted by hand comes back with a password that logs in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resync_repairs_a_dropped_role_and_a_deleted_secret() {
    let cluster = TestCluster::start().await;
    let ns = cluster.namespace().to_string();
    let client = cluster.client();
    admin_secret(&client, &ns, "pg-admin", pg().admin_password()).await;
    let server = database_server(&cluster, &ns, "pg-admin").await;
    let _controller = start(cluster.instrumented_client().client, fast_config(&ns));
    service_database(&client, &ns, "drift", &server, json!({})).await;
    let sdb = wait_ready(&client, &ns, "drift").await;
    let db = sdb.status.unwrap().database.unwrap();
    let app = secret_data(&client, &ns, "drift-db").await.unwrap();
    login(&app).await.unwrap();

    let role = format!("{db}_app");
    let su = pg().superuser_client(&db).await;
    su.batch_execute(&format!("DROP OWNED BY \"{role}\"; DROP ROLE \"{role}\""))
        .await
        .unwrap();
    assert!(login(&app).await.is_err());
    support::kube::eventually("the dropped role to come back", || {
        let app = app.clone();
        async move { login(&app).await.ok().map(|_| ()) }
    })
    .await;

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    secrets
        .delete("drift-db", &Default::default())
        .await
        .unwrap();
    let back = support::kube::eventually("the deleted Secret to come back and log in", || {
        let client = client.clone();
        let ns = ns.clone();
        async move {
            let data = secret_data(&client, &ns, "drift-db").await?;
            login(&data).await.ok().map(|_| data)
        }
    })
    .await;
    assert_eq!(back["PGUSER"], role);
}

/// Locks how a spec that cannot work is handled: an invalid one is Stalled (InvalidSpec,
/// the field named) with one Warning Event and nothing created; a PerTenant template is
/// validated and waits for its Tenants without a database or Secret of its own; one that
/// asks for migrations is not reported Ready while this controller runs no Jobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_per_tenant_and_migrating_specs_get_an_honest_status() {
    let cluster = TestCluster::start().await;
    let ns = cluster.namespace().to_string();
    let client = cluster.client();
    admin_secret(&client, &ns, "pg-admin", pg().admin_password()).await;
    let server = database_server(&cluster, &ns, "pg-admin").await;
    let _controller = start(cluster.instrumented_client().client, fast_config(&ns));

    service_database(
        &client,
        &ns,
        "bad",
        &server,
        json!({"databaseName": "Not-Valid"}),
    )
    .await;
    let bad = wait_condition(&client, &ns, "bad", types::STALLED, "True", "InvalidSpec").await;
    let (_, _, message) = condition(&bad, types::READY).unwrap();
    assert!(message.contains("spec.databaseName"), "{message}");
    assert!(secret_data(&client, &ns, "bad-db").await.is_none());
    // The Event follows the status write.
    let invalid_events = || {
        let client = client.clone();
        let ns = ns.clone();
        async move {
            let events = events_about(&client, &ns, "bad").await;
            let n = events.iter().filter(|(_, r, _)| r == "InvalidSpec").count();
            (n > 0).then_some((n, events))
        }
    };
    support::kube::eventually("the InvalidSpec Event", invalid_events).await;

    service_database(
        &client,
        &ns,
        "fleet",
        &server,
        json!({"tenancy": "PerTenant"}),
    )
    .await;
    // Valid, no migrations: Ready (its databases come with its Tenants).
    let fleet = wait_condition(&client, &ns, "fleet", types::READY, "True", "Reconciled").await;
    let status = fleet.status.unwrap();
    assert_eq!(
        status.database.as_deref(),
        Some(format!("{}_fleet", ns.replace('-', "_")).as_str())
    );
    assert!(secret_data(&client, &ns, "fleet-db").await.is_none());
    assert!(!database_exists(status.database.as_deref().unwrap()).await);

    let migrations = json!({"migrations": {"configMaps": ["orders-migrations"]}});
    service_database(&client, &ns, "migrating", &server, migrations).await;
    let m = wait_condition(
        &client,
        &ns,
        "migrating",
        types::MIGRATIONS_APPLIED,
        "False",
        "ConfigMapNotFound",
    )
    .await;
    assert_eq!(condition(&m, types::READY).unwrap().0, "False");
    // A ConfigMap applied with it may come a moment later: waiting, not stalled.
    assert_eq!(condition(&m, types::RECONCILING).unwrap().0, "True");
    assert!(condition(&m, types::STALLED).is_none());
    assert_eq!(condition(&m, types::DATABASE_READY).unwrap().0, "True");
    // Still one InvalidSpec Event: waiting for a change does not repeat it.
    let (n, events) = invalid_events().await.unwrap();
    assert_eq!(n, 1, "{events:?}");
}

/// Locks the ConfigMap watch: a ServiceDatabase that waits for a missing ConfigMap is
/// reconciled again when a ConfigMap it references appears, and not for one it does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_referenced_configmap_triggers_its_service_database() {
    let cluster = TestCluster::start().await;
    let ns = cluster.namespace().to_string();
    let client = cluster.client();
    admin_secret(&client, &ns, "pg-admin", pg().admin_password()).await;
    let server = database_server(&cluster, &ns, "pg-admin").await;
    let operator = cluster.instrumented_client();
    // No resync during the test: only the watches bring reconciles.
    let config = servicedb::controller::Config {
        resync: std::time::Duration::from_secs(300),
        ..fast_config(&ns)
    };
    let _controller = start(operator.client.clone(), config);
    let migrations = json!({"migrations": {"configMaps": ["orders-migrations"]}});
    service_database(&client, &ns, "orders", &server, migrations).await;
    wait_condition(
        &client,
        &ns,
        "orders",
        types::MIGRATIONS_APPLIED,
        "False",
        "ConfigMapNotFound",
    )
    .await;
    let reads_of_secret = |mark: usize| {
        operator
            .requests
            .since(mark)
            .iter()
            .filter(|r| r.info.verb == "get" && r.info.path.ends_with("/secrets/orders-db"))
            .count()
    };
    // Let the reconciles set off by its own writes finish: quiet for 1.5 s (the resync is
    // 300 s, so a quiet window stays quiet).
    let settled = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let quiet = operator.requests.mark();
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        if reads_of_secret(quiet) == 0 {
            break;
        }
        assert!(std::time::Instant::now() < settled, "never went quiet");
    }
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let mark = operator.requests.mark();
    let other = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "unrelated"}, "data": {"a": "b"}});
    apply(&configmaps, "unrelated", other).await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(
        reads_of_secret(mark),
        0,
        "an unrelated ConfigMap triggers nothing"
    );
    let cm = json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "orders-migrations"},
        "data": {"V1__init.sql": "CREATE TABLE t (x int);"},
    });
    apply(&configmaps, "orders-migrations", cm).await;
    support::kube::eventually("the ServiceDatabase to be reconciled again", || {
        let n = reads_of_secret(mark);
        async move { (n > 0).then_some(()) }
    })
    .await;
}

/// Locks the DatabaseServer watch on deletion: deleting the DatabaseServer brings its
/// ServiceDatabases to Waiting (ServerNotFound) at once, not at their next resync (kube's
/// predicate filter dropped the deletion, whose object hashes as before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_database_server_sends_its_service_databases_waiting() {
    let cluster = TestCluster::start().await;
    let ns = cluster.namespace().to_string();
    let client = cluster.client();
    admin_secret(&client, &ns, "pg-admin", pg().admin_password()).await;
    let server = database_server(&cluster, &ns, "pg-admin").await;
    // No resync during the test: only the watches bring reconciles.
    let config = servicedb::controller::Config {
        resync: std::time::Duration::from_secs(300),
        ..fast_config(&ns)
    };
    let _controller = start(client.clone(), config);
    service_database(&client, &ns, "orders", &server, json!({})).await;
    wait_ready(&client, &ns, "orders").await;
    // Let the reconcile its own Ready write triggers finish, so only the deletion can
    // bring the next one.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    Api::<DatabaseServer>::all(client.clone())
        .delete(&server, &Default::default())
        .await
        .unwrap();
    let waiting = wait_condition(
        &client,
        &ns,
        "orders",
        types::READY,
        "False",
        "ServerNotFound",
    )
    .await;
    assert_eq!(condition(&waiting, types::RECONCILING).unwrap().0, "True");
    assert_eq!(waiting.status.unwrap().phase, Some(Phase::Pending));
}

/// Locks that Delete never reports dropping a database it left alone: a database dropped
/// and re-created by hand under the same name is someone else's; deletion keeps it, and
/// the Event (reason Retained) says so instead of "dropped".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_leaves_a_replaced_database_alone_and_says_so() {
    let cluster = TestCluster::start().await;
    let ns = cluster.namespace().to_string();
    let client = cluster.client();
    admin_secret(&client, &ns, "pg-admin", pg().admin_password()).await;
    let server = database_server(&cluster, &ns, "pg-admin").await;
    let controller = start(cluster.instrumented_client().client, fast_config(&ns));
    let sdb = service_database(
        &client,
        &ns,
        "swapped",
        &server,
        json!({"reclaimPolicy": "Delete"}),
    )
    .await;
    let db = wait_ready(&client, &ns, &sdb.name_any())
        .await
        .status
        .unwrap()
        .database
        .unwrap();
    // Replaced while no controller looks (a resync would otherwise report the Conflict first).
    controller.stop().await;
    let admin = pg().admin_client("postgres").await;
    for sql in [
        format!("DROP DATABASE \"{db}\" WITH (FORCE)"),
        format!("CREATE DATABASE \"{db}\""),
    ] {
        admin
            .batch_execute(&sql)
            .await
            .expect("the admin replaces the database");
    }
    let _controller = start(cluster.instrumented_client().client, fast_config(&ns));

    delete_sdb(&client, &ns, "swapped").await;
    wait_gone(&client, &ns, "swapped").await;
    assert!(database_exists(&db).await, "the replacement is kept");
    let events = events_about(&client, &ns, "swapped").await;
    let (_, _, note) = events
        .iter()
        .find(|(_, r, note)| r == "Retained" && note.contains("left database"))
        .unwrap_or_else(|| panic!("an Event says the database was left alone: {events:?}"));
    assert!(note.contains(&db), "{note}");
    assert!(
        !events.iter().any(|(_, r, _)| r == "Dropped"),
        "nothing claims it was dropped: {events:?}"
    );
    admin
        .batch_execute(&format!("DROP DATABASE \"{db}\""))
        .await
        .unwrap();
}
