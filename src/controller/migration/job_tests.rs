use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde_json::Value;

use super::*;
use crate::api::{MigrationJobSpec, MigrationsSpec};

fn target(job: Option<MigrationJobSpec>) -> MigrationTarget {
    MigrationTarget {
        namespace: "shop".into(),
        owner: OwnerReference {
            api_version: "servicedb.io/v1alpha1".into(),
            kind: "ServiceDatabase".into(),
            name: "orders".into(),
            uid: "uid-1".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        },
        base_name: "orders".into(),
        tenant: None,
        database: "shop_orders".into(),
        migrator_secret: "orders-migrator".into(),
        migrations: MigrationsSpec {
            config_maps: vec!["orders-a".into(), "orders-b".into()],
            target_version: Some("7".into()),
            job,
            ..Default::default()
        },
        retry: None,
        history_seen: false,
    }
}

/// The `restricted` Pod Security Standard (v1.33) as the admission plugin checks a pod
/// template; returns every violation.
pub(crate) fn restricted_violations(pod: &Value) -> Vec<String> {
    let mut v = vec![];
    let spec = &pod["spec"];
    for host in ["hostNetwork", "hostPID", "hostIPC"] {
        if spec[host] == true {
            v.push(host.to_string());
        }
    }
    let allowed_volumes = [
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    ];
    for vol in spec["volumes"].as_array().into_iter().flatten() {
        for (k, _) in vol.as_object().unwrap() {
            if k != "name" && !allowed_volumes.contains(&k.as_str()) {
                v.push(format!("volume type {k}"));
            }
        }
    }
    let pod_sc = &spec["securityContext"];
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .flat_map(|k| spec[k].as_array().into_iter().flatten())
        .collect();
    for c in &containers {
        let sc = &c["securityContext"];
        let name = c["name"].as_str().unwrap_or("?");
        if sc["privileged"] == true {
            v.push(format!("{name}: privileged"));
        }
        if sc["allowPrivilegeEscalation"] != false {
            v.push(format!("{name}: allowPrivilegeEscalation must be false"));
        }
        let drops = sc["capabilities"]["drop"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !drops.iter().any(|d| d == "ALL") {
            v.push(format!("{name}: capabilities.drop must include ALL"));
        }
        for add in sc["capabilities"]["add"].as_array().into_iter().flatten() {
            if add != "NET_BIND_SERVICE" {
                v.push(format!("{name}: capability {add} added"));
            }
        }
        let non_root = sc["runAsNonRoot"] == true
            || (sc["runAsNonRoot"].is_null() && pod_sc["runAsNonRoot"] == true);
        if !non_root {
            v.push(format!("{name}: runAsNonRoot must be true"));
        }
        if sc["runAsUser"] == 0 || (sc["runAsUser"].is_null() && pod_sc["runAsUser"] == 0) {
            v.push(format!("{name}: runAsUser 0"));
        }
        let seccomp = if sc["seccompProfile"].is_null() {
            &pod_sc["seccompProfile"]["type"]
        } else {
            &sc["seccompProfile"]["type"]
        };
        if seccomp != "RuntimeDefault" && seccomp != "Localhost" {
            v.push(format!(
                "{name}: seccompProfile must be RuntimeDefault or Localhost"
            ));
        }
        for p in c["ports"].as_array().into_iter().flatten() {
            if !p["hostPort"].is_null() {
                v.push(format!("{name}: hostPort"));
            }
        }
    }
    v
}

/// Locks the Job's security: its pod passes the restricted Pod Security Standard, as a
/// namespace labelled `pod-security.kubernetes.io/enforce: restricted` requires, and
/// goes further: read-only root filesystem, no service account token, never restarted in
/// place.
#[test]
fn job_passes_restricted_pod_security() {
    let job = desired_job(
        &target(None),
        "orders-mig-0123456789",
        "0123456789",
        "img:1",
    );
    let json = serde_json::to_value(&job).unwrap();
    let pod = &json["spec"]["template"];
    assert_eq!(restricted_violations(pod), Vec::<String>::new());
    let spec = &pod["spec"];
    assert_eq!(spec["restartPolicy"], "Never");
    assert_eq!(spec["automountServiceAccountToken"], false);
    assert_eq!(spec["securityContext"]["runAsUser"], 65532);
    let c = &spec["containers"][0];
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["runAsUser"], 65532);
    // The checker itself catches what it is for.
    let mut bad = pod.clone();
    bad["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = Value::Bool(true);
    bad["spec"]["containers"][0]["securityContext"]["capabilities"]["drop"] = serde_json::json!([]);
    bad["spec"]["volumes"][0]["hostPath"] = serde_json::json!({"path": "/"});
    assert_eq!(
        restricted_violations(&bad).len(),
        3,
        "{:?}",
        restricted_violations(&bad)
    );
}

/// Locks what the Job runs and with what: each ConfigMap read-only at
/// /migrations/<name> and passed as --dir, the target, the termination log; DATABASE_URL
/// from the migrator Secret as the only environment; the operator's image by default.
#[test]
fn job_runs_migrate_apply_with_the_migrator_secret_only() {
    let job = desired_job(
        &target(None),
        "orders-mig-0123456789",
        "0123456789",
        "img:1",
    );
    let spec = job.spec.as_ref().unwrap();
    let pod = spec.template.spec.as_ref().unwrap();
    let c = &pod.containers[0];
    assert_eq!(c.image.as_deref(), Some("img:1"));
    assert_eq!(
        c.command.clone().unwrap(),
        [
            "/servicedb",
            "migrate",
            "apply",
            "--dir",
            "/migrations/orders-a",
            "--dir",
            "/migrations/orders-b",
            "--target",
            "7",
            "--termination-log",
            "/dev/termination-log"
        ]
    );
    assert!(c.args.is_none() && c.env_from.is_none());
    let env = c.env.clone().unwrap();
    assert_eq!(env.len(), 1);
    let from = env[0]
        .value_from
        .as_ref()
        .unwrap()
        .secret_key_ref
        .as_ref()
        .unwrap();
    assert_eq!(
        (env[0].name.as_str(), from.name.as_str(), from.key.as_str()),
        ("DATABASE_URL", "orders-migrator", "DATABASE_URL")
    );
    let mounts: Vec<(String, String, Option<bool>)> = c
        .volume_mounts
        .clone()
        .unwrap()
        .into_iter()
        .map(|m| (m.name, m.mount_path, m.read_only))
        .collect();
    assert_eq!(
        mounts[..2],
        [
            (
                "migrations-0".into(),
                "/migrations/orders-a".into(),
                Some(true)
            ),
            (
                "migrations-1".into(),
                "/migrations/orders-b".into(),
                Some(true)
            ),
        ]
    );
    let volumes = pod.volumes.clone().unwrap();
    assert_eq!(volumes[1].config_map.as_ref().unwrap().name, "orders-b");
    assert_eq!(
        c.termination_message_path.as_deref(),
        Some("/dev/termination-log")
    );
    // Defaults.
    assert_eq!(spec.backoff_limit, Some(DEFAULT_BACKOFF_LIMIT));
    assert_eq!(spec.ttl_seconds_after_finished, Some(DEFAULT_TTL_SECONDS));
    assert_eq!(spec.active_deadline_seconds, None);
    assert!(pod.service_account_name.is_none() && c.resources.is_none());
}

/// Locks the spec's job settings, labels and ownership.
#[test]
fn job_settings_labels_and_owner_come_from_the_target() {
    let settings = MigrationJobSpec {
        image: Some("registry.example/migrate:2".into()),
        service_account_name: Some("migrator".into()),
        resources: Some(k8s_openapi::api::core::v1::ResourceRequirements {
            limits: Some(BTreeMap::from([(
                "memory".into(),
                Quantity("128Mi".into()),
            )])),
            ..Default::default()
        }),
        backoff_limit: Some(0),
        active_deadline_seconds: Some(600),
        ttl_seconds_after_finished: Some(60),
    };
    let job = desired_job(&target(Some(settings)), "n", "0123456789", "img:1");
    let spec = job.spec.as_ref().unwrap();
    let pod = spec.template.spec.as_ref().unwrap();
    let c = &pod.containers[0];
    assert_eq!(c.image.as_deref(), Some("registry.example/migrate:2"));
    assert_eq!(pod.service_account_name.as_deref(), Some("migrator"));
    assert!(c.resources.as_ref().unwrap().limits.is_some());
    assert_eq!(
        (
            spec.backoff_limit,
            spec.active_deadline_seconds,
            spec.ttl_seconds_after_finished
        ),
        (Some(0), Some(600), Some(60))
    );
    let labels = job.metadata.labels.clone().unwrap();
    assert_eq!(labels["app.kubernetes.io/managed-by"], "servicedb");
    assert_eq!(labels["servicedb.io/service-database"], "orders");
    assert_eq!(labels["servicedb.io/migration-inputs"], "0123456789");
    assert!(!labels.contains_key("servicedb.io/tenant"));
    assert_eq!(
        spec.template.metadata.as_ref().unwrap().labels,
        Some(labels)
    );
    let owners = job.metadata.owner_references.clone().unwrap();
    assert_eq!(owners.len(), 1);
    assert_eq!(
        (owners[0].kind.as_str(), owners[0].controller),
        ("ServiceDatabase", Some(true))
    );
    assert_eq!(
        selector(&target(None)),
        "app.kubernetes.io/managed-by=servicedb,servicedb.io/service-database=orders,!servicedb.io/tenant"
    );
    let mut tenant = target(None);
    tenant.tenant = Some("gym-42".into());
    assert_eq!(
        selector(&tenant),
        "app.kubernetes.io/managed-by=servicedb,servicedb.io/service-database=orders,servicedb.io/tenant=gym-42"
    );
    let tj = desired_job(&tenant, "n", "0123456789", "img:1");
    assert_eq!(tj.metadata.labels.unwrap()["servicedb.io/tenant"], "gym-42");
}
