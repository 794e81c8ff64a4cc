//! Conformance of the Job controller stand-in (`JobRunner`): what it runs, with which
//! environment and volumes, the Job status it reports, and the Pod each run leaves.
//! Shared kinds and helpers: `fake_apiserver_common`.

#[allow(dead_code)] // the PostgreSQL half of the support module is not used here
mod support;

mod fake_apiserver_common;

use fake_apiserver_common::*;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::kube::wait_for;

/// The Job controller stand-in runs a Job's container locally with its env (values,
/// secretKeyRef, configMapKeyRef, envFrom), its ConfigMap and Secret volumes at rewritten
/// mount paths and a mapped program, then sets a status the API server accepts:
/// SuccessCriteriaMet + Complete, or FailureTarget + Failed. The server refuses
/// Complete without SuccessCriteriaMet.
#[tokio::test]
async fn job_runner_plays_the_job_controller() {
    let cluster = start().await;
    let ns = cluster.namespace();
    let client = cluster.client();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    cms.create(
        &PostParams::default(),
        &config_map(
            "scripts",
            &[("run.sh", "echo script-ran"), ("greeting", "hello")],
        ),
    )
    .await
    .unwrap();
    let secret: Secret = serde_json::from_value(
        json!({"metadata": {"name": "creds"}, "stringData": {"password": "s3cret", "user": "app"}}),
    )
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();

    let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
    let job = |name: &str, script: &str| -> Job {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"suite": "jobs"}},
            "spec": {"backoffLimit": 0, "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{
                    "name": "main",
                    "image": "registry.example/tools:1.0",
                    "command": ["/usr/bin/tool", "-c", script],
                    "env": [
                        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
                        {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "scripts", "key": "greeting"}}},
                        {"name": "SCRIPT", "value": "/scripts/run.sh"},
                        {"name": "WHO", "value": "$(GREETING) world"},
                    ],
                    "envFrom": [{"secretRef": {"name": "creds"}, "prefix": "DB_"}],
                    "volumeMounts": [{"name": "scripts", "mountPath": "/scripts"}, {"name": "creds", "mountPath": "/etc/creds"}],
                }],
                "volumes": [{"name": "scripts", "configMap": {"name": "scripts"}}, {"name": "creds", "secret": {"secretName": "creds"}}],
            }}},
        }))
        .unwrap()
    };
    // `/scripts-not-mounted` only starts like a mount path: it is left alone
    let script = "sh $SCRIPT; echo \"$PASSWORD $DB_user $WHO\"; cat /etc/creds/user; echo /scripts-not-mounted";
    jobs.create(&PostParams::default(), &job("ok", script))
        .await
        .unwrap();
    let runner = cluster.job_runner().program("tool", "/bin/sh");
    let run = runner.run_next(Some(ns), Some("suite=jobs")).await.unwrap();
    assert!(run.succeeded, "{run:?}");
    assert_eq!(
        run.stdout,
        "script-ran\ns3cret app hello world\napp/scripts-not-mounted\n"
    );
    let done = jobs.get_status("ok").await.unwrap().status.unwrap();
    let conditions: Vec<(String, String)> = done
        .conditions
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c.type_, c.status))
        .collect();
    assert!(conditions.contains(&("SuccessCriteriaMet".into(), "True".into())));
    assert!(conditions.contains(&("Complete".into(), "True".into())));
    assert_eq!(done.succeeded, Some(1));
    assert!(done.start_time.is_some() && done.completion_time.is_some());
    assert!(
        runner
            .pending(Some(ns), Some("suite=jobs"))
            .await
            .unwrap()
            .is_empty()
    );

    jobs.create(&PostParams::default(), &job("fails", "exit 3"))
        .await
        .unwrap();
    let run = runner.run(ns, "fails").await.unwrap();
    assert_eq!((run.succeeded, run.exit_code), (false, Some(3)));
    let failed = jobs.get_status("fails").await.unwrap().status.unwrap();
    let types: Vec<String> = failed
        .conditions
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.type_)
        .collect();
    assert!(types.contains(&"FailureTarget".to_string()) && types.contains(&"Failed".to_string()));
    assert_eq!(failed.failed, Some(1));

    jobs.create(&PostParams::default(), &job("invalid-status", "true"))
        .await
        .unwrap();
    let now = "2025-01-01T00:00:00Z";
    let status = status_of(
        jobs.patch_status(
            "invalid-status",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"startTime": now, "completionTime": now, "succeeded": 1, "conditions": [
                {"type": "Complete", "status": "True", "lastTransitionTime": now, "lastProbeTime": now}
            ]}})),
        )
        .await,
    );
    assert_eq!(status.code, 422);
}

