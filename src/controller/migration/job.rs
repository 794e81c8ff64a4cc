//! The migration Job for a [`MigrationTarget`]. Pure.
//!
//! One container runs `/servicedb migrate apply --dir /migrations/<configmap>... [--target V]
//! --termination-log /dev/termination-log` in the operator's own image (or the spec's), each
//! ConfigMap mounted read-only at `/migrations/<configmap>`, with `DATABASE_URL` from the
//! migrator Secret as its only environment: the admin's credentials never reach it. The pod
//! passes the `restricted` Pod Security Standard: non-root (numeric user 65532, distroless's
//! `nonroot`), read-only root filesystem, no privilege escalation, every capability dropped,
//! the runtime's default seccomp profile, no service account token.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    PodSecurityContext, PodSpec, PodTemplateSpec, SeccompProfile, SecretKeySelector,
    SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::MigrationTarget;
use crate::api::labels;
use crate::naming;

/// Retries of a failed pod: a migration that fails on its SQL fails the same way each time,
/// so only enough for a dropped connection.
pub const DEFAULT_BACKOFF_LIMIT: i32 = 2;
/// A finished Job is kept a day (its outcome is in the status for good).
pub const DEFAULT_TTL_SECONDS: i32 = 86_400;
/// distroless `nonroot`, numerically, so `runAsNonRoot` can be checked without /etc/passwd.
pub const RUN_AS: i64 = 65_532;
/// Where the ConfigMaps are mounted, one directory each.
pub const MIGRATIONS_ROOT: &str = "/migrations";
/// Where the container leaves its summary for the operator.
pub const TERMINATION_LOG: &str = "/dev/termination-log";
/// The binary in servicedb's image (the Dockerfile's ENTRYPOINT).
pub const BINARY: &str = "/servicedb";
pub const CONTAINER: &str = "migrate";
/// The migrator Secret's key the engine reads.
pub const URL_KEY: &str = "DATABASE_URL";

/// The labels of the Job and its pods: DESIGN's, plus the inputs hash.
pub fn job_labels(target: &MigrationTarget, hash: &str) -> BTreeMap<String, String> {
    let mut l = selector_labels(target);
    l.insert(labels::MIGRATION_INPUTS.to_string(), hash.to_string());
    l
}

/// The labels every migration Job of this database has, whatever its inputs.
fn selector_labels(target: &MigrationTarget) -> BTreeMap<String, String> {
    let mut l = BTreeMap::from([
        (
            labels::MANAGED_BY.to_string(),
            labels::MANAGED_BY_VALUE.to_string(),
        ),
        (
            labels::SERVICE_DATABASE.to_string(),
            naming::label_value(&target.base_name),
        ),
    ]);
    if let Some(t) = &target.tenant {
        l.insert(labels::TENANT.to_string(), naming::label_value(t));
    }
    l
}

/// A label selector for every migration Job of this database (a Shared database's selects
/// no tenant's).
pub fn selector(target: &MigrationTarget) -> String {
    let mut parts: Vec<String> = selector_labels(target)
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if target.tenant.is_none() {
        parts.push(format!("!{}", labels::TENANT));
    }
    parts.join(",")
}

/// The mount directory of a ConfigMap.
pub fn mount_path(config_map: &str) -> String {
    format!("{MIGRATIONS_ROOT}/{config_map}")
}

/// The container's command.
pub fn command(target: &MigrationTarget) -> Vec<String> {
    apply_command(&target.migrations, &[])
}

/// `migrate apply` of `migrations`, with `--database-url-env` for each of `url_envs` (none:
/// `DATABASE_URL`).
pub fn apply_command(migrations: &crate::api::MigrationsSpec, url_envs: &[String]) -> Vec<String> {
    let mut c: Vec<String> = [BINARY, "migrate", "apply"].map(String::from).to_vec();
    for env in url_envs {
        c.push("--database-url-env".into());
        c.push(env.clone());
    }
    for cm in &migrations.config_maps {
        c.push("--dir".into());
        c.push(mount_path(cm));
    }
    if let Some(v) = &migrations.target_version {
        c.push("--target".into());
        c.push(v.clone());
    }
    c.push("--termination-log".into());
    c.push(TERMINATION_LOG.into());
    c
}

