//! A server the operator provisions on, as the core sees it: admin connections to the
//! maintenance database and the ownership catalog, and how apps reach it.

use tokio_postgres::Client;

use super::catalog::{self, CatalogError};
use crate::pg::{ConnectError, ConnectOptions, SslMode};

/// What the server's `environment` allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Production,
    Staging,
    /// Seed data may run only here.
    Local,
}

/// Static facts about a server: from a DatabaseServer, or the embedded one in dev mode.
#[derive(Debug, Clone)]
pub struct ServerSpec {
    pub name: String,
    /// Admin connection to the maintenance database.
    pub admin: ConnectOptions,
    /// What goes into Secrets (a pooler, a service name).
    pub client_host: String,
    pub client_port: u16,
    pub ssl_mode: SslMode,
    pub environment: Environment,
    pub max_databases: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("server {server}: {source}")]
    Connect {
        server: String,
        source: ConnectError,
    },
    #[error("server {server}: {source}")]
    Catalog {
        server: String,
        source: CatalogError,
    },
}

/// Connected admin sessions on one server.
pub struct Server {
    pub spec: ServerSpec,
    pub maintenance: Client,
    pub catalog: Client,
    pub version: String,
}

impl Server {
    /// Connects as the admin, creating and migrating the ownership catalog when needed.
    pub async fn connect(spec: ServerSpec) -> Result<Server, ServerError> {
        let connect_err = |source| ServerError::Connect {
            server: spec.name.clone(),
            source,
        };
        let catalog_err = |source| ServerError::Catalog {
            server: spec.name.clone(),
            source,
        };
        let maintenance = spec.admin.connect().await.map_err(connect_err)?;
        catalog::ensure_database(&maintenance)
            .await
            .map_err(catalog_err)?;
        let catalog_client = spec
            .options_for(catalog::DATABASE)
            .connect()
            .await
            .map_err(connect_err)?;
        let catalog = catalog::migrate(catalog_client)
            .await
            .map_err(catalog_err)?;
        let version = maintenance
            .query_one("SHOW server_version", &[])
            .await
            .map(|r| r.get::<_, String>(0))
            .unwrap_or_default();
        Ok(Server {
            spec,
            maintenance,
            catalog,
            version,
        })
    }

    /// An admin connection to one of the server's databases.
    pub async fn connect_to(&self, database: &str) -> Result<Client, ServerError> {
        self.spec
            .options_for(database)
            .connect()
            .await
            .map_err(|source| ServerError::Connect {
                server: self.spec.name.clone(),
                source,
            })
    }
}

impl ServerSpec {
    /// The admin's connection options with another database name.
    pub fn options_for(&self, database: &str) -> ConnectOptions {
        let mut options = self.admin.clone();
        options.config.dbname(database);
        options
    }
}
