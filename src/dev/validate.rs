//! The checks `api::validation` makes, run over all manifests before anything is touched.

use std::path::Path;

use super::manifests::Manifests;
use crate::api::ServiceDatabase;
use crate::api::validation::{
    validate_database_server, validate_service_database, validate_tenant,
};

/// What validation found: every error with its file and field, and which resources are
/// invalid (they are not touched; the others go ahead).
#[derive(Default)]
pub struct Invalid {
    pub errors: Vec<String>,
    /// An invalid DatabaseServer stops everything: placement depends on all of them.
    pub servers: bool,
    /// (kind, namespace, name) of invalid ServiceDatabases and Tenants.
    pub resources: Vec<(&'static str, String, String)>,
}

impl Invalid {
    pub fn contains(
        &self,
        kind: &str,
        meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    ) -> bool {
        self.resources.iter().any(|(k, ns, name)| {
            *k == kind
                && Some(ns.as_str()) == meta.namespace.as_deref()
                && Some(name.as_str()) == meta.name.as_deref()
        })
    }
}

pub fn validate(m: &Manifests) -> Invalid {
    let mut invalid = Invalid::default();
    let mut report = |file: &Path, what: String, errs: Vec<crate::api::FieldError>| {
        for e in errs {
            invalid
                .errors
                .push(format!("{}: {what}: {e}", file.display()));
        }
    };
    let mut servers = false;
    for s in &m.servers {
        if let Err(e) = validate_database_server(&s.value) {
            servers = true;
            report(
                &s.file,
                resource_name("DatabaseServer", None, &s.value.metadata.name),
                e,
            );
        }
    }
    let mut resources = Vec::new();
    let key = |kind, meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        (
            kind,
            meta.namespace.clone().unwrap_or_default(),
            meta.name.clone().unwrap_or_default(),
        )
    };
    for s in &m.services {
        if let Err(e) = validate_service_database(&s.value) {
            resources.push(key("ServiceDatabase", &s.value.metadata));
            report(&s.file, describe(&s.value), e);
        }
    }
    for t in &m.tenants {
        if let Err(e) = validate_tenant(&t.value) {
            resources.push(key("Tenant", &t.value.metadata));
            report(
                &t.file,
                resource_name(
                    "Tenant",
                    t.value.metadata.namespace.as_deref(),
                    &t.value.metadata.name,
                ),
                e,
            );
        }
    }
    invalid.servers = servers;
    invalid.resources = resources;
    invalid
}

fn resource_name(kind: &str, ns: Option<&str>, name: &Option<String>) -> String {
    match ns {
        Some(ns) => format!("{kind} {ns}/{}", name.as_deref().unwrap_or("")),
        None => format!("{kind} {}", name.as_deref().unwrap_or("")),
    }
}

pub fn describe(sdb: &ServiceDatabase) -> String {
    resource_name(
        "ServiceDatabase",
        sdb.metadata.namespace.as_deref(),
        &sdb.metadata.name,
    )
}
