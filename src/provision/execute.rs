//! Carrying out plans: claims in one catalog transaction, then each statement where it runs.

use tokio_postgres::Client;

use super::action::{Action, Target};
use super::catalog::CatalogError;
use super::desired::DesiredDatabase;
use super::observe::{observe_database, observe_server};
use super::observed::ObservedServer;
use super::plan::{
    Conflict, DatabaseFate, Unrevocable, check_claims, plan_database, plan_delete, plan_server,
    unrevocable,
};
use super::probe::probe_logins;
use super::server::{DatabaseConnection, Server, ServerError};
use crate::migrate::effective::ReadRows;
use crate::migrate::history::HistoryTable;
use crate::pg::{ErrorClass, classify, describe_pg};

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
    /// Database privileges PostgreSQL did not change although each statement succeeded.
    #[error(
        "database {database}: {} had no effect: PostgreSQL answered with a warning only, as \
         the admin could not act for the owner role in that session (a membership the \
         session did not see yet, or one granted WITHOUT INHERIT); retrying",
        .statements.join("; ")
    )]
    NoEffect {
        database: String,
        statements: Vec<String>,
    },
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Server(#[from] ServerError),
    /// Privileges the spec does not grant, on objects whose owner the admin cannot act for;
    /// everything else was done.
    #[error(
        "database {database}: {} beyond the spec, which the admin cannot revoke (it cannot act \
         for the owner): revoke {} as the owner or a superuser, or give the object to the \
         database's owner role",
        .items.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
        if .items.len() == 1 { "it" } else { "them" }
    )]
    Unrevocable {
        database: String,
        items: Vec<Unrevocable>,
    },
}

impl ProvisionError {
    /// Whether retrying later may help (the controller backs off) or a change is needed.
    pub fn class(&self) -> ErrorClass {
        match self {
            ProvisionError::Conflict(_) | ProvisionError::Unrevocable { .. } => {
                ErrorClass::Permanent
            }
            ProvisionError::Statement { source, .. } => classify(source),
            ProvisionError::NoEffect { .. } => ErrorClass::Transient,
            ProvisionError::Catalog(e) => e.class(),
            ProvisionError::Server(e) => e.class(),
        }
    }

    /// The SQLSTATE the server answered with, if any.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            ProvisionError::Statement { source, .. }
            | ProvisionError::Catalog(CatalogError::Read(source) | CatalogError::Create(source)) => {
                crate::pg::class::sqlstate(source)
            }
            _ => None,
        }
    }
}

/// What a reconcile changed, in order: typed, for Events, status and dry runs; shown with
/// passwords redacted.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub actions: Vec<Action>,
    /// The pass looked inside the database and saw Flyway's history table there
    /// (`public.flyway_schema_history`): a reader of the history can skip asking.
    pub history_seen: bool,
    /// That history's rows, read on the owner's probe session when the caller asked
    /// ([`HistoryWanted::Yes`]) and the owner's login was probed.
    pub history: Option<ReadRows>,
}

/// Whether a pass also reads the schema history (`public.flyway_schema_history`) on the
/// owner's probe session, for a caller that plans migrations next: one login fewer than a
/// session of its own. The rows are as of the look inside the database, so a caller must
/// have listed its migration Jobs before the pass (a Job seen ended has then committed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryWanted {
    No,
    Yes,
}

impl Outcome {
    pub fn changed(&self) -> bool {
        !self.actions.is_empty()
    }

    /// The statements as they may be displayed (no secrets).
    pub fn executed(&self) -> Vec<String> {
        self.actions.iter().map(ToString::to_string).collect()
    }
}

/// Server-wide state of one database (claims, roles, the database), from a pooled catalog
/// session.
pub async fn observe(
    server: &Server,
    desired: &DesiredDatabase,
) -> Result<ObservedServer, ProvisionError> {
    let catalog = server.catalog().await?;
    Ok(observe_server(&catalog, desired).await?)
}

