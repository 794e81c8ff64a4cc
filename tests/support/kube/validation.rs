//! The validation a real API server would fail a write on with 422 Invalid, where
//! operator code could plausibly get it wrong: names, labels (63-character values!),
//! finalizer names, owner references, Secret keys and immutability, Job templates and the
//! Job status transitions of 1.31+ (which a Job controller stand-in must follow), CRDs.

use serde_json::Value;

use super::admission::custom_schema;
use super::managed::Scope;
use super::registry::{self, Registry, ResourceType};
use super::schema_validation;
use super::status::{ApiError, ApiResult, Cause};
use super::store::{finalizers, meta_str};

fn is_alnum(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

fn dns_label(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
}

fn dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(|part| dns_label(part, 63))
}

/// The name part of a label key, or a label value: 63 characters of `[-_.A-Za-z0-9]`,
/// starting and ending alphanumeric.
fn label_name(s: &str) -> bool {
    s.len() <= 63
        && s.chars()
            .all(|c| is_alnum(c) || matches!(c, '-' | '_' | '.'))
        && s.starts_with(is_alnum)
        && s.ends_with(is_alnum)
}

fn qualified_name(key: &str) -> Option<String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && !dns_subdomain(p)
    {
        return Some("prefix part must be a lowercase RFC 1123 subdomain".into());
    }
    (name.is_empty() || !label_name(name)).then(|| {
        "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc'), and must be no more than 63 characters".into()
    })
}

fn label_value(v: &str) -> Option<String> {
    (!v.is_empty() && !label_name(v)).then(|| {
        if v.len() > 63 {
            "must be no more than 63 characters".into()
        } else {
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character".into()
        }
    })
}

fn config_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 253
        && k.chars()
            .all(|c| is_alnum(c) || matches!(c, '-' | '_' | '.'))
        && k != "."
        && k != ".."
}

fn labels_causes(labels: &Value, field: &str, causes: &mut Vec<Cause>) {
    for (k, v) in labels.as_object().into_iter().flatten() {
        if let Some(msg) = qualified_name(k) {
            causes.push(Cause::invalid(field, format!("{k:?}: {msg}")));
        }
        match v.as_str() {
            Some(v) => {
                if let Some(msg) = label_value(v) {
                    causes.push(Cause::invalid(field, format!("{v:?}: {msg}")));
                }
            }
            None => causes.push(Cause::invalid(
                field,
                format!("{k:?}: label values must be strings"),
            )),
        }
    }
}

