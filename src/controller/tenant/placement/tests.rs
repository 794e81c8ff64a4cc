use super::*;
use crate::api::conditions::{Readiness, now, set_ready};
use crate::api::{DatabaseServerStatus, TenantDatabaseStatus, TenantSpec, TenantStatus};

fn server(name: &str, count: i32, max: Option<i32>, ready: bool) -> Arc<DatabaseServer> {
    let mut d = DatabaseServer::new(name, Default::default());
    d.metadata.generation = Some(1);
    d.spec.max_databases = max;
    let mut status = DatabaseServerStatus {
        database_count: Some(count),
        ..Default::default()
    };
    if ready {
        set_ready(
            &mut status.conditions,
            Readiness::ready("Reconciled", "ok"),
            Some(1),
            &now(),
        );
    }
    d.status = Some(status);
    Arc::new(d)
}

fn tenant(name: &str, placed: &[(&str, &str)]) -> Arc<Tenant> {
    let mut t = Tenant::new(name, TenantSpec::default());
    t.metadata.namespace = Some("ns".into());
    t.status = Some(TenantStatus {
        databases: placed
            .iter()
            .map(|(service, server)| TenantDatabaseStatus {
                service: service.to_string(),
                server: Some(server.to_string()),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    });
    Arc::new(t)
}

fn key(tenant: &str, service: &str) -> Key {
    ("ns".into(), tenant.into(), service.into())
}

/// Locks "least databases first under maxDatabases, with this process's own placements
/// counted before any status shows them".
#[test]
fn concurrent_placements_see_each_other_and_respect_capacity() {
    let servers = [server("a", 0, Some(2), true), server("b", 0, Some(3), true)];
    let placer = Placer::default();
    let placed: Vec<String> = (0..5)
        .map(|i| {
            placer
                .place(&key(&format!("t{i}"), "app"), None, &servers, &[], &[])
                .unwrap()
        })
        .collect();
    // By share of capacity: tie at 0 (a by name), b 0 < a 1/2, b 1/3 < a 1/2, a 1/2 < b 2/3,
    // then a is full.
    assert_eq!(placed, ["a", "b", "b", "a", "b"]);
    let full = placer.place(&key("t5", "app"), None, &servers, &[], &[]);
    assert_eq!(full, Err(PlacementError::Full));
    // Asking again for a placed database gives the same server.
    assert_eq!(
        placer.place(&key("t0", "app"), None, &servers, &[], &[]),
        Ok("a".to_string())
    );
}

/// Locks "counts from the caches": a stale databaseCount is raised to what the Tenants'
/// statuses show, and a placement shown in a status is not counted twice.
#[test]
fn cached_statuses_count_once() {
    let servers = [server("a", 0, Some(2), true), server("b", 0, Some(2), true)];
    let placer = Placer::default();
    let x = tenant("x", &[("app", "a")]);
    let y = tenant("y", &[("app", "a")]);
    // a is full by the statuses even though its databaseCount (0) lags.
    let shown = [x.clone(), y.clone()];
    assert_eq!(
        placer.place(&key("t1", "app"), None, &servers, &shown, &[]),
        Ok("b".to_string())
    );
    // t1's status now shows b: counted once (b holds 1 of 2), so t2 fits there too.
    let shown = [x.clone(), y.clone(), tenant("t1", &[("app", "b")])];
    assert_eq!(
        placer.place(&key("t2", "app"), None, &servers, &shown, &[]),
        Ok("b".to_string())
    );
    // Before t2's status shows it, it still counts: everything is full.
    assert_eq!(
        placer.place(&key("t3", "app"), None, &servers, &shown, &[]),
        Err(PlacementError::Full)
    );
    // A databaseCount above what the caches know (databases of others) wins.
    let busy = [server("a", 2, Some(2), true), server("b", 1, Some(3), true)];
    assert_eq!(
        Placer::default().place(&key("t4", "app"), None, &busy, &[], &[]),
        Ok("b".to_string())
    );
}

#[test]
fn pins_unready_servers_and_errors() {
    let servers = [
        server("a", 0, Some(10), true),
        server("down", 0, None, false),
    ];
    let placer = Placer::default();
    // Not Ready: not a candidate...
    assert_eq!(
        placer.place(&key("t1", "app"), None, &servers, &[], &[]),
        Ok("a".to_string())
    );
    // ...but a pin to it is kept (the database waits for it).
    assert_eq!(
        placer.place(&key("t2", "app"), Some("down"), &servers, &[], &[]),
        Ok("down".to_string())
    );
    assert_eq!(
        placer.place(&key("t3", "app"), Some("nope"), &servers, &[], &[]),
        Err(PlacementError::UnknownServer("nope".into()))
    );
    let only_down = [server("down", 0, None, false)];
    let e = placer
        .place(&key("t4", "app"), None, &only_down, &[], &[])
        .unwrap_err();
    assert!(explain(&e, &only_down).contains("no DatabaseServer is Ready"));
    assert!(explain(&PlacementError::NoServers, &[]).contains("create one"));
    placer.forget(&key("t1", "app"));
    assert_eq!(placer.in_flight(&key("t1", "app")), None);
    assert_eq!(placer.in_flight(&key("t2", "app")), Some("down".into()));
}

#[test]
fn recorded_placement_is_read_from_status() {
    let t = tenant("t", &[("app", "b"), ("crm", "a")]);
    assert_eq!(recorded(&t, "crm").as_deref(), Some("a"));
    assert_eq!(recorded(&t, "other"), None);
}

/// Locks "placement only on this installation's servers": another installation's server
/// (its admin Secret in its own namespace) is Ready and emptier, yet never chosen.
#[test]
fn another_installations_servers_are_not_placed_on() {
    let in_namespace = |s: Arc<DatabaseServer>, ns: &str| {
        let mut s = (*s).clone();
        s.spec.admin_secret_ref.namespace = ns.into();
        Arc::new(s)
    };
    let all = vec![
        in_namespace(server("mine", 5, Some(10), true), "servicedb-system"),
        in_namespace(server("theirs", 0, None, true), "other-operator"),
    ];
    let own = ours(all.clone(), "servicedb-system");
    assert_eq!(
        own.iter().map(|s| s.name_any()).collect::<Vec<_>>(),
        ["mine"]
    );
    let placer = Placer::default();
    assert_eq!(
        placer.place(&key("t1", "app"), None, &own, &[], &[]),
        Ok("mine".to_string())
    );
    // Without the filter the emptier foreign server would win.
    assert_eq!(
        placer.place(&key("t2", "app"), None, &all, &[], &[]),
        Ok("theirs".to_string())
    );
}
