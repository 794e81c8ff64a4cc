//! The three classic patch formats:
//! - JSON merge patch (RFC 7386): objects merge, `null` deletes, everything else replaces.
//! - JSON patch (RFC 6902): add, remove, replace, move, copy, test. As in the API server
//!   (evanphx/json-patch), `test` of a missing member against `null` succeeds, which
//!   kube-runtime's finalizer helper relies on when an object has no finalizers yet.
//! - Strategic merge patch, core kinds only (custom resources get 415, as on a real
//!   cluster): merge-patch semantics, plus lists merged by key where the core types say so
//!   (see `schema.rs`), set-like merge of `finalizers`, and the directives `$patch: delete`
//!   / `$patch: replace` (on maps and list items), `$retainKeys`,
//!   `$deleteFromPrimitiveList/<field>`, `$setElementOrder/<field>`. Merged keyed lists
//!   are ordered as apimachinery's `strategicpatch` does (`normalizeElementOrder`): the
//!   patch's items in patch order (or `$setElementOrder`'s), the server-only items in
//!   their live order, interleaved by live position, a patch item first when either is
//!   new: `[one, three]` patched with `[two]` is `[two, one, three]`.

use serde_json::{Map, Value};

use super::registry::ResourceType;
use super::schema::{ITEM, ListType, item_key, list_type};
use super::status::{ApiError, ApiResult};

pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    let Some(patch) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let target = target.as_object_mut().expect("made an object above");
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// A JSON pointer split into unescaped tokens.
fn pointer(path: &str) -> ApiResult<Vec<String>> {
    if path.is_empty() {
        return Ok(vec![]);
    }
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| ApiError::bad_request(format!("invalid JSON pointer {path:?}")))?;
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn failed(message: String) -> ApiError {
    ApiError::unprocessable(message)
}

/// The container of the last token and that token.
fn parent_mut<'a>(doc: &'a mut Value, tokens: &[String], path: &str) -> ApiResult<&'a mut Value> {
    let mut node = doc;
    for t in &tokens[..tokens.len() - 1] {
        node = match node {
            Value::Object(map) => map.get_mut(t),
            Value::Array(items) => t.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| failed(format!("doc is missing path: {path:?}: missing value")))?;
    }
    Ok(node)
}

