//! RBAC as kube-apiserver's authorizer applies it, for requests that impersonate a user
//! (the `Impersonate-User` header, which kube's `auth_info.impersonate` sends). The fake
//! stores Roles, ClusterRoles and their bindings like any other kind; a request made as a
//! user is allowed when a binding to that user (or one of its groups, or its
//! ServiceAccount) grants a rule matching the request's verb, API group, resource (with
//! subresource) and name, cluster-wide for a ClusterRoleBinding, in the binding's namespace
//! for a RoleBinding. A denied request gets the 403 `Status` a real server sends.
//!
//! Requests without the header are the test's own (cluster-admin), as before. Discovery and
//! other non-resource GETs are allowed for every user, as the bootstrap `system:discovery`
//! and `system:public-info-viewer` ClusterRoles do. Not modelled: aggregated ClusterRoles,
//! the escalation check on writing roles, the short delay a real server's RBAC cache takes
//! to see a new binding.
//!
//! The rule matching (`PolicyRule::allows`) is public so tests can check a chart's rules
//! against recorded requests with the same semantics.

use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::request_info::RequestInfo;
use super::selectors::Selectors;
use super::status::ApiError;
use super::store::Store;

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// One rule of a Role or ClusterRole (`rbac.authorization.k8s.io/v1` PolicyRule).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyRule {
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub verbs: Vec<String>,
    pub resource_names: Vec<String>,
    pub non_resource_urls: Vec<String>,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

impl PolicyRule {
    pub fn from_json(rule: &Value) -> PolicyRule {
        PolicyRule {
            api_groups: strings(&rule["apiGroups"]),
            resources: strings(&rule["resources"]),
            verbs: strings(&rule["verbs"]),
            resource_names: strings(&rule["resourceNames"]),
            non_resource_urls: strings(&rule["nonResourceURLs"]),
        }
    }

    /// The rules of a Role or ClusterRole object.
    pub fn all_of(role: &Value) -> Vec<PolicyRule> {
        role["rules"]
            .as_array()
            .map(|rules| rules.iter().map(PolicyRule::from_json).collect())
            .unwrap_or_default()
    }

    /// Whether this rule allows the request, as `rbac/validation.RuleAllows` decides.
    pub fn allows(&self, info: &RequestInfo) -> bool {
        let any = |list: &[String], want: &str| list.iter().any(|x| x == "*" || x == want);
        if !any(&self.verbs, &info.verb) {
            return false;
        }
        if !info.is_resource() {
            return self.non_resource_urls.iter().any(|u| {
                u == "*"
                    || *u == info.path
                    || u.strip_suffix('*')
                        .is_some_and(|prefix| info.path.starts_with(prefix))
            });
        }
        if !any(&self.api_groups, &info.group) {
            return false;
        }
        let sub = info.subresource.as_deref().unwrap_or_default();
        let combined = match sub {
            "" => info.resource.clone(),
            sub => format!("{}/{sub}", info.resource),
        };
        let resource_ok = self.resources.iter().any(|r| {
            r == "*" || *r == combined || (!sub.is_empty() && r.strip_prefix("*/") == Some(sub))
        });
        if !resource_ok {
            return false;
        }
        self.resource_names.is_empty()
            || request_name(info).is_some_and(|n| self.resource_names.contains(&n))
    }
}

/// The object name RBAC sees: the URL's, or for list and watch a `metadata.name=` field
/// selector's (as the request info factory does since Kubernetes 1.11).
pub fn request_name(info: &RequestInfo) -> Option<String> {
    if let Some(name) = &info.name {
        return Some(name.clone());
    }
    if !matches!(info.verb.as_str(), "list" | "watch") {
        return None;
    }
    let selector = info.param("fieldSelector")?;
    selector.split(',').find_map(|term| {
        let value = term
            .strip_prefix("metadata.name==")
            .or_else(|| term.strip_prefix("metadata.name="))?;
        Some(value.to_string())
    })
}

/// Who a request is made as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
}

impl User {
    /// The user a request impersonates, with the groups the API server adds (a
    /// ServiceAccount's groups when none are given, and `system:authenticated`).
    pub fn impersonated(headers: &HeaderMap) -> Option<User> {
        let name = headers.get("impersonate-user")?.to_str().ok()?.to_string();
        let mut groups: Vec<String> = headers
            .get_all("impersonate-group")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect();
        if groups.is_empty()
            && let Some((ns, _)) = service_account(&name)
        {
            groups.push("system:serviceaccounts".into());
            groups.push(format!("system:serviceaccounts:{ns}"));
        }
        groups.push("system:authenticated".into());
        Some(User { name, groups })
    }
}

/// (namespace, name) of a `system:serviceaccount:<ns>:<name>` user.
fn service_account(user: &str) -> Option<(&str, &str)> {
    user.strip_prefix("system:serviceaccount:")?.split_once(':')
}

