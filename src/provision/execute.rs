//! Carrying out plans: claims in one catalog transaction, then each statement where it runs.

use tokio_postgres::Client;

use super::action::{Action, Target};
use super::catalog::CatalogError;
use super::desired::DesiredDatabase;
use super::observe::{observe_database, observe_server};
use super::plan::{Conflict, check_claims, plan_database, plan_delete, plan_server};
use super::server::{Server, ServerError};
use crate::pg::describe_pg;

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error(transparent)]
    Conflict(#[from] Conflict),
    /// The statement as displayed: passwords redacted.
    #[error("{statement}: {}", describe_pg(.source))]
    Statement {
        statement: String,
        source: tokio_postgres::Error,
    },
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Server(#[from] ServerError),
}

/// What a reconcile changed, statements as displayed (no secrets).
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub executed: Vec<String>,
}

impl Outcome {
    pub fn changed(&self) -> bool {
        !self.executed.is_empty()
    }
}

/// Makes the server match: claims, roles, database, then everything inside the database.
/// Passwords must already be in their Secrets: a crash after this never leaves a role whose
/// password nobody has.
pub async fn reconcile(
    server: &Server,
    desired: &DesiredDatabase,
) -> Result<Outcome, ProvisionError> {
    let mut outcome = Outcome::default();
    let mut observed = observe_server(&server.maintenance, &server.catalog, desired).await?;
    let mut plan = plan_server(desired, &observed)?;
    if !plan.claims.is_empty() {
        claim(server, desired, &plan.claims, &mut outcome).await?;
        // Everything else is planned from the state after claiming.
        observed = observe_server(&server.maintenance, &server.catalog, desired).await?;
        plan = plan_server(desired, &observed)?;
    }
    run(server, None, &plan.actions, &mut outcome).await?;
    reconcile_inside(server, desired, &mut outcome).await?;
    Ok(outcome)
}

/// Schemas, extensions and privileges inside the database: also run after migrations, so
/// schemas the migrations created get their grants at once.
pub async fn reconcile_inside(
    server: &Server,
    desired: &DesiredDatabase,
    outcome: &mut Outcome,
) -> Result<(), ProvisionError> {
    let db = server.connect_to(desired.database.as_str()).await?;
    let observed = observe_database(&db, desired).await?;
    run(
        server,
        Some(&db),
        &plan_database(desired, &observed),
        outcome,
    )
    .await
}

/// `reclaimPolicy: Delete`: drops what this resource created, ending live sessions first.
pub async fn delete(server: &Server, desired: &DesiredDatabase) -> Result<Outcome, ProvisionError> {
    let mut outcome = Outcome::default();
    let observed = observe_server(&server.maintenance, &server.catalog, desired).await?;
    run(
        server,
        None,
        &plan_delete(desired, &observed)?,
        &mut outcome,
    )
    .await?;
    Ok(outcome)
}

/// Inserts the claims and checks them in one transaction, so two resources racing for one
/// name cannot both win, and a loser leaves no trace. The transaction gets a connection of
/// its own: the server's catalog connection is shared by concurrent reconciles, and their
/// statements would land in each other's transactions.
async fn claim(
    server: &Server,
    desired: &DesiredDatabase,
    claims: &[Action],
    outcome: &mut Outcome,
) -> Result<(), ProvisionError> {
    let mut own = server.connect_to(super::catalog::DATABASE).await?;
    let tx = own
        .transaction()
        .await
        .map_err(|e| statement_error("BEGIN", e))?;
    for action in claims {
        tx.batch_execute(&action.sql())
            .await
            .map_err(|e| statement_error(&action.to_string(), e))?;
    }
    let mut observed = observe_server(&server.maintenance, tx.client(), desired).await?;
    // The database was absent (or ours) when planned; only the claims can differ now.
    observed.database_exists = observed.database_exists && observed.claim.is_some();
    // On a conflict the transaction is dropped, which rolls the claims back.
    check_claims(desired, &observed)?;
    tx.commit()
        .await
        .map_err(|e| statement_error("COMMIT", e))?;
    outcome
        .executed
        .extend(claims.iter().map(ToString::to_string));
    Ok(())
}

fn statement_error(statement: &str, source: tokio_postgres::Error) -> ProvisionError {
    ProvisionError::Statement {
        statement: statement.to_string(),
        source,
    }
}

/// Runs actions one by one (each commits on its own: CREATE DATABASE cannot run in a
/// transaction, and a re-plan picks up wherever a failure stopped).
async fn run(
    server: &Server,
    database: Option<&Client>,
    actions: &[Action],
    outcome: &mut Outcome,
) -> Result<(), ProvisionError> {
    for action in actions {
        let client = match action.target() {
            Target::Server => &server.maintenance,
            Target::Catalog => &server.catalog,
            Target::Database => database.unwrap_or(&server.maintenance),
        };
        tracing::info!(statement = %action, server = %server.spec.name, "provisioning");
        client
            .batch_execute(&action.sql())
            .await
            .map_err(|e| statement_error(&action.to_string(), e))?;
        outcome.executed.push(action.to_string());
    }
    Ok(())
}
