//! A server the operator provisions on, as the core sees it: pooled admin connections to the
//! maintenance database and the ownership catalog, bounded connections to each database, and
//! how apps reach it.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::Client;

use super::catalog::{self, CatalogError};
use crate::pg::connect::Prepared;
use crate::pg::{ConnectError, ConnectOptions, ErrorClass, SslMode};

/// Oldest PostgreSQL servicedb provisions on: from 15 on, PUBLIC cannot create in `public`,
/// which the no-DDL promise for app roles rests on (a non-superuser admin cannot change it on
/// older servers).
pub const MIN_SERVER_VERSION_NUM: i32 = 150_000;

/// Connections to one server's databases (probe logins, looking inside, grants) that may be
/// open at once, in `dev up` and in the controller alike.
pub const DEFAULT_DATABASE_CONNECTIONS: usize = 8;

/// What the environment allows.
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
    /// Which servicedb this is (one id per cluster or dev state directory), recorded in every
    /// claim so two installations sharing the server never both own a database.
    pub installation: String,
    /// Bound on connections to individual databases open at once (the admin pools add at
    /// most [`ADMIN_POOL_SIZE`] + [`CATALOG_POOL_SIZE`]).
    pub database_connections: usize,
}

/// Admin sessions on the maintenance database kept for reuse: the server-wide statements a
/// change runs (CREATE DATABASE, roles, grants) and the DatabaseServer's probe.
pub const ADMIN_POOL_SIZE: usize = 2;
/// Admin sessions on the catalog database: every pass's one server-wide read (claims, roles,
/// the database) and the claims, each in its own transaction.
pub const CATALOG_POOL_SIZE: usize = 4;

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
    #[error(
        "server {server}: PostgreSQL {version} is older than 15, the oldest servicedb supports \
         (on older servers every role may create objects in the public schema, and a \
         non-superuser admin cannot prevent it); upgrade the server"
    )]
    TooOld { server: String, version: String },
    #[error("server {server}: no admin connection became free within {waited:?}")]
    Busy { server: String, waited: Duration },
}

impl ServerError {
    /// Whether retrying later may help.
    pub fn class(&self) -> ErrorClass {
        match self {
            ServerError::Connect { source, .. } => source.class(),
            ServerError::Catalog { source, .. } => source.class(),
            ServerError::TooOld { .. } => ErrorClass::Permanent,
            ServerError::Busy { .. } => ErrorClass::Transient,
        }
    }
}

/// Pooled admin sessions on one server.
pub struct Server {
    pub spec: ServerSpec,
    maintenance: Pool,
    catalog: Pool,
    databases: Arc<Semaphore>,
    prepared: Prepared,
    pub version: String,
}

/// How long a caller waits for a pooled admin session before giving up (transient).
const POOL_WAIT: Duration = Duration::from_secs(30);

/// A connection to one database, counted against the server's bound while it lives.
pub struct DatabaseConnection {
    client: Client,
    _permit: OwnedSemaphorePermit,
}

impl std::ops::Deref for DatabaseConnection {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl std::ops::DerefMut for DatabaseConnection {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client
    }
}

/// Opens pooled connections with servicedb's own TLS handling (every sslmode, channel binding).
struct Connector(Prepared);

impl deadpool_postgres::Connect for Connector {
    fn connect(
        &self,
        pg_config: &tokio_postgres::Config,
    ) -> futures::future::BoxFuture<
        '_,
        Result<(Client, tokio::task::JoinHandle<()>), tokio_postgres::Error>,
    > {
        let pg_config = pg_config.clone();
        Box::pin(async move { self.0.connect_with(&pg_config).await })
    }
}

