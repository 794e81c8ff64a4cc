//! A stand-in for the Job controller (off on the real test cluster, absent in the fake):
//! runs a Job's first container as a local process and reports the outcome through the
//! Job's status subresource the way the real controller does, so that the status passes
//! the API server's validation (1.31+: `SuccessCriteriaMet` before `Complete`,
//! `FailureTarget` before `Failed`, `startTime`, `completionTime` only when complete,
//! no active/ready/terminating/uncounted pods once finished).
//!
//! The process gets:
//! - argv: the container's `command` + `args`, with `$(VAR)` references expanded from the
//!   container's environment as the kubelet does (`$$` escapes). The first word, or the
//!   image when there is no `command`, may be mapped to a local binary with
//!   [`JobRunner::program`]; lookup order: the exact first word, its file name, the
//!   image, the image without tag or digest.
//! - environment: only the container's (plus `PATH` and `HOME`): `envFrom` (ConfigMaps
//!   and Secrets, with `prefix`), then `env` (`value`, `valueFrom.secretKeyRef`,
//!   `configMapKeyRef`, `fieldRef` for metadata.name/namespace), resolved through the API.
//! - volumes: `configMap`, `secret`, `projected` (of those), `emptyDir` are written to a
//!   temporary directory, one subdirectory per volume.
//! - the rewrite rule: every occurrence of a `volumeMount`'s `mountPath` (longest first)
//!   in argv, env values and `workingDir` is replaced with that volume's temporary
//!   directory (plus `subPath`), where it stands as a whole path prefix: not preceded by
//!   a path character (letter, digit, `-`, `_`, `.`, `/`) and followed by the end, `/` or
//!   a non-path character. So `--dir=/migrations/0` becomes `--dir=/tmp/.../vol-0/0`,
//!   while a mount at `/m` leaves `/migrations` and `/var/m` alone.
//!
//! - the termination message: the container's `terminationMessagePath` (default
//!   `/dev/termination-log`) is a local file, rewritten like a mount path wherever it
//!   appears in argv, env values and `workingDir` (so a program told the path, e.g. by
//!   an argument or an env var the Job sets, writes there); see `job_pods.rs`.
//!
//! Each run is recorded as a Pod (`job_pods.rs`) labelled `batch.kubernetes.io/job-name`,
//! whose `status.containerStatuses[0].state.terminated` has the exit code and the
//! termination message, as operators read them.
//!
//! One attempt is made: success marks the Job Complete, failure marks it Failed with
//! reason `BackoffLimitExceeded` (retries are the operator's business to observe, not
//! this stand-in's to simulate).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

use super::cluster::eventually;
use super::job_pods;
use super::pod_env::{PodEnv, expand};
use super::store::now;

const JOB_CONTROLLER: &str = "servicedb-tests-job-controller";
/// Ceiling for a Job without `activeDeadlineSeconds`.
const DEFAULT_DEADLINE: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("job {job}: {message}")]
    Invalid { job: String, message: String },
    #[error("job {job}: cannot run {program:?}: {source}")]
    Spawn {
        job: String,
        program: String,
        source: std::io::Error,
    },
}

/// The outcome of one Job run.
#[derive(Clone, Debug)]
pub struct JobRun {
    pub namespace: String,
    pub name: String,
    pub succeeded: bool,
    pub exit_code: Option<i32>,
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub stdout: String,
    pub stderr: String,
    /// The Pod that records the run.
    pub pod: String,
    /// What the container's status reports as its termination message (may be empty).
    pub termination_message: String,
}

/// Plays the Job controller for tests.
#[derive(Clone)]
pub struct JobRunner {
    client: kube::Client,
    programs: BTreeMap<String, PathBuf>,
}

fn is_finished(job: &Job) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
}

fn image_without_tag(image: &str) -> &str {
    let image = image.split('@').next().unwrap_or(image);
    match image.rsplit_once(':') {
        // a ':' after the last '/' is a tag; before it, a registry port
        Some((name, tag)) if !tag.contains('/') => name,
        _ => image,
    }
}

impl JobRunner {
    pub fn new(client: kube::Client) -> JobRunner {
        JobRunner {
            client,
            programs: BTreeMap::new(),
        }
    }

    /// Runs `local` for containers whose first command word (or file name of it), or
    /// image (with or without tag), is `image_or_command`.
    pub fn program(mut self, image_or_command: &str, local: impl Into<PathBuf>) -> JobRunner {
        self.programs
            .insert(image_or_command.to_string(), local.into());
        self
    }

    fn map_program(&self, first: Option<&str>, image: &str) -> Option<PathBuf> {
        let file_name = first
            .and_then(|f| Path::new(f).file_name())
            .and_then(|f| f.to_str());
        [
            first,
            file_name,
            Some(image),
            Some(image_without_tag(image)),
        ]
        .into_iter()
        .flatten()
        .find_map(|k| self.programs.get(k).cloned())
    }

