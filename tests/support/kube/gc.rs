//! The controllers of a real control plane that tests depend on, run synchronously after
//! every write until nothing changes (a real cluster does this asynchronously, so tests
//! must poll or watch, never assume; they do):
//! - the namespace controller: a deleted namespace deletes everything in it, waits for
//!   those objects' finalizers, then drops its own `kubernetes` finalizer and goes;
//! - the garbage collector: an object whose owners are all gone is deleted (background
//!   cascade); references to owners that are gone are removed when other owners remain;
//!   `propagationPolicy=Orphan` (finalizer `orphan`) strips the owner's references from
//!   its dependents first; `Foreground` (finalizer `foregroundDeletion`) deletes the
//!   dependents first and keeps the owner until those with `blockOwnerDeletion` are gone;
//! - what kube-controller-manager puts in every active namespace: the root CA publisher's
//!   `kube-root-ca.crt` ConfigMap (key `ca.crt`; recreated when deleted, reset when
//!   edited) and the service account controller's `default` ServiceAccount (recreated
//!   when deleted). Tests must not assume an empty namespace.

use serde_json::{Value, json};

use super::managed::{self, Scope, Writer};
use super::registry::ResKey;
use super::store::{
    ObjRef, Store, finalizers, is_deleting, meta_str, new_uid, now, set_finalizers,
};
use super::write::Propagation;

/// The ConfigMap the root CA publisher puts into every namespace.
pub(crate) const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";
/// A self-signed CA certificate (`CN=kubernetes`) standing in for the cluster's.
const FAKE_CLUSTER_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBgTCCASegAwIBAgIUSBd8t2zHOMWnR5cu0Yu0tdFwTckwCgYIKoZIzj0EAwIw
FTETMBEGA1UEAwwKa3ViZXJuZXRlczAgFw0yNjEyMDEwNzUzMDhaGA8yMTI2MTEw
NzA3NTMwOFowFTETMBEGA1UEAwwKa3ViZXJuZXRlczBZMBMGByqGSM49AgEGCCqG
SM49AwEHA0IABDnep+dUWgafuuZkhm0WGZSeQv1UXv9QweFHlCVtkMLJkrQ+CHWA
GHzm2IdzrxXHSoKmuxBB1ATfycBFSn7yEf+jUzBRMB0GA1UdDgQWBBQ37BgTV2GF
SEM8k93bosEQDUvGjzAfBgNVHSMEGDAWgBQ37BgTV2GFSEM8k93bosEQDUvGjzAP
BgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCIQCLdlpXe5MJKX81EABd
DVcAHwTUC4ZI5kh5MgmDMfJQqgIgORK8BueaT0Mey8Z4F4yeE0jDiC2J0gDG/4Co
ahdAaJE=
-----END CERTIFICATE-----
";
const ROOT_CA_DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

/// The object's ownerReferences, borrowed (none: empty).
fn owner_refs_of(obj: &Value) -> &[Value] {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .map_or(&[], Vec::as_slice)
}

