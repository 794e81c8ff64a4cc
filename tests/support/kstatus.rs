//! kstatus, the health rules Flux (`wait: true`, `healthChecks`) and `kubectl wait`-style
//! tools apply to any resource, ported from sigs.k8s.io/cli-utils
//! `pkg/kstatus/status/{status,generic}.go` (`Compute`, `checkGenericProperties`,
//! `checkGeneration`, `checkReadyCondition`) for custom resources, which have no
//! kind-specific rules. In order, the first that applies wins:
//!
//! 1. `metadata.deletionTimestamp` set: Terminating.
//! 2. `status.observedGeneration` present and not `metadata.generation`: InProgress
//!    (LatestGenerationNotObserved).
//! 3. The first condition that is `Reconciling=True` (InProgress) or `Stalled=True`
//!    (Failed), in list order.
//! 4. `Ready=True`: Current; `Ready=False` or `Unknown`: InProgress (never Failed).
//! 5. Otherwise Current, also with no status at all (kstatus's "abnormal-true" caveat).
//!
//! A field of the wrong type (a string generation) is an error, as `unstructured.Nested*`
//! makes it one.

// Only some test binaries use it.
#![allow(dead_code)]

use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    InProgress,
    Failed,
    Current,
    Terminating,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KStatus {
    pub status: Status,
    pub message: String,
}

fn result(status: Status, message: impl Into<String>) -> KStatus {
    KStatus {
        status,
        message: message.into(),
    }
}

/// An integer field, None when absent, an error when it is not an integer.
fn int(obj: &Value, path: &[&str]) -> Result<Option<i64>, String> {
    let mut v = obj;
    for key in path {
        match v.get(key) {
            Some(next) => v = next,
            None => return Ok(None),
        }
    }
    match v {
        Value::Null => Ok(None),
        v => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| format!("{} accessor error: {v} is not an int64", path.join("."))),
    }
}

fn conditions(obj: &Value) -> Vec<(&str, &str, &str, &str)> {
    obj["status"]["conditions"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|c| {
                    let s = |k: &str| c[k].as_str().unwrap_or_default();
                    (s("type"), s("status"), s("reason"), s("message"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The kstatus of a custom resource (as JSON, the whole object).
pub fn compute(obj: &Value) -> Result<KStatus, String> {
    match &obj["metadata"]["deletionTimestamp"] {
        Value::Null => {}
        Value::String(s) if s.is_empty() => {}
        Value::String(_) => {
            return Ok(result(
                Status::Terminating,
                "Resource scheduled for deletion",
            ));
        }
        other => {
            return Err(format!(
                "metadata.deletionTimestamp is not a string: {other}"
            ));
        }
    }
    if let Some(generation) = int(obj, &["metadata", "generation"])?
        && let Some(observed) = int(obj, &["status", "observedGeneration"])?
        && observed != generation
    {
        let kind = obj["kind"].as_str().unwrap_or_default();
        return Ok(result(
            Status::InProgress,
            format!(
                "{kind} generation is {generation}, but latest observed generation is {observed}"
            ),
        ));
    }
    let conds = conditions(obj);
    for (type_, status, _, message) in &conds {
        match (*type_, *status) {
            ("Reconciling", "True") => return Ok(result(Status::InProgress, *message)),
            ("Stalled", "True") => return Ok(result(Status::Failed, *message)),
            _ => {}
        }
    }
    for (type_, status, _, message) in &conds {
        if *type_ != "Ready" {
            continue;
        }
        match *status {
            "True" => return Ok(result(Status::Current, "Resource is Ready")),
            "False" | "Unknown" => return Ok(result(Status::InProgress, *message)),
            _ => {}
        }
    }
    Ok(result(Status::Current, "Resource is current"))
}
