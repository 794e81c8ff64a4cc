//! The servers `dev up` provisions on: the embedded one, or the DatabaseServers in the
//! manifests (admin credentials from their Secrets there).

use std::path::Path;

use tokio_postgres::Config;

use super::local_server::{LocalError, LocalServer};
use super::manifests::Manifests;
use super::record::DeclaredServer;
use super::{DevError, DevProgress};
use crate::api::{DatabaseServer, ServiceDatabase};
use crate::pg::{ConnectOptions, SslMode};
use crate::provision::catalog;
use crate::provision::server::{Environment, Server, ServerSpec};
use crate::service::placement::{Candidate, place};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Connect(#[from] crate::provision::server::ServerError),
    #[error("{file}: DatabaseServer {server}: {message}")]
    Spec {
        file: String,
        server: String,
        message: String,
    },
    #[error("{0}")]
    Other(String),
}

pub struct Servers {
    list: Vec<(Server, bool)>,
}

/// The embedded server as a ServerSpec: `local`, so seed data may run.
pub async fn local_spec(local: &LocalServer) -> Result<ServerSpec, LocalError> {
    Ok(ServerSpec {
        name: "local".to_string(),
        admin: local.admin().await?,
        client_host: "127.0.0.1".to_string(),
        client_port: local.port,
        ssl_mode: SslMode::Disable,
        environment: Environment::Local,
        max_databases: None,
    })
}

pub fn declared_spec(
    m: &Manifests,
    server: &DatabaseServer,
    file: &Path,
) -> Result<ServerSpec, ServerError> {
    let name = server.metadata.name.clone().unwrap_or_default();
    let err = |message: String| ServerError::Spec {
        file: file.display().to_string(),
        server: name.clone(),
        message,
    };
    let spec = &server.spec;
    let r = &spec.admin_secret_ref;
    let secret = m
        .secrets
        .get(&(r.namespace.clone(), r.name.clone()))
        .ok_or_else(|| {
            err(format!(
                "spec.adminSecretRef: no Secret {}/{} in the manifests",
                r.namespace, r.name
            ))
        })?;
    let key = |k: &str| {
        secret.value.get(k).cloned().ok_or_else(|| {
            err(format!(
                "spec.adminSecretRef: Secret {}/{} has no key {k:?}",
                r.namespace, r.name
            ))
        })
    };
    let mut config = Config::new();
    config
        .host(&spec.host)
        .port(u16::try_from(spec.port).map_err(|_| err("spec.port: not a port".into()))?)
        .user(&key("username")?)
        .password(key("password")?)
        .dbname("postgres")
        .application_name("servicedb");
    let ca_pem = match &spec.ca_secret_ref {
        Some(ca) => Some(
            m.secrets
                .get(&(ca.namespace.clone(), ca.name.clone()))
                .and_then(|s| s.value.get(&ca.key))
                .ok_or_else(|| {
                    err(format!(
                        "spec.caSecretRef: no key {:?} in Secret {}/{}",
                        ca.key, ca.namespace, ca.name
                    ))
                })?
                .clone()
                .into_bytes(),
        ),
        None => None,
    };
    let ssl_mode = spec.ssl_mode;
    Ok(ServerSpec {
        name: name.clone(),
        admin: ConnectOptions {
            config,
            ssl_mode,
            ca_pem,
            system_roots: false,
        },
        client_host: spec.effective_client_host().to_string(),
        client_port: u16::try_from(spec.effective_client_port()).unwrap_or(5432),
        ssl_mode,
        environment: match spec.environment {
            crate::api::Environment::Production => Environment::Production,
            crate::api::Environment::Staging => Environment::Staging,
            crate::api::Environment::Local => Environment::Local,
        },
        max_databases: spec.max_databases.and_then(|m| u32::try_from(m).ok()),
    })
}

