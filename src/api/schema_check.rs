//! Checks a manifest against the openAPIV3Schema of the CRDs `servicedb crd` prints, the way
//! the API server does with strict field validation (`kubectl apply`'s default): unknown
//! fields, types, enums, required fields, bounds. `servicedb dev` checks with this before it
//! reads a resource, so a manifest dev accepts is one the cluster accepts, from the same
//! schema.
//!
//! Not covered: `pattern` and CEL rules; the unit tests fail if the generated CRDs ever use
//! a keyword this module does not check.

use std::collections::BTreeSet;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use serde_json::Value;

use super::crd::crds;

/// One problem, at a field path such as `spec.app.connectionLimit` or `spec.roles[1].access`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct SchemaError {
    pub path: String,
    pub message: String,
}

/// A document of the servicedb.io group that no CRD serves.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnknownType {
    #[error("kind {kind:?} does not exist in {group} (known kinds: {known})")]
    Kind {
        kind: String,
        group: String,
        known: String,
    },
    #[error("{kind} is not served as {api_version} (served: {served})")]
    Version {
        kind: String,
        api_version: String,
        served: String,
    },
}

/// ObjectMeta fields a client may send; the API server refuses others.
const METADATA_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "labels",
    "annotations",
    "finalizers",
    "ownerReferences",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

/// The schema for `apiVersion`/`kind` from the CRDs, or why there is none.
pub fn schema_for(api_version: &str, kind: &str) -> Result<JSONSchemaProps, UnknownType> {
    schema_in(&crds(), api_version, kind)
}

fn schema_in(
    crds: &[CustomResourceDefinition],
    api_version: &str,
    kind: &str,
) -> Result<JSONSchemaProps, UnknownType> {
    let (group, version) = api_version.split_once('/').unwrap_or((api_version, ""));
    let Some(crd) = crds
        .iter()
        .find(|c| c.spec.group == group && c.spec.names.kind == kind)
    else {
        let known: Vec<&str> = crds
            .iter()
            .filter(|c| c.spec.group == group)
            .map(|c| c.spec.names.kind.as_str())
            .collect();
        return Err(UnknownType::Kind {
            kind: kind.to_string(),
            group: group.to_string(),
            known: known.join(", "),
        });
    };
    let served = || {
        crd.spec
            .versions
            .iter()
            .filter(|v| v.served)
            .map(|v| format!("{group}/{}", v.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    crd.spec
        .versions
        .iter()
        .find(|v| v.served && v.name == version)
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.clone())
        .ok_or_else(|| UnknownType::Version {
            kind: kind.to_string(),
            api_version: api_version.to_string(),
            served: served(),
        })
}

/// Checks a whole object (apiVersion, kind, metadata, spec, status). Drops `null` values of
/// non-nullable fields first, as the API server prunes them, so the typed read that follows
/// sees what the cluster would store.
pub fn check_object(schema: &JSONSchemaProps, value: &mut Value) -> Vec<SchemaError> {
    let mut errors = Vec::new();
    if let Some(meta) = value.get("metadata") {
        check_metadata(meta, &mut errors);
    }
    // Every object has these; the API server checks them itself, the CRD schema leaves
    // them out.
    let mut envelope = serde_json::Map::new();
    if let Some(map) = value.as_object_mut() {
        for key in ["apiVersion", "kind", "metadata"] {
            if let Some(v) = map.remove(key) {
                envelope.insert(key.to_string(), v);
            }
        }
    }
    check(schema, value, "", &mut errors);
    if let Some(map) = value.as_object_mut() {
        map.extend(envelope);
    }
    errors
}

fn check_metadata(meta: &Value, errors: &mut Vec<SchemaError>) {
    let Some(map) = meta.as_object() else {
        return;
    };
    for key in map.keys() {
        if !METADATA_FIELDS.contains(&key.as_str()) {
            errors.push(unknown(&join("metadata", key)));
        }
    }
    let fail = |errors: &mut Vec<SchemaError>, field: String, what: &str| {
        errors.push(SchemaError {
            path: format!("metadata.{field}"),
            message: format!("must be {what}"),
        })
    };
    for key in ["name", "namespace", "generateName"] {
        if map.get(key).is_some_and(|v| !v.is_string()) {
            fail(errors, key.to_string(), "a string");
        }
    }
    for key in ["labels", "annotations"] {
        match map.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (k, v) in m {
                    if !v.is_string() {
                        fail(errors, format!("{key}.{k}"), "a string");
                    }
                }
            }
            Some(_) => fail(errors, key.to_string(), "a map of strings"),
        }
    }
    if map.get("name").is_some_and(|v| !v.is_string()) {
        return;
    }
    if !map.get("name").is_some_and(Value::is_string) {
        errors.push(SchemaError {
            path: "metadata.name".to_string(),
            message: "Required value: every resource needs a name".to_string(),
        });
    }
}

