//! Every call the controllers make into the provisioning core, in one place, so a change of
//! the core is adapted here: connecting to a server, counting its managed databases, the
//! claim check, Secrets, database and roles (`reconcile_unit`), and the reclaim policy
//! (`cleanup_unit`). Failures come back sorted into permanent (a person must change
//! something) and transient (retry).

use super::service_database::secrets::KubeSecrets;
use crate::api::ServiceDatabase;
use crate::api::conditions::reasons;
use crate::migrate::effective::ReadRows;
use crate::pg::ErrorClass;
use crate::provision::catalog;
use crate::provision::execute::{HistoryWanted, ProvisionError};
use crate::provision::server::{Server, ServerError, ServerSpec};
use crate::service::Layout;
use crate::service::credentials::CredentialError;
use crate::service::reconcile::{
    Cleanup, Deletion, UnitError, UnitResult, cleanup_unit, reconcile_unit,
};

/// What provisioning did.
#[derive(Debug)]
pub struct Provisioned {
    pub layout: Layout,
    /// Statements executed (as displayed: no passwords); empty when nothing had drifted.
    pub statements: Vec<String>,
    pub secrets_written: Vec<String>,
    /// The pass saw the migration history table in the database (see `Outcome`).
    pub history_seen: bool,
    /// Its rows, when asked for and read on the owner's probe session.
    pub history: Option<ReadRows>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Will not change by retrying the same inputs.
    Permanent {
        reason: &'static str,
        message: String,
    },
    /// May go away: retried with backoff.
    Transient { message: String },
}

/// The names of a Shared ServiceDatabase (validated).
pub fn layout(sdb: &ServiceDatabase) -> Layout {
    Layout::new(sdb, None)
}

/// Claim check, then Secrets, database and roles, for a Shared ServiceDatabase. The core
/// checks the claim before any Secret is written: a resource that names someone else's
/// database gets Conflict and leaves no trace. The roles in `rotate` get new passwords.
pub async fn apply(
    server: &Server,
    secrets: &KubeSecrets,
    sdb: &ServiceDatabase,
    rotate: &[String],
) -> Result<Provisioned, Failure> {
    match reconcile_unit(server, secrets, sdb, None, rotate, HistoryWanted::No).await {
        Ok(unit) => Ok(provisioned(unit)),
        // What was done before the failure is done; the next reconcile finishes the job.
        Err(failed) => Err(sort(failed.error, secrets.foreign())),
    }
}

/// Whether deletion needs the server at all: under Retain the core keeps the database, its
/// roles and its claim, so an unreachable server never delays such a deletion.
pub fn cleanup_needs_server(sdb: &ServiceDatabase) -> bool {
    sdb.spec.reclaim_policy == crate::api::ReclaimPolicy::Delete
}

/// What deletion did on the server: a Delete keeps the core's [`Deletion`], which tells a
/// dropped database from one left alone.
#[derive(Debug)]
pub enum Reclaimed {
    Deleted(Deletion),
    Retained,
    NotOurs(String),
}

pub async fn cleanup(server: &Server, sdb: &ServiceDatabase) -> Result<Reclaimed, Failure> {
    reclaimed(cleanup_unit(server, sdb, None, sdb.spec.reclaim_policy).await)
}

/// Claim check, then Secrets, database and roles, for one tenant's database of a PerTenant
/// ServiceDatabase (the Secrets are owned by whatever `secrets` was made with: the Tenant).
/// The roles in `rotate` get new passwords; `history` asks for the schema history too.
pub async fn apply_tenant(
    server: &Server,
    secrets: &KubeSecrets,
    sdb: &ServiceDatabase,
    tenant: &str,
    rotate: &[String],
    history: HistoryWanted,
) -> Result<Provisioned, Failure> {
    match reconcile_unit(server, secrets, sdb, Some(tenant), rotate, history).await {
        Ok(unit) => Ok(provisioned(unit)),
        Err(failed) => Err(sort(failed.error, secrets.foreign())),
    }
}

