//! The Pod the Job controller stand-in creates for each run, as the real Job controller
//! and kubelet would leave it: named `<job>-xxxxx`, labelled `batch.kubernetes.io/job-name`
//! (and the template's labels), controlled by the Job (so it goes with it), `Running`
//! while the process runs, then `Succeeded` or `Failed` with
//! `status.containerStatuses[0].state.terminated.{exitCode, reason, message}`. The
//! message is what the process wrote to the container's `terminationMessagePath`
//! (default `/dev/termination-log`, rewritten to a local file like a mount path), or
//! with `terminationMessagePolicy: FallbackToLogsOnError` and an empty file after a
//! failure, the end of its output (the last 80 lines, at most 2048 bytes), as the
//! kubelet does; at most 4096 bytes.
//!
//! The Pod carries a scheduling gate, so that on a real cluster no scheduler or kubelet
//! ever picks it up: it is a record, the run happens locally.

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Container, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use super::cluster::DEFAULT_TIMEOUT;

/// Keeps the record Pod away from schedulers.
pub(crate) const SCHEDULING_GATE: &str = "servicedb.io/test-job-runner";
/// Where a container's termination message goes unless it says otherwise.
pub(crate) const DEFAULT_TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";
const MAX_MESSAGE_BYTES: usize = 4096;
const FALLBACK_LOG_BYTES: usize = 2048;
const FALLBACK_LOG_LINES: usize = 80;

/// The Pod the Job controller would create for `job`.
fn pod_for(job: &Job) -> Result<Value, String> {
    let name = job.name_any();
    let template = job
        .spec
        .as_ref()
        .map(|s| serde_json::to_value(&s.template).expect("JSON"))
        .ok_or("no spec")?;
    let mut labels = template["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    labels["batch.kubernetes.io/job-name"] = json!(name);
    labels["job-name"] = json!(name);
    if let Some(uid) = job.uid() {
        labels["batch.kubernetes.io/controller-uid"] = json!(uid);
        labels["controller-uid"] = json!(uid);
    }
    let owner = job.controller_owner_ref(&()).ok_or("the Job has no uid")?;
    let mut spec = template["spec"].clone();
    let mut gates = spec["schedulingGates"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    gates.push(json!({"name": SCHEDULING_GATE}));
    spec["schedulingGates"] = json!(gates);
    Ok(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": format!("{name}-"),
            "labels": labels,
            "annotations": template["metadata"]["annotations"],
            "ownerReferences": [owner],
        },
        "spec": spec,
    }))
}

/// Creates the record Pod of a run of `job`; returns its name. A missing ServiceAccount
/// (403 from its admission, e.g. before the namespace's `default` one exists) is waited
/// for, as the Job controller retries.
pub(crate) async fn create(client: &kube::Client, job: &Job) -> Result<String, String> {
    let ns = job.namespace().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let pod: Pod = serde_json::from_value(pod_for(job)?).map_err(|e| format!("pod: {e}"))?;
    let deadline = tokio::time::Instant::now() + DEFAULT_TIMEOUT;
    loop {
        match pods.create(&PostParams::default(), &pod).await {
            Ok(created) => return Ok(created.name_any()),
            Err(kube::Error::Api(s))
                if s.code == 403
                    && s.message.contains("service account")
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(format!("creating its Pod: {e}")),
        }
    }
}

fn container_status(container: &Container, state: Value) -> Value {
    json!({
        "name": container.name,
        "image": container.image.clone().unwrap_or_default(),
        "imageID": "",
        "ready": state.get("running").is_some(),
        "started": state.get("running").is_some(),
        "restartCount": 0,
        "state": state,
    })
}

/// Records that the container runs.
pub(crate) async fn running(
    client: &kube::Client,
    ns: &str,
    pod: &str,
    container: &Container,
    started: &str,
) -> Result<(), kube::Error> {
    let status = json!({"status": {
        "phase": "Running",
        "startTime": started,
        "containerStatuses": [container_status(container, json!({"running": {"startedAt": started}}))],
    }});
    Api::<Pod>::namespaced(client.clone(), ns)
        .patch_status(pod, &PatchParams::default(), &Patch::Merge(status))
        .await
        .map(|_| ())
}

/// How the container ended.
pub(crate) struct Ending<'a> {
    pub exit_code: i32,
    pub message: &'a str,
    pub started: &'a str,
    pub finished: &'a str,
}

/// Records that the container ended (the pod with it: one container, never restarted).
pub(crate) async fn finished(
    client: &kube::Client,
    ns: &str,
    pod: &str,
    container: &Container,
    end: &Ending<'_>,
) -> Result<(), kube::Error> {
    let (phase, reason) = if end.exit_code == 0 {
        ("Succeeded", "Completed")
    } else {
        ("Failed", "Error")
    };
    let mut terminated = json!({
        "exitCode": end.exit_code,
        "reason": reason,
        "startedAt": end.started,
        "finishedAt": end.finished,
    });
    if !end.message.is_empty() {
        terminated["message"] = json!(end.message);
    }
    let status = json!({"status": {
        "phase": phase,
        "containerStatuses": [container_status(container, json!({"terminated": terminated}))],
    }});
    Api::<Pod>::namespaced(client.clone(), ns)
        .patch_status(pod, &PatchParams::default(), &Patch::Merge(status))
        .await
        .map(|_| ())
}

/// Cuts `text` to at most `max` bytes, keeping its end when `keep_end` (on a character
/// boundary).
fn cut(text: &str, max: usize, keep_end: bool) -> &str {
    if text.len() <= max {
        return text;
    }
    if keep_end {
        let mut start = text.len() - max;
        while !text.is_char_boundary(start) {
            start += 1;
        }
        &text[start..]
    } else {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        &text[..end]
    }
}

/// The termination message the kubelet would report: the file's content, or, under
/// `FallbackToLogsOnError` when the file is empty and the container failed, the end of
/// its log (`output`: stdout then stderr, as one log).
pub(crate) fn termination_message(
    file_content: &str,
    policy: Option<&str>,
    failed: bool,
    output: &str,
) -> String {
    let fall_back = failed && policy == Some("FallbackToLogsOnError");
    if !file_content.is_empty() || !fall_back {
        return cut(file_content, MAX_MESSAGE_BYTES, false).to_string();
    }
    let lines: Vec<&str> = output.lines().collect();
    let tail = lines[lines.len().saturating_sub(FALLBACK_LOG_LINES)..].join("\n");
    cut(&tail, FALLBACK_LOG_BYTES, true).to_string()
}
