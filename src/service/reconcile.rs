//! The steps for one database, in the order safety needs: Secrets first, then PostgreSQL.

use std::collections::BTreeMap;

use super::credentials::{ClientEndpoint, CredentialError, SecretStore, plan_credentials};
use super::layout::{Layout, RoleLayout};
use crate::api::ReclaimPolicy;
use crate::api::ServiceDatabase;
use crate::password::Password;
use crate::pg::{Ident, IdentError};
use crate::provision::execute::{Outcome, ProvisionError, delete, reconcile};
use crate::provision::server::{Environment, Server};
use crate::provision::{DesiredDatabase, DesiredRole};

#[derive(Debug, thiserror::Error)]
pub enum UnitError {
    #[error(transparent)]
    Credentials(#[from] CredentialError),
    #[error("Secret {namespace}/{name}: {message}")]
    Store {
        namespace: String,
        name: String,
        message: String,
    },
    #[error(transparent)]
    Provision(#[from] ProvisionError),
    #[error(transparent)]
    Ident(#[from] IdentError),
    #[error(
        "spec.migrations.seed: seed data runs only on a server whose environment is local; \
         server {server:?} is {environment}, so the seed was refused and nothing was changed"
    )]
    SeedRefused { server: String, environment: String },
}

/// What reconciling one database did.
#[derive(Debug)]
pub struct UnitResult {
    pub layout: Layout,
    pub desired: DesiredDatabase,
    pub outcome: Outcome,
    pub secrets_written: Vec<String>,
}

/// Refuses seed data anywhere but a `local` server, before anything is touched.
pub fn check_seed(sdb: &ServiceDatabase, server: &Server) -> Result<(), UnitError> {
    let wants_seed = sdb
        .spec
        .migrations
        .as_ref()
        .and_then(|m| m.seed.as_ref())
        .is_some_and(|s| !s.config_maps.is_empty());
    if wants_seed && server.spec.environment != Environment::Local {
        return Err(UnitError::SeedRefused {
            server: server.spec.name.clone(),
            environment: format!("{:?}", server.spec.environment).to_lowercase(),
        });
    }
    Ok(())
}

/// Secrets (read, decide passwords, write what changed), then the database and roles.
pub async fn reconcile_unit<S: SecretStore>(
    server: &Server,
    store: &S,
    sdb: &ServiceDatabase,
    tenant: Option<&str>,
    rotate: &[String],
) -> Result<UnitResult, UnitError> {
    check_seed(sdb, server)?;
    let layout = Layout::new(sdb, tenant);
    let endpoint = ClientEndpoint {
        host: server.spec.client_host.clone(),
        port: server.spec.client_port,
        ssl_mode: server.spec.ssl_mode,
    };
    let store_error = |name: &str, e: S::Error| UnitError::Store {
        namespace: layout.namespace.clone(),
        name: name.to_string(),
        message: e.to_string(),
    };
    let mut existing = BTreeMap::new();
    for secret in &layout.secrets {
        if let Some(data) = store
            .read(&layout.namespace, &secret.name)
            .await
            .map_err(|e| store_error(&secret.name, e))?
        {
            existing.insert(secret.name.clone(), data);
        }
    }
    let template = sdb
        .spec
        .secret
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let credentials = plan_credentials(&layout, &endpoint, &template, &existing, rotate)?;
    // Written before any role gets the password: a crash in between leaves a Secret whose
    // password the next pass sets, never a role whose password nobody has.
    let mut secrets_written = Vec::new();
    for (name, data) in &credentials.writes {
        store
            .write(&layout, name, data)
            .await
            .map_err(|e| store_error(name, e))?;
        secrets_written.push(name.clone());
    }
    let desired = desired_database(&layout, &credentials.passwords)?;
    let outcome = reconcile(server, &desired).await?;
    Ok(UnitResult {
        layout,
        desired,
        outcome,
        secrets_written,
    })
}

/// The core's view of a layout, with each role's password.
pub fn desired_database(
    layout: &Layout,
    passwords: &BTreeMap<String, Password>,
) -> Result<DesiredDatabase, IdentError> {
    let role = |r: &RoleLayout| -> Result<DesiredRole, IdentError> {
        Ok(DesiredRole {
            name: Ident::new(r.name.clone())?,
            purpose: r.purpose.clone(),
            connection_limit: r.connection_limit,
            password: passwords
                .get(&r.name)
                .cloned()
                .unwrap_or_else(Password::generate),
        })
    };
    Ok(DesiredDatabase {
        claimant: layout.claimant.clone(),
        service: layout.service.clone(),
        tenant: layout.tenant.clone(),
        database: Ident::new(layout.database.clone())?,
        owner: role(&layout.owner)?,
        app: layout.app.as_ref().map(role).transpose()?,
        extra: layout.extra.iter().map(role).collect::<Result<_, _>>()?,
        schemas: layout
            .schemas
            .iter()
            .map(|s| Ident::new(s.clone()))
            .collect::<Result<_, _>>()?,
        extensions: layout
            .extensions
            .iter()
            .map(|s| Ident::new(s.clone()))
            .collect::<Result<_, _>>()?,
    })
}

/// What happens to a database when its resource goes away.
#[derive(Debug)]
pub enum Cleanup {
    /// `reclaimPolicy: Retain` (the default): the database, its roles and its catalog claim
    /// stay, so applying the resource again gets the same database back and nobody else can
    /// take it.
    Retained,
    /// `reclaimPolicy: Delete`: what this resource created was dropped.
    Dropped(Outcome),
}

/// Applies the resource's reclaim policy for one database. Works even if provisioning never
/// ran or never finished (then there is nothing of ours to drop).
pub async fn cleanup_unit(
    server: &Server,
    sdb: &ServiceDatabase,
    tenant: Option<&str>,
) -> Result<Cleanup, UnitError> {
    if sdb.spec.reclaim_policy != ReclaimPolicy::Delete {
        return Ok(Cleanup::Retained);
    }
    let layout = Layout::new(sdb, tenant);
    // Passwords are irrelevant to dropping; the names are what matter.
    let desired = desired_database(&layout, &BTreeMap::new())?;
    Ok(Cleanup::Dropped(delete(server, &desired).await?))
}
