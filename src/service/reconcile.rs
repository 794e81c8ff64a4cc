//! The steps for one database, in the order safety needs: Secrets first, then PostgreSQL.

use std::collections::BTreeMap;

use super::credentials::{ClientEndpoint, CredentialError, SecretStore, plan_credentials};
use super::layout::{Layout, RoleLayout};
use crate::api::ReclaimPolicy;
use crate::api::ServiceDatabase;
use crate::password::Password;
use crate::pg::{Ident, IdentError};
use crate::provision::execute::{
    HistoryWanted, Outcome, ProvisionError, claim_first, delete_into, observe, reconcile_observed,
};
use crate::provision::plan::{DatabaseFate, check_claims};
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

/// What reconciling one database did, also when it stopped part-way.
#[derive(Debug, Default)]
pub struct Done {
    /// Statements executed, in order.
    pub outcome: Outcome,
    /// Secrets written (names), before any statement that sets their passwords.
    pub secrets_written: Vec<String>,
}

/// A unit that failed, with what it did before the failure: the next pass finishes it or
/// reports the same error.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct UnitFailure {
    pub error: UnitError,
    pub done: Done,
}

impl<E: Into<UnitError>> From<E> for UnitFailure {
    fn from(e: E) -> Self {
        UnitFailure {
            error: e.into(),
            done: Done::default(),
        }
    }
}

impl UnitError {
    /// Whether retrying later may help.
    pub fn class(&self) -> crate::pg::ErrorClass {
        match self {
            UnitError::Provision(p) => p.class(),
            UnitError::Store { .. } => crate::pg::ErrorClass::Transient,
            _ => crate::pg::ErrorClass::Permanent,
        }
    }
}

/// What reconciling one database did.
#[derive(Debug)]
pub struct UnitResult {
    pub layout: Layout,
    pub desired: DesiredDatabase,
    pub done: Done,
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

/// Claims checked first (a Conflict writes nothing at all, no Secret either), then Secrets
/// (read, decide passwords, write what changed), then the database and roles.
pub async fn reconcile_unit<S: SecretStore>(
    server: &Server,
    store: &S,
    sdb: &ServiceDatabase,
    tenant: Option<&str>,
    rotate: &[String],
    history: HistoryWanted,
) -> Result<UnitResult, UnitFailure> {
    check_seed(sdb, server)?;
    let layout = Layout::new(sdb, tenant);
    // Names are all the claim check needs; passwords come from the Secrets below.
    let names = desired_database(&layout, &BTreeMap::new(), &server.spec.installation)?;
    let observed = observe(server, &names).await.map_err(UnitError::from)?;
    check_claims(&names, &observed).map_err(ProvisionError::from)?;
    // Claimed before any Secret is written: two resources racing for one name both pass
    // the check above, but only one wins the claim, and the loser writes nothing.
    let mut done = Done::default();
    let observed = match claim_first(server, &names, observed, &mut done.outcome).await {
        Ok(observed) => observed,
        Err(e) => {
            return Err(UnitFailure {
                error: e.into(),
                done,
            });
        }
    };

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
    for (name, data) in &credentials.writes {
        if let Err(e) = store.write(&layout, name, data).await {
            return Err(UnitFailure {
                error: store_error(name, e),
                done,
            });
        }
        done.secrets_written.push(name.clone());
    }
    let desired = desired_database(&layout, &credentials.passwords, &server.spec.installation)?;
    if let Err(e) = reconcile_observed(server, &desired, observed, history, &mut done.outcome).await
    {
        return Err(UnitFailure {
            error: e.into(),
            done,
        });
    }
    Ok(UnitResult {
        layout,
        desired,
        done,
    })
}

/// The core's view of a layout, with each role's password.
pub fn desired_database(
    layout: &Layout,
    passwords: &BTreeMap<String, Password>,
    installation: &str,
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
        installation: installation.to_string(),
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
    /// `reclaimPolicy: Delete` was applied: this resource's roles and claim were dropped, and
    /// the database too unless [`Deletion::database`] says it was left alone.
    Dropped(Deletion),
}

/// What a Delete did: the statements, and what became of the database itself.
#[derive(Debug)]
pub struct Deletion {
    pub outcome: Outcome,
    pub database: DatabaseFate,
}

impl Deletion {
    /// Whether anything was executed.
    pub fn changed(&self) -> bool {
        self.outcome.changed()
    }

    /// The statements as they may be displayed (no secrets).
    pub fn executed(&self) -> Vec<String> {
        self.outcome.executed()
    }

    /// Whether the database itself was kept although the policy is Delete.
    pub fn left_alone(&self) -> Option<&crate::provision::Conflict> {
        match &self.database {
            DatabaseFate::LeftAlone(why) => Some(why),
            _ => None,
        }
    }

    /// One line for Events and `dev` output: what was dropped, what was left alone and why.
    pub fn summary(&self, database: &str) -> String {
        match &self.database {
            DatabaseFate::Dropped => {
                format!("dropped database {database} and its roles (reclaimPolicy Delete)")
            }
            DatabaseFate::Absent if self.changed() => format!(
                "database {database} was already gone; dropped its roles (reclaimPolicy Delete)"
            ),
            DatabaseFate::Absent => {
                format!("nothing of database {database} was there to drop (reclaimPolicy Delete)")
            }
            DatabaseFate::LeftAlone(why) => format!(
                "left database {database} alone, although reclaimPolicy is Delete: {why}; \
                 dropped its roles and servicedb's claim on the name"
            ),
        }
    }
}

/// Applies a reclaim policy to one database: the ServiceDatabase's for a Shared one, the
/// Tenant's for a tenant's database. Works even if provisioning never ran or never finished
/// (then there is nothing of ours to drop).
pub async fn cleanup_unit(
    server: &Server,
    sdb: &ServiceDatabase,
    tenant: Option<&str>,
    policy: ReclaimPolicy,
) -> Result<Cleanup, UnitFailure> {
    if policy != ReclaimPolicy::Delete {
        return Ok(Cleanup::Retained);
    }
    let layout = Layout::new(sdb, tenant);
    // Passwords are irrelevant to dropping; the names are what matter.
    let desired = desired_database(&layout, &BTreeMap::new(), &server.spec.installation)?;
    let mut done = Done::default();
    match delete_into(server, &desired, &mut done.outcome).await {
        Ok(database) => Ok(Cleanup::Dropped(Deletion {
            outcome: done.outcome,
            database,
        })),
        Err(e) => Err(UnitFailure {
            error: e.into(),
            done,
        }),
    }
}