/// A mount at the directory the stand-in's own temporary files live under (an emptyDir at
/// /tmp, as a pod with a read-only root filesystem has): the other mounts' rewritten
/// paths, which lie below it, are not rewritten a second time.
#[tokio::test]
async fn mount_paths_are_rewritten_once() {
    let cluster = start().await;
    let ns = cluster.namespace();
    let client = cluster.client();
    Api::<ConfigMap>::namespaced(client.clone(), ns)
        .create(
            &PostParams::default(),
            &config_map("files", &[("greeting", "hello")]),
        )
        .await
        .unwrap();
    let tmp = std::env::temp_dir();
    let tmp = tmp.to_string_lossy().trim_end_matches('/').to_string();
    let job: Job = serde_json::from_value(json!({
        "metadata": {"name": "tmp-mount", "labels": {"suite": "tmp"}},
        "spec": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "registry.example/tools:1.0",
                "command": ["/usr/bin/tool", "-c", format!("cat /files/greeting && touch {tmp}/x && echo ok")],
                "volumeMounts": [{"name": "files", "mountPath": "/files"}, {"name": "tmp", "mountPath": tmp}]}],
            "volumes": [{"name": "files", "configMap": {"name": "files"}}, {"name": "tmp", "emptyDir": {}}],
        }}},
    }))
    .unwrap();
    Api::<Job>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &job)
        .await
        .unwrap();
    let runner = cluster.job_runner().program("tool", "/bin/sh");
    let run = runner.run(ns, "tmp-mount").await.unwrap();
    assert!(run.succeeded, "{run:?}");
    assert_eq!(run.stdout, "hellook\n");
}

/// A Job whose one container runs `script` with `sh` (mapped to a local `/bin/sh`).
fn shell_job(name: &str, script: &str, message_policy: Option<&str>) -> Job {
    let mut job: Job = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"suite": "pods"}},
        "spec": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "registry.example/tools:1.0",
                "command": ["/usr/bin/tool", "-c", script]}],
        }}},
    }))
    .unwrap();
    if let Some(policy) = message_policy {
        job.spec
            .as_mut()
            .unwrap()
            .template
            .spec
            .as_mut()
            .unwrap()
            .containers[0]
            .termination_message_policy = Some(policy.into());
    }
    job
}

/// Each run of the Job stand-in leaves a Pod, as the Job controller and the kubelet
/// would: found by the `batch.kubernetes.io/job-name` label, controlled by the Job,
/// Succeeded or Failed, with the exit code and the termination message (what the process
/// wrote to /dev/termination-log or, under FallbackToLogsOnError, the end of its output)
/// in `status.containerStatuses[].state.terminated`. Deleting a batch/v1 Job without a
/// propagation policy orphans its Pods (the Job's default, for backward compatibility);
/// Background deletes them.
#[tokio::test]
async fn job_runs_leave_pods_with_termination_messages() {
    let cluster = start().await;
    let ns = cluster.namespace();
    let jobs: Api<Job> = Api::namespaced(cluster.client(), ns);
    let pods: Api<Pod> = Api::namespaced(cluster.client(), ns);
    let pp = PostParams::default();
    for job in [
        shell_job("ok", "echo fine > /dev/termination-log", None),
        shell_job(
            "fails",
            "echo 'V2__bad.sql: syntax error' > /dev/termination-log; exit 3",
            Some("FallbackToLogsOnError"),
        ),
        shell_job(
            "logs",
            "echo first; echo 'last words' >&2; exit 1",
            Some("FallbackToLogsOnError"),
        ),
    ] {
        jobs.create(&pp, &job).await.unwrap();
    }
    let runner = cluster.job_runner().program("tool", "/bin/sh");
    for (name, phase, exit_code, message) in [
        ("ok", "Succeeded", 0, "fine"),
        ("fails", "Failed", 3, "V2__bad.sql: syntax error"),
        ("logs", "Failed", 1, "first\nlast words"),
    ] {
        let run = runner.run(ns, name).await.unwrap();
        assert_eq!(run.termination_message.trim_end(), message, "{name}");
        let listed = pods
            .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={name}")))
            .await
            .unwrap();
        assert_eq!(listed.items.len(), 1, "{name}: one Pod per run");
        let pod = &listed.items[0];
        assert_eq!(pod.name_any(), run.pod);
        assert!(pod.name_any().starts_with(&format!("{name}-")));
        let owner = &pod.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.controller),
            ("Job", name, Some(true))
        );
        let status = pod.status.as_ref().unwrap();
        assert_eq!(status.phase.as_deref(), Some(phase), "{name}");
        let terminated = status.container_statuses.as_ref().unwrap()[0]
            .state
            .as_ref()
            .and_then(|s| s.terminated.clone())
            .expect("terminated");
        assert_eq!(terminated.exit_code, exit_code, "{name}");
        assert_eq!(
            terminated.message.as_deref().map(str::trim_end),
            Some(message),
            "{name}"
        );
    }

    let pod_of = async |job: &str| {
        pods.list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}")))
            .await
            .unwrap()
            .items
            .remove(0)
            .name_any()
    };
    let orphan = pod_of("ok").await;
    jobs.delete("ok", &DeleteParams::default()).await.unwrap();
    wait_for(
        &pods,
        &orphan,
        "the Pod to be orphaned",
        |p: Option<&Pod>| p.is_some_and(|p| p.owner_references().is_empty()),
    )
    .await;
    let dependent = pod_of("fails").await;
    jobs.delete("fails", &DeleteParams::background())
        .await
        .unwrap();
    wait_for(
        &pods,
        &dependent,
        "the Pod to go with its Job",
        |p: Option<&Pod>| p.is_none(),
    )
    .await;
}
