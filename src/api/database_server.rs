//! `DatabaseServer`: a PostgreSQL server servicedb may create databases on, and how to reach it
//! as an administrator. Cluster-scoped.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The port PostgreSQL listens on unless told otherwise.
pub const DEFAULT_PORT: i32 = 5432;
/// The key of the CA certificate in `caSecretRef` unless told otherwise.
pub const DEFAULT_CA_KEY: &str = "ca.crt";
/// Keys the admin Secret must hold.
pub const ADMIN_USERNAME_KEY: &str = "username";
pub const ADMIN_PASSWORD_KEY: &str = "password";

/// A PostgreSQL server servicedb may create databases on, and how to reach it as an
/// administrator.
// Every `printcolumn(...)` repeats `type_ = ...`, which clippy mistakes for a duplicate.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "servicedb.io",
    version = "v1alpha1",
    kind = "DatabaseServer",
    plural = "databaseservers",
    shortname = "dbs",
    category = "servicedb",
    status = "DatabaseServerStatus",
    derive = "PartialEq",
    doc = "A PostgreSQL server servicedb may create databases on, and how to reach it as an administrator.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#,
        description = "Whether servicedb can log in as the administrator"
    ),
    printcolumn(
        name = "Host",
        type_ = "string",
        json_path = ".spec.host",
        description = "The host servicedb connects to"
    ),
    printcolumn(
        name = "Databases",
        type_ = "integer",
        json_path = ".status.databaseCount",
        description = "Databases servicedb manages on this server"
    ),
    printcolumn(
        name = "Version",
        type_ = "string",
        json_path = ".status.serverVersion",
        description = "PostgreSQL server version"
    ),
    printcolumn(
        name = "Environment",
        type_ = "string",
        json_path = ".spec.environment",
        description = "production, staging or local (seed data runs only on local)"
    ),
    printcolumn(
        name = "Default",
        type_ = "boolean",
        json_path = ".spec.default",
        description = "Used by ServiceDatabases and Tenants that name no server",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseServerSpec {
    /// Host name or IP address servicedb connects to as the administrator, e.g.
    /// `postgres.databases.svc`.
    pub host: String,

    /// Port servicedb connects to. Default: 5432.
    #[serde(default = "default_port")]
    pub port: i32,

    /// Host written into the connection Secrets of services, when they should connect through
    /// something else than servicedb does (a PgBouncer, say). Default: `host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_host: Option<String>,

    /// Port written into the connection Secrets of services. Default: `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_port: Option<i32>,

    /// TLS mode, with libpq's meaning, used by servicedb and written into the Secrets
    /// (`PGSSLMODE`, `sslmode=` in URIs). Default for servicedb's own (admin) connections:
    /// `verify-full` when `caSecretRef` is given, else `require` (never `prefer`, which a man
    /// in the middle can turn into plain text and a cleartext password request; say
    /// `disable` or `prefer` explicitly for a server without TLS). Default in the Secrets:
    /// `prefer`, since apps may not have the CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "SslMode")]
    pub ssl_mode: Option<SslMode>,

    /// Secret holding the CA certificate that signs the server's certificate, for
    /// `verify-ca` and `verify-full`. Default: the system's trusted roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,

    /// Secret with the administrator's `username` and `password`. The administrator needs
    /// CREATEROLE and CREATEDB, not superuser. Keep it in the operator's namespace: it is never
    /// copied anywhere.
    pub admin_secret_ref: SecretRef,

    /// Whether this server is used by ServiceDatabases and Tenants that name no server. At
    /// most one DatabaseServer per installation may be the default (a server belongs to the
    /// installation whose namespace holds its Secrets). Default: false.
    #[serde(default)]
    pub default: bool,

    /// Most databases servicedb places on this server; tenant placement skips a full server.
    /// Default: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_databases: Option<i32>,

    /// What the server is for. Seed data (`migrations.seed`) only ever runs on `local`.
    /// Default: production.
    #[serde(default)]
    pub environment: Environment,
}

/// Observed state of a DatabaseServer, written by servicedb.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseServerStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `Ready`: servicedb logs in as the administrator and has the privileges it needs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// PostgreSQL version the server reports, e.g. `16.4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,

    /// Databases servicedb manages on this server (all services and tenants).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_count: Option<i32>,
}

