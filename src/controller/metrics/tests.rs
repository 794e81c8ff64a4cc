use super::*;

fn key(ns: &str, name: &str, tenant: &str) -> SchemaKey {
    SchemaKey {
        namespace: ns.into(),
        name: name.into(),
        tenant: tenant.into(),
        database: format!("{name}_{tenant}"),
    }
}

fn state(version: &str, pending: i64) -> SchemaState {
    SchemaState {
        version: Some(version.into()),
        pending: Some(pending),
    }
}

fn lines(m: &Metrics, prefix: &str) -> Vec<String> {
    m.encode()
        .lines()
        .filter(|l| l.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

/// Locks the names and labels the docs promise, with `_total` on counters only.
#[test]
fn reconciles_are_counted_by_kind_result_and_reason() {
    let m = Metrics::new();
    m.reconciled(Kind::ServiceDatabase, Duration::from_millis(20), None);
    m.reconciled(
        Kind::ServiceDatabase,
        Duration::from_millis(30),
        Some("ConnectionFailed"),
    );
    m.reconciled(Kind::DatabaseServer, Duration::from_secs(2), None);
    m.migration_job_finished(JobOutcome::Failed);
    let text = m.encode();
    for expected in [
        r#"servicedb_reconcile_total{kind="ServiceDatabase",result="success"} 1"#,
        r#"servicedb_reconcile_total{kind="ServiceDatabase",result="error"} 1"#,
        r#"servicedb_reconcile_total{kind="DatabaseServer",result="success"} 1"#,
        r#"servicedb_reconcile_errors_total{kind="ServiceDatabase",reason="ConnectionFailed"} 1"#,
        r#"servicedb_reconcile_duration_seconds_count{kind="ServiceDatabase"} 2"#,
        r#"servicedb_reconcile_duration_seconds_bucket{kind="ServiceDatabase",le="0.025"} 1"#,
        r#"servicedb_reconcile_duration_seconds_bucket{kind="DatabaseServer",le="1"} 0"#,
        r#"servicedb_migration_jobs_total{outcome="failed"} 1"#,
        "# TYPE servicedb_reconcile_duration_seconds histogram",
        "servicedb_leader 0",
    ] {
        assert!(text.lines().any(|l| l == expected), "{expected}\n{text}");
    }
}

/// Locks "one version series per database": a new version replaces the old series,
/// and nothing known removes both series.
#[test]
fn a_new_version_replaces_the_old_series() {
    let m = Metrics::new();
    let k = key("shop", "orders", "");
    m.set_schema(k.clone(), state("1", 2));
    m.set_schema(k.clone(), state("3", 0));
    assert_eq!(
        lines(&m, "servicedb_schema_"),
        [
            r#"servicedb_schema_info{namespace="shop",name="orders",tenant="",database="orders_",version="3"} 1"#,
            r#"servicedb_schema_pending{namespace="shop",name="orders",tenant="",database="orders_"} 0"#,
        ]
    );
    m.set_schema(k, SchemaState::default());
    assert!(lines(&m, "servicedb_schema_").is_empty());
}

/// Locks removal on deletion: a ServiceDatabase's series go with its tenants', and a
/// Tenant's go without touching other tenants or other services.
#[test]
fn deleted_resources_lose_their_series() {
    let m = Metrics::new();
    m.set_schema(key("fit", "app", ""), state("1", 0));
    m.set_schema(key("fit", "app", "gym-1"), state("1", 0));
    m.set_schema(key("fit", "app", "gym-2"), state("2", 0));
    m.set_schema(key("fit", "billing", "gym-1"), state("5", 0));
    m.set_schema(key("other", "app", ""), state("9", 0));
    m.remove_tenant("fit", "gym-1");
    let left = lines(&m, "servicedb_schema_info");
    assert_eq!(left.len(), 3, "{left:?}");
    assert!(left.iter().all(|l| !l.contains("gym-1")), "{left:?}");
    m.remove_service_database("fit", "app");
    assert_eq!(
        lines(&m, "servicedb_schema_info"),
        [
            r#"servicedb_schema_info{namespace="other",name="app",tenant="",database="app_",version="9"} 1"#
        ]
    );
}

fn sdb(migrations: bool, status: serde_json::Value) -> ServiceDatabase {
    let mut spec = serde_json::json!({});
    if migrations {
        spec["migrations"] = serde_json::json!({"configMaps": ["m"]});
    }
    serde_json::from_value(serde_json::json!({
        "apiVersion": "servicedb.io/v1alpha1", "kind": "ServiceDatabase",
        "metadata": {"name": "orders", "namespace": "shop"},
        "spec": spec, "status": status,
    }))
    .unwrap()
}

/// Locks what a ServiceDatabase's status gives: no database yet, no series; without
/// migrations nothing is pending; a renamed database drops the old series; deletion
/// drops them all.
#[test]
fn service_database_series_follow_its_status() {
    let m = Metrics::new();
    m.observe_service_database(&sdb(false, serde_json::json!({})));
    assert!(lines(&m, "servicedb_schema_").is_empty());
    m.observe_service_database(&sdb(false, serde_json::json!({"database": "a"})));
    assert_eq!(
        lines(&m, "servicedb_schema_"),
        [r#"servicedb_schema_pending{namespace="shop",name="orders",tenant="",database="a"} 0"#]
    );
    let migrated = serde_json::json!({
        "database": "b", "schema": {"appliedVersion": "7", "pending": 2},
    });
    m.observe_service_database(&sdb(true, migrated));
    assert_eq!(
        lines(&m, "servicedb_schema_"),
        [
            r#"servicedb_schema_info{namespace="shop",name="orders",tenant="",database="b",version="7"} 1"#,
            r#"servicedb_schema_pending{namespace="shop",name="orders",tenant="",database="b"} 2"#,
        ]
    );
    let mut deleting = sdb(true, serde_json::json!({"database": "b"}));
    deleting.metadata.deletion_timestamp = Some(crate::api::conditions::now());
    m.observe_service_database(&deleting);
    assert!(lines(&m, "servicedb_schema_").is_empty());
}

/// Locks the Tenant side: one series per database in its status, stale ones removed.
#[test]
fn tenant_series_follow_its_status() {
    let m = Metrics::new();
    let tenant = |dbs: serde_json::Value| -> Tenant {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "servicedb.io/v1alpha1", "kind": "Tenant",
            "metadata": {"name": "gym-1", "namespace": "fit"},
            "spec": {"services": ["app", "billing"]},
            "status": {"databases": dbs},
        }))
        .unwrap()
    };
    m.observe_tenant(&tenant(serde_json::json!([
        {"service": "app", "database": "app_gym_1", "appliedVersion": "3", "ready": true},
        {"service": "billing", "database": "billing_gym_1", "appliedVersion": "1", "ready": true},
    ])));
    assert_eq!(lines(&m, "servicedb_schema_info").len(), 2);
    m.observe_tenant(&tenant(serde_json::json!([
        {"service": "app", "database": "app_gym_1", "appliedVersion": "4", "ready": true},
    ])));
    assert_eq!(
        lines(&m, "servicedb_schema_info"),
        [
            r#"servicedb_schema_info{namespace="fit",name="app",tenant="gym-1",database="app_gym_1",version="4"} 1"#
        ]
    );
}