    /// Jobs that have not finished, in `namespace` (None: all namespaces the client may
    /// list) and matching `label_selector`, if any.
    pub async fn pending(
        &self,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<Vec<Job>, JobError> {
        let api: Api<Job> = match namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        };
        let mut lp = ListParams::default();
        if let Some(sel) = label_selector {
            lp = lp.labels(sel);
        }
        Ok(api
            .list(&lp)
            .await?
            .items
            .into_iter()
            .filter(|j| !is_finished(j) && j.metadata.deletion_timestamp.is_none())
            .collect())
    }

    /// Runs every unfinished Job (see [`JobRunner::pending`]), in namespace and name order.
    pub async fn run_pending(
        &self,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<Vec<JobRun>, JobError> {
        let mut runs = vec![];
        for job in self.pending(namespace, label_selector).await? {
            let ns = job.namespace().unwrap_or_default();
            runs.push(self.run(&ns, &job.name_any()).await?);
        }
        Ok(runs)
    }

    /// Waits (up to the default timeout) for an unfinished Job to appear, then runs it.
    pub async fn run_next(
        &self,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<JobRun, JobError> {
        let what = format!(
            "a pending Job in {} matching {:?}",
            namespace.unwrap_or("any namespace"),
            label_selector.unwrap_or("anything")
        );
        let (ns, name) = eventually(&what, || async {
            self.pending(namespace, label_selector)
                .await
                .ok()
                .and_then(|jobs| {
                    jobs.first()
                        .map(|j| (j.namespace().unwrap_or_default(), j.name_any()))
                })
        })
        .await;
        self.run(&ns, &name).await
    }

    /// Runs the Job `name` once and records the outcome in its status.
    pub async fn run(&self, namespace: &str, name: &str) -> Result<JobRun, JobError> {
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), namespace);
        let job = jobs.get(name).await?;
        let invalid = |message: String| JobError::Invalid {
            job: format!("{namespace}/{name}"),
            message,
        };
        let pod = job
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.clone())
            .ok_or_else(|| invalid("no pod template spec".into()))?;
        let container = pod
            .containers
            .first()
            .cloned()
            .ok_or_else(|| invalid("no containers".into()))?;
        let started = now();
        let dir = tempfile::tempdir().map_err(|e| invalid(format!("temporary directory: {e}")))?;
        let mounts = PodEnv {
            client: &self.client,
        }
        .write_volumes(
            namespace,
            dir.path(),
            pod.volumes.as_deref().unwrap_or_default(),
            &container,
        )
        .await
        .map_err(invalid)?;
        let mut mounts = mounts;
        let message_path = container
            .termination_message_path
            .clone()
            .unwrap_or_else(|| job_pods::DEFAULT_TERMINATION_MESSAGE_PATH.to_string());
        let message_file = dir.path().join("termination-log");
        std::fs::write(&message_file, "")
            .map_err(|e| invalid(format!("termination message file: {e}")))?;
        mounts.push((message_path, message_file.clone()));
        mounts.sort_by_key(|(mount, _)| std::cmp::Reverse(mount.len()));
        let rewrite = |s: &str| rewrite_mounts(s, &mounts);
        // the Pod exists before its container is configured (a missing Secret leaves it
        // Pending, as CreateContainerConfigError would)
        let pod_name = job_pods::create(&self.client, &job)
            .await
            .map_err(invalid)?;
        let env = PodEnv {
            client: &self.client,
        }
        .environment(namespace, &pod_name, &container)
        .await
        .map_err(invalid)?
        .into_iter()
        .map(|(k, v)| (k, rewrite(&v)))
        .collect::<BTreeMap<_, _>>();

