//! Running the plan against PostgreSQL: creating the history table, applying migrations one
//! transaction at a time under Flyway's advisory lock, baseline and repair.

use std::path::PathBuf;

use serde::Serialize;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, GenericClient};

use super::history::{
    AppliedRow, BASELINE_MARKER, HistoryTable, NewRow, SCHEMA_MARKER, stored_description,
};
use super::lock;
use super::placeholders::{Builtins, PlaceholderError, Placeholders};
use super::plan::{Options, Plan, Problem, plan};
use super::source::{MigrationFile, SourceError, scan};
use super::sql_split::{first_non_transactional, mixed_transactionality};
use super::version::Version;
use crate::pg::{ConnectError, ConnectOptions, quote_ident};

/// Who a session is, as the `${flyway:user}` and `${flyway:database}` placeholders say.
struct Session {
    pub user: String,
    pub database: String,
}

/// What the engine is asked to do, independent of the command that asks.
#[derive(Debug, Clone)]
pub struct Settings {
    pub dirs: Vec<PathBuf>,
    pub history: HistoryTable,
    pub options: Options,
    pub placeholders: Placeholders,
    /// Create the history table even when the schema already holds tables (for a second
    /// history beside the schema's own, such as seed data); otherwise that is refused and
    /// `baseline` is the way in.
    pub allow_non_empty_schema: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Placeholder(#[from] PlaceholderError),
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("{context}: {}", describe_pg(.source))]
    Db {
        context: String,
        source: tokio_postgres::Error,
    },
    #[error("validation failed:\n{}", .0.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Validation(Vec<Problem>),
    #[error("{0}")]
    Failed(Box<Failure>),
    #[error(
        "schema {schema:?} already holds tables but has no {table} table, so servicedb cannot tell what was applied; \
         take it over with `servicedb migrate baseline --baseline-version <the version it is at>`"
    )]
    NonEmptySchema { schema: String, table: String },
    #[error("--target {0} matches no migration file and no applied version")]
    UnknownTarget(String),
    #[error("{0}")]
    Refused(String),
}

use crate::pg::describe_pg;

