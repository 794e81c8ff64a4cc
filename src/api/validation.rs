//! Validation of everything a user writes in a manifest, before any SQL runs or any object is
//! created. No client, no clock: plain functions of the resource.
//!
//! Each failure is a [`FieldError`] naming the field, the value and the rule, displayed as
//! `spec.databaseName: "Orders-DB" is not a valid name: lower-case letters, digits and _,
//! starting with a letter, at most 63 bytes`. All failures are reported at once.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::database_server::DatabaseServer;
use super::service_database::{ExtraRoleSpec, LoginRoleSpec, ServiceDatabase, Tenancy};
use super::template;
use super::tenant::Tenant;
use crate::migrate::version::Version;
use crate::naming;

/// One invalid field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Where, as in the manifest: `spec.roles[1].name`.
    pub path: String,
    /// The offending value (long values are cut).
    pub value: String,
    /// What is wrong, phrased to follow the value: `is not a valid name: ...`.
    pub rule: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Debug-quoting escapes quotes, newlines and control characters in hostile input.
        write!(f, "{}: {:?} {}", self.path, self.value, self.rule)
    }
}

impl std::error::Error for FieldError {}

/// Longest value, in characters, kept in a [`FieldError`].
const MAX_VALUE_CHARS: usize = 100;

impl FieldError {
    pub fn new(path: impl Into<String>, value: &str, rule: impl Into<String>) -> FieldError {
        let value = if value.chars().count() > MAX_VALUE_CHARS {
            let mut cut: String = value.chars().take(MAX_VALUE_CHARS).collect();
            cut.push_str("...");
            cut
        } else {
            value.to_string()
        };
        FieldError {
            path: path.into(),
            value,
            rule: rule.into(),
        }
    }
}

/// All errors as one line, for a condition message or an Event.
pub fn describe(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

pub const IDENTIFIER_RULE: &str = "is not a valid name: lower-case letters, digits and _, starting with a letter, at most 63 bytes";
pub const EXTENSION_RULE: &str = "is not a valid extension name: lower-case letters, digits, _ and -, starting with a letter, at most 63 bytes";
pub const SUBDOMAIN_RULE: &str = "is not a valid Kubernetes name: lower-case letters, digits, - and ., starting and ending with a letter or digit, at most 253 bytes";
pub const NAMESPACE_RULE: &str = "is not a valid namespace: lower-case letters, digits and -, starting and ending with a letter or digit, at most 63 bytes";
pub const SECRET_KEY_RULE: &str =
    "is not a valid Secret key: letters, digits, -, _ and ., at most 253 bytes, not . or ..";
pub const HOST_RULE: &str = "is not a valid host: a DNS name, an IPv4 or IPv6 address, or an absolute socket directory, without spaces, quotes or commas";
pub const PORT_RULE: &str = "is not a valid port: 1 to 65535";
pub const CONNECTION_LIMIT_RULE: &str =
    "is not a valid connection limit: -1 (no limit) or 1 to 10000";
pub const DUPLICATE_RULE: &str = "appears more than once";

/// The keys servicedb always writes into a connection Secret; `secret.template` may not
/// replace them (a Secret servicedb reports Ready must log in).
pub const BUILTIN_SECRET_KEYS: [&str; 16] = [
    "host",
    "port",
    "dbname",
    "username",
    "user",
    "password",
    "uri",
    "jdbc-uri",
    "pgpass",
    "DATABASE_URL",
    "PGHOST",
    "PGPORT",
    "PGDATABASE",
    "PGUSER",
    "PGPASSWORD",
    "PGSSLMODE",
];

/// Databases PostgreSQL itself needs.
pub const RESERVED_DATABASES: [&str; 3] = ["postgres", "template0", "template1"];
/// Shortest password rotation interval.
pub const MIN_ROTATION: Duration = Duration::from_secs(3600);
/// Most tenant databases one migration Job migrates in turn.
pub const MAX_BATCH_SIZE: i32 = 100;
/// Highest connection limit accepted (PostgreSQL's own max_connections rarely exceeds it).
pub const MAX_CONNECTION_LIMIT: i32 = 10_000;

/// Lower-case letters, digits and `_`, starting with a letter, at most 63 bytes.
pub fn is_identifier(s: &str) -> bool {
    is_identifier_with(s, false)
}

/// Like [`is_identifier`], also allowing `-` (`uuid-ossp`).
pub fn is_extension_name(s: &str) -> bool {
    is_identifier_with(s, true)
}

fn is_identifier_with(s: &str, dash: bool) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= naming::MAX_IDENTIFIER_BYTES
        && bytes[0].is_ascii_lowercase()
        && bytes.iter().all(|&b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || (dash && b == b'-')
        })
}

