//! The object store: every object as JSON, one resourceVersion counter for the whole
//! server (as etcd's revision), the uid index the garbage collector needs, and the
//! primitive changes (store, remove, rewrite) that emit watch events. The verbs are in
//! `write.rs`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::{Value, json};

use super::registry::{self, Registry, ResKey, ResourceType};
use super::selectors::Selectors;
use super::status::{ApiError, ApiResult};
use super::watch::{EventType, History};
use super::write::WriteOptions;

/// Where an object lives.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ObjRef {
    pub key: ResKey,
    pub namespace: String,
    pub name: String,
}

pub(crate) struct Store {
    pub registry: Registry,
    objects: BTreeMap<ResKey, BTreeMap<(String, String), Value>>,
    pub rv: u64,
    pub history: History,
    uids: HashMap<String, ObjRef>,
    /// Whether the garbage collector has work: an object went, or a write gave it some
    /// (`gives_gc_work`). Scanning every object after every write made each
    /// write cost the store's size.
    pub gc_pending: bool,
    /// `Warning` headers for the response to the current request.
    pub warnings: Vec<String>,
}

pub(crate) fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

pub(crate) fn new_uid() -> String {
    let n: u128 = rand::random();
    // RFC 4122 version 4 layout, like the uuids Kubernetes generates
    let n = (n & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let h = format!("{n:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

pub(crate) fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj["metadata"][field].as_str().unwrap_or_default()
}

pub(crate) fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn set_finalizers(obj: &mut Value, list: Vec<String>) {
    let meta = obj["metadata"]
        .as_object_mut()
        .expect("objects have metadata");
    if list.is_empty() {
        meta.remove("finalizers");
    } else {
        meta.insert("finalizers".into(), json!(list));
    }
}

pub(crate) fn is_deleting(obj: &Value) -> bool {
    obj["metadata"]["deletionTimestamp"].is_string()
}

/// Whether anything still holds the object back from removal. Namespaces also wait
/// for `spec.finalizers` (the namespace controller's "kubernetes").
pub(crate) fn held(obj: &Value) -> bool {
    let namespace_finalizers = obj["kind"] == "Namespace"
        && obj["spec"]["finalizers"]
            .as_array()
            .is_some_and(|a| !a.is_empty());
    !finalizers(obj).is_empty() || namespace_finalizers
}

impl Store {
    pub fn new(history_limit: usize, changes: tokio::sync::watch::Sender<u64>) -> Store {
        let mut store = Store {
            registry: Registry::builtin(),
            objects: BTreeMap::new(),
            rv: 0,
            history: History::new(history_limit, changes),
            uids: HashMap::new(),
            gc_pending: false,
            warnings: Vec::new(),
        };
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let rt = store
                .registry
                .get(&("".into(), "namespaces".into()))
                .cloned();
            let rt = rt.expect("namespaces are built in");
            store
                .create(
                    &rt,
                    "",
                    json!({"metadata": {"name": ns}}),
                    &WriteOptions {
                        manager: "kube-apiserver".into(),
                        api_version: "v1".into(),
                        ..WriteOptions::default()
                    },
                )
                .expect("built-in namespaces are valid");
        }
        store
    }

    pub fn rt(&self, key: &ResKey) -> Option<ResourceType> {
        self.registry.get(key).cloned()
    }

    pub fn object(&self, r: &ObjRef) -> Option<&Value> {
        self.objects
            .get(&r.key)?
            .get(&(r.namespace.clone(), r.name.clone()))
    }

    pub fn by_uid(&self, uid: &str) -> Option<&ObjRef> {
        self.uids.get(uid)
    }

    /// Every object with its kind, namespace and name, borrowed.
    pub fn each(&self) -> impl Iterator<Item = (&ResKey, &str, &str, &Value)> {
        self.objects.iter().flat_map(|(key, objs)| {
            objs.iter()
                .map(move |((ns, name), obj)| (key, ns.as_str(), name.as_str(), obj))
        })
    }

    /// The objects of one kind, with their namespace and name, borrowed.
    pub fn each_of<'a>(
        &'a self,
        key: &ResKey,
    ) -> impl Iterator<Item = (&'a str, &'a str, &'a Value)> {
        self.objects.get(key).into_iter().flat_map(|objs| {
            objs.iter()
                .map(|((ns, name), obj)| (ns.as_str(), name.as_str(), obj))
        })
    }

    /// Every object's address, for the garbage collector.
    pub fn all_refs(&self) -> Vec<ObjRef> {
        self.objects
            .iter()
            .flat_map(|(key, objs)| {
                objs.keys().map(move |(ns, name)| ObjRef {
                    key: key.clone(),
                    namespace: ns.clone(),
                    name: name.clone(),
                })
            })
            .collect()
    }

    pub(crate) fn objref(rt: &ResourceType, ns: &str, name: &str) -> ObjRef {
        ObjRef {
            key: rt.key(),
            namespace: if rt.namespaced {
                ns.to_string()
            } else {
                String::new()
            },
            name: name.to_string(),
        }
    }

    pub fn get(&self, rt: &ResourceType, ns: &str, name: &str) -> ApiResult<Value> {
        self.object(&Self::objref(rt, ns, name))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.resource(), name))
    }

    /// Objects of a kind in `ns` (None: all namespaces) matching `sel`, in name order.
    pub fn select(&self, rt: &ResourceType, ns: Option<&str>, sel: &Selectors) -> Vec<Value> {
        self.objects
            .get(&rt.key())
            .into_iter()
            .flatten()
            .filter(|((obj_ns, _), obj)| ns.is_none_or(|ns| ns == obj_ns) && sel.matches(obj))
            .map(|(_, obj)| obj.clone())
            .collect()
    }

    /// One page of a list: items after `continue_token`, the list's resourceVersion, and
    /// the token of the next page.
    pub fn list(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        sel: &Selectors,
        limit: Option<usize>,
        continue_token: Option<&str>,
    ) -> ApiResult<(Vec<Value>, u64, Option<String>)> {
        let (rv, after) = match continue_token.filter(|t| !t.is_empty()) {
            Some(token) => {
                let (rv, key) = token
                    .split_once(':')
                    .and_then(|(rv, key)| Some((rv.parse::<u64>().ok()?, key)))
                    .ok_or_else(|| ApiError::bad_request("continue key is not valid"))?;
                // the snapshot a token continues from goes with the history (compaction)
                if rv < self.history.floor() {
                    return Err(ApiError::expired(
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                    ));
                }
                (rv, Some(key.to_string()))
            }
            None => (self.rv, None),
        };
        // namespaces cannot contain '/', so "ns/name" splits back unambiguously
        let after = after.map(|a| match a.split_once('/') {
            Some((ns, name)) => (ns.to_string(), name.to_string()),
            None => (String::new(), a),
        });
        let mut items: Vec<Value> = self
            .select(rt, ns, sel)
            .into_iter()
            .filter(|o| after.as_ref().is_none_or(|a| page_key(o) > *a))
            .collect();
        let mut next = None;
        if let Some(limit) = limit.filter(|l| *l > 0 && items.len() > *l) {
            items.truncate(limit);
            next = items.last().map(|o| {
                let (ns, name) = page_key(o);
                format!("{rv}:{ns}/{name}")
            });
        }
        Ok((items, rv, next))
    }

    /// Stores `obj` at a new resourceVersion and tells watchers (ADDED when `old` is None).
    pub fn put(&mut self, r: &ObjRef, mut obj: Value, old: Option<Value>) -> Value {
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let uid = meta_str(&obj, "uid").to_string();
        self.uids.insert(uid, r.clone());
        if self.gives_gc_work(&r.namespace, &obj) {
            self.gc_pending = true;
        }
        self.objects
            .entry(r.key.clone())
            .or_default()
            .insert((r.namespace.clone(), r.name.clone()), obj.clone());
        let kind = if old.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.history
            .push(self.rv, r, kind, Arc::new(obj.clone()), old.map(Arc::new));
        obj
    }

    /// Removes an object for good (DELETED), and the objects of a CRD with it.
    pub fn remove(&mut self, r: &ObjRef) -> Value {
        let Some(mut obj) = self
            .objects
            .get_mut(&r.key)
            .and_then(|m| m.remove(&(r.namespace.clone(), r.name.clone())))
        else {
            return Value::Null;
        };
        let old = obj.clone();
        self.uids.remove(meta_str(&obj, "uid"));
        self.gc_pending = true;
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.history.push(
            self.rv,
            r,
            EventType::Deleted,
            Arc::new(obj.clone()),
            Some(Arc::new(old)),
        );
        if r.key
            == (
                "apiextensions.k8s.io".to_string(),
                "customresourcedefinitions".to_string(),
            )
            && let Ok(t) = registry::from_crd(&obj)
        {
            // the real server deletes the CRs first (finalizer customresourcecleanup);
            // here they simply go with it
            let gone: Vec<ObjRef> = self
                .all_refs()
                .into_iter()
                .filter(|o| o.key == t.key())
                .collect();
            for o in gone {
                self.remove(&o);
            }
            self.registry.remove(&t.key());
        }
        obj
    }

    /// Removes an object whose last state is `last` (a write that dropped its last
    /// finalizer): as in Kubernetes, watchers see one DELETED event with that state, no
    /// MODIFIED before it.
    pub fn remove_final(&mut self, r: &ObjRef, last: Value) -> Value {
        if let Some(objects) = self.objects.get_mut(&r.key) {
            objects.insert((r.namespace.clone(), r.name.clone()), last);
        }
        self.remove(r)
    }

    /// Rewrites an object outside the request path (garbage collector, namespace
    /// controller): no validation, no managed fields; removes it when the change left a
    /// deleting object without finalizers.
    pub fn rewrite(&mut self, r: &ObjRef, f: impl FnOnce(&mut Value)) {
        let Some(current) = self.object(r).cloned() else {
            return;
        };
        let mut obj = current.clone();
        f(&mut obj);
        if obj == current {
            return;
        }
        if is_deleting(&obj) && !held(&obj) {
            self.remove_final(r, obj);
        } else {
            self.put(r, obj, Some(current));
        }
    }
}

/// Sort key of list pages: namespace then name, the store's order.
fn page_key(obj: &Value) -> (String, String) {
    (
        meta_str(obj, "namespace").to_string(),
        meta_str(obj, "name").to_string(),
    )
}