        let command: Vec<String> = container.command.clone().unwrap_or_default();
        let args: Vec<String> = container.args.clone().unwrap_or_default();
        let image = container.image.clone().unwrap_or_default();
        let mut argv: Vec<String> = command
            .iter()
            .chain(args.iter())
            .map(|a| rewrite(&expand(a, &env)))
            .collect();
        match self.map_program(command.first().map(String::as_str), &image) {
            Some(local) if command.is_empty() => {
                argv.insert(0, local.to_string_lossy().into_owned())
            }
            Some(local) => argv[0] = local.to_string_lossy().into_owned(),
            None if command.is_empty() => {
                return Err(invalid(format!(
                    "image {image:?} has no command and no local program; map it with JobRunner::program"
                )));
            }
            None => {}
        }
        let workdir = container
            .working_dir
            .as_deref()
            .map(|w| PathBuf::from(rewrite(w)))
            .unwrap_or_else(|| dir.path().to_path_buf());
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).map_err(|e| invalid(format!("home directory: {e}")))?;
        job_pods::running(&self.client, namespace, &pod_name, &container, &started).await?;
        // the pod is running: what the controller reports before it ends
        jobs.patch_status(
            name,
            &PatchParams::apply(JOB_CONTROLLER).force(),
            &Patch::Apply(json!({
                "apiVersion": "batch/v1",
                "kind": "Job",
                "status": {"startTime": started, "active": 1, "ready": 0, "terminating": 0},
            })),
        )
        .await?;
        let mut cmd = tokio::process::Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &home)
            .envs(&env)
            .current_dir(&workdir)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let deadline = job
            .spec
            .as_ref()
            .and_then(|s| s.active_deadline_seconds)
            .map(|s| Duration::from_secs(s.max(1) as u64))
            .unwrap_or(DEFAULT_DEADLINE);
        let spawned = cmd.output();
        let output = match tokio::time::timeout(deadline, spawned).await {
            Ok(result) => Some(result.map_err(|source| JobError::Spawn {
                job: format!("{namespace}/{name}"),
                program: argv[0].clone(),
                source,
            })?),
            Err(_) => None,
        };
        let succeeded = output.as_ref().is_some_and(|o| o.status.success());
        let log = output
            .as_ref()
            .map(|o| {
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                )
            })
            .unwrap_or_default();
        let written = std::fs::read(&message_file).unwrap_or_default();
        let termination_message = job_pods::termination_message(
            &String::from_utf8_lossy(&written),
            container.termination_message_policy.as_deref(),
            !succeeded,
            &log,
        );
        // a process killed at the deadline has no exit code; the kubelet reports 137
        let exit_code = output
            .as_ref()
            .map(|o| o.status.code().unwrap_or(137))
            .unwrap_or(137);
        job_pods::finished(
            &self.client,
            namespace,
            &pod_name,
            &container,
            &job_pods::Ending {
                exit_code,
                message: &termination_message,
                started: &started,
                finished: &now(),
            },
        )
        .await?;
        let run = JobRun {
            namespace: namespace.into(),
            name: name.into(),
            succeeded,
            exit_code: output.as_ref().and_then(|o| o.status.code()),
            argv,
            env,
            stdout: output
                .as_ref()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default(),
            stderr: output
                .as_ref()
                .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
                .unwrap_or_default(),
            pod: pod_name.clone(),
            termination_message,
        };
        if !succeeded {
            eprintln!(
                "job {namespace}/{name} failed (exit {:?}{}):\n--- stdout\n{}\n--- stderr\n{}",
                run.exit_code,
                if output.is_none() {
                    ", deadline exceeded"
                } else {
                    ""
                },
                run.stdout,
                run.stderr
            );
        }
        let reason = if output.is_none() {
            "DeadlineExceeded"
        } else {
            "BackoffLimitExceeded"
        };
        jobs.patch_status(
            name,
            &PatchParams::apply(JOB_CONTROLLER).force(),
            &Patch::Apply(final_status(&started, succeeded, reason)),
        )
        .await?;
        Ok(run)
    }
}

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')
}

/// Applies the mount-path rewrite rule (see the module documentation) to `text`, in one
/// pass: a replacement is never matched again, so a local directory that itself lies under
/// a mount path (a temporary directory under a `/tmp` emptyDir) is left as it is.
/// `mounts` is sorted longest first, so the longest mount path wins.
fn rewrite_mounts(text: &str, mounts: &[(String, PathBuf)]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while let Some(c) = text[i..].chars().next() {
        let before = text[..i].chars().last();
        let found = (!before.is_some_and(is_path_char))
            .then(|| {
                mounts.iter().find(|(mount, _)| {
                    !mount.is_empty()
                        && text[i..].starts_with(mount.as_str())
                        && text[i + mount.len()..]
                            .chars()
                            .next()
                            .is_none_or(|c| c == '/' || !is_path_char(c))
                })
            })
            .flatten();
        match found {
            Some((mount, local)) => {
                out.push_str(&local.to_string_lossy());
                i += mount.len();
            }
            None => {
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    out
}

/// The status the Job controller writes when the (only) pod finished.
fn final_status(started: &str, succeeded: bool, failure_reason: &str) -> serde_json::Value {
    let finished = now();
    let condition = |kind: &str, reason: &str, message: &str| json!({"type": kind, "status": "True", "reason": reason, "message": message, "lastProbeTime": finished, "lastTransitionTime": finished});
    let mut status = json!({
        "startTime": started,
        "active": 0,
        "ready": 0,
        "terminating": 0,
        "uncountedTerminatedPods": {},
    });
    if succeeded {
        let reached = "Reached expected number of succeeded pods";
        status["succeeded"] = json!(1);
        status["completionTime"] = json!(finished);
        status["conditions"] = json!([
            condition("SuccessCriteriaMet", "CompletionsReached", reached),
            condition("Complete", "CompletionsReached", reached),
        ]);
    } else {
        let message = if failure_reason == "DeadlineExceeded" {
            "Job was active longer than specified deadline"
        } else {
            "Job has reached the specified backoff limit"
        };
        status["failed"] = json!(1);
        status["conditions"] = json!([
            condition("FailureTarget", failure_reason, message),
            condition("Failed", failure_reason, message),
        ]);
    }
    json!({"apiVersion": "batch/v1", "kind": "Job", "status": status})
}
