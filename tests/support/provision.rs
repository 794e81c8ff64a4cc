//! Shared pieces of the provisioning tests: a `Server` on the test PostgreSQL, desired
//! databases with unique names, logins, an in-memory Secret store.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Mutex;

use servicedb::api::{ReclaimPolicy, ServiceDatabase, ServiceDatabaseSpec};
use servicedb::password::Password;
use servicedb::pg::{ConnectOptions, Ident, SslMode};
use servicedb::provision::execute::observe;
use servicedb::provision::observe::observe_database;
use servicedb::provision::plan::{plan_database, plan_server};
use servicedb::provision::server::{DEFAULT_DATABASE_CONNECTIONS, Environment, Server, ServerSpec};
use servicedb::provision::{Access, Claimant, DesiredDatabase, DesiredRole, RolePurpose};
use servicedb::service::SecretStore;

use super::postgres::{TestServer, server as pg};

/// The installation the tests' servers claim as.
pub const INSTALLATION: &str = "tests";

pub fn spec(installation: &str) -> ServerSpec {
    spec_on(pg(), installation)
}

/// [`spec`] for another test server (a private one, say).
pub fn spec_on(server: &TestServer, installation: &str) -> ServerSpec {
    ServerSpec {
        name: "test".into(),
        admin: ConnectOptions::from_url(&server.admin_url("postgres")).unwrap(),
        client_host: server.host().into(),
        client_port: server.port(),
        ssl_mode: SslMode::Disable,
        environment: Environment::Local,
        max_databases: None,
        installation: installation.into(),
        database_connections: DEFAULT_DATABASE_CONNECTIONS,
    }
}

pub async fn connect_server() -> Server {
    Server::connect(spec(INSTALLATION)).await.unwrap()
}

pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        &Password::generate().expose()[..8].to_lowercase()
    )
}

pub fn role(name: &str, purpose: RolePurpose) -> DesiredRole {
    DesiredRole {
        name: Ident::new(name).unwrap(),
        purpose,
        connection_limit: 10,
        password: Password::generate(),
    }
}

pub fn desired(namespace: &str, db: &str) -> DesiredDatabase {
    DesiredDatabase {
        installation: INSTALLATION.into(),
        claimant: Claimant {
            kind: "ServiceDatabase".into(),
            namespace: namespace.into(),
            name: "orders".into(),
        },
        service: "orders".into(),
        tenant: None,
        database: Ident::new(db).unwrap(),
        owner: role(&format!("{db}_owner"), RolePurpose::Owner),
        app: Some(role(&format!("{db}_app"), RolePurpose::App)),
        extra: vec![role(
            &format!("{db}_reporting"),
            RolePurpose::Extra {
                name: "reporting".into(),
                access: Access::Read,
            },
        )],
        schemas: vec![Ident::new("orders").unwrap()],
        extensions: vec![Ident::new("pgcrypto").unwrap()],
    }
}

/// Logs in as a role with its password.
pub async fn login(db: &str, role: &DesiredRole) -> Result<tokio_postgres::Client, String> {
    let url = format!(
        "postgresql://{}:{}@{}:{}/{db}?sslmode=disable",
        role.name.as_str(),
        role.password.expose(),
        pg().host(),
        pg().port()
    );
    ConnectOptions::from_url(&url)
        .unwrap()
        .connect()
        .await
        .map_err(|e| e.to_string())
}

/// Both plans are empty right after reconciling: the planner and the catalog agree.
pub async fn assert_converged(server: &Server, d: &DesiredDatabase) {
    let observed = observe(server, d).await.unwrap();
    let plan = plan_server(d, &observed).unwrap();
    assert!(plan.is_empty(), "server plan after reconcile: {plan:?}");
    let db = server.connect_to(d.database.as_str()).await.unwrap();
    let inside = plan_database(
        d,
        &observe_database(&db, d, server.admin_user()).await.unwrap(),
    );
    assert!(
        inside.is_empty(),
        "database plan after reconcile: {inside:?}"
    );
}

pub async fn database_exists(db: &str) -> bool {
    pg().admin_client("postgres")
        .await
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&db])
        .await
        .unwrap()
        .is_some()
}

/// Secrets kept in memory, as a test double for the cluster's or dev's store.
#[derive(Default)]
pub struct Memory(pub Mutex<BTreeMap<String, BTreeMap<String, String>>>);

impl Memory {
    pub fn names(&self) -> Vec<String> {
        self.0.lock().unwrap().keys().cloned().collect()
    }
}

impl SecretStore for Memory {
    type Error = std::convert::Infallible;
    async fn read(
        &self,
        _: &str,
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>, Self::Error> {
        Ok(self.0.lock().unwrap().get(name).cloned())
    }
    async fn write(
        &self,
        _: &servicedb::service::Layout,
        name: &str,
        data: &BTreeMap<String, String>,
    ) -> Result<(), Self::Error> {
        self.0
            .lock()
            .unwrap()
            .insert(name.to_string(), data.clone());
        Ok(())
    }
}

/// A ServiceDatabase in `namespace` with the given reclaim policy.
pub fn sdb(namespace: &str, name: &str, policy: ReclaimPolicy) -> ServiceDatabase {
    let mut s = ServiceDatabase::new(
        name,
        ServiceDatabaseSpec {
            reclaim_policy: policy,
            ..Default::default()
        },
    );
    s.metadata.namespace = Some(namespace.into());
    s
}
