//! The servers `dev up` provisions on: the embedded one, or the DatabaseServers in the
//! manifests (admin credentials from their Secrets there).

use std::path::Path;

use tokio_postgres::Config;

use super::local_server::{LocalError, LocalServer};
use super::manifests::Manifests;
use super::{DevError, DevProgress};
use crate::api::{DatabaseServer, ServiceDatabase};
use crate::pg::{ConnectOptions, SslMode};
use crate::provision::catalog;
use crate::provision::server::{DEFAULT_DATABASE_CONNECTIONS, Environment, Server, ServerSpec};
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

/// This state directory's installation id, made once: claims of this `dev` are its own, apart
/// from a cluster's or another checkout's sharing a declared server.
pub fn installation_id(state: &Path) -> Result<String, LocalError> {
    let path = state.join("installation-id");
    if let Ok(id) = std::fs::read_to_string(&path)
        && !id.trim().is_empty()
    {
        return Ok(id.trim().to_string());
    }
    let id = format!(
        "dev-{}",
        rand::distr::SampleString::sample_string(&rand::distr::Alphanumeric, &mut rand::rng(), 16)
            .to_lowercase()
    );
    std::fs::create_dir_all(state)
        .and_then(|()| std::fs::write(&path, format!("{id}\n")))
        .map_err(|source| LocalError::Io {
            path: path.clone(),
            source,
        })?;
    Ok(id)
}

/// The embedded server as a ServerSpec: `local`, so seed data may run.
pub async fn local_spec(local: &LocalServer, installation: &str) -> Result<ServerSpec, LocalError> {
    Ok(ServerSpec {
        name: "local".to_string(),
        admin: local.admin().await?,
        client_host: "127.0.0.1".to_string(),
        client_port: local.port,
        ssl_mode: SslMode::Disable,
        environment: Environment::Local,
        max_databases: None,
        installation: installation.to_string(),
        database_connections: DEFAULT_DATABASE_CONNECTIONS,
    })
}

fn declared_spec(
    m: &Manifests,
    server: &DatabaseServer,
    file: &Path,
    installation: &str,
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
    Ok(ServerSpec {
        name: name.clone(),
        admin: ConnectOptions {
            config,
            ssl_mode: spec.admin_ssl_mode(),
            ca_pem,
            system_roots: false,
        },
        client_host: spec.effective_client_host().to_string(),
        client_port: u16::try_from(spec.effective_client_port()).unwrap_or(5432),
        ssl_mode: spec.client_ssl_mode(),
        environment: match spec.environment {
            crate::api::Environment::Production => Environment::Production,
            crate::api::Environment::Staging => Environment::Staging,
            crate::api::Environment::Local => Environment::Local,
        },
        max_databases: spec.max_databases.and_then(|m| u32::try_from(m).ok()),
        installation: installation.to_string(),
        database_connections: DEFAULT_DATABASE_CONNECTIONS,
    })
}

impl Servers {
    pub async fn connect(
        m: &Manifests,
        state: &Path,
        notes: &mut Vec<String>,
        progress: &mut dyn DevProgress,
    ) -> Result<Servers, DevError> {
        let mut list = Vec::new();
        let installation = installation_id(state)?;
        if m.servers.is_empty() {
            progress.step("starting the embedded PostgreSQL");
            let (local, started) = LocalServer::up(state)?;
            notes.extend(started);
            let server = Server::connect(local_spec(&local, &installation).await?)
                .await
                .map_err(ServerError::from)?;
            list.push((server, true));
        }
        for s in &m.servers {
            let spec = declared_spec(m, &s.value, &s.file, &installation)?;
            progress.step(&format!("connecting to DatabaseServer {}", spec.name));
            let server = Server::connect(spec).await.map_err(ServerError::from)?;
            list.push((server, s.value.spec.default || m.servers.len() == 1));
        }
        Ok(Servers { list })
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
            let list = catalog::list(&*server.catalog().await.map_err(|e| e.to_string())?)
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
