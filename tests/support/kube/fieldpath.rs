//! Field paths and field sets: which leaf fields an object has, in the terms of
//! Kubernetes' structured-merge-diff (`f:` fields, `k:` items of keyed lists by their key
//! fields, `v:` members of sets, atomic lists as one leaf), and their `fieldsV1` encoding
//! in `managedFields`. Which parts of an object a write may touch (`Scope`) lives here
//! too, because it decides which fields are tracked at all.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::registry::ResourceType;
use super::schema::{ITEM, ListType, item_key, list_type};

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Seg {
    Field(String),
    /// A map-list item, by the JSON of its key fields.
    Key(String),
    /// A set-list member, by its JSON.
    Value(String),
}

pub(crate) type FieldPath = Vec<Seg>;
pub(crate) type FieldSet = BTreeSet<FieldPath>;

/// Which part of an object a write may change: everything but `status` on the main
/// resource of a kind with a status subresource, only `status` on `/status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    All,
    Main,
    Status,
}

impl Scope {
    pub fn of(rt: &ResourceType, subresource: Option<&str>) -> Scope {
        match (rt.status_subresource, subresource) {
            (_, Some("status")) => Scope::Status,
            (true, _) => Scope::Main,
            (false, _) => Scope::All,
        }
    }

    pub fn subresource(self) -> Option<&'static str> {
        (self == Scope::Status).then_some("status")
    }
}

/// Metadata the server owns; never part of anyone's field set.
pub(crate) const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

pub(crate) fn tracked(top: &str, second: Option<&str>, scope: Scope) -> bool {
    match (top, scope) {
        ("apiVersion" | "kind", _) => false,
        ("status", Scope::Main) => false,
        ("status", _) => true,
        (_, Scope::Status) => false,
        ("metadata", _) => !second.is_some_and(|s| SERVER_METADATA.contains(&s)),
        _ => true,
    }
}

/// The leaf fields of `obj` that `scope` covers.
pub(crate) fn fields(rt: &ResourceType, obj: &Value, scope: Scope) -> FieldSet {
    let mut out = FieldSet::new();
    let Some(map) = obj.as_object() else {
        return out;
    };
    for (k, v) in map {
        if k == "metadata" {
            for (mk, mv) in v.as_object().into_iter().flatten() {
                if tracked(k, Some(mk), scope) {
                    let mut path = vec![Seg::Field(k.clone()), Seg::Field(mk.clone())];
                    let mut schema = vec![k.clone(), mk.clone()];
                    collect(rt, mv, &mut path, &mut schema, &mut out);
                }
            }
        } else if tracked(k, None, scope) {
            collect(
                rt,
                v,
                &mut vec![Seg::Field(k.clone())],
                &mut vec![k.clone()],
                &mut out,
            );
        }
    }
    out
}

fn collect(
    rt: &ResourceType,
    v: &Value,
    path: &mut FieldPath,
    schema: &mut Vec<String>,
    out: &mut FieldSet,
) {
    match v {
        Value::Object(map) if !map.is_empty() => {
            for (k, child) in map {
                path.push(Seg::Field(k.clone()));
                schema.push(k.clone());
                collect(rt, child, path, schema, out);
                schema.pop();
                path.pop();
            }
        }
        Value::Array(items) => match list_type(rt, schema) {
            ListType::Map(keys) if items.iter().all(|i| i.is_object()) => {
                schema.push(ITEM.into());
                for item in items {
                    let key = item_key(item, &keys).expect("checked objects");
                    path.push(Seg::Key(key.to_string()));
                    out.insert(path.clone());
                    collect(rt, item, path, schema, out);
                    path.pop();
                }
                schema.pop();
            }
            ListType::Set => {
                for item in items {
                    path.push(Seg::Value(item.to_string()));
                    out.insert(path.clone());
                    path.pop();
                }
            }
            _ => {
                out.insert(path.clone());
            }
        },
        _ => {
            out.insert(path.clone());
        }
    }
}

