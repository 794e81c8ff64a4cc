//! Password rotation end to end: the `servicedb.io/rotate` annotation through the real
//! controller, the fake API server (or SERVICEDB_TEST_KUBECONFIG's cluster) and the real
//! PostgreSQL. `passwordRotation.every` is tested on an injected clock in
//! `service::rotation` (its shortest interval is an hour).

mod controller_common;
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use controller_common::*;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use servicedb::api::{ServiceDatabase, Tenant};
use support::kube::{TestCluster, eventually};
use support::postgres::server as pg;

const ROTATION: &str = "servicedb.io/rotation";

async fn annotate(client: &kube::Client, ns: &str, name: &str, key: &str, value: &str) {
    let api: Api<ServiceDatabase> = Api::namespaced(client.clone(), ns);
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {key: value}}})),
    )
    .await
    .unwrap_or_else(|e| panic!("annotating {name}: {e}"));
}

async fn secret_annotations(
    client: &kube::Client,
    ns: &str,
    name: &str,
) -> BTreeMap<String, String> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    api.get(name)
        .await
        .unwrap()
        .metadata
        .annotations
        .unwrap_or_default()
}

async fn rotated_events(client: &kube::Client, ns: &str, name: &str) -> Vec<String> {
    events_about(client, ns, name)
        .await
        .into_iter()
        .filter(|(t, r, _)| t == "Normal" && r == "PasswordRotated")
        .map(|(_, _, note)| note)
        .collect()
}

/// Locks rotation on request: a ServiceDatabase created with the annotation does not
/// rotate at creation; a new value gives the app and the migrator Secrets new passwords
/// that log in while the old ones are refused, with one PasswordRotated Event naming roles
/// and Secrets but no password; the same value again, over several resyncs, rotates nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rotate_annotation_rotates_once_per_value() {
    let cluster = TestCluster::start().await;
    let ns = cluster.namespace().to_string();
    let client = cluster.client();
    admin_secret(&client, &ns, "pg-admin", pg().admin_password()).await;
    let server = database_server(&cluster, &ns, "pg-admin").await;
    let _controller = start(cluster.instrumented_client().client, fast_config(&ns));
    let api: Api<ServiceDatabase> = Api::namespaced(client.clone(), &ns);
    apply(
        &api,
        "orders",
        json!({
            "apiVersion": "servicedb.io/v1alpha1", "kind": "ServiceDatabase",
            "metadata": {"name": "orders", "namespace": ns,
                         "annotations": {"servicedb.io/rotate": "v1"}},
            "spec": {"server": server},
        }),
    )
    .await;
    let sdb = wait_ready(&client, &ns, "orders").await;
    let db = sdb.status.unwrap().database.unwrap();
    let old_app = secret_data(&client, &ns, "orders-db").await.unwrap();
    let old_owner = secret_data(&client, &ns, "orders-migrator").await.unwrap();
    login(&old_app).await.expect("the first app Secret logs in");
    assert_eq!(
        secret_annotations(&client, &ns, "orders-db").await[ROTATION],
        "v1"
    );
    assert!(rotated_events(&client, &ns, "orders").await.is_empty());

    annotate(&client, &ns, "orders", "servicedb.io/rotate", "v2").await;
    let (new_app, new_owner) = eventually("both Secrets to get new passwords that log in", || {
        let (client, ns) = (client.clone(), ns.clone());
        let (old_app, old_owner) = (old_app.clone(), old_owner.clone());
        async move {
            let app = secret_data(&client, &ns, "orders-db").await?;
            let owner = secret_data(&client, &ns, "orders-migrator").await?;
            if app["password"] == old_app["password"] || owner["password"] == old_owner["password"]
            {
                return None;
            }
            login(&app).await.ok()?;
            login(&owner).await.ok()?;
            Some((app, owner))
        }
    })
    .await;
    assert_eq!(new_app["PGUSER"], format!("{db}_app"));
    let Err(refused) = login(&old_app).await else {
        panic!("the old app password is refused")
    };
    assert!(
        refused.contains("password authentication failed"),
        "{refused}"
    );
    assert!(
        login(&old_owner).await.is_err(),
        "the old owner password is refused"
    );
    for s in ["orders-db", "orders-migrator"] {
        let a = secret_annotations(&client, &ns, s).await;
        assert_eq!(a[ROTATION], "v2", "{s}");
        assert!(a.contains_key("servicedb.io/rotated-at"), "{s}");
    }
    let note = wait_event(&client, &ns, "orders", "Normal", "PasswordRotated").await;
    for part in [
        format!("{db}_app"),
        format!("{db}_owner"),
        "orders-db".into(),
        "orders-migrator".into(),
    ] {
        assert!(note.contains(&part), "{note} names {part}");
    }
    for secret in [&new_app, &new_owner, &old_app] {
        assert!(!note.contains(&secret["password"]), "no password in {note}");
    }

    // The same value, re-applied, plus a poke and several resyncs (2s each): nothing rotates.
    annotate(&client, &ns, "orders", "servicedb.io/rotate", "v2").await;
    annotate(&client, &ns, "orders", "example.com/poke", "1").await;
    tokio::time::sleep(Duration::from_secs(7)).await;
    let still = secret_data(&client, &ns, "orders-db").await.unwrap();
    assert_eq!(still["password"], new_app["password"]);
    login(&still).await.expect("still logs in");
    assert_eq!(rotated_events(&client, &ns, "orders").await.len(), 1);
}

