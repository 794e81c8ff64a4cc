//! The write path every verb goes through (create, PUT, the four PATCH formats,
//! DELETE), so that preconditions, subresources, generation, finalizers and managed
//! fields behave the same whichever verb changed an object.

use serde_json::{Value, json};

use super::admission::FieldValidation;
use super::defaults;
use super::managed::{self, Scope, Writer};
use super::patch;
use super::registry::{self, ResourceType};
use super::status::{ApiError, ApiResult, Cause, Resource};
use super::store::{
    ObjRef, Store, finalizers, held, is_deleting, meta_str, new_uid, now, set_finalizers,
};
use super::validation;

/// What a write needs to know besides the object.
#[derive(Clone, Debug, Default)]
pub(crate) struct WriteOptions {
    pub manager: String,
    pub api_version: String,
    pub subresource: Option<String>,
    pub dry_run: bool,
    pub force: bool,
    pub field_validation: FieldValidation,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Propagation {
    #[default]
    Background,
    Foreground,
    Orphan,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct DeleteOptions {
    pub propagation: Propagation,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub dry_run: bool,
}

/// The outcome of a DELETE: the object, and whether it is gone already or only marked
/// (finalizers pending).
pub(crate) struct Deleted {
    pub object: Value,
    pub gone: bool,
}

/// The 5 characters generateName appends (the same alphabet as Kubernetes: no vowels,
/// so no words).
fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn without_rv(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o["metadata"].as_object_mut() {
        m.remove("resourceVersion");
    }
    o
}

/// Whether a change bumps `metadata.generation`: anything but metadata (and status, when
/// status is a subresource) changed.
fn spec_changed(rt: &ResourceType, old: &Value, new: &Value) -> bool {
    let keys = |o: &Value| -> Vec<String> {
        o.as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    };
    let mut all = keys(old);
    all.extend(keys(new));
    all.into_iter().any(|k| {
        let skip = matches!(k.as_str(), "metadata" | "apiVersion" | "kind")
            || (k == "status" && rt.status_subresource);
        !skip && old.get(&k) != new.get(&k)
    })
}

impl Store {
    fn check_namespace(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        creating: bool,
    ) -> ApiResult<()> {
        if !rt.namespaced {
            return Ok(());
        }
        let ns_ref = ObjRef {
            key: ("".into(), "namespaces".into()),
            namespace: String::new(),
            name: ns.into(),
        };
        let namespaces = Resource {
            group: String::new(),
            plural: "namespaces".into(),
            kind: "Namespace".into(),
        };
        match self.object(&ns_ref) {
            None => Err(ApiError::not_found(&namespaces, ns)),
            Some(n) if creating && is_deleting(n) => {
                let mut err = ApiError::forbidden(
                    &rt.resource(),
                    name,
                    &format!(
                        "unable to create new content in namespace {ns} because it is being terminated"
                    ),
                );
                if let Some(d) = err.details.as_mut() {
                    d["causes"] = json!([{"reason": "NamespaceTerminating", "message": format!("namespace {ns} is being terminated"), "field": "metadata.namespace"}]);
                }
                Err(err)
            }
            Some(_) => Ok(()),
        }
    }

    /// Checks `apiVersion`/`kind` of a request body against the URL and fills them in.
    fn check_type(rt: &ResourceType, body: &mut Value, api_version: &str) -> ApiResult<()> {
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request is not a JSON object",
            ));
        }
        if let Some(kind) = body["kind"].as_str().filter(|k| !k.is_empty())
            && kind != rt.kind
        {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({kind}) does not match the expected kind ({})",
                rt.kind
            )));
        }
        if let Some(av) = body["apiVersion"].as_str().filter(|a| !a.is_empty()) {
            let (group, version) = registry::split_api_version(av);
            if group != rt.group || !rt.versions.iter().any(|v| v == version) {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({av}) does not match the expected API version ({api_version})"
                )));
            }
        }
        body["kind"] = json!(rt.kind);
        body["apiVersion"] = json!(rt.preferred_api_version());
        if !body["metadata"].is_object() {
            body["metadata"] = json!({});
        }
        Ok(())
    }

    pub fn create(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        mut body: Value,
        o: &WriteOptions,
    ) -> ApiResult<Value> {
        if o.subresource.is_some() {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ));
        }
        Self::check_type(rt, &mut body, &o.api_version)?;
        self.create_checked(rt, ns, body, o, true)
    }

    /// Create after the body's type was checked; `track` is false when server-side apply
    /// has already recorded the managed fields.
    fn create_checked(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        mut body: Value,
        o: &WriteOptions,
        track: bool,
    ) -> ApiResult<Value> {
        let meta = body["metadata"].as_object_mut().expect("checked");
        if rt.namespaced {
            match meta.get("namespace").and_then(Value::as_str) {
                Some(body_ns) if !body_ns.is_empty() && body_ns != ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => {
                    meta.insert("namespace".into(), json!(ns));
                }
            }
        } else {
            meta.remove("namespace");
        }
        let mut name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if name.is_empty() {
            let prefix = meta
                .get("generateName")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if prefix.is_empty() {
                return Err(ApiError::invalid(
                    &rt.resource(),
                    "",
                    vec![Cause::required(
                        "metadata.name",
                        "name or generateName is required",
                    )],
                ));
            }
            name = format!("{prefix}{}", name_suffix());
            meta.insert("name".into(), json!(name));
        }
        if meta
            .get("resourceVersion")
            .and_then(Value::as_str)
            .is_some_and(|rv| !rv.is_empty())
        {
            return Err(ApiError::internal(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        self.check_namespace(rt, ns, &name, true)?;
        let r = Self::objref(rt, ns, &name);
        if self.object(&r).is_some() {
            return Err(ApiError::already_exists(&rt.resource(), &name));
        }
        for server_owned in [
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            meta.remove(server_owned);
        }
        meta.insert("uid".into(), json!(new_uid()));
        meta.insert("creationTimestamp".into(), json!(now()));
        if rt.generation {
            meta.insert("generation".into(), json!(1));
        } else {
            meta.remove("generation");
        }
        if rt.status_subresource
            && let Some(obj) = body.as_object_mut()
        {
            obj.remove("status");
        }
        self.prune_custom(rt, &mut body, o, true)?;
        if rt.group.is_empty() && rt.plural == "pods" {
            self.admit_pod(ns, &name, &mut body)?;
        }
        defaults::prepare(rt, None, &mut body, Scope::All)?;
        validation::validate(&self.registry, rt, None, &body, Scope::All)?;
        if track {
            if let Some(m) = body["metadata"].as_object_mut() {
                m.remove("managedFields");
            }
            let writer = Writer {
                manager: &o.manager,
                api_version: &o.api_version,
                scope: Scope::of(rt, None),
                now: &now(),
            };
            managed::track_update(rt, None, &mut body, &writer);
        }
        if o.dry_run {
            return Ok(body);
        }
        let stored = self.put(&r, body, None);
        self.after_write(rt, &stored);
        self.settle();
        Ok(stored)
    }

    /// PUT: replace the object (or its status).
    pub fn update(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        mut body: Value,
        o: &WriteOptions,
    ) -> ApiResult<Value> {
        let old = self.get(rt, ns, name)?;
        Self::check_type(rt, &mut body, &o.api_version)?;
        let body_name = meta_str(&body, "name");
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        match meta_str(&body, "resourceVersion") {
            "" if rt.custom => {
                return Err(ApiError::invalid(
                    &rt.resource(),
                    name,
                    vec![Cause::invalid(
                        "metadata.resourceVersion",
                        "0x0: must be specified for an update",
                    )],
                ));
            }
            "" => {}
            rv if rv != meta_str(&old, "resourceVersion") => {
                return Err(ApiError::stale(&rt.resource(), name));
            }
            _ => {}
        }
        self.commit(rt, old, body, o, false)
    }

    /// PATCH in any of the four formats, keyed by content type.
    pub fn patch(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        content_type: &str,
        body: &[u8],
        o: &WriteOptions,
    ) -> ApiResult<Value> {
        let content_type = content_type.split(';').next().unwrap_or_default().trim();
        let current = self.get(rt, ns, name);
        if content_type == "application/apply-patch+yaml" {
            return self.apply(rt, ns, name, body, current.ok(), o);
        }
        let current = current?;
        let parse = || -> ApiResult<Value> {
            serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))
        };
        let patched = match content_type {
            "application/merge-patch+json" => {
                let mut new = current.clone();
                patch::merge_patch(&mut new, &parse()?);
                new
            }
            "application/json-patch+json" => patch::json_patch(&current, &parse()?)?,
            "application/strategic-merge-patch+json" if !rt.custom => {
                let mut new = current.clone();
                patch::strategic_merge(rt, &mut new, &parse()?)?;
                new
            }
            other => return Err(ApiError::unsupported_media_type(other)),
        };
        let rv = meta_str(&patched, "resourceVersion");
        if !rv.is_empty() && rv != meta_str(&current, "resourceVersion") {
            return Err(ApiError::stale(&rt.resource(), name));
        }
        self.commit(rt, current, patched, o, false)
    }

    fn apply(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        body: &[u8],
        current: Option<Value>,
        o: &WriteOptions,
    ) -> ApiResult<Value> {
        if o.manager.is_empty() {
            return Err(ApiError::invalid(
                &Resource {
                    group: "meta.k8s.io".into(),
                    plural: "patchoptions".into(),
                    kind: "PatchOptions".into(),
                },
                "",
                vec![Cause::required(
                    "fieldManager",
                    "is required for apply patch",
                )],
            ));
        }
        let mut config: Value = serde_yaml::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
        for field in ["apiVersion", "kind"] {
            if config[field].as_str().is_none_or(str::is_empty) {
                return Err(ApiError::bad_request(format!(
                    "{field} must be set in an apply configuration"
                )));
            }
        }
        let body_name = meta_str(&config, "name");
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        Self::check_type(rt, &mut config, &o.api_version)?;
        Self::undeclared_fields(rt, ns, name, &config)?;
        let scope = Scope::of(rt, o.subresource.as_deref());
        let time = now();
        let writer = Writer {
            manager: &o.manager,
            api_version: &o.api_version,
            scope,
            now: &time,
        };
        match current {
            None if o.subresource.is_some() => Err(ApiError::not_found(&rt.resource(), name)),
            None => {
                let mut created = managed::apply(rt, None, &config, o.force, &writer)?;
                created["metadata"]["name"] = json!(name);
                Self::check_type(rt, &mut created, &o.api_version)?;
                self.create_checked(rt, ns, created, o, false)
            }
            Some(current) => {
                let rv = meta_str(&config, "resourceVersion");
                if !rv.is_empty() && rv != meta_str(&current, "resourceVersion") {
                    return Err(ApiError::stale(&rt.resource(), name));
                }
                let merged = managed::apply(rt, Some(&current), &config, o.force, &writer)?;
                self.commit(rt, current, merged, o, true)
            }
        }
    }

    /// The write path of PUT and PATCH: scope to the subresource, keep server-owned
    /// metadata, enforce the finalizer rule, default and validate, bump generation,
    /// record managed fields, and store unless nothing changed.
    fn commit(
        &mut self,
        rt: &ResourceType,
        old: Value,
        new: Value,
        o: &WriteOptions,
        applied: bool,
    ) -> ApiResult<Value> {
        let name = meta_str(&old, "name").to_string();
        let scope = Scope::of(rt, o.subresource.as_deref());
        let mut new = match scope {
            Scope::Status => {
                let mut n = old.clone();
                match new.get("status") {
                    Some(s) => n["status"] = s.clone(),
                    None => {
                        n.as_object_mut().expect("object").remove("status");
                    }
                }
                if applied {
                    n["metadata"]["managedFields"] = new["metadata"]["managedFields"].clone();
                }
                n
            }
            Scope::Main => {
                let mut n = new;
                match old.get("status") {
                    Some(s) => n["status"] = s.clone(),
                    None => {
                        n.as_object_mut().expect("object").remove("status");
                    }
                }
                n
            }
            Scope::All => new,
        };
        if !new["metadata"].is_object() {
            new["metadata"] = json!({});
        }
        for field in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "generation",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "resourceVersion",
        ] {
            match old["metadata"].get(field) {
                Some(v) => new["metadata"][field] = v.clone(),
                None => {
                    new["metadata"]
                        .as_object_mut()
                        .expect("object")
                        .remove(field);
                }
            }
        }
        new["kind"] = json!(rt.kind);
        new["apiVersion"] = json!(rt.preferred_api_version());
        if is_deleting(&old) {
            let before = finalizers(&old);
            let added: Vec<String> = finalizers(&new)
                .into_iter()
                .filter(|f| !before.contains(f))
                .collect();
            if !added.is_empty() {
                return Err(ApiError::invalid(
                    &rt.resource(),
                    &name,
                    vec![Cause::forbidden(
                        "metadata.finalizers",
                        format!(
                            "no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"
                        ),
                    )],
                ));
            }
        }
        self.prune_custom(rt, &mut new, o, true)?;
        defaults::prepare(rt, Some(&old), &mut new, scope)?;
        validation::validate(&self.registry, rt, Some(&old), &new, scope)?;
        if rt.generation && spec_changed(rt, &old, &new) {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            new["metadata"]["generation"] = json!(generation);
        }
        if !applied {
            let writer = Writer {
                manager: &o.manager,
                api_version: &o.api_version,
                scope,
                now: &now(),
            };
            managed::track_update(rt, Some(&old), &mut new, &writer);
        }
        if without_rv(&new) == without_rv(&old) {
            return Ok(old);
        }
        if o.dry_run {
            return Ok(new);
        }
        let r = Self::objref(rt, meta_str(&old, "namespace"), &name);
        if is_deleting(&new) && !held(&new) {
            let gone = self.remove_final(&r, new);
            self.settle();
            return Ok(gone);
        }
        let stored = self.put(&r, new, Some(old));
        self.after_write(rt, &stored);
        self.settle();
        Ok(stored)
    }

    /// Side effects of a stored write: a CRD registers (or re-registers) its kind.
    fn after_write(&mut self, rt: &ResourceType, obj: &Value) {
        if rt.group == "apiextensions.k8s.io"
            && rt.plural == "customresourcedefinitions"
            && let Ok(t) = registry::from_crd(obj)
        {
            self.registry.insert(t);
        }
    }

    /// DELETE: mark (finalizers pending) or remove, then let the garbage collector run.
    pub fn delete(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        o: &DeleteOptions,
    ) -> ApiResult<Deleted> {
        let current = self.get(rt, ns, name)?;
        if let Some(uid) = &o.uid
            && uid != meta_str(&current, "uid")
        {
            return Err(ApiError::conflict(
                &rt.resource(),
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta_str(&current, "uid")
                ),
            ));
        }
        if let Some(rv) = &o.resource_version
            && rv != meta_str(&current, "resourceVersion")
        {
            return Err(ApiError::conflict(
                &rt.resource(),
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    meta_str(&current, "resourceVersion")
                ),
            ));
        }
        if o.dry_run {
            return Ok(Deleted {
                object: current,
                gone: false,
            });
        }
        let r = Self::objref(rt, ns, name);
        let deleted = self.delete_ref(&r, o.propagation);
        self.settle();
        Ok(deleted)
    }

    /// Deletion of one object as the API server does it, used by DELETE, the namespace
    /// controller and the garbage collector.
    pub fn delete_ref(&mut self, r: &ObjRef, propagation: Propagation) -> Deleted {
        let Some(current) = self.object(r).cloned() else {
            return Deleted {
                object: Value::Null,
                gone: true,
            };
        };
        let mut obj = current.clone();
        if !is_deleting(&obj) {
            let mut list = finalizers(&obj);
            let extra = match propagation {
                Propagation::Background => None,
                Propagation::Foreground => Some("foregroundDeletion"),
                Propagation::Orphan => Some("orphan"),
            };
            if let Some(f) = extra.filter(|f| !list.iter().any(|l| l == f)) {
                list.push(f.to_string());
                set_finalizers(&mut obj, list);
            }
        }
        if !held(&obj) {
            return Deleted {
                object: self.remove(r),
                gone: true,
            };
        }
        if !is_deleting(&obj) {
            obj["metadata"]["deletionTimestamp"] = json!(now());
            obj["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            // as the apiserver's BeforeDelete: marking an object deleted is a new generation
            if let Some(generation) = obj["metadata"]["generation"].as_i64().filter(|g| *g > 0) {
                obj["metadata"]["generation"] = json!(generation + 1);
            }
            if obj["kind"] == "Namespace" {
                obj["status"]["phase"] = json!("Terminating");
            }
        }
        if obj == current {
            return Deleted {
                object: current,
                gone: false,
            };
        }
        Deleted {
            object: self.put(r, obj, Some(current)),
            gone: false,
        }
    }
}