/// A DNS-1123 label: at most 63 bytes of lower-case alphanumerics and `-`, starting and ending
/// with an alphanumeric. Namespaces are labels.
pub fn is_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A DNS-1123 subdomain: dot-separated labels, at most 253 bytes. Names of Secrets, ConfigMaps,
/// ServiceAccounts and of servicedb's own resources.
pub fn is_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= naming::MAX_SUBDOMAIN_BYTES
        && s.split('.').all(|label| {
            let bytes = label.as_bytes();
            !bytes.is_empty()
                && bytes[0].is_ascii_alphanumeric()
                && bytes[bytes.len() - 1].is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// A Secret or ConfigMap key: letters, digits, `-`, `_` and `.`, at most 253 bytes, not `.`,
/// `..` or starting with `..`.
pub fn is_secret_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && !s.starts_with("..")
        && s != "."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// A host name, IP address or (for local use) an absolute Unix socket directory.
pub fn is_host(s: &str) -> bool {
    if s.is_empty() || s.len() > 253 {
        return false;
    }
    if s.starts_with('/') {
        return s
            .chars()
            .all(|c| !c.is_control() && !c.is_whitespace() && !"'\",;\\".contains(c));
    }
    let bracketed = s.starts_with('[') && s.ends_with(']') && s.len() > 2;
    let inner = if bracketed { &s[1..s.len() - 1] } else { s };
    inner
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_' || b == b':')
}

#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn add(&mut self, path: impl Into<String>, value: &str, rule: impl Into<String>) {
        self.0.push(FieldError::new(path, value, rule));
    }

    fn check(&mut self, ok: bool, path: impl Into<String>, value: &str, rule: &str) -> bool {
        if !ok {
            self.add(path, value, rule);
        }
        ok
    }

    fn subdomain(&mut self, path: impl Into<String>, value: &str) -> bool {
        self.check(is_subdomain(value), path, value, SUBDOMAIN_RULE)
    }

    fn port(&mut self, path: &str, port: i32) {
        self.check(
            (1..=65535).contains(&port),
            path,
            &port.to_string(),
            PORT_RULE,
        );
    }

    fn connection_limit(&mut self, path: &str, limit: Option<i32>) {
        if let Some(limit) = limit {
            let ok = limit == -1 || (1..=MAX_CONNECTION_LIMIT).contains(&limit);
            self.check(ok, path, &limit.to_string(), CONNECTION_LIMIT_RULE);
        }
    }

    /// Reports every value of `items` after its first occurrence.
    fn unique<'a>(&mut self, path: &str, items: impl IntoIterator<Item = &'a str>) {
        let mut seen = std::collections::BTreeSet::new();
        for (i, item) in items.into_iter().enumerate() {
            if !seen.insert(item) {
                self.add(format!("{path}[{i}]"), item, DUPLICATE_RULE);
            }
        }
    }

    fn object_name(&mut self, name: Option<&str>) {
        match name {
            Some(name) => {
                self.subdomain("metadata.name", name);
            }
            None => self.add("metadata.name", "", "is required"),
        }
    }

    fn namespace(&mut self, namespace: Option<&str>) {
        if let Some(ns) = namespace {
            self.check(is_label(ns), "metadata.namespace", ns, NAMESPACE_RULE);
        }
    }

    fn finish(self) -> Result<(), Vec<FieldError>> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.0)
        }
    }
}

