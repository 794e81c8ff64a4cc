//! The ServiceDatabase and DatabaseServer controllers end to end: `controller::run` in
//! process against the fake API server (or SERVICEDB_TEST_KUBECONFIG's cluster) and the
//! tests' real PostgreSQL, with a non-superuser admin.

mod controller_common;
mod support;

use controller_common::*;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;
use serde_json::json;
use servicedb::api::conditions::types;
use servicedb::api::{DatabaseServer, Phase, ServiceDatabase};
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
    let _: Option<ServiceDatabase> = None;
}
