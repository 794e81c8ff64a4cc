//! Ownership claims against a real PostgreSQL: who may own a database, and what a resource
//! that may not gets (a Conflict, and nothing written: no role, no grant, no Secret).

mod support;

use servicedb::api::{ReclaimPolicy, ServiceDatabase, Tenancy};
use servicedb::provision::Conflict;
use servicedb::provision::execute::{HistoryWanted, ProvisionError, delete, reconcile};
use servicedb::provision::plan::DatabaseFate;
use servicedb::provision::server::Server;
use servicedb::service::reconcile::{Cleanup, UnitError, cleanup_unit, reconcile_unit};
use support::postgres::server as pg;
use support::provision::{
    Memory, connect_server, database_exists, desired, login, sdb, spec, unique,
};

fn conflict(e: &UnitError) -> &Conflict {
    match e {
        UnitError::Provision(ProvisionError::Conflict(c)) => c,
        other => panic!("expected a Conflict, got {other}"),
    }
}

fn per_tenant(namespace: &str, name: &str, database_name: &str) -> ServiceDatabase {
    let mut s = sdb(namespace, name, ReclaimPolicy::Delete);
    s.spec.tenancy = Tenancy::PerTenant;
    s.spec.database_name = Some(database_name.into());
    s
}

/// Two PerTenant services of one namespace naming the same databaseName would share each
/// tenant's database, roles and history: the second gets a Conflict, writes no Secret, and
/// cleaning it up drops nothing of the first.
#[tokio::test]
async fn tenant_databases_of_two_services_never_share_a_database() {
    let server = connect_server().await;
    let ns = unique("tn").replace('_', "-");
    let shared_name = unique("x");
    let (a, b) = (
        per_tenant(&ns, "a", &shared_name),
        per_tenant(&ns, "b", &shared_name),
    );
    let store_a = Memory::default();
    let first = reconcile_unit(&server, &store_a, &a, Some("t1"), &[], HistoryWanted::No)
        .await
        .unwrap();
    let store_b = Memory::default();
    let failed = reconcile_unit(&server, &store_b, &b, Some("t1"), &[], HistoryWanted::No)
        .await
        .unwrap_err();
    let c = conflict(&failed.error);
    assert!(
        c.to_string().contains("(ServiceDatabase a)"),
        "the message names the service that owns it: {c}"
    );
    assert!(store_b.names().is_empty(), "no Secret written on Conflict");
    assert!(failed.done.outcome.actions.is_empty());
    // Deleting the loser leaves the winner's database alone.
    assert!(
        cleanup_unit(&server, &b, Some("t1"), ReclaimPolicy::Delete)
            .await
            .is_err()
    );
    assert!(database_exists(&first.layout.database).await);
    assert!(
        login(&first.layout.database, first.desired.app.as_ref().unwrap())
            .await
            .is_ok()
    );
}

/// A resource whose database belongs to another resource writes no Secret at all, so fixing
/// its name later works at once (before, the Secrets it wrote blocked the rename).
#[tokio::test]
async fn a_conflict_writes_no_secret_and_a_rename_then_just_works() {
    let server = connect_server().await;
    let name = unique("taken");
    let mut owner = sdb("team-a", "orders", ReclaimPolicy::Retain);
    owner.spec.database_name = Some(name.clone());
    reconcile_unit(
        &server,
        &Memory::default(),
        &owner,
        None,
        &[],
        HistoryWanted::No,
    )
    .await
    .unwrap();
    let mut other = sdb("team-b", "orders", ReclaimPolicy::Retain);
    other.spec.database_name = Some(name.clone());
    let store = Memory::default();
    let failed = reconcile_unit(&server, &store, &other, None, &[], HistoryWanted::No)
        .await
        .unwrap_err();
    assert!(matches!(
        conflict(&failed.error),
        Conflict::DatabaseClaimed { .. }
    ));
    assert!(store.names().is_empty(), "{:?}", store.names());
    other.spec.database_name = Some(format!("{name}_b"));
    let fixed = reconcile_unit(&server, &store, &other, None, &[], HistoryWanted::No)
        .await
        .unwrap();
    assert_eq!(fixed.done.secrets_written.len(), 2);
}

/// Two installations (two clusters, or a cluster and a laptop) sharing a server: the one that
/// did not create a database never owns it, not even for the same namespace and name.
#[tokio::test]
async fn another_installation_never_owns_or_drops_a_database() {
    let ours = connect_server().await;
    let theirs = Server::connect(spec("another-cluster")).await.unwrap();
    let d = desired("shop", &unique("inst"));
    reconcile(&ours, &d).await.unwrap();
    let mut same_resource = d.clone();
    same_resource.installation = "another-cluster".into();
    let err = reconcile(&theirs, &same_resource).await.unwrap_err();
    assert!(
        matches!(&err, ProvisionError::Conflict(Conflict::DatabaseOfOtherInstallation { installation, .. }) if installation == "tests"),
        "{err}"
    );
    assert!(delete(&theirs, &same_resource).await.is_err());
    assert!(database_exists(d.database.as_str()).await);
    assert!(!reconcile(&ours, &d).await.unwrap().changed());
}