/// Validates a DatabaseServer's name and spec.
pub fn validate_database_server(server: &DatabaseServer) -> Result<(), Vec<FieldError>> {
    let mut e = Errors::default();
    e.object_name(server.metadata.name.as_deref());
    let spec = &server.spec;
    e.check(is_host(&spec.host), "spec.host", &spec.host, HOST_RULE);
    e.port("spec.port", spec.port);
    if let Some(host) = &spec.client_host {
        e.check(is_host(host), "spec.clientHost", host, HOST_RULE);
    }
    if let Some(port) = spec.client_port {
        e.port("spec.clientPort", port);
    }
    if let Some(ca) = &spec.ca_secret_ref {
        e.check(
            is_label(&ca.namespace),
            "spec.caSecretRef.namespace",
            &ca.namespace,
            NAMESPACE_RULE,
        );
        e.subdomain("spec.caSecretRef.name", &ca.name);
        e.check(
            is_secret_key(&ca.key),
            "spec.caSecretRef.key",
            &ca.key,
            SECRET_KEY_RULE,
        );
    }
    let admin = &spec.admin_secret_ref;
    e.check(
        is_label(&admin.namespace),
        "spec.adminSecretRef.namespace",
        &admin.namespace,
        NAMESPACE_RULE,
    );
    e.subdomain("spec.adminSecretRef.name", &admin.name);
    if let Some(max) = spec.max_databases {
        e.check(
            max >= 1,
            "spec.maxDatabases",
            &max.to_string(),
            "must be at least 1 (leave it out for no limit)",
        );
    }
    e.finish()
}

