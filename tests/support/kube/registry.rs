//! The kinds the fake serves. Objects are plain JSON; a kind is only data (group, versions,
//! plural, scope, subresources), so every kind goes through the same code. Core kinds are
//! built in; custom kinds are registered when a CustomResourceDefinition is written, as on
//! a real cluster, so tests install CRDs the same way against both.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::status::Resource;

/// Storage key of a kind: (group, plural). Versions share one storage (the fake does no
/// conversion: a CRD's versions are assumed to have the same schema).
pub(crate) type ResKey = (String, String);

#[derive(Clone, Debug)]
pub(crate) struct ResourceType {
    pub group: String,
    /// Served versions, the preferred (storage) one first.
    pub versions: Vec<String>,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub namespaced: bool,
    pub status_subresource: bool,
    /// Whether `metadata.generation` is maintained (CRs, Jobs, CRDs; not ConfigMaps).
    pub generation: bool,
    /// Served from a CRD: strategic merge is refused and PUT needs a resourceVersion, as
    /// for real custom resources.
    pub custom: bool,
    /// The storage version's `openAPIV3Schema` (custom kinds), for list types in apply.
    pub schema: Option<Value>,
    /// `selectableFields` of the CRD (field selectors beyond metadata.name/namespace).
    pub selectable_fields: Vec<String>,
}

impl ResourceType {
    pub fn key(&self) -> ResKey {
        (self.group.clone(), self.plural.clone())
    }

    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    pub fn preferred_api_version(&self) -> String {
        self.api_version(&self.versions[0])
    }

    pub fn resource(&self) -> Resource {
        Resource {
            group: self.group.clone(),
            plural: self.plural.clone(),
            kind: self.kind.clone(),
        }
    }

    /// Whether a DELETE that removes the object at once answers with the object (true)
    /// or with a `Status` (false). Only some core stores return the object
    /// (`ReturnDeletedObject`); custom resources answer with a Status. A deletion that
    /// waits for finalizers always answers with the object.
    pub fn delete_returns_object(&self) -> bool {
        self.group.is_empty()
            && matches!(
                self.plural.as_str(),
                "namespaces" | "pods" | "serviceaccounts"
            )
    }
}

#[allow(clippy::too_many_arguments)]
fn builtin(
    group: &str,
    version: &str,
    plural: &str,
    kind: &str,
    namespaced: bool,
    status: bool,
    generation: bool,
    short_names: &[&str],
) -> ResourceType {
    ResourceType {
        group: group.into(),
        versions: vec![version.into()],
        plural: plural.into(),
        singular: kind.to_lowercase(),
        kind: kind.into(),
        short_names: short_names.iter().map(|s| s.to_string()).collect(),
        categories: Vec::new(),
        namespaced,
        status_subresource: status,
        generation,
        custom: false,
        schema: None,
        selectable_fields: Vec::new(),
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Registry {
    types: BTreeMap<ResKey, ResourceType>,
}

impl Registry {
    /// The core kinds the operator and its tests touch.
    pub fn builtin() -> Registry {
        let types = [
            builtin(
                "",
                "v1",
                "namespaces",
                "Namespace",
                false,
                true,
                false,
                &["ns"],
            ),
            builtin("", "v1", "secrets", "Secret", true, false, false, &[]),
            builtin(
                "",
                "v1",
                "configmaps",
                "ConfigMap",
                true,
                false,
                false,
                &["cm"],
            ),
            builtin("", "v1", "events", "Event", true, false, false, &["ev"]),
            builtin("", "v1", "pods", "Pod", true, true, true, &["po"]),
            builtin(
                "",
                "v1",
                "serviceaccounts",
                "ServiceAccount",
                true,
                false,
                false,
                &["sa"],
            ),
            builtin("batch", "v1", "jobs", "Job", true, true, true, &[]),
            builtin(
                "events.k8s.io",
                "v1",
                "events",
                "Event",
                true,
                false,
                false,
                &["ev"],
            ),
            builtin(
                "coordination.k8s.io",
                "v1",
                "leases",
                "Lease",
                true,
                false,
                false,
                &[],
            ),
            builtin(
                "rbac.authorization.k8s.io",
                "v1",
                "roles",
                "Role",
                true,
                false,
                false,
                &[],
            ),
            builtin(
                "rbac.authorization.k8s.io",
                "v1",
                "rolebindings",
                "RoleBinding",
                true,
                false,
                false,
                &[],
            ),
            builtin(
                "rbac.authorization.k8s.io",
                "v1",
                "clusterroles",
                "ClusterRole",
                false,
                false,
                false,
                &[],
            ),
            builtin(
                "rbac.authorization.k8s.io",
                "v1",
                "clusterrolebindings",
                "ClusterRoleBinding",
                false,
                false,
                false,
                &[],
            ),
            builtin(
                "apiextensions.k8s.io",
                "v1",
                "customresourcedefinitions",
                "CustomResourceDefinition",
                false,
                true,
                true,
                &["crd", "crds"],
            ),
        ];
        Registry {
            types: types.into_iter().map(|t| (t.key(), t)).collect(),
        }
    }

    /// The kind served at `/apis/<group>/<version>/<plural>`.
    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.types
            .get(&(group.to_string(), plural.to_string()))
            .filter(|t| t.versions.iter().any(|v| v == version))
    }

    pub fn get(&self, key: &ResKey) -> Option<&ResourceType> {
        self.types.get(key)
    }

    /// The kind named by an `apiVersion` + `kind` pair (owner references).
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<&ResourceType> {
        let (group, version) = split_api_version(api_version);
        self.types
            .values()
            .find(|t| t.group == group && t.kind == kind && t.versions.iter().any(|v| v == version))
    }

    pub fn all(&self) -> impl Iterator<Item = &ResourceType> {
        self.types.values()
    }

    pub fn insert(&mut self, t: ResourceType) {
        self.types.insert(t.key(), t);
    }

    pub fn remove(&mut self, key: &ResKey) {
        self.types.remove(key);
    }

    /// (group, versions) in discovery order: core first, then groups by name.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for t in self.types.values() {
            let versions = groups.entry(t.group.clone()).or_default();
            for v in &t.versions {
                if !versions.contains(v) {
                    versions.push(v.clone());
                }
            }
        }
        groups.into_iter().collect()
    }
}

