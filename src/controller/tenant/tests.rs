use super::*;
use crate::api::{TenantDatabaseStatus, TenantSpec, TenantStatus};

#[test]
fn service_events_pass_on_spec_deletion_and_rollout_only() {
    let mut sdb = ServiceDatabase::new("app", Default::default());
    sdb.metadata.generation = Some(1);
    let before = service_trigger(&sdb);
    sdb.status = Some(crate::api::ServiceDatabaseStatus {
        tenants: Some(crate::api::TenantsSummary {
            total: 3,
            ..Default::default()
        }),
        ..Default::default()
    });
    assert_eq!(service_trigger(&sdb), before, "fleet counts do not fan out");
    let mut status = sdb.status.clone().unwrap();
    status.rollout = Some(crate::api::RolloutStatus {
        admitted: vec!["gym-1".into()],
        ..Default::default()
    });
    sdb.status = Some(status);
    assert_ne!(service_trigger(&sdb), before);
    let admitted = service_trigger(&sdb);
    sdb.annotations_mut()
        .insert(crate::api::ROTATE_ANNOTATION.into(), "v2".into());
    assert_ne!(
        service_trigger(&sdb),
        admitted,
        "a rotation request fans out"
    );
}

#[test]
fn server_events_reach_tenants_there_pinned_or_waiting() {
    let mut t = Tenant::new("gym-1", TenantSpec::default());
    assert!(uses_or_waits(&t, "a"), "never reconciled");
    t.metadata.generation = Some(1);
    let mut status = TenantStatus {
        databases: vec![TenantDatabaseStatus {
            service: "app".into(),
            server: Some("a".into()),
            ..Default::default()
        }],
        ..Default::default()
    };
    crate::api::conditions::set_ready(
        &mut status.conditions,
        crate::api::conditions::Readiness::ready("Reconciled", "ok"),
        Some(1),
        &crate::api::conditions::now(),
    );
    t.status = Some(status);
    assert!(uses_or_waits(&t, "a"));
    assert!(!uses_or_waits(&t, "b"), "ready and elsewhere");
    assert!(lists(&t, "app"));
    assert!(!lists(&t, "crm"));
}