/// Makes this resource's claims (database, roles, installation) if it has none yet, in one
/// transaction that a racing resource cannot also win, and returns the state after them.
/// Claims set no password, so they can come before the Secrets: a resource that loses the
/// race then writes no Secret at all.
pub async fn claim_first(
    server: &Server,
    desired: &DesiredDatabase,
    observed: ObservedServer,
    outcome: &mut Outcome,
) -> Result<ObservedServer, ProvisionError> {
    let plan = plan_server(desired, &observed)?;
    if plan.claims.is_empty() {
        return Ok(observed);
    }
    claim(server, desired, &plan.claims, outcome).await?;
    observe(server, desired).await
}

/// Observes, then makes the server match (see [`reconcile_observed`]).
pub async fn reconcile(
    server: &Server,
    desired: &DesiredDatabase,
) -> Result<Outcome, ProvisionError> {
    let mut outcome = Outcome::default();
    let observed = observe(server, desired).await?;
    reconcile_observed(server, desired, observed, HistoryWanted::No, &mut outcome).await?;
    Ok(outcome)
}

/// Makes the server match, starting from `observed` (as [`observe`] saw it):
/// claims, roles, database, then everything inside the database. Passwords must already be
/// in their Secrets: a crash after this never leaves a role whose password nobody has. What
/// was done is in `outcome` even when it fails part-way; the next pass finishes the job.
pub async fn reconcile_observed(
    server: &Server,
    desired: &DesiredDatabase,
    mut observed: ObservedServer,
    history: HistoryWanted,
    outcome: &mut Outcome,
) -> Result<(), ProvisionError> {
    // Whether each role still has its Secret's password is seen by logging in as it; the
    // owner's session then also looks inside the database.
    let probes = probe_logins(server, desired, &observed).await;
    observed.password_rejected = probes.rejected;
    let mut plan = plan_server(desired, &observed)?;
    if !plan.claims.is_empty() {
        claim(server, desired, &plan.claims, outcome).await?;
        // Everything else is planned from the state after claiming.
        let rejected = std::mem::take(&mut observed.password_rejected);
        observed = observe(server, desired).await?;
        observed.password_rejected = rejected;
        plan = plan_server(desired, &observed)?;
    }
    run(server, None, &plan.actions, outcome).await?;
    if plan.actions.iter().any(Action::changes_database_acl) {
        confirm_database_acl(server, desired).await?;
    }
    let owner = probes.owner.map(|c| (c, history));
    reconcile_inside_with(server, desired, owner, outcome).await
}

/// Reads the database's privileges back after changing them: a REVOKE that PostgreSQL
/// answered with "no privileges could be revoked" succeeds, and would have left PUBLIC
/// able to connect while the pass reported success.
async fn confirm_database_acl(
    server: &Server,
    desired: &DesiredDatabase,
) -> Result<(), ProvisionError> {
    let observed = observe(server, desired).await?;
    let left: Vec<String> = plan_server(desired, &observed)?
        .actions
        .iter()
        .filter(|a| a.changes_database_acl())
        .map(ToString::to_string)
        .collect();
    if left.is_empty() {
        Ok(())
    } else {
        Err(ProvisionError::NoEffect {
            database: desired.database.as_str().to_string(),
            statements: left,
        })
    }
}

/// Schemas, extensions and privileges inside the database: also run after migrations, so
/// schemas the migrations created get their grants at once.
pub async fn reconcile_inside(
    server: &Server,
    desired: &DesiredDatabase,
    outcome: &mut Outcome,
) -> Result<(), ProvisionError> {
    reconcile_inside_with(server, desired, None, outcome).await
}

/// Looks inside on the owner's probe session when there is one (reading the history there
/// too when wanted), and opens an admin session only when something must change.
async fn reconcile_inside_with(
    server: &Server,
    desired: &DesiredDatabase,
    owner: Option<(DatabaseConnection, HistoryWanted)>,
    outcome: &mut Outcome,
) -> Result<(), ProvisionError> {
    let (looker, history) = match owner {
        Some((c, history)) => (c, history),
        None => (
            server.connect_to(desired.database.as_str()).await?,
            HistoryWanted::No,
        ),
    };
    let observed = observe_database(&looker, desired, server.admin_user()).await?;
    outcome.history_seen = observed.history_tables.contains(super::HISTORY_TABLES[0]);
    if history == HistoryWanted::Yes {
        outcome.history = owners_history(&looker, desired, outcome.history_seen).await;
    }
    let actions = plan_database(desired, &observed);
    drop(looker);
    if !actions.is_empty() {
        let admin = server.connect_to(desired.database.as_str()).await?;
        run(server, Some(&admin), &actions, outcome).await?;
    }
    // Reported after everything else is done: one foreign object never holds up the rest.
    let items = unrevocable(&observed);
    if items.is_empty() {
        Ok(())
    } else {
        Err(ProvisionError::Unrevocable {
            database: desired.database.as_str().to_string(),
            items,
        })
    }
}