fn get<'a>(doc: &'a Value, tokens: &[String]) -> Option<&'a Value> {
    let mut node = doc;
    for t in tokens {
        node = match node {
            Value::Object(map) => map.get(t)?,
            Value::Array(items) => items.get(t.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(node)
}

fn add(doc: &mut Value, tokens: &[String], value: Value, path: &str) -> ApiResult<()> {
    let Some(last) = tokens.last() else {
        *doc = value;
        return Ok(());
    };
    match parent_mut(doc, tokens, path)? {
        Value::Object(map) => {
            map.insert(last.clone(), value);
        }
        Value::Array(items) => {
            let index = if last == "-" {
                items.len()
            } else {
                last.parse::<usize>()
                    .ok()
                    .filter(|i| *i <= items.len())
                    .ok_or_else(|| {
                        failed(format!(
                            "add operation does not apply: doc is missing path: {path:?}"
                        ))
                    })?
            };
            items.insert(index, value);
        }
        _ => return Err(failed(format!("doc is missing path: {path:?}"))),
    }
    Ok(())
}

fn remove(doc: &mut Value, tokens: &[String], path: &str) -> ApiResult<Value> {
    let last = tokens
        .last()
        .ok_or_else(|| failed("cannot remove the whole document".into()))?;
    let missing = || {
        failed(format!(
            "remove operation does not apply: doc is missing path: {path:?}"
        ))
    };
    match parent_mut(doc, tokens, path)? {
        Value::Object(map) => map.remove(last).ok_or_else(missing),
        Value::Array(items) => {
            let i = last
                .parse::<usize>()
                .ok()
                .filter(|i| *i < items.len())
                .ok_or_else(missing)?;
            Ok(items.remove(i))
        }
        _ => Err(missing()),
    }
}

pub(crate) fn json_patch(doc: &Value, ops: &Value) -> ApiResult<Value> {
    let ops = ops
        .as_array()
        .ok_or_else(|| ApiError::bad_request("json patch must be an array of operations"))?;
    let mut doc = doc.clone();
    for op in ops {
        let name = op["op"].as_str().unwrap_or_default();
        let path = op["path"].as_str().ok_or_else(|| {
            ApiError::bad_request(format!("json patch operation {op} has no path"))
        })?;
        let tokens = pointer(path)?;
        let value = || {
            op.get("value").cloned().ok_or_else(|| {
                ApiError::bad_request(format!("json patch operation {op} has no value"))
            })
        };
        let from = || -> ApiResult<(Vec<String>, String)> {
            let from = op["from"].as_str().ok_or_else(|| {
                ApiError::bad_request(format!("json patch operation {op} has no from"))
            })?;
            Ok((pointer(from)?, from.to_string()))
        };
        match name {
            "add" => add(&mut doc, &tokens, value()?, path)?,
            "remove" => {
                remove(&mut doc, &tokens, path)?;
            }
            "replace" => {
                if get(&doc, &tokens).is_none() {
                    return Err(failed(format!(
                        "replace operation does not apply: doc is missing key: {path}"
                    )));
                }
                if tokens.is_empty() {
                    doc = value()?;
                } else {
                    remove(&mut doc, &tokens, path)?;
                    add(&mut doc, &tokens, value()?, path)?;
                }
            }
            "move" => {
                let (from_tokens, from_path) = from()?;
                let moved = remove(&mut doc, &from_tokens, &from_path)?;
                add(&mut doc, &tokens, moved, path)?;
            }
            "copy" => {
                let (from_tokens, from_path) = from()?;
                let copied = get(&doc, &from_tokens).cloned().ok_or_else(|| {
                    failed(format!(
                        "copy operation does not apply: doc is missing from path: {from_path}"
                    ))
                })?;
                add(&mut doc, &tokens, copied, path)?;
            }
            "test" => {
                let expected = op.get("value").cloned().unwrap_or(Value::Null);
                let actual = get(&doc, &tokens);
                let parent_exists =
                    tokens.len() <= 1 || get(&doc, &tokens[..tokens.len() - 1]).is_some();
                let ok = match actual {
                    Some(actual) => *actual == expected,
                    None => expected.is_null() && parent_exists,
                };
                if !ok {
                    return Err(failed(format!("testing value {path} failed: test failed")));
                }
            }
            other => {
                return Err(ApiError::bad_request(format!("Unexpected kind: {other}")));
            }
        }
    }
    Ok(doc)
}

/// Strategic merge of `patch` into `target` for the core kind `rt`.
pub(crate) fn strategic_merge(
    rt: &ResourceType,
    target: &mut Value,
    patch: &Value,
) -> ApiResult<()> {
    smp(rt, target, patch, &mut vec![])
}

fn smp(
    rt: &ResourceType,
    target: &mut Value,
    patch: &Value,
    path: &mut Vec<String>,
) -> ApiResult<()> {
    let Some(patch_map) = patch.as_object() else {
        *target = patch.clone();
        return Ok(());
    };
    match patch_map.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut replaced = patch_map.clone();
            replaced.remove("$patch");
            *target = Value::Object(replaced);
            return Ok(());
        }
        Some("delete") => {
            *target = Value::Object(Map::new());
            return Ok(());
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown patch type: {other}"
            )));
        }
        None => {}
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    // the live lists that `$setElementOrder` directives reorder, before merging
    let live_lists: Vec<(String, Vec<Value>, Vec<Value>)> = patch_map
        .iter()
        .filter_map(|(k, order)| {
            let field = k.strip_prefix("$setElementOrder/")?;
            let live = target[field].as_array().cloned().unwrap_or_default();
            Some((field.to_string(), order.as_array()?.clone(), live))
        })
        .collect();
    for (key, value) in patch_map {
        if key.starts_with("$setElementOrder/") || key == "$retainKeys" {
            continue;
        }
        let target_map = target.as_object_mut().expect("made an object above");
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(items)), Some(gone)) =
                (target_map.get_mut(field), value.as_array())
            {
                items.retain(|i| !gone.contains(i));
            }
            continue;
        }
        if value.is_null() {
            target_map.remove(key);
            continue;
        }
        path.push(key.clone());
        let slot = target_map.entry(key.clone()).or_insert(Value::Null);
        match value {
            Value::Object(_) if value.get("$patch").and_then(Value::as_str) == Some("delete") => {
                target_map.remove(key);
            }
            Value::Object(_) => smp(rt, slot, value, path)?,
            Value::Array(items) => merge_list(rt, slot, items, path)?,
            _ => *slot = value.clone(),
        }
        path.pop();
    }
    for (field, order, live) in live_lists {
        path.push(field.clone());
        let keys = match list_type(rt, path) {
            ListType::Map(keys) => Some(keys),
            _ => None,
        };
        path.pop();
        if let Some(Value::Array(items)) = target.get_mut(&field) {
            *items = normalize_order(std::mem::take(items), &order, &live, keys.as_deref());
        }
    }
    if let Some(retain) = patch_map.get("$retainKeys").and_then(Value::as_array) {
        let keep: Vec<&str> = retain.iter().filter_map(Value::as_str).collect();
        if let Some(map) = target.as_object_mut() {
            map.retain(|k, _| keep.contains(&k.as_str()));
        }
    }
    Ok(())
}