/// A database dropped and created again by someone else under the same name is not adopted
/// (and a Delete leaves it); one dropped by hand with nothing in its place comes back.
#[tokio::test]
async fn a_replaced_database_is_never_adopted_and_a_dropped_one_comes_back() {
    let server = connect_server().await;
    let d = desired("shop", &unique("oid"));
    let db = d.database.as_str();
    reconcile(&server, &d).await.unwrap();
    let su = pg().superuser_client("postgres").await;
    su.batch_execute(&format!("DROP DATABASE {db} WITH (FORCE)"))
        .await
        .unwrap();
    // Dropped by hand: the next pass creates it again and it works.
    let outcome = reconcile(&server, &d).await.unwrap();
    assert!(
        outcome
            .executed()
            .iter()
            .any(|s| s.starts_with("CREATE DATABASE"))
    );
    assert!(login(db, d.app.as_ref().unwrap()).await.is_ok());
    // Replaced by someone else's database of the same name: refused, and never dropped.
    for statement in [
        format!("DROP DATABASE {db} WITH (FORCE)"),
        format!("CREATE DATABASE {db}"),
    ] {
        su.batch_execute(&statement).await.unwrap();
    }
    let err = reconcile(&server, &d).await.unwrap_err();
    assert!(
        matches!(
            err,
            ProvisionError::Conflict(Conflict::DatabaseReplaced { .. })
        ),
        "{err}"
    );
    let dropped = delete(&server, &d).await.unwrap();
    assert!(
        !dropped
            .executed()
            .iter()
            .any(|s| s.contains("DROP DATABASE")),
        "{:?}",
        dropped.executed()
    );
    assert!(database_exists(db).await, "someone else's database stays");
}

/// Deleting a resource whose database was replaced by someone else's (same name, new oid)
/// says so: the typed result and its message say the database was left alone and why, not
/// "dropped"; the resource's roles and claim go, the other database stays.
#[tokio::test]
async fn cleanup_of_a_replaced_database_says_it_was_left_alone() {
    let server = connect_server().await;
    let mut resource = sdb("shop", "orders", ReclaimPolicy::Delete);
    resource.spec.database_name = Some(unique("gone"));
    let unit = reconcile_unit(
        &server,
        &Memory::default(),
        &resource,
        None,
        &[],
        HistoryWanted::No,
    )
    .await
    .unwrap();
    let db = unit.layout.database.clone();
    let su = pg().superuser_client("postgres").await;
    for statement in [
        format!("DROP DATABASE {db} WITH (FORCE)"),
        format!("CREATE DATABASE {db}"),
    ] {
        su.batch_execute(&statement).await.unwrap();
    }
    let Cleanup::Dropped(deletion) = cleanup_unit(&server, &resource, None, ReclaimPolicy::Delete)
        .await
        .unwrap()
    else {
        panic!("reclaimPolicy Delete applies")
    };
    assert!(
        matches!(
            deletion.left_alone(),
            Some(Conflict::DatabaseReplaced { .. })
        ),
        "{:?}",
        deletion.database
    );
    let summary = deletion.summary(&db);
    assert!(
        summary.starts_with(&format!("left database {db} alone")),
        "{summary}"
    );
    assert!(summary.contains("its oid changed"), "{summary}");
    assert!(
        !deletion
            .executed()
            .iter()
            .any(|s| s.contains("DROP DATABASE")),
        "{:?}",
        deletion.executed()
    );
    assert!(database_exists(&db).await, "someone else's database stays");
    let owner = &unit.desired.owner.name;
    let roles = su
        .query(
            "SELECT 1 FROM pg_roles WHERE rolname = $1",
            &[&owner.as_str()],
        )
        .await
        .unwrap();
    assert!(roles.is_empty(), "this resource's roles are dropped");
}

/// A tenant's database follows the Tenant's reclaim policy, not only the service's.
#[tokio::test]
async fn a_tenant_database_follows_the_policy_it_is_given() {
    let server = connect_server().await;
    let ns = unique("rp").replace('_', "-");
    let mut service = per_tenant(&ns, "app", &unique("rp"));
    service.spec.reclaim_policy = ReclaimPolicy::Retain;
    let unit = reconcile_unit(
        &server,
        &Memory::default(),
        &service,
        Some("gym"),
        &[],
        HistoryWanted::No,
    )
    .await
    .unwrap();
    // The service says Retain; the Tenant says Delete.
    let cleanup = cleanup_unit(&server, &service, Some("gym"), ReclaimPolicy::Delete)
        .await
        .unwrap();
    assert!(
        matches!(cleanup, Cleanup::Dropped(ref d) if d.changed() && d.database == DatabaseFate::Dropped),
        "{cleanup:?}"
    );
    assert!(!database_exists(&unit.layout.database).await);
}

/// Two resources racing for one database name at the same moment: one wins, and the loser
/// writes no Secret (the claim comes before the Secrets, not only the check).
#[tokio::test]
async fn the_loser_of_a_race_writes_no_secret() {
    let server = connect_server().await;
    for _ in 0..3 {
        let name = unique("race");
        let mut a = sdb("team-a", "orders", ReclaimPolicy::Retain);
        a.spec.database_name = Some(name.clone());
        let mut b = sdb("team-b", "orders", ReclaimPolicy::Retain);
        b.spec.database_name = Some(name.clone());
        let (store_a, store_b) = (Memory::default(), Memory::default());
        let (ra, rb) = futures::join!(
            reconcile_unit(&server, &store_a, &a, None, &[], HistoryWanted::No),
            reconcile_unit(&server, &store_b, &b, None, &[], HistoryWanted::No)
        );
        assert!(ra.is_ok() != rb.is_ok(), "exactly one wins");
        let loser = if ra.is_ok() { &store_b } else { &store_a };
        assert!(loser.names().is_empty(), "{:?}", loser.names());
    }
}