fn find_item(items: &[Value], seg: &Seg) -> Option<usize> {
    match seg {
        Seg::Key(key) => {
            let key: Value = serde_json::from_str(key).ok()?;
            let key = key.as_object()?;
            items.iter().position(|i| {
                key.iter()
                    .all(|(k, v)| i.get(k).unwrap_or(&Value::Null) == v)
            })
        }
        Seg::Value(v) => {
            let v: Value = serde_json::from_str(v).ok()?;
            items.iter().position(|i| *i == v)
        }
        Seg::Field(_) => None,
    }
}

pub(crate) fn value_at<'a>(obj: &'a Value, path: &[Seg]) -> Option<&'a Value> {
    let mut node = obj;
    for seg in path {
        node = match (seg, node) {
            (Seg::Field(f), Value::Object(map)) => map.get(f)?,
            (Seg::Key(_) | Seg::Value(_), Value::Array(items)) => &items[find_item(items, seg)?],
            _ => return None,
        };
    }
    Some(node)
}

/// Removes the member at `path`, then any object it leaves empty (not the top level).
pub(crate) fn remove_path(obj: &mut Value, path: &[Seg]) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let mut node = &mut *obj;
    for seg in parent_path {
        let next = match (seg, node) {
            (Seg::Field(f), Value::Object(map)) => map.get_mut(f),
            (Seg::Key(_) | Seg::Value(_), Value::Array(items)) => match find_item(items, seg) {
                Some(i) => items.get_mut(i),
                None => None,
            },
            _ => None,
        };
        match next {
            Some(n) => node = n,
            None => return,
        }
    }
    let emptied = match (last, node) {
        (Seg::Field(f), Value::Object(map)) => {
            map.remove(f);
            map.is_empty()
        }
        (Seg::Key(_) | Seg::Value(_), Value::Array(items)) => {
            if let Some(i) = find_item(items, last) {
                items.remove(i);
            }
            false
        }
        _ => false,
    };
    if emptied && parent_path.len() > 1 && matches!(parent_path.last(), Some(Seg::Field(_))) {
        remove_path(obj, parent_path);
    }
}

pub(crate) fn parse_fields_v1(node: &Value, path: &mut FieldPath, out: &mut FieldSet) {
    let Some(map) = node.as_object() else {
        return;
    };
    if map.is_empty() {
        out.insert(path.clone());
        return;
    }
    for (k, child) in map {
        let seg = if k == "." {
            out.insert(path.clone());
            continue;
        } else if let Some(f) = k.strip_prefix("f:") {
            Seg::Field(f.to_string())
        } else if let Some(key) = k.strip_prefix("k:") {
            Seg::Key(key.to_string())
        } else if let Some(v) = k.strip_prefix("v:") {
            Seg::Value(v.to_string())
        } else {
            continue;
        };
        path.push(seg);
        parse_fields_v1(child, path, out);
        path.pop();
    }
}

pub(crate) fn render_fields_v1(fields: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in fields {
        let mut node = &mut root;
        for (i, seg) in path.iter().enumerate() {
            let key = match seg {
                Seg::Field(f) => format!("f:{f}"),
                Seg::Key(k) => format!("k:{k}"),
                Seg::Value(v) => format!("v:{v}"),
            };
            let child = node
                .entry(key)
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .expect("built as objects");
            // an item that is itself owned and has owned children gets a "." marker
            if i + 1 == path.len() && matches!(seg, Seg::Key(_)) {
                child.insert(".".into(), json!({}));
            }
            node = child;
        }
    }
    Value::Object(root)
}

pub(crate) fn render_path(path: &[Seg]) -> String {
    path.iter()
        .map(|s| match s {
            Seg::Field(f) => format!(".{f}"),
            Seg::Key(k) => format!("[{k}]"),
            Seg::Value(v) => format!("[={v}]"),
        })
        .collect()
}