/// The schema history as the owner sees it, on its probe session (who the session is needs
/// no statement: the owner in this database). A failed read is left to the caller's own.
async fn owners_history(
    owner: &DatabaseConnection,
    desired: &DesiredDatabase,
    table_seen: bool,
) -> Option<ReadRows> {
    let rows = if table_seen {
        match HistoryTable::schema_history().all_rows(&**owner).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::debug!(database = %desired.database, error = %e,
                    "reading the history on the owner's probe session");
                return None;
            }
        }
    } else {
        Vec::new()
    };
    Some(ReadRows {
        user: desired.owner.name.as_str().to_string(),
        database: desired.database.as_str().to_string(),
        rows,
    })
}

/// `reclaimPolicy: Delete`: drops what this resource created, ending live sessions first.
pub async fn delete(server: &Server, desired: &DesiredDatabase) -> Result<Outcome, ProvisionError> {
    let mut outcome = Outcome::default();
    delete_into(server, desired, &mut outcome).await?;
    Ok(outcome)
}

/// [`delete`], recording into `outcome` what was dropped also when it fails part-way, and
/// saying what became of the database itself.
pub async fn delete_into(
    server: &Server,
    desired: &DesiredDatabase,
    outcome: &mut Outcome,
) -> Result<DatabaseFate, ProvisionError> {
    let observed = observe(server, desired).await?;
    let plan = plan_delete(desired, &observed)?;
    run(server, None, &plan.actions, outcome).await?;
    Ok(plan.database)
}

/// Inserts the claims and checks them in one transaction, so two resources racing for one
/// name cannot both win, and a loser leaves no trace.
async fn claim(
    server: &Server,
    desired: &DesiredDatabase,
    claims: &[Action],
    outcome: &mut Outcome,
) -> Result<(), ProvisionError> {
    let mut own = server.catalog().await?;
    let tx = own
        .transaction()
        .await
        .map_err(|e| statement_error("BEGIN", e))?;
    for action in claims {
        tx.batch_execute(&action.sql())
            .await
            .map_err(|e| statement_error(&action.to_string(), e))?;
    }
    let observed = observe_server(tx.client(), desired).await?;
    // On a conflict the transaction is dropped, which rolls the claims back.
    check_claims(desired, &observed)?;
    tx.commit()
        .await
        .map_err(|e| statement_error("COMMIT", e))?;
    outcome.actions.extend(claims.iter().cloned());
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
///
/// The server-wide ones share one maintenance session. PostgreSQL caches a session's role
/// memberships, and a session that computed that cache while another one granted the
/// admin a membership can keep it without the new role: then the admin, in that session,
/// cannot act for the owner of a database created moments ago. Its own GRANT always
/// reaches the session that made it.
async fn run(
    server: &Server,
    database: Option<&Client>,
    actions: &[Action],
    outcome: &mut Outcome,
) -> Result<(), ProvisionError> {
    let mut maintenance = None;
    for action in actions {
        tracing::info!(statement = %action, server = %server.spec.name, "provisioning");
        let result = match (action.target(), database) {
            (Target::Database, Some(db)) => db.batch_execute(&action.sql()).await,
            (Target::Catalog, _) => server.catalog().await?.batch_execute(&action.sql()).await,
            _ => {
                if maintenance.is_none() {
                    maintenance = Some(server.maintenance().await?);
                }
                let session = maintenance.as_ref().expect("taken just above");
                session.batch_execute(&action.sql()).await
            }
        };
        result.map_err(|e| statement_error(&action.to_string(), e))?;
        outcome.actions.push(action.clone());
    }
    Ok(())
}
