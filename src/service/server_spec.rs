//! From a DatabaseServer (and its admin credentials and CA) to the core's `ServerSpec`: one
//! mapping for `servicedb dev` and the controller, so both connect the same way. Pure.

use tokio_postgres::Config;

use crate::api::DatabaseServer;
use crate::pg::ConnectOptions;
use crate::provision::server::{DEFAULT_DATABASE_CONNECTIONS, Environment, ServerSpec};

/// `ca_pem`: the `caSecretRef` key's content, if any; without one, the system's trusted roots
/// verify the server (as the CRD documents).
pub fn from_database_server(
    server: &DatabaseServer,
    username: &str,
    password: &str,
    ca_pem: Option<Vec<u8>>,
    installation: &str,
) -> Result<ServerSpec, String> {
    let spec = &server.spec;
    let port =
        u16::try_from(spec.port).map_err(|_| format!("spec.port: {} is not a port", spec.port))?;
    let client_port = u16::try_from(spec.effective_client_port()).map_err(|_| {
        format!(
            "spec.clientPort: {} is not a port",
            spec.effective_client_port()
        )
    })?;
    let mut config = Config::new();
    config
        .host(&spec.host)
        .port(port)
        .user(username)
        .password(password)
        .dbname("postgres")
        .application_name("servicedb")
        .connect_timeout(std::time::Duration::from_secs(10));
    Ok(ServerSpec {
        name: server.metadata.name.clone().unwrap_or_default(),
        admin: ConnectOptions {
            config,
            ssl_mode: spec.admin_ssl_mode(),
            system_roots: ca_pem.is_none(),
            ca_pem,
        },
        client_host: spec.effective_client_host().to_string(),
        client_port,
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
