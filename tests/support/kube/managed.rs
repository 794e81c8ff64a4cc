//! Field ownership (`metadata.managedFields`) and server-side apply, simplified but with the
//! rules controllers depend on:
//! - every write records which manager set which fields (`fieldsV1`, same encoding as
//!   Kubernetes: `f:` fields, `k:` keyed list items, `v:` set members);
//! - apply sets the fields a manager sends, and removes fields that manager owned before,
//!   no longer sends, and nobody else owns;
//! - a field sent with a value different from the one another manager owns is a 409
//!   conflict unless `force=true`, which takes the field over; the same value is shared;
//! - an update (PUT/PATCH/POST) takes ownership of the fields it changes, silently.
//!
//! Not modelled: version conversion of field sets, `x-kubernetes-map-type: atomic`,
//! granular ownership of atomic lists' items (they are one leaf, as in Kubernetes).

use serde_json::{Map, Value, json};

pub(crate) use super::fieldpath::Scope;
use super::fieldpath::{
    FieldPath, FieldSet, SERVER_METADATA, Seg, fields, parse_fields_v1, remove_path,
    render_fields_v1, render_path, tracked, value_at,
};
use super::registry::ResourceType;
use super::schema::{ITEM, ListType, item_key, list_type};
use super::status::{ApiError, ApiResult};

/// One `managedFields` entry.
#[derive(Clone, Debug)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: String,
    subresource: Option<String>,
    fields: FieldSet,
}

impl Entry {
    fn is(&self, manager: &str, operation: &str, subresource: Option<&str>) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.as_deref() == subresource
    }
}

fn read_entries(obj: &Value) -> Vec<Entry> {
    let mut out = vec![];
    for e in obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let mut fields = FieldSet::new();
        parse_fields_v1(&e["fieldsV1"], &mut vec![], &mut fields);
        out.push(Entry {
            manager: e["manager"].as_str().unwrap_or_default().into(),
            operation: e["operation"].as_str().unwrap_or("Update").into(),
            api_version: e["apiVersion"].as_str().unwrap_or_default().into(),
            time: e["time"].as_str().unwrap_or_default().into(),
            subresource: e["subresource"].as_str().map(str::to_string),
            fields,
        });
    }
    out
}

fn write_entries(obj: &mut Value, entries: Vec<Entry>) {
    let rendered: Vec<Value> = entries
        .into_iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": render_fields_v1(&e.fields),
            });
            if let Some(sub) = e.subresource {
                v["subresource"] = json!(sub);
            }
            v
        })
        .collect();
    let meta = &mut obj["metadata"];
    if rendered.is_empty() {
        if let Some(m) = meta.as_object_mut() {
            m.remove("managedFields");
        }
    } else {
        meta["managedFields"] = Value::Array(rendered);
    }
}

fn present(obj: Option<&Value>, path: &[Seg]) -> bool {
    obj.is_some_and(|o| value_at(o, path).is_some())
}

/// Who sets a field, and through which API version, for one write.
pub(crate) struct Writer<'a> {
    pub manager: &'a str,
    pub api_version: &'a str,
    pub scope: Scope,
    pub now: &'a str,
}

/// Records an update (create, PUT or non-apply PATCH): `writer` takes the fields it
/// changed, fields that disappeared are nobody's. Ownership comes from `old`.
pub(crate) fn track_update(rt: &ResourceType, old: Option<&Value>, new: &mut Value, w: &Writer) {
    let old_fields = old.map(|o| fields(rt, o, w.scope)).unwrap_or_default();
    let new_fields = fields(rt, new, w.scope);
    let changed: FieldSet = new_fields
        .iter()
        .filter(|p| match p.last() {
            Some(Seg::Field(_)) => old.and_then(|o| value_at(o, p)) != value_at(new, p),
            _ => !present(old, p),
        })
        .cloned()
        .collect();
    let removed: FieldSet = old_fields.difference(&new_fields).cloned().collect();
    let mut entries = old.map(read_entries).unwrap_or_default();
    let sub = w.scope.subresource();
    for e in &mut entries {
        let before = e.fields.len();
        e.fields.retain(|p| !removed.contains(p));
        if !e.is(w.manager, "Update", sub) {
            e.fields.retain(|p| !changed.contains(p));
        }
        if e.fields.len() != before {
            e.time = w.now.into();
        }
    }
    if !changed.is_empty() {
        match entries.iter_mut().find(|e| e.is(w.manager, "Update", sub)) {
            Some(mine) => {
                mine.fields.extend(changed);
                mine.time = w.now.into();
                mine.api_version = w.api_version.into();
            }
            None => entries.push(Entry {
                manager: w.manager.into(),
                operation: "Update".into(),
                api_version: w.api_version.into(),
                time: w.now.into(),
                subresource: sub.map(str::to_string),
                fields: changed,
            }),
        }
    }
    write_entries(new, entries);
}

fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip_nulls).collect()),
        other => other.clone(),
    }
}