fn owner_refs(obj: &Value) -> Vec<Value> {
    owner_refs_of(obj).to_vec()
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
            self.namespace_defaults();
            if std::mem::take(&mut self.gc_pending) {
                self.finalizing_owners();
                self.orphans();
            }
            if self.rv == before {
                return;
            }
        }
    }

    /// The objects `f` picks (it sees each one's kind, namespace and body), cloned. Only the
    /// picked ones are cloned: this runs after writes, and cloning the whole store made
    /// each write cost the store's size.
    fn objects_where(&self, f: impl Fn(&ResKey, &str, &Value) -> bool) -> Vec<(ObjRef, Value)> {
        self.each()
            .filter(|(key, ns, _, obj)| f(key, ns, obj))
            .map(|(key, ns, name, obj)| {
                let r = ObjRef {
                    key: key.clone(),
                    namespace: ns.to_string(),
                    name: name.to_string(),
                };
                (r, obj.clone())
            })
            .collect()
    }

    /// The Namespaces `f` picks, cloned.
    fn namespaces_where(&self, f: impl Fn(&Value) -> bool) -> Vec<ObjRef> {
        let ns_key = (String::new(), "namespaces".to_string());
        self.each_of(&ns_key)
            .filter(|(_, _, obj)| f(obj))
            .map(|(_, name, _)| ObjRef {
                key: ns_key.clone(),
                namespace: String::new(),
                name: name.to_string(),
            })
            .collect()
    }

    fn namespaces(&mut self) {
        let ns_key = (String::new(), "namespaces".to_string());
        let terminating = self.namespaces_where(is_deleting);
        for ns_ref in terminating {
            let contents = self.objects_where(|key, ns, _| *key != ns_key && ns == ns_ref.name);
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

    /// The root CA publisher and the service account controller.
    fn namespace_defaults(&mut self) {
        let active = self.namespaces_where(|o| !is_deleting(o));
        for ns_ref in active {
            let ns = ns_ref.name;
            let cm = ObjRef {
                key: (String::new(), "configmaps".into()),
                namespace: ns.clone(),
                name: ROOT_CA_CONFIG_MAP.into(),
            };
            let data = json!({"ca.crt": FAKE_CLUSTER_CA});
            match self.object(&cm) {
                None => self.put_new(
                    &cm,
                    json!({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": ROOT_CA_CONFIG_MAP, "namespace": ns,
                            "annotations": {"kubernetes.io/description": ROOT_CA_DESCRIPTION}},
                        "data": data}),
                ),
                Some(o) if o["data"] != data => self.rewrite(&cm, |o| o["data"] = data),
                Some(_) => {}
            }
            let sa = ObjRef {
                key: (String::new(), "serviceaccounts".into()),
                namespace: ns.clone(),
                name: "default".into(),
            };
            if self.object(&sa).is_none() {
                self.put_new(
                    &sa,
                    json!({"apiVersion": "v1", "kind": "ServiceAccount",
                        "metadata": {"name": "default", "namespace": ns}}),
                );
            }
        }
    }

    /// Creates an object as a controller of the control plane would (no admission).
    fn put_new(&mut self, r: &ObjRef, mut obj: Value) {
        let Some(rt) = self.rt(&r.key) else {
            return;
        };
        obj["metadata"]["uid"] = json!(new_uid());
        obj["metadata"]["creationTimestamp"] = json!(now());
        let writer = Writer {
            manager: "kube-controller-manager",
            api_version: "v1",
            scope: Scope::All,
            now: &now(),
        };
        managed::track_update(&rt, None, &mut obj, &writer);
        self.put(r, obj, None);
    }

    fn dependents(&self, owner_uid: &str) -> Vec<(ObjRef, Value)> {
        self.objects_where(|_, _, o| owner_refs_of(o).iter().any(|r| r["uid"] == owner_uid))
    }

    fn finalizing_owners(&mut self) {
        let owners = self.objects_where(|_, _, o| {
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

    /// Whether `obj` (in `ns`) names an owner that is not there.
    fn names_absent_owner(&self, ns: &str, obj: &Value) -> bool {
        owner_refs_of(obj).iter().any(|o| !self.owner_exists(ns, o))
    }

    /// Whether a write of `obj` (in `ns`) may give the collector work: it is being deleted,
    /// names an absent owner, or names an owner being deleted (a foreground deletion waits
    /// on its dependents' blockOwnerDeletion).
    pub(crate) fn gives_gc_work(&self, ns: &str, obj: &Value) -> bool {
        is_deleting(obj)
            || owner_refs_of(obj).iter().any(|o| {
                !self.owner_exists(ns, o)
                    || o["uid"]
                        .as_str()
                        .and_then(|uid| self.by_uid(uid))
                        .and_then(|r| self.object(r))
                        .is_some_and(is_deleting)
            })
    }

    fn orphans(&mut self) {
        let with_owners = self.objects_where(|_, ns, o| self.names_absent_owner(ns, o));
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