fn subject_matches(subject: &Value, binding_ns: &str, user: &User) -> bool {
    let name = subject["name"].as_str().unwrap_or_default();
    match subject["kind"].as_str() {
        Some("User") => name == user.name,
        Some("Group") => user.groups.iter().any(|g| g == name),
        Some("ServiceAccount") => {
            let ns = subject["namespace"]
                .as_str()
                .filter(|n| !n.is_empty())
                .unwrap_or(binding_ns);
            user.name == format!("system:serviceaccount:{ns}:{name}")
        }
        _ => false,
    }
}

fn objects(store: &Store, plural: &str, ns: Option<&str>) -> Vec<Value> {
    match store.rt(&(RBAC_GROUP.to_string(), plural.to_string())) {
        Some(rt) => store.select(&rt, ns, &Selectors::default()),
        None => Vec::new(),
    }
}

fn named<'a>(roles: &'a [Value], name: &Value) -> Option<&'a Value> {
    roles.iter().find(|r| r["metadata"]["name"] == *name)
}

/// Every rule granted to `user` that applies to a request in `namespace` (None: a
/// cluster-scoped request or one across all namespaces): ClusterRoleBindings everywhere,
/// RoleBindings (to a Role or a ClusterRole) in their own namespace only.
fn rules_for(store: &Store, user: &User, namespace: Option<&str>) -> Vec<PolicyRule> {
    let cluster_roles = objects(store, "clusterroles", None);
    let binds = |binding: &Value, ns: &str| {
        binding["subjects"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| subject_matches(s, ns, user)))
    };
    let mut roles: Vec<&Value> = Vec::new();
    let cluster_bindings = objects(store, "clusterrolebindings", None);
    for binding in cluster_bindings.iter().filter(|b| binds(b, "")) {
        if binding["roleRef"]["kind"] == "ClusterRole" {
            roles.extend(named(&cluster_roles, &binding["roleRef"]["name"]));
        }
    }
    let (local_roles, local_bindings) = match namespace {
        Some(ns) => (
            objects(store, "roles", Some(ns)),
            objects(store, "rolebindings", Some(ns)),
        ),
        None => (Vec::new(), Vec::new()),
    };
    let ns = namespace.unwrap_or_default();
    for binding in local_bindings.iter().filter(|b| binds(b, ns)) {
        let name = &binding["roleRef"]["name"];
        match binding["roleRef"]["kind"].as_str() {
            Some("ClusterRole") => roles.extend(named(&cluster_roles, name)),
            Some("Role") => roles.extend(named(&local_roles, name)),
            _ => {}
        }
    }
    roles.into_iter().flat_map(PolicyRule::all_of).collect()
}

/// Allows the request, or answers what kube-apiserver answers when RBAC denies it.
pub(crate) fn authorize(store: &Store, user: &User, info: &RequestInfo) -> Result<(), ApiError> {
    if !info.is_resource() && info.verb == "get" {
        return Ok(());
    }
    let rules = rules_for(store, user, info.namespace.as_deref());
    if rules.iter().any(|r| r.allows(info)) {
        return Ok(());
    }
    Err(forbidden(user, info))
}

/// `responsewriters.Forbidden`: `<resource> "<name>" is forbidden: User "<u>" cannot <verb>
/// resource "<res>" in API group "<g>" in the namespace "<ns>"` (or `at the cluster
/// scope`), reason Forbidden, details naming group, resource and name.
fn forbidden(user: &User, info: &RequestInfo) -> ApiError {
    let u = &user.name;
    let verb = &info.verb;
    if !info.is_resource() {
        return ApiError::new(
            403,
            "Forbidden",
            format!("forbidden: User {u:?} cannot {verb} path {:?}", info.path),
        );
    }
    let combined = match &info.subresource {
        Some(sub) => format!("{}/{sub}", info.resource),
        None => info.resource.clone(),
    };
    let group = &info.group;
    let why = match &info.namespace {
        Some(ns) => format!(
            "User {u:?} cannot {verb} resource {combined:?} in API group {group:?} in the namespace {ns:?}"
        ),
        None => format!(
            "User {u:?} cannot {verb} resource {combined:?} in API group {group:?} at the cluster scope"
        ),
    };
    let qualified = if group.is_empty() {
        info.resource.clone()
    } else {
        format!("{}.{group}", info.resource)
    };
    let name = info.name.clone().unwrap_or_default();
    let message = if name.is_empty() {
        format!("{qualified} is forbidden: {why}")
    } else {
        format!("{qualified} {name:?} is forbidden: {why}")
    };
    let mut details = json!({"kind": info.resource});
    if !group.is_empty() {
        details["group"] = json!(group);
    }
    if !name.is_empty() {
        details["name"] = json!(name);
    }
    let mut err = ApiError::new(403, "Forbidden", message);
    err.details = Some(details);
    err
}