/// The part of an apply configuration that `scope` lets through.
fn scoped_config(config: &Value, scope: Scope) -> Value {
    let mut out = Map::new();
    for (k, v) in config.as_object().into_iter().flatten() {
        if k == "metadata" {
            let meta: Map<String, Value> = v
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(mk, _)| scope != Scope::Status && !SERVER_METADATA.contains(&mk.as_str()))
                .map(|(mk, mv)| (mk.clone(), mv.clone()))
                .collect();
            out.insert(k.clone(), Value::Object(meta));
        } else if tracked(k, None, scope) {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

fn merge_applied(rt: &ResourceType, live: &mut Value, cfg: &Value, schema: &mut Vec<String>) {
    match (live, cfg) {
        (Value::Object(live), Value::Object(cfg)) => {
            for (k, v) in cfg {
                schema.push(k.clone());
                match live.get_mut(k) {
                    Some(slot) => merge_applied(rt, slot, v, schema),
                    None => {
                        live.insert(k.clone(), v.clone());
                    }
                }
                schema.pop();
            }
        }
        (Value::Array(live), Value::Array(cfg)) => match list_type(rt, schema) {
            ListType::Map(keys) => {
                schema.push(ITEM.into());
                for item in cfg {
                    let key = item_key(item, &keys);
                    match live
                        .iter_mut()
                        .find(|i| key.is_some() && item_key(i, &keys) == key)
                    {
                        Some(existing) => merge_applied(rt, existing, item, schema),
                        None => live.push(item.clone()),
                    }
                }
                schema.pop();
            }
            ListType::Set => {
                for item in cfg {
                    if !live.contains(item) {
                        live.push(item.clone());
                    }
                }
            }
            ListType::Atomic => *live = cfg.clone(),
        },
        (live, cfg) => *live = cfg.clone(),
    }
}

/// Server-side apply of `config` by `w` onto `live` (None: the object is created).
pub(crate) fn apply(
    rt: &ResourceType,
    live: Option<&Value>,
    config: &Value,
    force: bool,
    w: &Writer,
) -> ApiResult<Value> {
    let cfg = scoped_config(&strip_nulls(config), w.scope);
    let cfg_fields = fields(rt, &cfg, w.scope);
    let sub = w.scope.subresource();
    let mut entries = live.map(read_entries).unwrap_or_default();

    let mut conflicts: Vec<(usize, FieldPath)> = vec![];
    for (i, e) in entries.iter().enumerate() {
        if e.is(w.manager, "Apply", sub) {
            continue;
        }
        for p in e.fields.intersection(&cfg_fields) {
            let differs = matches!(p.last(), Some(Seg::Field(_)))
                && live.and_then(|l| value_at(l, p)) != value_at(&cfg, p);
            if differs {
                conflicts.push((i, p.clone()));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        let causes: Vec<Value> = conflicts
            .iter()
            .map(|(i, p)| {
                json!({
                    "reason": "FieldManagerConflict",
                    "message": format!("conflict with \"{}\"", entries[*i].manager),
                    "field": render_path(p),
                })
            })
            .collect();
        let list: Vec<String> = conflicts
            .iter()
            .map(|(i, p)| {
                format!(
                    "conflict with \"{}\": {}",
                    entries[*i].manager,
                    render_path(p)
                )
            })
            .collect();
        let mut err = ApiError::new(
            409,
            "Conflict",
            format!(
                "Apply failed with {} conflict{}: {}",
                conflicts.len(),
                if conflicts.len() == 1 { "" } else { "s" },
                list.join("; ")
            ),
        );
        err.details = Some(json!({"causes": causes}));
        return Err(err);
    }
    for (i, p) in &conflicts {
        entries[*i].fields.remove(p);
        entries[*i].time = w.now.into();
    }

    let mut merged = live.cloned().unwrap_or_else(|| json!({"metadata": {}}));
    merge_applied(rt, &mut merged, &cfg, &mut vec![]);

    let previous = entries
        .iter()
        .find(|e| e.is(w.manager, "Apply", sub))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let others: FieldSet = entries
        .iter()
        .filter(|e| !e.is(w.manager, "Apply", sub))
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    let mut gone: Vec<&FieldPath> = previous
        .iter()
        .filter(|p| !cfg_fields.contains(*p) && !others.contains(*p))
        .collect();
    // deepest first, so removing an item does not hide its own fields' removal
    gone.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in gone {
        remove_path(&mut merged, p);
    }

    match entries.iter_mut().find(|e| e.is(w.manager, "Apply", sub)) {
        Some(mine) => {
            if mine.fields != cfg_fields {
                mine.fields = cfg_fields;
                mine.time = w.now.into();
            }
            mine.api_version = w.api_version.into();
        }
        None => entries.push(Entry {
            manager: w.manager.into(),
            operation: "Apply".into(),
            api_version: w.api_version.into(),
            time: w.now.into(),
            subresource: sub.map(str::to_string),
            fields: cfg_fields,
        }),
    }
    write_entries(&mut merged, entries);
    Ok(merged)
}