pub(crate) fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", api_version),
    }
}

/// The kind a CustomResourceDefinition declares, or why it declares none.
pub(crate) fn from_crd(crd: &Value) -> Result<ResourceType, String> {
    let spec = &crd["spec"];
    let names = &spec["names"];
    let text = |v: &Value, what: &str| -> Result<String, String> {
        v.as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or_else(|| format!("{what}: Required value"))
    };
    let group = text(&spec["group"], "spec.group")?;
    let plural = text(&names["plural"], "spec.names.plural")?;
    let kind = text(&names["kind"], "spec.names.kind")?;
    let singular = names["singular"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_lowercase());
    let namespaced = match spec["scope"].as_str() {
        Some("Namespaced") => true,
        Some("Cluster") => false,
        other => return Err(format!("spec.scope: Unsupported value: {other:?}")),
    };
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    let served: Vec<&Value> = versions
        .iter()
        .filter(|v| v["served"].as_bool() == Some(true))
        .collect();
    if served.is_empty() {
        return Err("spec.versions: Invalid value: must have at least one served version".into());
    }
    let storage = versions
        .iter()
        .find(|v| v["storage"].as_bool() == Some(true))
        .ok_or(
            "spec.versions: Invalid value: must have exactly one version marked as storage version",
        )?;
    let mut version_names: Vec<String> = vec![];
    // the storage version is the preferred one (first), then the other served versions
    if storage["served"].as_bool() == Some(true) {
        version_names.push(text(&storage["name"], "spec.versions[].name")?);
    }
    for v in &served {
        let name = text(&v["name"], "spec.versions[].name")?;
        if !version_names.contains(&name) {
            version_names.push(name);
        }
    }
    let status_subresource = served
        .iter()
        .any(|v| v["subresources"]["status"].is_object());
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let selectable_fields = storage["selectableFields"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f["jsonPath"].as_str())
                .map(|p| p.trim_start_matches('.').to_string())
                .collect()
        })
        .unwrap_or_default();
    Ok(ResourceType {
        group,
        versions: version_names,
        plural,
        singular,
        kind,
        short_names: strings(&names["shortNames"]),
        categories: strings(&names["categories"]),
        namespaced,
        status_subresource,
        generation: true,
        custom: true,
        schema: Some(storage["schema"]["openAPIV3Schema"].clone()),
        selectable_fields,
    })
}

/// `APIResource` entries of one group version, subresources included, for discovery.
pub(crate) fn api_resources(registry: &Registry, group: &str, version: &str) -> Vec<Value> {
    let verbs = json!([
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch"
    ]);
    let mut out = vec![];
    for t in registry.all() {
        if t.group != group || !t.versions.iter().any(|v| v == version) {
            continue;
        }
        let mut r = json!({
            "name": t.plural,
            "singularName": t.singular,
            "namespaced": t.namespaced,
            "kind": t.kind,
            "verbs": verbs,
        });
        if !t.short_names.is_empty() {
            r["shortNames"] = json!(t.short_names);
        }
        if !t.categories.is_empty() {
            r["categories"] = json!(t.categories);
        }
        out.push(r);
        if t.status_subresource {
            out.push(json!({
                "name": format!("{}/status", t.plural),
                "singularName": "",
                "namespaced": t.namespaced,
                "kind": t.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    out
}