fn provisioned(unit: UnitResult) -> Provisioned {
    let outcome = unit.done.outcome;
    Provisioned {
        layout: unit.layout,
        statements: outcome.executed(),
        secrets_written: unit.done.secrets_written,
        history_seen: outcome.history_seen,
        history: outcome.history,
    }
}

/// The Tenant's reclaim policy on one of its databases.
pub async fn cleanup_tenant(
    server: &Server,
    sdb: &ServiceDatabase,
    tenant: &str,
    policy: crate::api::ReclaimPolicy,
) -> Result<Reclaimed, Failure> {
    reclaimed(cleanup_unit(server, sdb, Some(tenant), policy).await)
}

fn reclaimed(
    done: Result<Cleanup, crate::service::reconcile::UnitFailure>,
) -> Result<Reclaimed, Failure> {
    match done {
        Ok(Cleanup::Dropped(deletion)) => Ok(Reclaimed::Deleted(deletion)),
        Ok(Cleanup::Retained) => Ok(Reclaimed::Retained),
        Err(failed) => match failed.error {
            UnitError::Provision(ProvisionError::Conflict(c)) => {
                Ok(Reclaimed::NotOurs(c.to_string()))
            }
            e => Err(sort(e, None)),
        },
    }
}

/// Whether the server's catalog records `database` (one indexed lookup: how a tenant
/// database whose placement was never written to status is found again).
pub async fn holds(server: &Server, database: &str) -> Result<bool, String> {
    let catalog = server.catalog().await.map_err(|e| e.to_string())?;
    catalog::holds(&catalog, database)
        .await
        .map_err(|e| e.to_string())
}

/// Sorts a core error by what to do about it.
fn sort(e: UnitError, foreign_secret: Option<String>) -> Failure {
    let permanent = |reason, message: String| Failure::Permanent { reason, message };
    match &e {
        UnitError::SeedRefused { .. } => permanent(reasons::SEED_REFUSED, e.to_string()),
        UnitError::Ident(_) => permanent(reasons::INVALID_SPEC, e.to_string()),
        UnitError::Credentials(CredentialError::SecretConflict { .. }) => {
            permanent(reasons::CONFLICT, e.to_string())
        }
        UnitError::Credentials(CredentialError::Template(_)) => {
            permanent(reasons::INVALID_SPEC, e.to_string())
        }
        UnitError::Store { .. } => match foreign_secret {
            Some(why) => permanent(reasons::CONFLICT, why),
            None => Failure::Transient {
                message: e.to_string(),
            },
        },
        UnitError::Provision(ProvisionError::Conflict(_)) => {
            permanent(reasons::CONFLICT, e.to_string())
        }
        // Wrong password, missing privilege, syntax: retrying the same inputs cannot help.
        UnitError::Provision(p) if p.class() == ErrorClass::Permanent => {
            permanent(reasons::PROVISIONING_FAILED, e.to_string())
        }
        UnitError::Provision(_) => Failure::Transient {
            message: e.to_string(),
        },
    }
}

/// Logs in as the admin (creating or migrating the ownership catalog when needed).
pub async fn connect(spec: ServerSpec) -> Result<Server, ServerError> {
    Server::connect(spec).await
}

/// How many databases servicedb manages on the server (all resources, all installations).
pub async fn managed_databases(server: &Server) -> Result<usize, String> {
    let catalog = server.catalog().await.map_err(|e| e.to_string())?;
    catalog::count(&catalog)
        .await
        .map(|n| n as usize)
        .map_err(|e| e.to_string())
}

/// Events for what changed on the server and in the Secrets; `on` names the database and
/// its server.
pub async fn announce(
    ctx: &crate::controller::Context,
    regarding: &k8s_openapi::api::core::v1::ObjectReference,
    done: &Provisioned,
    on: String,
) {
    use crate::controller::events::{self, reasons};
    if !done.secrets_written.is_empty() {
        let note = format!("wrote Secrets {}", done.secrets_written.join(", "));
        events::normal(ctx, regarding, reasons::SECRET_WRITTEN, "WriteSecret", note).await;
    }
    if !done.statements.is_empty() {
        let note = format!("{on}: {} statement(s) run", done.statements.len());
        events::normal(ctx, regarding, reasons::PROVISIONED, "Provision", note).await;
    }
}