/// A Secret in a given namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// Namespace of the Secret.
    pub namespace: String,
    /// Name of the Secret.
    pub name: String,
}

/// One key of a Secret in a given namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Namespace of the Secret.
    pub namespace: String,
    /// Name of the Secret.
    pub name: String,
    /// Key within the Secret. Default: `ca.crt`.
    #[serde(default = "default_ca_key")]
    pub key: String,
}

/// TLS mode, as libpq's `sslmode`: the connection layer's own type.
pub use crate::pg::SslMode;

/// What a server is for; seed data runs only on `local`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    #[default]
    Production,
    Staging,
    Local,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Production => "production",
            Environment::Staging => "staging",
            Environment::Local => "local",
        }
    }
}

impl std::fmt::Display for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Defaults as a manifest that sets only `host` and `adminSecretRef` would get them (both
/// left empty here).
impl Default for DatabaseServerSpec {
    fn default() -> Self {
        DatabaseServerSpec {
            host: String::new(),
            port: DEFAULT_PORT,
            client_host: None,
            client_port: None,
            ssl_mode: None,
            ca_secret_ref: None,
            admin_secret_ref: SecretRef::default(),
            default: false,
            max_databases: None,
            environment: Environment::default(),
        }
    }
}

impl DatabaseServerSpec {
    /// Host for service Secrets: `clientHost`, else `host`.
    pub fn effective_client_host(&self) -> &str {
        self.client_host.as_deref().unwrap_or(&self.host)
    }

    /// The sslmode of servicedb's own (admin) connections: a CA given means its certificate
    /// is checked, host name included, unless `sslMode` says otherwise.
    pub fn admin_ssl_mode(&self) -> SslMode {
        match (self.ssl_mode, &self.ca_secret_ref) {
            (Some(mode), _) => mode,
            (None, Some(_)) => SslMode::VerifyFull,
            (None, None) => SslMode::Require,
        }
    }

    /// The sslmode written into service Secrets.
    pub fn client_ssl_mode(&self) -> SslMode {
        self.ssl_mode.unwrap_or_default()
    }

    /// Port for service Secrets: `clientPort`, else `port`.
    pub fn effective_client_port(&self) -> i32 {
        self.client_port.unwrap_or(self.port)
    }
}

fn default_port() -> i32 {
    DEFAULT_PORT
}

fn default_ca_key() -> String {
    DEFAULT_CA_KEY.to_string()
}

#[cfg(test)]
mod ssl_mode_tests {
    use super::*;

    /// Unset, servicedb's own connections use TLS (`require`), and with a CA they check the
    /// server's certificate and name; Secrets keep `prefer`, since the apps may not have the
    /// CA. An explicit sslMode always wins.
    #[test]
    fn a_ca_means_verify_full_unless_said_otherwise() {
        let mut spec = DatabaseServerSpec::default();
        assert_eq!(
            spec.admin_ssl_mode(),
            SslMode::Require,
            "never a strippable prefer"
        );
        spec.ca_secret_ref = Some(SecretKeyRef {
            namespace: "ops".into(),
            name: "pg-ca".into(),
            key: "ca.crt".into(),
        });
        assert_eq!(spec.admin_ssl_mode(), SslMode::VerifyFull);
        assert_eq!(spec.client_ssl_mode(), SslMode::Prefer);
        spec.ssl_mode = Some(SslMode::VerifyCa);
        assert_eq!(spec.admin_ssl_mode(), SslMode::VerifyCa);
        assert_eq!(spec.client_ssl_mode(), SslMode::VerifyCa);
    }
}