fn metadata_causes(rt: &ResourceType, old: Option<&Value>, obj: &Value, causes: &mut Vec<Cause>) {
    let name = meta_str(obj, "name");
    if old.is_none() {
        let ok = if rt.plural == "namespaces" && rt.group.is_empty() {
            dns_label(name, 63)
        } else {
            dns_subdomain(name)
        };
        if !ok {
            causes.push(Cause::invalid(
                "metadata.name",
                format!("{name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"),
            ));
        }
    }
    let meta = &obj["metadata"];
    labels_causes(&meta["labels"], "metadata.labels", causes);
    for k in meta["annotations"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
    {
        if let Some(msg) = qualified_name(k) {
            causes.push(Cause::invalid(
                "metadata.annotations",
                format!("{k:?}: {msg}"),
            ));
        }
    }
    for f in finalizers(obj) {
        if let Some(msg) = qualified_name(&f) {
            causes.push(Cause::invalid(
                "metadata.finalizers",
                format!("{f:?}: {msg}"),
            ));
        }
    }
    let refs = meta["ownerReferences"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (i, r) in refs.iter().enumerate() {
        for field in ["apiVersion", "kind", "name", "uid"] {
            if r[field].as_str().is_none_or(str::is_empty) {
                causes.push(Cause::required(
                    format!("metadata.ownerReferences[{i}].{field}"),
                    "must not be empty",
                ));
            }
        }
    }
    if refs.iter().filter(|r| r["controller"] == true).count() > 1 {
        causes.push(Cause::invalid(
            "metadata.ownerReferences",
            "Only one reference can have Controller set to true",
        ));
    }
}

fn cond_true(status: &Value, kind: &str) -> bool {
    status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == kind && c["status"] == "True")
}

fn job_causes(old: Option<&Value>, obj: &Value, scope: Scope, causes: &mut Vec<Cause>) {
    let spec = &obj["spec"];
    let template = &spec["template"]["spec"];
    if scope != Scope::Status {
        match template["restartPolicy"].as_str() {
            Some("OnFailure" | "Never") => {}
            _ => causes.push(Cause::required(
                "spec.template.spec.restartPolicy",
                "valid values: \"OnFailure\", \"Never\"",
            )),
        }
        let containers = template["containers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if containers.is_empty() {
            causes.push(Cause::required(
                "spec.template.spec.containers",
                "must have at least one container",
            ));
        }
        for (i, c) in containers.iter().enumerate() {
            for field in ["name", "image"] {
                if c[field].as_str().is_none_or(str::is_empty) {
                    causes.push(Cause::required(
                        format!("spec.template.spec.containers[{i}].{field}"),
                        "",
                    ));
                }
            }
        }
        labels_causes(
            &spec["template"]["metadata"]["labels"],
            "spec.template.metadata.labels",
            causes,
        );
        if let Some(old) = old {
            for field in [
                "template",
                "selector",
                "completionMode",
                "completions",
                "podFailurePolicy",
                "backoffLimitPerIndex",
                "managedBy",
                "successPolicy",
            ] {
                if old["spec"][field] != spec[field] {
                    causes.push(Cause::invalid(
                        format!("spec.{field}"),
                        "field is immutable",
                    ));
                }
            }
        }
    }
    let (Scope::Status, Some(old)) = (scope, old) else {
        return;
    };
    let (o, n) = (&old["status"], &obj["status"]);
    let complete = cond_true(n, "Complete");
    let failed = cond_true(n, "Failed");
    let finished = complete || failed;
    let count = |s: &Value, f: &str| s[f].as_i64().unwrap_or(0);
    let mut bad =
        |field: &str, msg: &str| causes.push(Cause::invalid(format!("status.{field}"), msg));
    if complete && !cond_true(o, "Complete") && !cond_true(n, "SuccessCriteriaMet") {
        bad(
            "conditions",
            "cannot set Complete=True condition without the SuccessCriteriaMet=true condition",
        );
    }
    if failed && !cond_true(o, "Failed") && !cond_true(n, "FailureTarget") {
        bad(
            "conditions",
            "cannot set Failed=True condition without the FailureTarget=true condition",
        );
    }
    if complete && failed {
        bad(
            "conditions",
            "cannot set Complete=True and Failed=true conditions",
        );
    }
    if complete && n["completionTime"].is_null() {
        bad(
            "completionTime",
            "completionTime is required for Complete jobs",
        );
    }
    if !complete && !n["completionTime"].is_null() {
        bad(
            "completionTime",
            "cannot set completionTime when there is no Complete=True condition",
        );
    }
    if finished && n["startTime"].is_null() {
        bad("startTime", "startTime is required for finished job");
    }
    if finished && count(n, "active") > 0 {
        bad("active", "active>0 is invalid for finished job");
    }
    if finished && count(n, "terminating") > 0 {
        bad("terminating", "terminating>0 is invalid for finished job");
    }
    let uncounted = &n["uncountedTerminatedPods"];
    let uncounted_len = |f: &str| uncounted[f].as_array().map_or(0, Vec::len);
    if finished && uncounted_len("succeeded") + uncounted_len("failed") > 0 {
        bad(
            "uncountedTerminatedPods",
            "uncountedTerminatedPods needs to be empty for finished job",
        );
    }
    if count(n, "ready") > count(n, "active") {
        bad("ready", "cannot set more ready pods than active");
    }
    for kind in ["Complete", "Failed", "FailureTarget"] {
        if cond_true(o, kind) && !cond_true(n, kind) {
            bad(
                "conditions",
                &format!("cannot disable the terminal {kind}=True condition"),
            );
        }
    }
    for counter in ["succeeded", "failed"] {
        if count(n, counter) < count(o, counter) {
            bad(counter, &format!("cannot decrease the {counter} counter"));
        }
    }
    if !o["completionTime"].is_null()
        && !n["completionTime"].is_null()
        && o["completionTime"] != n["completionTime"]
    {
        bad("completionTime", "completionTime cannot be mutated");
    }
}

fn secret_causes(old: Option<&Value>, obj: &Value, causes: &mut Vec<Cause>) {
    for field in ["data", "binaryData"] {
        for k in obj[field].as_object().into_iter().flatten().map(|(k, _)| k) {
            if !config_key(k) {
                causes.push(Cause::invalid(
                    format!("{field}[{k}]"),
                    "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
                ));
            }
        }
    }
    if let Some(old) = old {
        if obj["kind"] == "Secret" && old["type"] != obj["type"] {
            causes.push(Cause::invalid("type", "field is immutable"));
        }
        if old["immutable"] == true
            && (old["data"] != obj["data"] || old["binaryData"] != obj["binaryData"])
        {
            causes.push(Cause::forbidden(
                "data",
                "field is immutable when `immutable` is set",
            ));
        }
    }
}

/// events.k8s.io/v1 Events, as `ValidateEventCreate` checks them (on the internal
/// core type, hence its field names): what the reporter must fill in, the length limits
/// (a note over 1024 characters is refused), and the namespace of an Event about a
/// cluster-scoped object (`default` or `kube-system` only).
fn event_causes(obj: &Value, causes: &mut Vec<Cause>) {
    let text = |f: &str| obj[f].as_str().unwrap_or_default();
    for (field, json_field, limit) in [
        ("reportingController", "reportingController", None),
        ("reportingInstance", "reportingInstance", Some(128)),
        ("action", "action", Some(128)),
        ("reason", "reason", Some(128)),
    ] {
        let value = text(json_field);
        if value.is_empty() {
            causes.push(Cause::required(field, ""));
        } else if let Some(limit) = limit
            && value.len() > limit
        {
            causes.push(Cause::invalid(
                field,
                format!("\"\": can have at most {limit} characters"),
            ));
        }
    }
    // bytes, as Go's len()
    if text("note").len() > 1024 {
        causes.push(Cause::invalid(
            "message",
            "\"\": can have at most 1024 characters",
        ));
    }
    if text("eventTime").is_empty() {
        causes.push(Cause::required("eventTime", ""));
    }
    if !matches!(text("type"), "Normal" | "Warning") {
        causes.push(Cause::invalid(
            "type",
            format!("\"\": has invalid value: {}", text("type")),
        ));
    }
    let ns = meta_str(obj, "namespace");
    if obj["regarding"]["namespace"]
        .as_str()
        .is_none_or(str::is_empty)
        && !matches!(ns, "default" | "kube-system")
    {
        causes.push(Cause::invalid(
            "involvedObject.namespace",
            "\"\": does not match event.namespace",
        ));
    }
    let series = &obj["series"];
    if series.is_object() {
        if series["count"].as_i64().unwrap_or(0) < 2 {
            causes.push(Cause::invalid("series.count", "should be at least 2"));
        }
        if series["lastObservedTime"]
            .as_str()
            .is_none_or(str::is_empty)
        {
            causes.push(Cause::required("series.lastObservedTime", ""));
        }
    }
}

/// Fails a write the real API server would refuse with 422 Invalid.
pub(crate) fn validate(
    registry: &Registry,
    rt: &ResourceType,
    old: Option<&Value>,
    obj: &Value,
    scope: Scope,
) -> ApiResult<()> {
    let mut causes = vec![];
    metadata_causes(rt, old, obj, &mut causes);
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "secrets" | "configmaps") => secret_causes(old, obj, &mut causes),
        ("batch", "jobs") => job_causes(old, obj, scope, &mut causes),
        ("events.k8s.io", "events") => event_causes(obj, &mut causes),
        ("apiextensions.k8s.io", "customresourcedefinitions") => match registry::from_crd(obj) {
            Err(e) => causes.push(Cause::invalid("spec", e)),
            Ok(t) => {
                let expected = format!("{}.{}", t.plural, t.group);
                if meta_str(obj, "name") != expected {
                    causes.push(Cause::invalid(
                        "metadata.name",
                        format!("must be spec.names.plural+\".\"+spec.group ({expected})"),
                    ));
                }
                let taken = registry.all().any(|other| {
                    !other.custom && other.group == t.group && other.plural == t.plural
                });
                if taken {
                    causes.push(Cause::invalid(
                        "spec.group",
                        "a built-in kind already uses this group and plural",
                    ));
                }
            }
        },
        _ => {}
    }
    if let Some(schema) = custom_schema(rt) {
        causes.extend(schema_validation::validate(schema, obj));
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(
            &rt.resource(),
            meta_str(obj, "name"),
            causes,
        ))
    }
}