fn unknown(path: &str) -> SchemaError {
    SchemaError {
        path: path.to_string(),
        message: "unknown field".to_string(),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "a list".to_string(),
        Value::Object(_) => "an object".to_string(),
    }
}

fn check(schema: &JSONSchemaProps, value: &mut Value, path: &str, errors: &mut Vec<SchemaError>) {
    let mut err = |message: String| {
        errors.push(SchemaError {
            path: if path.is_empty() { "<root>" } else { path }.to_string(),
            message,
        })
    };
    if value.is_null() {
        if schema.nullable != Some(true) {
            err("must not be null".to_string());
        }
        return;
    }
    if schema.x_kubernetes_int_or_string == Some(true) {
        if !(value.is_string() || value.is_i64() || value.is_u64()) {
            err(format!(
                "must be an integer or a string, not {}",
                describe(value)
            ));
        }
        return;
    }
    let type_ok = match schema.type_.as_deref() {
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        _ => true,
    };
    if !type_ok {
        let t = schema.type_.as_deref().unwrap_or("?");
        err(format!("must be of type {t}, not {}", describe(value)));
        return;
    }
    if let Some(allowed) = &schema.enum_
        && !allowed.iter().any(|a| &a.0 == value)
    {
        let list: Vec<String> = allowed.iter().map(|a| a.0.to_string()).collect();
        err(format!(
            "unsupported value {}: supported values: {}",
            value,
            list.join(", ")
        ));
        return;
    }
    check_bounds(schema, value, &mut err);
    match value {
        Value::Object(map) => {
            // Nulls the API server would prune: removed, not reported.
            let prunable: Vec<String> = map
                .iter()
                .filter(|(k, v)| {
                    v.is_null()
                        && schema
                            .properties
                            .as_ref()
                            .and_then(|p| p.get(*k))
                            .is_some_and(|p| p.nullable != Some(true))
                })
                .map(|(k, _)| k.clone())
                .collect();
            for k in prunable {
                map.remove(&k);
            }
            for required in schema.required.iter().flatten() {
                if !map.contains_key(required) {
                    errors.push(SchemaError {
                        path: join(path, required),
                        message: "Required value".to_string(),
                    });
                }
            }
            let open = schema.x_kubernetes_preserve_unknown_fields == Some(true);
            for (key, v) in map.iter_mut() {
                let at = join(path, key);
                if let Some(p) = schema.properties.as_ref().and_then(|p| p.get(key)) {
                    check(p, v, &at, errors);
                } else {
                    match &schema.additional_properties {
                        Some(JSONSchemaPropsOrBool::Schema(p)) => check(p, v, &at, errors),
                        Some(JSONSchemaPropsOrBool::Bool(true)) => {}
                        _ if open => {}
                        _ => errors.push(unknown(&at)),
                    }
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                let at = format!("{path}[{i}]");
                match &schema.items {
                    Some(JSONSchemaPropsOrArray::Schema(p)) => check(p, v, &at, errors),
                    Some(JSONSchemaPropsOrArray::Schemas(list)) => {
                        if let Some(p) = list.get(i) {
                            check(p, v, &at, errors)
                        }
                    }
                    None => {}
                }
            }
            check_list_keys(schema, items, path, errors);
        }
        _ => {}
    }
}

fn check_bounds(schema: &JSONSchemaProps, value: &Value, err: &mut impl FnMut(String)) {
    if let Some(n) = value.as_f64() {
        let (lo, hi) = match schema.format.as_deref() {
            Some("int32") => (Some(f64::from(i32::MIN)), Some(f64::from(i32::MAX))),
            _ => (None, None),
        };
        if let Some(min) = schema.minimum.or(lo)
            && n < min
        {
            err(format!("must be at least {min}, not {n}"));
        }
        if let Some(max) = schema.maximum.or(hi)
            && n > max
        {
            err(format!("must be at most {max}, not {n}"));
        }
    }
    let len = match value {
        Value::String(s) => Some((s.chars().count(), schema.min_length, schema.max_length)),
        Value::Array(a) => Some((a.len(), schema.min_items, schema.max_items)),
        _ => None,
    };
    if let Some((len, min, max)) = len {
        let len = len as i64;
        if let Some(min) = min
            && len < min
        {
            err(format!("must have at least {min} item(s) or character(s)"));
        }
        if let Some(max) = max
            && len > max
        {
            err(format!("must have at most {max} item(s) or character(s)"));
        }
    }
}

/// `x-kubernetes-list-type: set` and `map`: no duplicate items or keys.
fn check_list_keys(
    schema: &JSONSchemaProps,
    items: &[Value],
    path: &str,
    errors: &mut Vec<SchemaError>,
) {
    let keys: Vec<String> = match schema.x_kubernetes_list_type.as_deref() {
        Some("set") => items.iter().map(Value::to_string).collect(),
        Some("map") => {
            let fields = schema
                .x_kubernetes_list_map_keys
                .clone()
                .unwrap_or_default();
            items
                .iter()
                .map(|item| {
                    fields
                        .iter()
                        .map(|f| item.get(f).map(Value::to_string).unwrap_or_default())
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .collect()
        }
        _ => return,
    };
    let mut seen = BTreeSet::new();
    for (i, key) in keys.iter().enumerate() {
        if !seen.insert(key) {
            errors.push(SchemaError {
                path: format!("{path}[{i}]"),
                message: format!("Duplicate value: {key}"),
            });
        }
    }
}

/// Schema keywords that constrain values but that `check` does not evaluate, by path.
pub fn unchecked_keywords(schema: &JSONSchemaProps, path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut flag = |present: bool, what: &str| {
        if present {
            out.push(format!("{path}: {what}"));
        }
    };
    flag(schema.pattern.is_some(), "pattern");
    flag(schema.one_of.is_some(), "oneOf");
    flag(schema.any_of.is_some(), "anyOf");
    flag(schema.all_of.is_some(), "allOf");
    flag(schema.not.is_some(), "not");
    flag(schema.multiple_of.is_some(), "multipleOf");
    flag(schema.unique_items.is_some(), "uniqueItems");
    flag(schema.pattern_properties.is_some(), "patternProperties");
    flag(
        schema.min_properties.is_some() || schema.max_properties.is_some(),
        "min/maxProperties",
    );
    flag(
        schema.x_kubernetes_validations.is_some(),
        "x-kubernetes-validations",
    );
    flag(
        schema.exclusive_minimum.is_some() || schema.exclusive_maximum.is_some(),
        "exclusiveMinimum/Maximum",
    );
    for (k, p) in schema.properties.iter().flatten() {
        out.extend(unchecked_keywords(p, &join(path, k)));
    }
    if let Some(JSONSchemaPropsOrBool::Schema(p)) = &schema.additional_properties {
        out.extend(unchecked_keywords(p, &format!("{path}.*")));
    }
    if let Some(JSONSchemaPropsOrArray::Schema(p)) = &schema.items {
        out.extend(unchecked_keywords(p, &format!("{path}[]")));
    }
    out
}

#[cfg(test)]
mod tests;