/// A migration script that failed (or was refused before it ran): `FILE:LINE: message`.
#[derive(Debug, Clone, Serialize, thiserror::Error)]
#[serde(rename_all = "camelCase")]
#[error("{script}{}: {message}{}", .line.map(|l| format!(":{l}")).unwrap_or_default(), .note.as_deref().unwrap_or_default())]
pub struct Failure {
    pub script: String,
    pub line: Option<usize>,
    /// The server's SQLSTATE, when the server refused.
    pub sqlstate: Option<String>,
    pub message: String,
    /// What else the user must know at once (what stays applied, what blocks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

fn db(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> MigrateError {
    let context = context.into();
    move |source| MigrateError::Db { context, source }
}

/// Hooks for showing progress; the CLI draws a bar or prints lines, `dev` prints its own.
pub trait Progress: Send {
    fn start(&mut self, _pending: usize) {}
    fn applying(&mut self, _file: &MigrationFile) {}
    fn applied(&mut self, _file: &MigrationFile, _millis: i32) {}
    fn finish(&mut self) {}
}

/// Progress that shows nothing.
pub struct Quiet;
impl Progress for Quiet {}

/// One migration that `apply` ran.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    pub version: Option<String>,
    pub description: String,
    pub script: String,
    pub execution_time_ms: i32,
    pub in_transaction: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyReport {
    pub applied: Vec<Applied>,
    /// The version the database is at afterwards.
    pub current: Option<String>,
    pub target: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RepairReport {
    pub removed_failed: Vec<String>,
    pub realigned: Vec<String>,
    pub marked_deleted: Vec<String>,
}

#[path = "run.rs"]
mod run;

/// A connected engine with the files read.
pub struct Engine {
    client: Client,
    settings: Settings,
    state: State,
    /// What the last `apply` applied.
    applied: Vec<Applied>,
}

/// What the engine knows; kept apart from the client so a transaction can borrow the client
/// while the state is updated.
struct State {
    files: Vec<MigrationFile>,
    /// Effective checksums: as the file for versioned, after placeholders for repeatables.
    checksums: Vec<i32>,
    history: Vec<AppliedRow>,
    table_exists: bool,
    builtins: Builtins,
    warnings: Vec<String>,
}

impl Engine {
    /// Connects and reads the migration files; the history is read on first use.
    pub async fn open(
        connect: &ConnectOptions,
        settings: Settings,
    ) -> Result<Engine, MigrateError> {
        // Reading the files and connecting overlap: neither waits for the other.
        let dirs = settings.dirs.clone();
        let scanning = tokio::task::spawn_blocking(move || scan(&dirs));
        let client = connect.connect().await;
        let scanned = match scanning.await {
            Ok(scanned) => scanned?,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        let client = client?;
        Self::with_client(client, settings, scanned.files, scanned.warnings).await
    }

    /// An engine over an existing connection and files already read (e.g. from ConfigMaps).
    pub async fn with_client(
        client: Client,
        settings: Settings,
        files: Vec<MigrationFile>,
        warnings: Vec<String>,
    ) -> Result<Engine, MigrateError> {
        // One round trip: who we are and whether the history exists, pipelined with reading
        // the history on the bet that it does (when it does not, that read fails harmlessly).
        // Both are the cheapest forms for a fresh session to plan (a name lookup, a bare scan):
        // with nothing pending, they are all a run asks of the server. Writers check that the
        // name is a table first (`exists`).
        let history = &settings.history;
        let identity = format!(
            "SELECT current_user::text, current_database()::text, {}",
            HistoryTable::NAMED_SQL
        );
        let qualified = history.qualified();
        let params: [(&(dyn tokio_postgres::types::ToSql + Sync), Type); 1] =
            [(&qualified, Type::TEXT)];
        let (row, rows) = futures::join!(
            client.query_typed_one(&identity, &params),
            history.all_rows(&client)
        );
        let row = row.map_err(db("reading the current user"))?;
        let table_exists: bool = row.get(2);
        let rows = if table_exists {
            rows.map_err(db("reading the history"))?
        } else {
            Vec::new()
        };
        let session = Session {
            user: row.get(0),
            database: row.get(1),
        };
        Self::assemble(
            client,
            settings,
            files,
            warnings,
            session,
            rows,
            table_exists,
        )
    }

    /// [`Self::with_client`] for a caller that has just seen the history table exist (the
    /// controller, right after looking inside the database): identity and history are then
    /// one statement. Should the table be gone after all, it reads as `with_client` does.
    pub async fn with_table_seen(
        client: Client,
        settings: Settings,
        files: Vec<MigrationFile>,
        warnings: Vec<String>,
    ) -> Result<Engine, MigrateError> {
        match settings.history.identity_and_rows(&client).await {
            Ok(((user, database), rows)) => {
                let session = Session { user, database };
                Self::assemble(client, settings, files, warnings, session, rows, true)
            }
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => {
                Self::with_client(client, settings, files, warnings).await
            }
            Err(e) => Err(db("reading the history")(e)),
        }
    }

    fn assemble(
        client: Client,
        settings: Settings,
        files: Vec<MigrationFile>,
        warnings: Vec<String>,
        session: Session,
        rows: Vec<AppliedRow>,
        table_exists: bool,
    ) -> Result<Engine, MigrateError> {
        let builtins = super::effective::builtins(&settings, session.user, session.database);
        let checksums = super::effective::checksums(&settings, &files, &builtins)?;
        let state = State {
            files,
            checksums,
            history: rows,
            table_exists,
            builtins,
            warnings,
        };
        Ok(Engine {
            client,
            settings,
            state,
            applied: Vec::new(),
        })
    }

    /// Notes about files that were skipped.
    pub fn warnings(&self) -> &[String] {
        &self.state.warnings
    }

    pub fn files(&self) -> &[MigrationFile] {
        &self.state.files
    }

    /// Hands the connection back, for callers that keep using it.
    pub fn into_client(self) -> Client {
        self.client
    }

    pub fn history(&self) -> &[AppliedRow] {
        &self.state.history
    }

    /// The history as read, with who read it: enough to plan other files against it later
    /// ([`super::effective::plan_read`]).
    pub fn read_rows(&self) -> super::effective::ReadRows {
        super::effective::ReadRows {
            user: self.state.builtins.user.clone(),
            database: self.state.builtins.database.clone(),
            rows: self.state.history.clone(),
        }
    }

    /// The states of all migrations, as `info` shows them.
    pub fn info(&self) -> Plan {
        self.state.plan(&self.settings.options)
    }

    /// Applies what is pending: validates first; then, holding Flyway's lock for the whole run
    /// (waited for without a transaction), plans again from the history as it is now, so
    /// concurrent runners never apply anything twice, and runs each migration in its own
    /// transaction with its history row.
    pub async fn apply(
        &mut self,
        progress: &mut dyn Progress,
    ) -> Result<ApplyReport, MigrateError> {
        let settings = &self.settings;
        let state = &mut self.state;
        let plan = state.plan(&settings.options);
        if !plan.problems.is_empty() {
            return Err(MigrateError::Validation(plan.problems));
        }
        if let Some(t) = &settings.options.target
            && !plan.target_known
        {
            return Err(MigrateError::UnknownTarget(t.to_string()));
        }
        // Every pending script must substitute before anything runs: a typo in V5's
        // placeholders should not leave V1..V4 applied and V5 failing.
        let mut scripts: Vec<Option<String>> = vec![None; state.files.len()];
        for &i in &plan.pending {
            let f = &state.files[i];
            // Flyway refuses these too: run outside a transaction, a failure half-way through
            // would leave the transactional part applied with no way back.
            if f.execute_in_transaction.is_none()
                && let Some((line, reason)) = mixed_transactionality(&f.sql)
            {
                return Err(MigrateError::Failed(Box::new(Failure {
                    script: f.path.display().to_string(),
                    line: Some(line),
                    sqlstate: None,
                    note: None,
                    message: format!(
                        "{reason} cannot run in a transaction, but the rest of this script can; move it into a \
                         migration of its own, or add {}.conf with executeInTransaction=false to run the whole \
                         script outside a transaction",
                        f.path
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default()
                    ),
                })));
            }
            scripts[i] = Some(settings.placeholders.substitute(
                &f.sql,
                &f.script,
                &state.builtins,
            )?);
        }
        self.applied.clear();
        if plan.pending.is_empty() && state.table_exists {
            // Nothing to do by what was just read: no lock, no further round trip.
            progress.start(0);
            progress.finish();
            return Ok(ApplyReport {
                applied: Vec::new(),
                current: plan.current.map(|v| v.to_string()),
                target: settings.options.target.as_ref().map(Version::to_string),
            });
        }
        let key = settings.history.lock_key();
        lock::acquire(&self.client, key)
            .await
            .map_err(db("taking the migration lock"))?;
        let outcome = apply_locked(
            &mut self.client,
            settings,
            state,
            &mut scripts,
            progress,
            &mut self.applied,
        )
        .await;
        // Released on error too, so a caller that keeps the connection (dev) does not keep it.
        let released = lock::release(&self.client, key, outcome.is_err()).await;
        outcome?;
        released.map_err(db("releasing the migration lock"))?;
        progress.finish();
        let current = state.plan(&settings.options).current.map(|v| v.to_string());
        Ok(ApplyReport {
            applied: self.applied.clone(),
            current,
            target: settings.options.target.as_ref().map(Version::to_string),
        })
    }

    /// What the last `apply` applied, also when it then failed.
    pub fn applied(&self) -> &[Applied] {
        &self.applied
    }

    /// Takes over a database that has no history: records `version` as applied, so only later
    /// migrations run (Flyway's baseline).
    pub async fn baseline(
        &mut self,
        version: &Version,
        description: &str,
    ) -> Result<(), MigrateError> {
        let key = self.settings.history.lock_key();
        lock::acquire(&self.client, key)
            .await
            .map_err(db("taking the migration lock"))?;
        let outcome = self.baseline_locked(version, description).await;
        let released = lock::release(&self.client, key, outcome.is_err()).await;
        outcome?;
        released.map_err(db("releasing the migration lock"))
    }

    async fn baseline_locked(
        &mut self,
        version: &Version,
        description: &str,
    ) -> Result<(), MigrateError> {
        let settings = &self.settings;
        let state = &mut self.state;
        let tx = self.client.transaction().await.map_err(db("BEGIN"))?;
        state.table_exists = settings
            .history
            .exists(&tx)
            .await
            .map_err(db("looking for the history table"))?;
        if state.table_exists {
            state.refresh(&tx, &settings.history).await?;
            let existing: Vec<&AppliedRow> = state
                .history
                .iter()
                .filter(|r| r.kind != "SCHEMA")
                .collect();
            if let [only] = existing.as_slice()
                && only.kind == "BASELINE"
                && only
                    .version
                    .as_deref()
                    .and_then(|v| Version::parse(v).ok())
                    .as_ref()
                    == Some(version)
            {
                return Ok(());
            }
            if !existing.is_empty() {
                return Err(MigrateError::Refused(format!(
                    "{} already has {} row(s): baseline is only for a database without migration history",
                    settings.history.qualified(),
                    existing.len()
                )));
            }
        }
        create_table_in(&tx, state, &settings.history, true).await?;
        settings
            .history
            .insert(
                &tx,
                &NewRow {
                    rank: None,
                    version: Some(version.as_str()),
                    description,
                    kind: "BASELINE",
                    script: BASELINE_MARKER,
                    checksum: None,
                    installed_by: &state.builtins.user,
                    execution_time: 0,
                    success: true,
                },
            )
            .await
            .map_err(db("recording the baseline"))?;
        tx.commit().await.map_err(db("COMMIT"))?;
        state.table_exists = true;
        state.history.clear();
        state.refresh(&self.client, &settings.history).await
    }

    /// Flyway's repair: removes failed rows, realigns checksums, descriptions and types of
    /// applied versions with their files, and marks applied migrations whose file is gone as
    /// deleted.
    pub async fn repair(&mut self) -> Result<RepairReport, MigrateError> {
        if !self.state.table_exists {
            return Ok(RepairReport::default());
        }
        let key = self.settings.history.lock_key();
        lock::acquire(&self.client, key)
            .await
            .map_err(db("taking the migration lock"))?;
        let outcome = self.repair_locked().await;
        let released = lock::release(&self.client, key, outcome.is_err()).await;
        let report = outcome?;
        released.map_err(db("releasing the migration lock"))?;
        Ok(report)
    }

    async fn repair_locked(&mut self) -> Result<RepairReport, MigrateError> {
        let settings = &self.settings;
        let state = &mut self.state;
        let mut report = RepairReport::default();
        if !state.table_exists {
            return Ok(report);
        }
        let t = settings.history.qualified();
        let tx = self.client.transaction().await.map_err(db("BEGIN"))?;
        // Found by name only (see `with_client`): a view of that name is not Flyway's table.
        if !settings
            .history
            .exists(&tx)
            .await
            .map_err(db("looking for the history table"))?
        {
            state.table_exists = false;
            return Ok(report);
        }
        state.history.clear();
        state.refresh(&tx, &settings.history).await?;
        let removed = tx
            .query(
                &format!("DELETE FROM {t} WHERE NOT success RETURNING script"),
                &[],
            )
            .await
            .map_err(db("removing failed rows"))?;
        report.removed_failed = removed.iter().map(|r| r.get(0)).collect();
        state.history.retain(|r| r.success);

        let plan = state.plan(&Options {
            out_of_order: true,
            target: None,
        });
        for entry in &plan.entries {
            let Some(rank) = entry.installed_rank else {
                continue;
            };
            let row = state.history.iter().find(|r| r.installed_rank == rank);
            let Some(row) = row else { continue };
            match (entry.state, entry.file) {
                (super::plan::State::Success, Some(fi))
                    if row.version.is_some() && row.kind != "BASELINE" =>
                {
                    let f = &state.files[fi];
                    let sum = state.checksums[fi];
                    let description = stored_description(&f.description);
                    if row.checksum != Some(sum)
                        || row.description != description
                        || row.kind != "SQL"
                    {
                        tx.execute(
                            &format!(
                                "UPDATE {t} SET checksum = $1, description = $2, type = 'SQL' WHERE installed_rank = $3"
                            ),
                            &[&sum, &description.as_ref(), &rank],
                        )
                        .await
                        .map_err(db("realigning a checksum"))?;
                        report.realigned.push(f.script.clone());
                    }
                }
                (super::plan::State::Missing, _) => {
                    settings
                        .history
                        .insert(
                            &tx,
                            &NewRow {
                                rank: None,
                                version: row.version.as_deref(),
                                description: &row.description,
                                kind: "DELETE",
                                script: &row.script,
                                checksum: row.checksum,
                                installed_by: &state.builtins.user,
                                execution_time: 0,
                                success: true,
                            },
                        )
                        .await
                        .map_err(db("marking a missing migration deleted"))?;
                    report.marked_deleted.push(row.script.clone());
                }
                _ => {}
            }
        }
        tx.commit().await.map_err(db("COMMIT"))?;
        state.history.clear();
        state.refresh(&self.client, &settings.history).await?;
        Ok(report)
    }
}

impl State {
    fn plan(&self, options: &Options) -> Plan {
        plan(&self.files, &self.checksums, &self.history, options)
    }

    fn max_rank(&self) -> i32 {
        self.history.last().map_or(-1, |r| r.installed_rank)
    }

    /// Appends history rows written since the last read.
    async fn refresh(
        &mut self,
        db_client: &impl GenericClient,
        table: &HistoryTable,
    ) -> Result<(), MigrateError> {
        if !self.table_exists {
            return Ok(());
        }
        let rows = table
            .rows_after(db_client, self.max_rank())
            .await
            .map_err(db("reading the history"))?;
        self.history.extend(rows);
        Ok(())
    }
}

/// Under the lock: creates the history table if needed, plans again from the history as it is
/// now (another runner may have applied some), then runs what is pending.
async fn apply_locked(
    client: &mut Client,
    settings: &Settings,
    state: &mut State,
    scripts: &mut [Option<String>],
    progress: &mut dyn Progress,
    applied: &mut Vec<Applied>,
) -> Result<(), MigrateError> {
    if state.table_exists {
        // What was found by name must be Flyway's table (not a view of that name) before
        // anything is written to it; checked with the refresh, in the same round trip.
        let table = &settings.history;
        let (is_table, rows) = futures::join!(
            table.exists(&*client),
            table.rows_after(&*client, state.max_rank())
        );
        if is_table.map_err(db("looking for the history table"))? {
            state
                .history
                .extend(rows.map_err(db("reading the history"))?);
        } else {
            state.table_exists = false;
            state.history.clear();
        }
    }
    if !state.table_exists {
        ensure_table(
            client,
            state,
            &settings.history,
            settings.allow_non_empty_schema,
        )
        .await?;
    }
    let plan = state.plan(&settings.options);
    if !plan.problems.is_empty() {
        return Err(MigrateError::Validation(plan.problems));
    }
    progress.start(plan.pending.len());
    run::run_pending(
        client,
        settings,
        state,
        plan.pending,
        scripts,
        progress,
        applied,
    )
    .await
}

/// Creates the schema (if missing) and the history table (the caller holds the lock), unless
/// it exists.
async fn ensure_table(
    client: &mut Client,
    state: &mut State,
    table: &HistoryTable,
    allow_non_empty: bool,
) -> Result<(), MigrateError> {
    if state.table_exists {
        return Ok(());
    }
    let tx = client.transaction().await.map_err(db("BEGIN"))?;
    if table
        .exists(&tx)
        .await
        .map_err(db("looking for the history table"))?
    {
        state.table_exists = true;
    } else {
        create_table_in(&tx, state, table, allow_non_empty).await?;
    }
    tx.commit().await.map_err(db("COMMIT"))?;
    state.table_exists = true;
    state.refresh(client, table).await
}

async fn create_table_in(
    tx: &tokio_postgres::Transaction<'_>,
    state: &State,
    table: &HistoryTable,
    allow_non_empty: bool,
) -> Result<(), MigrateError> {
    if table
        .exists(tx)
        .await
        .map_err(db("looking for the history table"))?
    {
        return Ok(());
    }
    let row = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1), \
             (SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
              WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f'))",
            &[&table.schema],
        )
        .await
        .map_err(db("inspecting the schema"))?;
    let (schema_exists, relations): (bool, i64) = (row.get(0), row.get(1));
    if schema_exists && relations > 0 && !allow_non_empty {
        return Err(MigrateError::NonEmptySchema {
            schema: table.schema.clone(),
            table: table.table.clone(),
        });
    }
    if !schema_exists {
        tx.batch_execute(&format!("CREATE SCHEMA {}", quote_ident(&table.schema)))
            .await
            .map_err(db(format!("creating schema {:?}", table.schema)))?;
    }
    tx.batch_execute(&table.create_sql())
        .await
        .map_err(db(format!("creating {}", table.qualified())))?;
    if !schema_exists {
        // Flyway records the schemas it created at rank 0, so `clean` knows it may drop them.
        let script = quote_ident(&table.schema);
        table
            .insert(
                tx,
                &NewRow {
                    rank: Some(0),
                    version: None,
                    description: SCHEMA_MARKER,
                    kind: "SCHEMA",
                    script: &script,
                    checksum: None,
                    installed_by: &state.builtins.user,
                    execution_time: 0,
                    success: true,
                },
            )
            .await
            .map_err(db("recording the schema creation"))?;
    }
    Ok(())
}