/// Validates a ServiceDatabase's name and spec: every identifier, Secret and ConfigMap name,
/// template, version, limit and duration, and the names servicedb would derive from them.
pub fn validate_service_database(sdb: &ServiceDatabase) -> Result<(), Vec<FieldError>> {
    let mut e = Errors::default();
    e.object_name(sdb.metadata.name.as_deref());
    e.namespace(sdb.metadata.namespace.as_deref());
    let name = sdb.metadata.name.as_deref().unwrap_or_default();
    let spec = &sdb.spec;

    if let Some(server) = &spec.server {
        e.subdomain("spec.server", server);
    }
    if let Some(db) = &spec.database_name {
        database_name(&mut e, db);
    }
    login_role(&mut e, "spec.owner", spec.owner.as_ref());
    login_role(&mut e, "spec.app", spec.app.as_ref());

    for (i, ext) in spec.extensions.iter().enumerate() {
        e.check(
            is_extension_name(ext),
            format!("spec.extensions[{i}]"),
            ext,
            EXTENSION_RULE,
        );
    }
    e.unique(
        "spec.extensions",
        spec.extensions.iter().map(String::as_str),
    );

    for (i, schema) in spec.schemas.iter().enumerate() {
        let path = format!("spec.schemas[{i}]");
        if e.check(is_identifier(schema), path.clone(), schema, IDENTIFIER_RULE) {
            if schema.starts_with("pg_") {
                e.add(
                    path,
                    schema,
                    "is reserved: schema names starting with pg_ belong to PostgreSQL",
                );
            } else if schema == "information_schema" {
                e.add(path, schema, "is reserved: PostgreSQL's own schema");
            }
        }
    }
    e.unique("spec.schemas", spec.schemas.iter().map(String::as_str));

    for (i, role) in spec.roles.iter().enumerate() {
        extra_role(&mut e, i, role);
    }
    e.unique("spec.roles", spec.roles.iter().map(|r| r.name.as_str()));

    if let Some(secret) = &spec.secret {
        if let Some(secret_name) = &secret.name {
            e.subdomain("spec.secret.name", secret_name);
        }
        secret_template(&mut e, &secret.template);
    }
    if is_subdomain(name) {
        secret_names_distinct(&mut e, sdb, name);
    }

    if let Some(m) = &spec.migrations {
        for (i, cm) in m.config_maps.iter().enumerate() {
            e.subdomain(format!("spec.migrations.configMaps[{i}]"), cm);
        }
        e.unique(
            "spec.migrations.configMaps",
            m.config_maps.iter().map(String::as_str),
        );
        if let Some(target) = &m.target_version
            && Version::parse(target).is_err()
        {
            e.add(
                "spec.migrations.targetVersion",
                target,
                "is not a valid version: dot- or underscore-separated whole numbers, such as 7, 1.2 or 2_0_1",
            );
        }
        if let Some(seed) = &m.seed {
            if seed.config_maps.is_empty() {
                e.add(
                    "spec.migrations.seed.configMaps",
                    "",
                    "must name at least one ConfigMap (or leave out seed)",
                );
            }
            for (i, cm) in seed.config_maps.iter().enumerate() {
                e.subdomain(format!("spec.migrations.seed.configMaps[{i}]"), cm);
            }
            e.unique(
                "spec.migrations.seed.configMaps",
                seed.config_maps.iter().map(String::as_str),
            );
        }
        if let Some(job) = &m.job {
            if let Some(image) = &job.image {
                let ok = !image.is_empty()
                    && image.len() <= 512
                    && image
                        .chars()
                        .all(|c| c.is_ascii_graphic() && !"'\"`;\\$".contains(c));
                e.check(
                    ok,
                    "spec.migrations.job.image",
                    image,
                    "is not a valid image reference: no spaces, quotes or shell characters",
                );
            }
            if let Some(sa) = &job.service_account_name {
                e.subdomain("spec.migrations.job.serviceAccountName", sa);
            }
            if let Some(n) = job.backoff_limit {
                e.check(
                    n >= 0,
                    "spec.migrations.job.backoffLimit",
                    &n.to_string(),
                    "must be 0 or more",
                );
            }
            if let Some(n) = job.active_deadline_seconds {
                e.check(
                    n >= 1,
                    "spec.migrations.job.activeDeadlineSeconds",
                    &n.to_string(),
                    "must be at least 1",
                );
            }
            if let Some(n) = job.ttl_seconds_after_finished {
                e.check(
                    n >= 0,
                    "spec.migrations.job.ttlSecondsAfterFinished",
                    &n.to_string(),
                    "must be 0 or more",
                );
            }
        }
        if let Some(rollout) = &m.rollout {
            if spec.tenancy != Tenancy::PerTenant {
                e.add(
                    "spec.migrations.rollout",
                    "",
                    "applies only to tenancy: PerTenant; remove it or set tenancy: PerTenant",
                );
            }
            e.check(
                rollout.max_parallel >= 1,
                "spec.migrations.rollout.maxParallel",
                &rollout.max_parallel.to_string(),
                "must be at least 1",
            );
            e.check(
                rollout.max_failures >= 0,
                "spec.migrations.rollout.maxFailures",
                &rollout.max_failures.to_string(),
                "must be 0 or more",
            );
            e.check(
                (1..=MAX_BATCH_SIZE).contains(&rollout.batch_size),
                "spec.migrations.rollout.batchSize",
                &rollout.batch_size.to_string(),
                "must be 1 to 100",
            );
        }
    }

    if let Some(rotation) = &spec.password_rotation {
        let path = "spec.passwordRotation.every";
        match humantime::parse_duration(&rotation.every) {
            Err(_) => e.add(
                path,
                &rotation.every,
                "is not a valid duration: a number and a unit, such as 720h, 30days or 1h30m",
            ),
            Ok(every) if every < MIN_ROTATION => e.add(
                path,
                &rotation.every,
                "is too short: rotate at most once an hour (1h)",
            ),
            Ok(_) => {}
        }
    }
    e.finish()
}

/// Validates a Tenant's name and spec.
pub fn validate_tenant(tenant: &Tenant) -> Result<(), Vec<FieldError>> {
    let mut e = Errors::default();
    e.object_name(tenant.metadata.name.as_deref());
    e.namespace(tenant.metadata.namespace.as_deref());
    let spec = &tenant.spec;
    if spec.services.is_empty() {
        e.add(
            "spec.services",
            "",
            "must name at least one PerTenant ServiceDatabase in this namespace",
        );
    }
    for (i, service) in spec.services.iter().enumerate() {
        e.subdomain(format!("spec.services[{i}]"), service);
    }
    e.unique("spec.services", spec.services.iter().map(String::as_str));
    if let Some(server) = &spec.server {
        e.subdomain("spec.server", server);
    }
    e.finish()
}

