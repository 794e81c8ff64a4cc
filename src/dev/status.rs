//! `dev status`: the servers (admin connection included), the managed databases read from
//! each server, and what the last `dev up` found no longer declared.

use std::path::Path;

use super::env_store::EnvFileStore;
use super::local_server::LocalServer;
use super::record::Record;
use super::servers::{self, ServerError};
use super::{DevError, Row, manifests};
use crate::migrate::plan::current_version;
use crate::provision::catalog;
use crate::provision::server::Server;

/// One server and how to connect to it as the admin.
#[derive(Debug, Clone)]
pub struct ServerLine {
    pub name: String,
    /// `running`, `stopped`, or why it could not be reached.
    pub state: String,
    pub admin_url: String,
    pub password_at: String,
}

#[derive(Debug, Default)]
pub struct Status {
    pub servers: Vec<ServerLine>,
    pub rows: Vec<Row>,
    pub orphans: Vec<String>,
    /// The embedded server exists but is stopped.
    pub local_stopped: bool,
}

pub async fn status(state: &Path) -> Result<Status, DevError> {
    let record = Record::load(state).map_err(DevError::Record)?;
    let store = EnvFileStore::new(state.join("secrets"));
    let mut out = Status::default();
    if let Some(local) = LocalServer::load(state)? {
        let running = local.is_running();
        out.local_stopped = !running;
        out.servers.push(ServerLine {
            name: "local".to_string(),
            state: if running { "running" } else { "stopped" }.to_string(),
            admin_url: local.admin_url(),
            password_at: format!(
                "\"adminPassword\" in {}",
                std::path::absolute(state.join("server.json"))
                    .unwrap_or_else(|_| state.join("server.json"))
                    .display()
            ),
        });
        if running {
            let installation = servers::installation_id(state)?;
            let server = Server::connect(servers::local_spec(&local, &installation).await?)
                .await
                .map_err(ServerError::from)?;
            out.rows.extend(rows_of(&server, &store).await?);
        }
    }
    if !record.servers.is_empty() {
        // The credentials are in the manifests, read again from where `dev up` read them.
        let m = manifests::load(&record.manifests);
        for declared in &record.servers {
            let mut line = ServerLine {
                name: declared.name.clone(),
                state: "reachable".to_string(),
                admin_url: declared.admin_url.clone(),
                password_at: declared.password_from.clone(),
            };
            let server = match &m {
                Err(e) => Err(format!("cannot read the manifests again: {e}")),
                Ok(m) => match m
                    .servers
                    .iter()
                    .find(|s| s.value.metadata.name.as_deref() == Some(declared.name.as_str()))
                {
                    None => Err("no longer in the manifests".to_string()),
                    Some(s) => match servers::installation_id(state)
                        .map_err(|e| e.to_string())
                        .and_then(|id| {
                            servers::declared_spec(m, &s.value, &s.file, &id)
                                .map_err(|e| e.to_string())
                        }) {
                        Err(e) => Err(e.to_string()),
                        Ok(spec) => Server::connect(spec).await.map_err(|e| e.to_string()),
                    },
                },
            };
            match server {
                Ok(server) => out.rows.extend(rows_of(&server, &store).await?),
                Err(e) => line.state = format!("unreachable: {e}"),
            }
            out.servers.push(line);
        }
    }
    out.orphans = record
        .orphans()
        .map(|u| {
            format!(
                "{}: database {} on {}, reclaimPolicy {}",
                u.describe(),
                u.database,
                u.server,
                u.reclaim_policy()
            )
        })
        .collect();
    Ok(out)
}

/// The databases servicedb manages on a server, with their versions and Secret files.
async fn rows_of(server: &Server, store: &EnvFileStore) -> Result<Vec<Row>, DevError> {
    let secrets = store.all();
    let mut rows = Vec::new();
    for db in catalog::list(&*server.catalog().await.map_err(ServerError::from)?)
        .await
        .map_err(|e| ServerError::Other(e.to_string()))?
    {
        let version = match server.connect_to(&db.database).await {
            Ok(client) => read_version(&client).await,
            Err(_) => "?".to_string(),
        };
        // The app's Secret (the shortest name whose user is not the owner) first.
        let owner = crate::naming::owner_role(&db.database);
        let mut files: Vec<(bool, usize, String)> = secrets
            .iter()
            .filter(|(ns, _, keys)| {
                ns == &db.claimant.namespace && keys.get("PGDATABASE") == Some(&db.database)
            })
            .map(|(ns, name, keys)| {
                (
                    keys.get("PGUSER") == Some(&owner),
                    name.len(),
                    store.path(ns, name).display().to_string(),
                )
            })
            .collect();
        files.sort();
        rows.push(Row {
            service: format!("{}/{}", db.claimant.namespace, db.service),
            tenant: db.tenant.clone().unwrap_or_default(),
            server: server.spec.name.clone(),
            database: db.database.clone(),
            version,
            secret_files: files.into_iter().map(|(_, _, f)| f).collect(),
        });
    }
    Ok(rows)
}

async fn read_version(client: &tokio_postgres::Client) -> String {
    let table = crate::migrate::history::HistoryTable {
        schema: "public".to_string(),
        table: "flyway_schema_history".to_string(),
    };
    match table.exists(client).await {
        Ok(true) => match table.rows_after(client, -1).await {
            Ok(rows) => current_version(&rows).map_or("-".to_string(), |v| v.to_string()),
            Err(_) => "?".to_string(),
        },
        _ => "-".to_string(),
    }
}