/// Locks the crash between the Secret write and ALTER ROLE: a Secret whose password the
/// role does not have (written by hand here, as a rotation killed mid-way leaves it) ends
/// with the role having the Secret's password, not with a new rotation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_ahead_of_its_role_is_caught_up() {
    let cluster = TestCluster::start().await;
    let ns = cluster.namespace().to_string();
    let client = cluster.client();
    admin_secret(&client, &ns, "pg-admin", pg().admin_password()).await;
    let server = database_server(&cluster, &ns, "pg-admin").await;
    let _controller = start(cluster.instrumented_client().client, fast_config(&ns));
    service_database(&client, &ns, "ahead", &server, json!({})).await;
    wait_ready(&client, &ns, "ahead").await;
    let before = secret_data(&client, &ns, "ahead-db").await.unwrap();

    let written = "Handwritten-rotation-0123456789abcdefXYZ";
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    secrets
        .patch(
            "ahead-db",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"password": written}})),
        )
        .await
        .unwrap();
    // The controller renders every key from the Secret's password, then sets it on the role.
    let after = eventually(
        "the Secret's URL to carry the new password and log in",
        || {
            let (client, ns) = (client.clone(), ns.clone());
            async move {
                let data = secret_data(&client, &ns, "ahead-db").await?;
                data["DATABASE_URL"].contains(written).then_some(())?;
                login(&data).await.ok().map(|_| data)
            }
        },
    )
    .await;
    assert_eq!(after["password"], written, "the Secret's password was kept");
    assert_eq!(after["PGPASSWORD"], written);
    assert!(login(&before).await.is_err(), "the old password is gone");
    assert!(rotated_events(&client, &ns, "ahead").await.is_empty());
}

/// Locks rotation of tenant databases: `servicedb.io/rotate` on a PerTenant ServiceDatabase
/// gives each Tenant's app and migrator Secrets new passwords that log in while the old
/// ones are refused (28P01), with a PasswordRotated Event on the Tenant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rotate_annotation_rotates_tenant_databases() {
    let cluster = TestCluster::start().await;
    let ns = cluster.namespace().to_string();
    let client = cluster.client();
    admin_secret(&client, &ns, "pg-admin", pg().admin_password()).await;
    let server = database_server(&cluster, &ns, "pg-admin").await;
    let _controller = start(cluster.instrumented_client().client, fast_config(&ns));
    let services: Api<ServiceDatabase> = Api::namespaced(client.clone(), &ns);
    apply(
        &services,
        "app",
        json!({
            "apiVersion": "servicedb.io/v1alpha1", "kind": "ServiceDatabase",
            "metadata": {"name": "app", "namespace": ns},
            "spec": {"tenancy": "PerTenant", "server": server},
        }),
    )
    .await;
    let tenants: Api<Tenant> = Api::namespaced(client.clone(), &ns);
    apply(
        &tenants,
        "t1",
        json!({
            "apiVersion": "servicedb.io/v1alpha1", "kind": "Tenant",
            "metadata": {"name": "t1", "namespace": ns},
            "spec": {"services": ["app"]},
        }),
    )
    .await;
    let (app, migrator) = ("app-db-t1", "app-migrator-t1");
    let old_app = eventually("the tenant's app Secret to log in", || {
        let (client, ns) = (client.clone(), ns.clone());
        async move {
            let data = secret_data(&client, &ns, app).await?;
            login(&data).await.ok()?;
            Some(data)
        }
    })
    .await;
    let old_migrator = secret_data(&client, &ns, migrator).await.unwrap();
    assert!(rotated_events(&client, &ns, "t1").await.is_empty());

    annotate(&client, &ns, "app", "servicedb.io/rotate", "v1").await;
    let new_app = eventually(
        "both tenant Secrets to get new passwords that log in",
        || {
            let (client, ns) = (client.clone(), ns.clone());
            let (old_app, old_migrator) = (old_app.clone(), old_migrator.clone());
            async move {
                let a = secret_data(&client, &ns, app).await?;
                let m = secret_data(&client, &ns, migrator).await?;
                if a["password"] == old_app["password"] || m["password"] == old_migrator["password"]
                {
                    return None;
                }
                login(&a).await.ok()?;
                login(&m).await.ok()?;
                Some(a)
            }
        },
    )
    .await;
    let Err(refused) = login(&old_app).await else {
        panic!("the old app password is refused")
    };
    assert!(
        refused.contains("password authentication failed"),
        "{refused}"
    );
    assert_eq!(secret_annotations(&client, &ns, app).await[ROTATION], "v1");
    let note = wait_event(&client, &ns, "t1", "Normal", "PasswordRotated").await;
    assert!(note.contains(app) && note.contains(migrator), "{note}");
    assert!(
        !note.contains(&new_app["password"]),
        "no password in {note}"
    );
}