fn strip_directives(item: &Value) -> Value {
    match item {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn merge_list(
    rt: &ResourceType,
    target: &mut Value,
    patch: &[Value],
    path: &mut Vec<String>,
) -> ApiResult<()> {
    let replace_all = patch
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"));
    let list_type = if replace_all {
        ListType::Atomic
    } else {
        list_type(rt, path)
    };
    let current = match target {
        Value::Array(items) => std::mem::take(items),
        _ => vec![],
    };
    let current_order = current.clone();
    let merged = match list_type {
        ListType::Atomic => patch
            .iter()
            .filter(|i| i.get("$patch").is_none() || i.as_object().is_some_and(|m| m.len() > 1))
            .map(strip_directives)
            .collect(),
        ListType::Set => {
            let mut items = current;
            for v in patch {
                if !items.contains(v) {
                    items.push(v.clone());
                }
            }
            items
        }
        ListType::Map(keys) => {
            let mut items = current;
            path.push(ITEM.to_string());
            for p in patch {
                let key = item_key(p, &keys);
                let pos = items
                    .iter()
                    .position(|i| key.is_some() && item_key(i, &keys) == key);
                let delete = p.get("$patch").and_then(Value::as_str) == Some("delete");
                match (pos, delete) {
                    (Some(i), true) => {
                        items.remove(i);
                    }
                    (None, true) => {}
                    (Some(i), false) => smp(rt, &mut items[i], &strip_directives(p), path)?,
                    (None, false) => items.push(strip_directives(p)),
                }
            }
            path.pop();
            let order: Vec<Value> = patch
                .iter()
                .filter(|p| p.get("$patch").is_none())
                .cloned()
                .collect();
            normalize_order(items, &order, &current_order, Some(&keys))
        }
    };
    *target = Value::Array(merged);
    Ok(())
}

/// Where `item` is in `list`: by key fields for a keyed list, by value otherwise.
fn position(list: &[Value], item: &Value, keys: Option<&[String]>) -> Option<usize> {
    match keys {
        Some(keys) => {
            let key = item_key(item, keys)?;
            list.iter()
                .position(|i| item_key(i, keys).as_ref() == Some(&key))
        }
        None => list.iter().position(|i| i == item),
    }
}

/// strategicpatch's `normalizeElementOrder`: the merged items that `order` names, in
/// that order, and the others (server-only) in their `live` order, merged as
/// `mergeSortedSlice` does: a server-only item goes first only when both it and the next
/// patch item are in the live list and it comes earlier there.
fn normalize_order(
    merged: Vec<Value>,
    order: &[Value],
    live: &[Value],
    keys: Option<&[String]>,
) -> Vec<Value> {
    let (mut patched, mut server_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|i| position(order, i, keys).is_some());
    patched.sort_by_key(|i| position(order, i, keys));
    server_only.sort_by_key(|i| position(live, i, keys));
    let mut out = Vec::with_capacity(patched.len() + server_only.len());
    let (mut left, mut right) = (
        server_only.into_iter().peekable(),
        patched.into_iter().peekable(),
    );
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => matches!(
                (position(live, l, keys), position(live, r, keys)),
                (Some(li), Some(ri)) if li < ri
            ),
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out
}