fn pool(options: &ConnectOptions, prepared: &Prepared, size: usize) -> Pool {
    let manager = Manager::from_connect(
        options.config.clone(),
        Connector(prepared.clone()),
        ManagerConfig {
            // Only a closed connection is replaced: no extra query on every checkout.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(POOL_WAIT))
        .build()
        .expect("a pool with a runtime and a size always builds")
}

impl Server {
    /// Connects as the admin, checks the server's version, and creates and migrates the
    /// ownership catalog when needed. A dropped connection later is replaced by the pools.
    pub async fn connect(spec: ServerSpec) -> Result<Server, ServerError> {
        let connect_err = |source| ServerError::Connect {
            server: spec.name.clone(),
            source,
        };
        let catalog_err = |source| ServerError::Catalog {
            server: spec.name.clone(),
            source,
        };
        // The first session is opened directly, so its error says what went wrong.
        let first = spec.admin.connect().await.map_err(connect_err)?;
        let row = first
            .query_one(
                "SELECT current_setting('server_version'), current_setting('server_version_num')::int",
                &[],
            )
            .await
            .map_err(|e| catalog_err(CatalogError::Read(e)))?;
        let version: String = row.get(0);
        check_version(&spec.name, &version, row.get(1))?;
        catalog::ensure_database(&first)
            .await
            .map_err(catalog_err)?;
        let catalog_options = spec.options_for(catalog::DATABASE);
        let catalog_client = catalog_options.connect().await.map_err(connect_err)?;
        catalog::migrate(catalog_client)
            .await
            .map_err(catalog_err)?;
        let prepared = spec.admin.prepare().map_err(connect_err)?;
        Ok(Server {
            maintenance: pool(&spec.admin, &prepared, ADMIN_POOL_SIZE),
            catalog: pool(&catalog_options, &prepared, CATALOG_POOL_SIZE),
            prepared,
            databases: Arc::new(Semaphore::new(spec.database_connections.max(1))),
            version,
            spec,
        })
    }

    fn pool_error(&self, e: deadpool_postgres::PoolError) -> ServerError {
        match e {
            deadpool_postgres::PoolError::Backend(source) => ServerError::Connect {
                server: self.spec.name.clone(),
                source: ConnectError::Connect {
                    target: self.spec.admin.describe(),
                    source,
                },
            },
            _ => ServerError::Busy {
                server: self.spec.name.clone(),
                waited: POOL_WAIT,
            },
        }
    }

    /// The admin role's name.
    pub fn admin_user(&self) -> &str {
        self.spec.admin.config.get_user().unwrap_or_default()
    }

    /// A pooled admin session on the maintenance database.
    pub async fn maintenance(&self) -> Result<Object, ServerError> {
        self.maintenance.get().await.map_err(|e| self.pool_error(e))
    }

    /// A pooled admin session on the ownership catalog.
    pub async fn catalog(&self) -> Result<Object, ServerError> {
        self.catalog.get().await.map_err(|e| self.pool_error(e))
    }

    /// Waits for a free slot under the per-database bound.
    pub async fn database_slot(&self) -> OwnedSemaphorePermit {
        self.database_slots(1).await
    }

    /// Waits for `n` slots at once (at most the bound), so a caller that needs several
    /// connections together never holds some while waiting for the rest: no deadlock
    /// between concurrent reconciles. Split the permit to hand one to each connection.
    pub async fn database_slots(&self, n: usize) -> OwnedSemaphorePermit {
        let n = n.clamp(1, self.bound());
        let _queued = crate::budget::paused();
        self.databases
            .clone()
            .acquire_many_owned(u32::try_from(n).unwrap_or(1))
            .await
            .expect("the semaphore is never closed")
    }

    /// How many connections to databases may be open at once.
    pub fn bound(&self) -> usize {
        self.spec.database_connections.max(1)
    }

    /// An admin connection to one of the server's databases, within the bound.
    pub async fn connect_to(&self, database: &str) -> Result<DatabaseConnection, ServerError> {
        let options = self.spec.pinned_options_for(database);
        self.open(&options)
            .await
            .map_err(|source| ServerError::Connect {
                server: self.spec.name.clone(),
                source,
            })
    }

    /// A connection as `user` with `password` to `database`, within the bound: a login probe
    /// (SCRAM, so the password never crosses the wire).
    pub async fn login(
        &self,
        database: &str,
        user: &str,
        password: &str,
    ) -> Result<DatabaseConnection, ConnectError> {
        let permit = self.database_slot().await;
        self.login_within(permit, database, user, password).await
    }

    /// [`Server::login`] in a slot the caller already holds.
    pub async fn login_within(
        &self,
        permit: OwnedSemaphorePermit,
        database: &str,
        user: &str,
        password: &str,
    ) -> Result<DatabaseConnection, ConnectError> {
        let mut options = self.spec.pinned_options_for(database);
        options.config.user(user).password(password);
        self.open_within(permit, &options).await
    }

    /// A session as `user` on the database's own settings (its search_path: migrations run
    /// here), within the bound: the slot is held as long as the caller keeps the permit.
    pub async fn session_as(
        &self,
        database: &str,
        user: &str,
        password: &str,
    ) -> Result<(Client, OwnedSemaphorePermit), ConnectError> {
        let permit = self.database_slot().await;
        let mut options = self.spec.options_for(database);
        options.config.user(user).password(password);
        let (client, _task) = self
            .prepared
            .connect_with(&options.config)
            .await
            .map_err(|e| self.prepared.explain(&options, e))?;
        Ok((client, permit))
    }

    async fn open(&self, options: &ConnectOptions) -> Result<DatabaseConnection, ConnectError> {
        let permit = self.database_slot().await;
        self.open_within(permit, options).await
    }

    async fn open_within(
        &self,
        permit: OwnedSemaphorePermit,
        options: &ConnectOptions,
    ) -> Result<DatabaseConnection, ConnectError> {
        let (client, _task) = self
            .prepared
            .connect_with(&options.config)
            .await
            .map_err(|e| self.prepared.explain(options, e))?;
        Ok(DatabaseConnection {
            client,
            _permit: permit,
        })
    }
}

/// Refuses servers older than 15 rather than provisioning with weaker isolation.
fn check_version(server: &str, version: &str, num: i32) -> Result<(), ServerError> {
    if num < MIN_SERVER_VERSION_NUM {
        return Err(ServerError::TooOld {
            server: server.to_string(),
            version: version.to_string(),
        });
    }
    Ok(())
}

impl ServerSpec {
    /// The admin's connection options with another database name (as is: migrations run
    /// with these and the owner's credentials, on the database's own search_path).
    pub fn options_for(&self, database: &str) -> ConnectOptions {
        let mut options = self.admin.clone();
        options.config.dbname(database);
        options
    }

    /// For servicedb's own sessions inside a database (looking, granting, login probes): the
    /// search_path is pinned to pg_catalog alone. A database's settings (which its owner,
    /// holder of the migrator credentials, may change) can then never make a function or
    /// operator in our queries resolve to one of theirs, run with the admin's rights. (A
    /// schema anywhere in the path is enough for that: an exact-type match there beats a
    /// catalog function that needs a cast.)
    pub fn pinned_options_for(&self, database: &str) -> ConnectOptions {
        let mut options = self.options_for(database);
        options.config.options("-c search_path=pg_catalog");
        options
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn servers_older_than_15_are_refused_with_the_reason() {
        let err = super::check_version("main", "14.12", 140_012).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("PostgreSQL 14.12 is older than 15"), "{msg}");
        assert!(msg.contains("public schema"), "{msg}");
        assert!(super::check_version("main", "15.0", 150_000).is_ok());
        assert!(super::check_version("main", "18.4", 180_004).is_ok());
    }
}