/// RFC 3986 unreserved characters stay in a URL's user name; the rest is encoded.
const USERINFO: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The manifests' DatabaseServers as `dev status` shows them: admin URL without password,
/// and where the password is.
pub fn declared(m: &Manifests) -> Vec<DeclaredServer> {
    m.servers
        .iter()
        .map(|s| {
            let spec = &s.value.spec;
            let r = &spec.admin_secret_ref;
            let secret = m.secrets.get(&(r.namespace.clone(), r.name.clone()));
            let user = secret
                .and_then(|s| s.value.get("username"))
                .map(|u| percent_encoding::utf8_percent_encode(u, USERINFO).to_string())
                .unwrap_or_else(|| "?".to_string());
            let host = if spec.host.contains(':') {
                format!("[{}]", spec.host)
            } else {
                spec.host.clone()
            };
            DeclaredServer {
                name: s.value.metadata.name.clone().unwrap_or_default(),
                file: s.file.clone(),
                admin_url: format!(
                    "postgresql://{user}@{host}:{}/postgres?sslmode={}",
                    spec.port,
                    spec.ssl_mode.as_str()
                ),
                password_from: format!(
                    "key \"password\" of Secret {}/{} in {}",
                    r.namespace,
                    r.name,
                    secret.map_or_else(|| "?".to_string(), |s| s.file.display().to_string())
                ),
            }
        })
        .collect()
}

impl Servers {
    pub async fn connect(
        m: &Manifests,
        state: &Path,
        progress: &mut dyn DevProgress,
    ) -> Result<Servers, DevError> {
        let mut list = Vec::new();
        if m.servers.is_empty() {
            let local = LocalServer::up(state, &mut |n| progress.note(&n))?;
            let server = Server::connect(local_spec(&local).await?)
                .await
                .map_err(ServerError::from)?;
            list.push((server, true));
        }
        for s in &m.servers {
            let spec = declared_spec(m, &s.value, &s.file)?;
            progress.step(&format!("connecting to DatabaseServer {}", spec.name));
            let server = Server::connect(spec).await.map_err(ServerError::from)?;
            list.push((server, s.value.spec.default || m.servers.len() == 1));
        }
        Ok(Servers { list })
    }

    /// The server of this name, for pruning a resource recorded there.
    pub fn named(&self, name: &str) -> Option<&Server> {
        self.list
            .iter()
            .map(|(s, _)| s)
            .find(|s| s.spec.name == name)
    }

    /// The server for a Shared service, or the placement of a tenant's database.
    pub async fn for_unit(
        &self,
        sdb: &ServiceDatabase,
        tenant: Option<&str>,
        pin: Option<&str>,
    ) -> Result<&Server, String> {
        let named = |name: &str| {
            self.list
                .iter()
                .map(|(s, _)| s)
                .find(|s| s.spec.name == name)
                .ok_or_else(|| {
                    format!("spec.server: {name:?} names no DatabaseServer in the manifests")
                })
        };
        let Some(tenant) = tenant else {
            return match &sdb.spec.server {
                Some(name) => named(name),
                None => self
                    .list
                    .iter()
                    .find(|(_, default)| *default)
                    .map(|(s, _)| s)
                    .ok_or_else(|| {
                        "spec.server is not set and no DatabaseServer has default: true".to_string()
                    }),
            };
        };
        let layout = crate::service::Layout::new(sdb, Some(tenant));
        let mut candidates = Vec::new();
        for (server, _) in &self.list {
            let list = catalog::list(&server.catalog)
                .await
                .map_err(|e| e.to_string())?;
            candidates.push(Candidate {
                name: server.spec.name.clone(),
                databases: u32::try_from(list.len()).unwrap_or(u32::MAX),
                max_databases: server.spec.max_databases,
                holds: list.iter().any(|d| d.database == layout.database),
            });
        }
        let pin = pin.or(sdb.spec.server.as_deref());
        let chosen = place(pin, &candidates).map_err(|e| e.to_string())?;
        named(chosen)
    }
}