fn database_name(e: &mut Errors, db: &str) {
    let path = "spec.databaseName";
    if !e.check(is_identifier(db), path, db, IDENTIFIER_RULE) {
        return;
    }
    if RESERVED_DATABASES.contains(&db) {
        e.add(
            path,
            db,
            "is reserved: PostgreSQL's own databases (postgres, template0, template1) cannot be managed",
        );
    } else if db.starts_with("pg_") {
        e.add(
            path,
            db,
            "is reserved: names starting with pg_ belong to PostgreSQL (the roles <database>_owner and <database>_app could not be created)",
        );
    }
}

fn login_role(e: &mut Errors, path: &str, role: Option<&LoginRoleSpec>) {
    if let Some(role) = role {
        e.connection_limit(&format!("{path}.connectionLimit"), role.connection_limit);
    }
}

fn extra_role(e: &mut Errors, i: usize, role: &ExtraRoleSpec) {
    let path = format!("spec.roles[{i}].name");
    if e.check(
        is_identifier(&role.name),
        path.clone(),
        &role.name,
        IDENTIFIER_RULE,
    ) {
        match role.name.as_str() {
            "owner" => e.add(
                path,
                &role.name,
                "is reserved: <database>_owner is the owner role servicedb creates; use access: owner with another name",
            ),
            "app" => e.add(
                path,
                &role.name,
                "is reserved: <database>_app is the app role servicedb creates; choose another name",
            ),
            _ => {}
        }
    }
    e.connection_limit(
        &format!("spec.roles[{i}].connectionLimit"),
        role.connection_limit,
    );
    if let Some(secret) = &role.secret_name {
        e.subdomain(format!("spec.roles[{i}].secretName"), secret);
    }
}

fn secret_template(e: &mut Errors, tmpl: &BTreeMap<String, String>) {
    for (key, value) in tmpl {
        if !is_secret_key(key) {
            e.add("spec.secret.template", key, SECRET_KEY_RULE);
            continue;
        }
        if BUILTIN_SECRET_KEYS.contains(&key.as_str()) {
            e.add(
                "spec.secret.template",
                key,
                "is a key servicedb always writes; choose another name for the template key",
            );
        }
        if let Err(err) = template::parse(value) {
            e.add(
                format!("spec.secret.template.{key}"),
                value,
                err.to_string(),
            );
        }
    }
}

/// The app, migrator and extra-role Secrets of one ServiceDatabase must all differ.
fn secret_names_distinct(e: &mut Errors, sdb: &ServiceDatabase, name: &str) {
    let spec = &sdb.spec;
    let explicit = spec.secret.as_ref().and_then(|s| s.name.as_deref());
    let mut taken: BTreeMap<String, String> = BTreeMap::new();
    taken.insert(
        naming::app_secret_name(name, explicit),
        "the app Secret".to_string(),
    );
    let migrator = naming::migrator_secret_name(name);
    if let Some(holder) = taken.get(&migrator) {
        e.add(
            "spec.secret.name",
            explicit.unwrap_or_default(),
            format!("is the migrator Secret's name; {holder} needs a name of its own"),
        );
    }
    taken.insert(migrator, "the migrator Secret".to_string());
    let mut seen_roles = std::collections::BTreeSet::new();
    for (i, role) in spec.roles.iter().enumerate() {
        if !seen_roles.insert(role.name.as_str()) {
            continue; // a duplicate role, reported as such
        }
        let secret = match &role.secret_name {
            Some(explicit) => explicit.clone(),
            None => naming::role_secret_name(name, &role.name),
        };
        if let Some(holder) = taken.get(&secret) {
            e.add(
                format!("spec.roles[{i}].secretName"),
                &secret,
                format!("is already used by {holder}; set secretName to another name"),
            );
        } else {
            taken.insert(secret, format!("the Secret of role {}", role.name));
        }
    }
}

#[cfg(test)]
mod tests;
