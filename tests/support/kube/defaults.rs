//! Per-kind defaulting, as the API server's strategies and the controllers of a fresh
//! cluster would do it: Secret `stringData` folded into `data` and `type: Opaque`, Job
//! defaults (completions, parallelism, backoffLimit, selector and pod template labels),
//! the Namespace finalizer and phase, the status a CRD gets once accepted.

use serde_json::{Value, json};

use super::base64;
use super::managed::Scope;
use super::registry::ResourceType;
use super::status::{ApiError, ApiResult};
use super::store::meta_str;

/// Defaulting that depends on the kind (Secret stringData, Job defaults, Namespace
/// finalizer, CRD status).
pub(crate) fn prepare(
    rt: &ResourceType,
    old: Option<&Value>,
    obj: &mut Value,
    scope: Scope,
) -> ApiResult<()> {
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "secrets") => prepare_secret(obj)?,
        ("", "namespaces") => {
            let name = meta_str(obj, "name").to_string();
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
            match old {
                None => {
                    obj["spec"]["finalizers"] = json!(["kubernetes"]);
                    obj["status"] = json!({"phase": "Active"});
                }
                // only the namespace controller changes these (through /finalize)
                Some(old) if scope != Scope::Status => obj["spec"] = old["spec"].clone(),
                Some(_) => {}
            }
        }
        ("", "pods") if old.is_none() => obj["status"] = json!({"phase": "Pending"}),
        ("batch", "jobs") if old.is_none() => prepare_job(obj),
        ("apiextensions.k8s.io", "customresourcedefinitions") => prepare_crd(obj),
        _ => {}
    }
    Ok(())
}

fn prepare_secret(obj: &mut Value) -> ApiResult<()> {
    if let Some(string_data) = obj.as_object_mut().and_then(|o| o.remove("stringData"))
        && let Some(map) = string_data.as_object()
    {
        if !obj["data"].is_object() {
            obj["data"] = json!({});
        }
        for (k, v) in map {
            let text = v.as_str().unwrap_or_default();
            obj["data"][k] = json!(base64::encode(text.as_bytes()));
        }
    }
    if obj["type"].as_str().is_none_or(str::is_empty) {
        obj["type"] = json!("Opaque");
    }
    for (k, v) in obj["data"].as_object().into_iter().flatten() {
        if v.as_str().and_then(base64::decode).is_none() {
            return Err(ApiError::bad_request(format!(
                "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data in data[{k:?}]"
            )));
        }
    }
    Ok(())
}

fn prepare_job(obj: &mut Value) {
    let uid = meta_str(obj, "uid").to_string();
    let name = meta_str(obj, "name").to_string();
    let spec = &mut obj["spec"];
    if spec["parallelism"].is_null() && spec["completions"].is_null() {
        spec["completions"] = json!(1);
    }
    if spec["parallelism"].is_null() {
        spec["parallelism"] = json!(1);
    }
    if spec["backoffLimit"].is_null() && spec["backoffLimitPerIndex"].is_null() {
        spec["backoffLimit"] = json!(6);
    }
    if spec["completionMode"].is_null() {
        spec["completionMode"] = json!("NonIndexed");
    }
    if spec["suspend"].is_null() {
        spec["suspend"] = json!(false);
    }
    if spec["podReplacementPolicy"].is_null() && spec["podFailurePolicy"].is_null() {
        spec["podReplacementPolicy"] = json!("TerminatingOrFailed");
    }
    if spec["manualSelector"] != true {
        spec["selector"] = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
        let labels = &mut spec["template"]["metadata"]["labels"];
        for (k, v) in [
            ("batch.kubernetes.io/controller-uid", &uid),
            ("batch.kubernetes.io/job-name", &name),
            ("controller-uid", &uid),
            ("job-name", &name),
        ] {
            labels[k] = json!(v);
        }
    }
}

fn prepare_crd(obj: &mut Value) {
    let names = obj["spec"]["names"].clone();
    let storage: Vec<Value> = obj["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["storage"] == true)
        .map(|v| v["name"].clone())
        .collect();
    let now = super::store::now();
    // what the apiextensions controllers would set within a second
    obj["status"] = json!({
        "acceptedNames": names,
        "storedVersions": storage,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
    });
}
