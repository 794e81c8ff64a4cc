//! What the apiextensions-apiserver does to a custom resource before it validates it,
//! from the storage version's structural `openAPIV3Schema` (`schema/pruning` and
//! `schema/defaulting` of apiextensions-apiserver):
//! - pruning: fields the schema does not specify are dropped, and reported (as
//!   `spec.x`, `spec.items[0].y`) so that `fieldValidation=Strict` can refuse them and
//!   `Warn` can warn (server-side apply refuses them outright: `write.rs`). Kept: `apiVersion`, `kind` and `metadata` at the root and in
//!   `x-kubernetes-embedded-resource` objects (metadata cut down to ObjectMeta's
//!   fields), everything under `x-kubernetes-preserve-unknown-fields` that no property
//!   specifies, map values under `additionalProperties`.
//! - defaulting: a property with a `default` that is missing (or null, where not
//!   `nullable`) gets it, level by level, so defaults inside a defaulted object apply
//!   too; other non-nullable nulls are dropped.

use serde_json::{Map, Value};

/// The fields of ObjectMeta; anything else under `metadata` is dropped.
const OBJECT_META: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

pub(crate) fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

pub(crate) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// The schema of the value under `key` of an object with schema `s`.
pub(crate) enum Sub<'a> {
    Schema(&'a Value),
    /// `additionalProperties: true`: anything goes.
    Anything,
    /// Not specified: pruned.
    Unknown,
}

pub(crate) fn sub_schema<'a>(s: &'a Value, key: &str) -> Sub<'a> {
    if let Some(prop) = s["properties"].get(key) {
        return Sub::Schema(prop);
    }
    match &s["additionalProperties"] {
        Value::Object(_) => Sub::Schema(&s["additionalProperties"]),
        Value::Bool(true) => Sub::Anything,
        _ => Sub::Unknown,
    }
}

fn preserves(s: &Value) -> bool {
    s["x-kubernetes-preserve-unknown-fields"] == true
}

pub(crate) fn embedded(s: &Value) -> bool {
    s["x-kubernetes-embedded-resource"] == true
}

/// Drops the fields `schema` does not specify from the custom resource `obj`; returns
/// their paths.
pub(crate) fn prune(schema: &Value, obj: &mut Value) -> Vec<String> {
    let mut pruned = vec![];
    prune_object_root(obj, Some(schema), "", &mut pruned, preserves(schema));
    pruned
}

/// The root, or an embedded resource: `apiVersion`/`kind` strings and `metadata` stay.
fn prune_object_root(
    x: &mut Value,
    s: Option<&Value>,
    path: &str,
    pruned: &mut Vec<String>,
    skip: bool,
) {
    let Value::Object(map) = x else {
        return;
    };
    for field in ["apiVersion", "kind"] {
        if map.get(field).is_some_and(|v| !v.is_string())
            && s.is_none_or(|s| s["properties"].get(field).is_none())
        {
            map.remove(field);
            pruned.push(child(path, field));
        }
    }
    if let Some(Value::Object(meta)) = map.get_mut("metadata") {
        let meta_path = child(path, "metadata");
        meta.retain(|k, _| {
            let known = OBJECT_META.contains(&k.as_str());
            if !known {
                pruned.push(child(&meta_path, k));
            }
            known
        });
    }
    prune_fields(map, s, path, pruned, skip, true);
}

fn prune_fields(
    map: &mut Map<String, Value>,
    s: Option<&Value>,
    path: &str,
    pruned: &mut Vec<String>,
    skip: bool,
    resource_root: bool,
) {
    let keys: Vec<String> = map.keys().cloned().collect();
    for k in keys {
        if resource_root && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        let p = child(path, &k);
        let value = map.get_mut(&k).expect("a key of this map");
        match s.map(|s| sub_schema(s, &k)) {
            Some(Sub::Schema(sub)) => prune_value(value, Some(sub), &p, pruned),
            Some(Sub::Anything) => {}
            Some(Sub::Unknown) | None if skip => {}
            Some(Sub::Unknown) | None => {
                map.remove(&k);
                pruned.push(p);
            }
        }
    }
}

fn prune_value(x: &mut Value, s: Option<&Value>, path: &str, pruned: &mut Vec<String>) {
    let skip = s.is_some_and(preserves);
    if s.is_some_and(embedded) {
        return prune_object_root(x, s, path, pruned, skip);
    }
    match x {
        Value::Object(map) => prune_fields(map, s, path, pruned, skip, false),
        Value::Array(items) => {
            let item_schema = s.map(|s| &s["items"]).filter(|i| i.is_object());
            for (i, v) in items.iter_mut().enumerate() {
                match item_schema {
                    // under preserve-unknown-fields, unspecified items stay as they are
                    None if skip => {}
                    _ => prune_value(v, item_schema, &index(path, i), pruned),
                }
            }
        }
        _ => {}
    }
}

fn nullable(s: &Value) -> bool {
    s["nullable"] == true
}

/// Applies the defaults of `schema` to `obj`, and drops non-nullable nulls that have
/// none.
pub(crate) fn apply_defaults(schema: &Value, obj: &mut Value) {
    default_value(obj, schema);
}

fn default_value(x: &mut Value, s: &Value) {
    match x {
        Value::Object(map) => {
            if let Some(props) = s["properties"].as_object() {
                for (k, prop) in props {
                    let missing = match map.get(k) {
                        None => true,
                        Some(Value::Null) => !nullable(prop),
                        Some(_) => false,
                    };
                    if !missing {
                        continue;
                    }
                    match prop.get("default") {
                        Some(d) => {
                            map.insert(k.clone(), d.clone());
                        }
                        None if map.contains_key(k) => {
                            map.remove(k);
                        }
                        None => {}
                    }
                }
            }
            for (k, v) in map.iter_mut() {
                if let Sub::Schema(sub) = sub_schema(s, k) {
                    if v.is_null()
                        && !nullable(sub)
                        && let Some(d) = sub.get("default")
                    {
                        *v = d.clone();
                    }
                    default_value(v, sub);
                }
            }
        }
        Value::Array(items) => {
            let item_schema = &s["items"];
            if !item_schema.is_object() {
                return;
            }
            for v in items.iter_mut() {
                if v.is_null()
                    && !nullable(item_schema)
                    && let Some(d) = item_schema.get("default")
                {
                    *v = d.clone();
                }
                default_value(v, item_schema);
            }
        }
        _ => {}
    }
}
