//! The controllers of a real control plane that tests depend on, run synchronously after
//! every write until nothing changes (a real cluster does this asynchronously, so tests
//! must poll or watch, never assume; they do):
//! - the namespace controller: a deleted namespace deletes everything in it, waits for
//!   those objects' finalizers, then drops its own `kubernetes` finalizer and goes;
//! - the garbage collector: an object whose owners are all gone is deleted (background
//!   cascade); references to owners that are gone are removed when other owners remain;
//!   `propagationPolicy=Orphan` (finalizer `orphan`) strips the owner's references from
//!   its dependents first; `Foreground` (finalizer `foregroundDeletion`) deletes the
//!   dependents first and keeps the owner until those with `blockOwnerDeletion` are gone.

use serde_json::Value;

use super::store::{ObjRef, Store, finalizers, is_deleting, meta_str, set_finalizers};
use super::write::Propagation;

fn owner_refs(obj: &Value) -> Vec<Value> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn set_owner_refs(obj: &mut Value, refs: Vec<Value>) {
    let meta = obj["metadata"]
        .as_object_mut()
        .expect("objects have metadata");
    if refs.is_empty() {
        meta.remove("ownerReferences");
    } else {
        meta.insert("ownerReferences".into(), Value::Array(refs));
    }
}

fn without_finalizer(obj: &mut Value, name: &str) {
    let list = finalizers(obj).into_iter().filter(|f| f != name).collect();
    set_finalizers(obj, list);
}

impl Store {
    /// Runs the namespace controller and garbage collector to a fixed point.
    pub fn settle(&mut self) {
        // every change bumps the resourceVersion, so an unchanged one means "done"
        for _ in 0..10_000 {
            let before = self.rv;
            self.namespaces();
            self.finalizing_owners();
            self.orphans();
            if self.rv == before {
                return;
            }
        }
    }

    fn objects_where(&self, f: impl Fn(&ObjRef, &Value) -> bool) -> Vec<(ObjRef, Value)> {
        self.all_refs()
            .into_iter()
            .filter_map(|r| {
                let obj = self.object(&r)?.clone();
                f(&r, &obj).then_some((r, obj))
            })
            .collect()
    }

    fn namespaces(&mut self) {
        let ns_key = (String::new(), "namespaces".to_string());
        let terminating = self.objects_where(|r, o| r.key == ns_key && is_deleting(o));
        for (ns_ref, _) in terminating {
            let contents = self.objects_where(|r, _| r.key != ns_key && r.namespace == ns_ref.name);
            if contents.is_empty() {
                self.rewrite(&ns_ref, |ns| {
                    if let Some(spec) = ns["spec"].as_object_mut() {
                        spec.remove("finalizers");
                    }
                });
                continue;
            }
            for (r, obj) in contents {
                if !is_deleting(&obj) {
                    self.delete_ref(&r, Propagation::Background);
                }
            }
        }
    }

    fn dependents(&self, owner_uid: &str) -> Vec<(ObjRef, Value)> {
        self.objects_where(|_, o| owner_refs(o).iter().any(|r| r["uid"] == owner_uid))
    }

    fn finalizing_owners(&mut self) {
        let owners = self.objects_where(|_, o| {
            is_deleting(o)
                && finalizers(o)
                    .iter()
                    .any(|f| f == "orphan" || f == "foregroundDeletion")
        });
        for (owner_ref, owner) in owners {
            let uid = meta_str(&owner, "uid").to_string();
            let list = finalizers(&owner);
            if list.iter().any(|f| f == "orphan") {
                for (dep, _) in self.dependents(&uid) {
                    self.rewrite(&dep, |d| {
                        let refs = owner_refs(d)
                            .into_iter()
                            .filter(|r| r["uid"] != uid.as_str())
                            .collect();
                        set_owner_refs(d, refs);
                    });
                }
                self.rewrite(&owner_ref, |o| without_finalizer(o, "orphan"));
            } else {
                let dependents = self.dependents(&uid);
                for (dep, obj) in &dependents {
                    if !is_deleting(obj) {
                        self.delete_ref(dep, Propagation::Background);
                    }
                }
                let blocking = self.dependents(&uid).iter().any(|(_, d)| {
                    owner_refs(d)
                        .iter()
                        .any(|r| r["uid"] == uid.as_str() && r["blockOwnerDeletion"] == true)
                });
                if !blocking {
                    self.rewrite(&owner_ref, |o| without_finalizer(o, "foregroundDeletion"));
                }
            }
        }
    }

    /// Whether the owner a reference names exists: same uid, and for a namespaced
    /// owner, the dependent's namespace (cross-namespace owners do not count, as in
    /// Kubernetes).
    fn owner_exists(&self, dependent_ns: &str, reference: &Value) -> bool {
        let Some(uid) = reference["uid"].as_str() else {
            return false;
        };
        self.by_uid(uid)
            .is_some_and(|o| o.namespace.is_empty() || o.namespace == dependent_ns)
    }

    fn orphans(&mut self) {
        let with_owners = self.objects_where(|_, o| !owner_refs(o).is_empty());
        for (r, obj) in with_owners {
            let refs = owner_refs(&obj);
            let (present, absent): (Vec<Value>, Vec<Value>) = refs
                .into_iter()
                .partition(|o| self.owner_exists(&r.namespace, o));
            if absent.is_empty() {
                continue;
            }
            if present.is_empty() {
                if !is_deleting(&obj) {
                    self.delete_ref(&r, Propagation::Background);
                }
            } else {
                self.rewrite(&r, |o| set_owner_refs(o, present));
            }
        }
    }
}
