//! What a request is about, read from its method and URL the way the API server's
//! `RequestInfoFactory` does: verb (get, list, watch, create, update, patch, delete,
//! deletecollection), group, version, namespace, resource, name, subresource. Shared by
//! the fake server's router and the client-side recorder and fault injector, so both
//! speak in RBAC terms.

/// A parsed API request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestInfo {
    /// RBAC verb; for non-resource URLs (discovery, /version) the lowercased method.
    pub verb: String,
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    /// The resource's plural, empty for non-resource requests.
    pub resource: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
    pub path: String,
    pub query: String,
}

impl RequestInfo {
    /// Whether the request is about a resource (as opposed to discovery or /version).
    pub fn is_resource(&self) -> bool {
        !self.resource.is_empty()
    }

    /// Whether the verb changes state.
    pub fn is_write(&self) -> bool {
        matches!(
            self.verb.as_str(),
            "create" | "update" | "patch" | "delete" | "deletecollection"
        )
    }

    /// The resource as RBAC rules name it: `jobs.batch`, `secrets`, `widgets/status`.
    pub fn rbac_resource(&self) -> String {
        let mut r = if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        };
        if let Some(sub) = &self.subresource {
            r = format!("{r}/{sub}");
        }
        r
    }

    /// The value of one query parameter.
    pub fn param(&self, key: &str) -> Option<String> {
        query_param(&self.query, key)
    }
}

pub(crate) fn query_param(query: &str, key: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

fn decode(segment: &str) -> String {
    url::form_urlencoded::parse(format!("x={segment}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

pub fn parse(method: &str, path: &str, query: &str) -> RequestInfo {
    let segments: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(decode)
        .collect();
    let mut info = RequestInfo {
        verb: method.to_ascii_lowercase(),
        group: String::new(),
        version: String::new(),
        namespace: None,
        resource: String::new(),
        name: None,
        subresource: None,
        path: path.to_string(),
        query: query.to_string(),
    };
    let rest: &[String] = match segments.first().map(String::as_str) {
        Some("api") if segments.len() >= 2 => {
            info.version = segments[1].clone();
            &segments[2..]
        }
        Some("apis") if segments.len() >= 3 => {
            info.group = segments[1].clone();
            info.version = segments[2].clone();
            &segments[3..]
        }
        _ => return info,
    };
    let mut rest = rest;
    // /namespaces/{ns}/{resource}... unless it is the namespace's own subresource
    if rest.len() >= 3
        && rest[0] == "namespaces"
        && !(rest.len() == 3 && matches!(rest[2].as_str(), "status" | "finalize"))
    {
        info.namespace = Some(rest[1].clone());
        rest = &rest[2..];
    }
    let Some(resource) = rest.first() else {
        return info;
    };
    info.resource = resource.clone();
    info.name = rest.get(1).cloned();
    info.subresource = rest.get(2).cloned();
    let watch = matches!(query_param(query, "watch").as_deref(), Some("true" | "1"));
    info.verb = match (method, info.name.is_some()) {
        ("GET", true) => "get",
        ("GET", false) if watch => "watch",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => method,
    }
    .to_ascii_lowercase();
    info
}
