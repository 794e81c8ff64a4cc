//! The servers `dev up` provisions on: the embedded one, or the DatabaseServers in the
//! manifests (admin credentials from their Secrets there).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Mutex;

use rand::distr::{Alphanumeric, SampleString};

use super::local_server::{LocalError, LocalServer};
use super::manifests::Manifests;
use super::record::DeclaredServer;
use super::{DevError, DevProgress};
use crate::api::{DatabaseServer, ServiceDatabase};
use crate::pg::SslMode;
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

/// The servers of one `dev up`, with the databases each holds: read once at connect and kept
/// up to date as tenants are placed, so placement never lists a catalog per tenant.
pub struct Servers {
    list: Vec<Entry>,
}

struct Entry {
    server: Server,
    default: bool,
    databases: Mutex<BTreeSet<String>>,
}

/// The file in the state directory holding its installation id; `dev reset` keeps it.
pub const INSTALLATION_FILE: &str = "installation-id";

/// This state directory's installation id, made once: the claims of this `dev` are its own,
/// apart from a cluster's or another checkout's sharing a declared server.
pub fn installation_id(state: &Path) -> Result<String, LocalError> {
    let path = state.join(INSTALLATION_FILE);
    if let Ok(id) = std::fs::read_to_string(&path)
        && !id.trim().is_empty()
    {
        return Ok(id.trim().to_string());
    }
    let id = format!(
        "dev-{}",
        Alphanumeric
            .sample_string(&mut rand::rng(), 16)
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

pub fn declared_spec(
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
    let (username, password) = (key("username")?, key("password")?);
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
    // The same mapping the controller uses.
    crate::service::server_spec::from_database_server(
        server,
        &username,
        &password,
        ca_pem,
        installation,
    )
    .map_err(err)
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
                    spec.admin_ssl_mode().as_str()
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
        let installation = installation_id(state)?;
        if m.servers.is_empty() {
            let local = LocalServer::up(state, &mut |n| progress.note(&n))?;
            let server = Server::connect(local_spec(&local, &installation).await?)
                .await
                .map_err(ServerError::from)?;
            list.push(Entry::new(server, true).await?);
        }
        for s in &m.servers {
            let spec = declared_spec(m, &s.value, &s.file, &installation)?;
            progress.step(&format!("connecting to DatabaseServer {}", spec.name));
            let server = Server::connect(spec).await.map_err(ServerError::from)?;
            let default = s.value.spec.default || m.servers.len() == 1;
            list.push(Entry::new(server, default).await?);
        }
        Ok(Servers { list })
    }

    /// The server of this name, for pruning a resource recorded there.
    pub fn named(&self, name: &str) -> Option<&Server> {
        self.list
            .iter()
            .map(|e| &e.server)
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
            self.named(name).ok_or_else(|| {
                format!("spec.server: {name:?} names no DatabaseServer in the manifests")
            })
        };
        let Some(tenant) = tenant else {
            return match &sdb.spec.server {
                Some(name) => named(name),
                None => self
                    .list
                    .iter()
                    .find(|e| e.default)
                    .map(|e| &e.server)
                    .ok_or_else(|| {
                        "spec.server is not set and no DatabaseServer has default: true".to_string()
                    }),
            };
        };
        let layout = crate::service::Layout::new(sdb, Some(tenant));
        // One placement at a time, so concurrent tenants see each other's choices.
        let mut held: Vec<_> = self
            .list
            .iter()
            .map(|e| e.databases.lock().expect("placement lock"))
            .collect();
        let candidates: Vec<Candidate> = self
            .list
            .iter()
            .zip(&held)
            .map(|(e, databases)| Candidate {
                name: e.server.spec.name.clone(),
                databases: u32::try_from(databases.len()).unwrap_or(u32::MAX),
                max_databases: e.server.spec.max_databases,
                holds: databases.contains(&layout.database),
            })
            .collect();
        let pin = pin.or(sdb.spec.server.as_deref());
        let chosen = place(pin, &candidates).map_err(|e| e.to_string())?;
        let index = self
            .list
            .iter()
            .position(|e| e.server.spec.name == chosen)
            .expect("placement chooses a candidate");
        held[index].insert(layout.database.clone());
        drop(held);
        Ok(&self.list[index].server)
    }
}

impl Entry {
    async fn new(server: Server, default: bool) -> Result<Entry, ServerError> {
        let catalog = server.catalog().await?;
        let databases = catalog::list(&catalog)
            .await
            .map_err(|e| ServerError::Other(e.to_string()))?
            .into_iter()
            .map(|d| d.database)
            .collect();
        drop(catalog);
        Ok(Entry {
            server,
            default,
            databases: Mutex::new(databases),
        })
    }
}
