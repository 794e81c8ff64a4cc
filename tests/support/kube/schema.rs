//! How lists merge, which is what server-side apply and strategic merge need to know about
//! a kind's schema. Custom kinds say it in their CRD schema (`x-kubernetes-list-type`,
//! `x-kubernetes-list-map-keys`; atomic by default, as in Kubernetes). Core kinds use a
//! table of the lists the operator's objects contain (containers by name, env by name,
//! volumeMounts by mountPath, ...), which is what their Go struct tags say; any other core
//! list is treated as atomic.

use serde_json::Value;

use super::registry::ResourceType;

/// A step of a schema path: a field, or `[]` for "an element of this list".
pub(crate) const ITEM: &str = "[]";

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ListType {
    /// Replaced as a whole.
    Atomic,
    /// Scalars merged as a set.
    Set,
    /// Objects merged by these key fields.
    Map(Vec<String>),
}

/// The list type at `path` (field names, with [`ITEM`] for list elements).
pub(crate) fn list_type(rt: &ResourceType, path: &[String]) -> ListType {
    if path.first().map(String::as_str) == Some("metadata") {
        return core_list_type(path);
    }
    match &rt.schema {
        Some(schema) if rt.custom => crd_list_type(schema, path),
        _ => core_list_type(path),
    }
}

fn core_list_type(path: &[String]) -> ListType {
    let keys = |k: &[&str]| ListType::Map(k.iter().map(|s| s.to_string()).collect());
    let last = path.last().map(String::as_str);
    // a list's type can depend on where it is: imagePullSecrets merge by name in a
    // PodSpec but are atomic at the top of a ServiceAccount
    let nested = path.len() > 1;
    match last {
        Some("finalizers") if path.first().map(String::as_str) == Some("metadata") => ListType::Set,
        Some("ownerReferences") => keys(&["uid"]),
        Some("containers" | "initContainers" | "ephemeralContainers" | "volumes" | "env") => {
            keys(&["name"])
        }
        Some("imagePullSecrets" | "resourceClaims" | "schedulingGates") if nested => {
            keys(&["name"])
        }
        Some("secrets") if !nested => keys(&["name"]),
        Some("volumeMounts") => keys(&["mountPath"]),
        Some("volumeDevices") => keys(&["devicePath"]),
        Some("ports") => keys(&["containerPort", "protocol"]),
        Some("hostAliases" | "hostIPs" | "podIPs") => keys(&["ip"]),
        Some("topologySpreadConstraints") => keys(&["topologyKey", "whenUnsatisfiable"]),
        Some("conditions") if path.first().map(String::as_str) == Some("status") => keys(&["type"]),
        _ => ListType::Atomic,
    }
}

fn crd_list_type(schema: &Value, path: &[String]) -> ListType {
    let mut node = schema;
    for step in path {
        node = if step == ITEM {
            &node["items"]
        } else if node["properties"].get(step.as_str()).is_some() {
            &node["properties"][step.as_str()]
        } else if node["additionalProperties"].is_object() {
            &node["additionalProperties"]
        } else {
            return ListType::Atomic;
        };
    }
    match node["x-kubernetes-list-type"].as_str() {
        Some("set") => ListType::Set,
        Some("map") => ListType::Map(
            node["x-kubernetes-list-map-keys"]
                .as_array()
                .map(|keys| {
                    keys.iter()
                        .filter_map(|k| k.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        ),
        _ => ListType::Atomic,
    }
}

/// The key of a map-list element: the values of its key fields (missing ones as null,
/// e.g. a port without `protocol`), or None when the element is not an object.
pub(crate) fn item_key(item: &Value, keys: &[String]) -> Option<Value> {
    let obj = item.as_object()?;
    let mut key = serde_json::Map::new();
    for k in keys {
        key.insert(k.clone(), obj.get(k).cloned().unwrap_or(Value::Null));
    }
    Some(Value::Object(key))
}
