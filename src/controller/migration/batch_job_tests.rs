use super::*;
use crate::controller::migration::job::tests::restricted_violations;

fn member(t: &str) -> BatchMember {
    BatchMember {
        tenant: t.into(),
        database: format!("app_{t}"),
        migrator_secret: format!("app-migrator-{t}"),
    }
}

fn target(tenants: &[&str]) -> BatchTarget {
    BatchTarget {
        namespace: "fit".into(),
        owner: OwnerReference {
            api_version: "servicedb.io/v1alpha1".into(),
            kind: "ServiceDatabase".into(),
            name: "app".into(),
            uid: "uid-1".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        },
        base_name: "app".into(),
        members: tenants.iter().map(|t| member(t)).collect(),
        migrations: MigrationsSpec {
            config_maps: vec!["app-migrations".into()],
            target_version: Some("3".into()),
            ..Default::default()
        },
        retry: None,
    }
}

/// Locks the batch Job's credentials and security: one DATABASE_URL_<i> per tenant, each
/// from that tenant's migrator Secret, nothing else in the environment; the command names
/// each variable in the same order; the pod passes restricted Pod Security.
#[test]
fn each_tenant_database_has_its_own_migrator_secret() {
    let t = target(&["gym-1", "gym-2", "gym-3"]);
    let job = desired_batch_job(&t, "app-batch-mig-0123456789", "0123456789", "img:1");
    let json = serde_json::to_value(&job).unwrap();
    let pod = &json["spec"]["template"];
    assert_eq!(restricted_violations(pod), Vec::<String>::new());
    let c = &job
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0];
    let env: Vec<(String, String, String)> = c
        .env
        .clone()
        .unwrap()
        .into_iter()
        .map(|e| {
            let r = e.value_from.unwrap().secret_key_ref.unwrap();
            assert!(e.value.is_none());
            (e.name, r.name, r.key)
        })
        .collect();
    assert_eq!(
        env,
        [
            ("DATABASE_URL_0", "app-migrator-gym-1", "DATABASE_URL"),
            ("DATABASE_URL_1", "app-migrator-gym-2", "DATABASE_URL"),
            ("DATABASE_URL_2", "app-migrator-gym-3", "DATABASE_URL"),
        ]
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    );
    assert_eq!(
        c.command.clone().unwrap(),
        [
            "/servicedb",
            "migrate",
            "apply",
            "--database-url-env",
            "DATABASE_URL_0",
            "--database-url-env",
            "DATABASE_URL_1",
            "--database-url-env",
            "DATABASE_URL_2",
            "--dir",
            "/migrations/app-migrations",
            "--target",
            "3",
            "--termination-log",
            "/dev/termination-log",
        ]
    );
    let labels = job.metadata.labels.clone().unwrap();
    assert_eq!(labels.get(BATCH_LABEL).map(String::as_str), Some("true"));
    assert!(!labels.contains_key(labels::TENANT), "no one tenant's Job");
    assert_eq!(members_of(&job), ["gym-1", "gym-2", "gym-3"]);
    assert_eq!(
        job.metadata.owner_references.unwrap()[0].kind,
        "ServiceDatabase"
    );
}

#[test]
fn the_name_moves_with_inputs_retry_and_members() {
    let m = target(&["a", "b"]).members;
    let base = batch_hash("h1", None, &m);
    assert_eq!(base, batch_hash("h1", None, &m));
    let others = [
        batch_hash("h2", None, &m),
        batch_hash("h1", Some("r"), &m),
        batch_hash("h1", None, &m[..1]),
        batch_hash("h1", None, &target(&["b", "a"]).members),
    ];
    assert!(others.iter().all(|h| h != &base), "{others:?}");
    let name = batch_job_name(&"s".repeat(80), &base);
    assert!(name.len() <= 63 && name.ends_with(&base), "{name}");
    assert_eq!(
        selector("app"),
        "app.kubernetes.io/managed-by=servicedb,servicedb.io/migration-batch=true,servicedb.io/service-database=app"
    );
}

/// Locks "a failure is reported per tenant": each member's outcome from its line.
#[test]
fn each_member_reads_its_own_line() {
    let members: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
    let report = "DATABASE_URL_0 succeeded 3\nDATABASE_URL_1 failed 2 V3__x.sql line 1, SQLSTATE 42601: boom";
    let outcome =
        |t: &str, finished| member_outcome(&members, t, finished, Some(report), "Job failed");
    assert_eq!(outcome("a", None), Some(MemberOutcome::Running));
    assert_eq!(outcome("b", Some(true)), Some(MemberOutcome::Succeeded));
    assert_eq!(outcome("a", Some(false)), Some(MemberOutcome::Succeeded));
    assert_eq!(
        outcome("b", Some(false)),
        Some(MemberOutcome::Failed {
            detail: "V3__x.sql line 1, SQLSTATE 42601: boom".into()
        })
    );
    let Some(MemberOutcome::Failed { detail }) = outcome("c", Some(false)) else {
        panic!("unreported is failed");
    };
    assert!(
        detail.starts_with("Job failed (the batch Job stopped"),
        "{detail}"
    );
    assert_eq!(outcome("z", Some(false)), None);
}

/// Locks "a batch gets a deadline for all its databases": activeDeadlineSeconds is sized
/// for one database, so a batch of three gets three times it (none stays none).
#[test]
fn the_deadline_covers_every_member() {
    let deadline = |t: &BatchTarget| {
        desired_batch_job(t, "app-batch-mig-x", "x", "img")
            .spec
            .and_then(|s| s.active_deadline_seconds)
    };
    let mut t = target(&["a", "b", "c"]);
    assert_eq!(deadline(&t), None);
    t.migrations.job = Some(crate::api::MigrationJobSpec {
        active_deadline_seconds: Some(600),
        ..Default::default()
    });
    assert_eq!(deadline(&t), Some(1800));
}