/// The Job `name` for `target`, running `default_image` unless the spec names one.
pub fn desired_job(target: &MigrationTarget, name: &str, hash: &str, default_image: &str) -> Job {
    let env = vec![secret_env(URL_KEY, &target.migrator_secret)];
    let mut annotations =
        BTreeMap::from([("servicedb.io/database".to_string(), target.database.clone())]);
    if let Some(v) = &target.migrations.target_version {
        annotations.insert("servicedb.io/target-version".into(), v.clone());
    }
    build(&Parts {
        name,
        namespace: &target.namespace,
        owner: &target.owner,
        labels: job_labels(target, hash),
        annotations,
        migrations: &target.migrations,
        command: command(target),
        env,
        default_image,
    })
}

/// `name` from key `DATABASE_URL` of Secret `secret` (which must exist).
pub fn secret_env(name: &str, secret: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.to_string(),
                key: URL_KEY.into(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// What a migration Job is made of: one for a database, or one for a batch of them.
pub struct Parts<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub owner: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub migrations: &'a crate::api::MigrationsSpec,
    pub command: Vec<String>,
    /// The container's whole environment: the migrator credentials only.
    pub env: Vec<EnvVar>,
    pub default_image: &'a str,
}

/// The Job: the ConfigMaps mounted, the command, the env, restricted Pod Security.
pub fn build(p: &Parts<'_>) -> Job {
    let settings = p.migrations.job.clone().unwrap_or_default();
    let labels = p.labels.clone();
    let default_image = p.default_image;
    let mut volumes: Vec<Volume> = p
        .migrations
        .config_maps
        .iter()
        .enumerate()
        .map(|(i, cm)| Volume {
            name: format!("migrations-{i}"),
            config_map: Some(ConfigMapVolumeSource {
                name: cm.clone(),
                default_mode: Some(0o444),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect();
    let mut mounts: Vec<VolumeMount> = p
        .migrations
        .config_maps
        .iter()
        .enumerate()
        .map(|(i, cm)| VolumeMount {
            name: format!("migrations-{i}"),
            mount_path: mount_path(cm),
            read_only: Some(true),
            ..Default::default()
        })
        .collect();
    // The root filesystem is read-only; anything temporary goes here.
    volumes.push(Volume {
        name: "tmp".into(),
        empty_dir: Some(EmptyDirVolumeSource {
            size_limit: Some(Quantity("16Mi".into())),
            ..Default::default()
        }),
        ..Default::default()
    });
    mounts.push(VolumeMount {
        name: "tmp".into(),
        mount_path: "/tmp".into(),
        ..Default::default()
    });
    let container = Container {
        name: CONTAINER.into(),
        image: Some(
            settings
                .image
                .clone()
                .unwrap_or_else(|| default_image.to_string()),
        ),
        command: Some(p.command.clone()),
        env: Some(p.env.clone()),
        volume_mounts: Some(mounts),
        resources: settings.resources.clone(),
        termination_message_path: Some(TERMINATION_LOG.into()),
        // A crash before the summary is written still tells why (the log's tail).
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            run_as_user: Some(RUN_AS),
            run_as_group: Some(RUN_AS),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                add: None,
            }),
            seccomp_profile: Some(runtime_default()),
            ..Default::default()
        }),
        ..Default::default()
    };
    Job {
        metadata: ObjectMeta {
            name: Some(p.name.to_string()),
            namespace: Some(p.namespace.to_string()),
            labels: Some(labels.clone()),
            annotations: Some(p.annotations.clone()),
            owner_references: Some(vec![p.owner.clone()]),
            ..Default::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(settings.backoff_limit.unwrap_or(DEFAULT_BACKOFF_LIMIT)),
            active_deadline_seconds: settings.active_deadline_seconds,
            ttl_seconds_after_finished: Some(
                settings
                    .ttl_seconds_after_finished
                    .unwrap_or(DEFAULT_TTL_SECONDS),
            ),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    service_account_name: settings.service_account_name.clone(),
                    automount_service_account_token: Some(false),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(RUN_AS),
                        run_as_group: Some(RUN_AS),
                        seccomp_profile: Some(runtime_default()),
                        ..Default::default()
                    }),
                    containers: vec![container],
                    volumes: Some(volumes),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    }
}

fn runtime_default() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".into(),
        localhost_profile: None,
    }
}

#[cfg(test)]
#[path = "job_tests.rs"]
pub(crate) mod tests;
