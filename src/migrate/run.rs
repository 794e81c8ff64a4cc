//! Running pending migrations while holding the migration lock. Each migration runs in its own
//! transaction with its history row (unless it cannot run in one); consecutive transactional
//! scripts are pipelined, several per round trip, each sent as one message
//! `BEGIN; <script>; <reset>; <history row>; COMMIT`. An error ends that message before its
//! COMMIT and leaves the transaction aborted, so every message after it in the pipeline fails
//! at its BEGIN: nothing after a failure runs.

use std::collections::VecDeque;
use std::time::Instant;

use futures::SinkExt;
use tokio_postgres::Client;

use super::*;
use crate::migrate::sql_split::{
    Statement, controls_transactions, has_copy_data, line_of_offset, split_statements,
};

/// Migrations sent per pipeline: enough to hide the round trips, few enough that progress moves.
const PIPELINE: usize = 32;

/// Settings a migration changed for its session (`SET search_path`, `SET ROLE`,
/// `session_replication_role`, ...) must not reach the next one: back to the connection's
/// defaults, before the history row is written as the connecting user. `SET SESSION
/// AUTHORIZATION` needs a superuser and so cannot be undone for the others; DISCARD ALL cannot
/// run in a transaction block.
pub(super) const RESET_SESSION: &str = "RESET ALL; RESET ROLE;";

const BEGIN: &str = "BEGIN;\n";

/// Server-side duration of the current transaction, for history rows written in the same
/// message as their script.
const TRANSACTION_MS: &str = "(extract(epoch FROM clock_timestamp() - now()) * 1000)::int";

/// One pending migration, ready to run.
struct Job {
    index: usize,
    sql: String,
    in_transaction: bool,
    copy: bool,
    /// The script has its own BEGIN/COMMIT: it is sent alone, never with others in flight.
    own_transactions: bool,
}

impl Job {
    /// Sent as one message (script, history row, commit).
    fn one_message(&self) -> bool {
        self.in_transaction && !self.copy
    }

    /// May share a pipeline with the scripts around it.
    fn pipelined(&self) -> bool {
        self.one_message() && !self.own_transactions
    }
}

/// Runs `pending` (file indices) in order; what ran is pushed to `applied` as it commits, so it
/// is known when a later migration fails.
pub(super) async fn run_pending(
    client: &Client,
    settings: &Settings,
    state: &mut State,
    pending: Vec<usize>,
    scripts: &mut [Option<String>],
    progress: &mut dyn Progress,
    applied: &mut Vec<Applied>,
) -> Result<(), MigrateError> {
    let mut queue = VecDeque::with_capacity(pending.len());
    for index in pending {
        let file = &state.files[index];
        let sql = match scripts[index].take() {
            Some(sql) => sql,
            None => settings
                .placeholders
                .substitute(&file.sql, &file.script, &state.builtins)?,
        };
        let in_transaction = file
            .execute_in_transaction
            .unwrap_or_else(|| first_non_transactional(&sql).is_none());
        let copy = has_copy_data(&sql);
        let own_transactions = controls_transactions(&sql);
        queue.push_back(Job {
            index,
            sql,
            in_transaction,
            copy,
            own_transactions,
        });
    }
    while let Some(job) = queue.pop_front() {
        if job.one_message() {
            let mut batch = vec![job];
            while batch.len() < PIPELINE
                && batch[0].pipelined()
                && queue.front().is_some_and(Job::pipelined)
            {
                batch.extend(queue.pop_front());
            }
            run_pipelined(client, settings, state, &batch, progress, applied).await?;
        } else {
            progress.applying(&state.files[job.index]);
            let started = Instant::now();
            let result = if job.in_transaction {
                run_with_copy(client, settings, state, &job).await
            } else {
                run_outside_transaction(client, settings, state, &job, started).await
            };
            result?;
            record(client, settings, state, &[job], None, progress, applied).await?;
        }
    }
    Ok(())
}

fn new_row<'a>(state: &'a State, index: usize, success: bool, ms: i32) -> NewRow<'a> {
    let file = &state.files[index];
    NewRow {
        rank: None,
        version: file.version().map(Version::as_str),
        description: &file.description,
        kind: "SQL",
        script: &file.script,
        checksum: Some(state.checksums[index]),
        installed_by: &state.builtins.user,
        execution_time: ms,
        success,
    }
}

/// The tail of a transactional migration's message: reset, history row, commit. The script is
/// followed by a newline and `;` first, so a last line comment or a missing `;` cannot swallow it.
fn closing(settings: &Settings, state: &State, index: usize) -> String {
    let insert = settings
        .history
        .insert_text(&new_row(state, index, true, 0), TRANSACTION_MS);
    format!("\n;\n{RESET_SESSION} {insert};\nCOMMIT")
}

async fn run_pipelined(
    client: &Client,
    settings: &Settings,
    state: &mut State,
    batch: &[Job],
    progress: &mut dyn Progress,
    applied: &mut Vec<Applied>,
) -> Result<(), MigrateError> {
    let messages: Vec<String> = batch
        .iter()
        .map(|job| {
            progress.applying(&state.files[job.index]);
            format!("{BEGIN}{}{}", job.sql, closing(settings, state, job.index))
        })
        .collect();
    // Polled in order, so sent in order on the one connection, before any answer is awaited;
    // the read of the new history rows goes in the same round trip.
    let (results, rows) = futures::join!(
        futures::future::join_all(messages.iter().map(|m| client.batch_execute(m))),
        settings.history.rows_after(client, state.max_rank())
    );
    let failed = results.iter().position(Result::is_err);
    let done = failed.unwrap_or(batch.len());
    let rows = match (failed, rows) {
        (None, Ok(rows)) => Some(rows),
        (None, Err(e)) => return Err(db("reading the history")(e)),
        // The read came after the failure, in the aborted transaction: read again below.
        (Some(_), _) => {
            client
                .batch_execute("ROLLBACK")
                .await
                .map_err(db("ROLLBACK"))?;
            None
        }
    };
    record(
        client,
        settings,
        state,
        &batch[..done],
        rows,
        progress,
        applied,
    )
    .await?;
    match failed {
        None => Ok(()),
        Some(k) => {
            let job = &batch[k];
            let Err(e) = &results[k] else { unreachable!() };
            Err(failure(
                &state.files[job.index],
                &job.sql,
                Place::Script {
                    stmt_offset: 0,
                    chars_before: BEGIN.len(),
                    line: None,
                },
                e,
                None,
            ))
        }
    }
}

/// A transactional script with inline COPY data: statement by statement in one transaction.
async fn run_with_copy(
    client: &Client,
    settings: &Settings,
    state: &State,
    job: &Job,
) -> Result<(), MigrateError> {
    let file = &state.files[job.index];
    client.batch_execute("BEGIN").await.map_err(db("BEGIN"))?;
    let mut outcome = Ok(());
    for stmt in split_statements(&job.sql) {
        if let Err(e) = execute(client, &stmt).await {
            outcome = Err(failure(
                file,
                &job.sql,
                stmt_place(&stmt),
                &e,
                stmt_copy(&stmt),
            ));
            break;
        }
    }
    if outcome.is_ok() {
        outcome = client
            .batch_execute(closing(settings, state, job.index).trim_start_matches(['\n', ';']))
            .await
            .map_err(db("recording the migration"));
    }
    if outcome.is_err() {
        let _ = client.batch_execute("ROLLBACK").await;
    }
    outcome
}

/// A script that cannot run in a transaction: statement by statement; a failure leaves what ran
/// and records a failed row, which blocks later runs until repair (as Flyway does).
async fn run_outside_transaction(
    client: &Client,
    settings: &Settings,
    state: &State,
    job: &Job,
    started: Instant,
) -> Result<(), MigrateError> {
    let file = &state.files[job.index];
    let statements = split_statements(&job.sql);
    for (n, stmt) in statements.iter().enumerate() {
        let Err(e) = execute(client, stmt).await else {
            continue;
        };
        let mut error = failure(file, &job.sql, stmt_place(stmt), &e, stmt_copy(stmt));
        let row = new_row(state, job.index, false, elapsed_ms(started));
        let insert = settings
            .history
            .insert_text(&row, &row.execution_time.to_string());
        client
            .batch_execute(&format!("{RESET_SESSION} {insert}"))
            .await
            .map_err(db("recording the failed migration"))?;
        if let MigrateError::Failed(failure) = &mut error {
            failure.note = Some(crate::migrate::plan::partly_applied_note(
                file.version().map(Version::as_str),
                &file.description,
                &statements[..n],
            ));
        }
        return Err(error);
    }
    let row = new_row(state, job.index, true, elapsed_ms(started));
    let insert = settings
        .history
        .insert_text(&row, &row.execution_time.to_string());
    client
        .batch_execute(&format!("{RESET_SESSION} {insert}"))
        .await
        .map_err(db("recording the migration"))
}

/// One statement; COPY FROM STDIN with its inline data.
async fn execute(client: &Client, stmt: &Statement<'_>) -> Result<(), tokio_postgres::Error> {
    let Some(copy) = &stmt.copy_data else {
        return client.batch_execute(stmt.sql).await;
    };
    let sink = client.copy_in(stmt.sql).await?;
    futures::pin_mut!(sink);
    sink.send(VecDeque::from(copy.data.as_bytes().to_vec()))
        .await?;
    sink.as_mut().finish().await.map(drop)
}

/// Reads the rows just written for `jobs` unless given (the lock is held: they are exactly the
/// new rows, in order) and reports them as applied.
async fn record(
    client: &Client,
    settings: &Settings,
    state: &mut State,
    jobs: &[Job],
    rows: Option<Vec<AppliedRow>>,
    progress: &mut dyn Progress,
    applied: &mut Vec<Applied>,
) -> Result<(), MigrateError> {
    if jobs.is_empty() {
        return Ok(());
    }
    let rows = match rows {
        Some(rows) => rows,
        None => settings
            .history
            .rows_after(client, state.max_rank())
            .await
            .map_err(db("reading the history"))?,
    };
    for (job, row) in jobs.iter().zip(&rows) {
        let file = &state.files[job.index];
        progress.applied(file, row.execution_time);
        applied.push(Applied {
            version: file.version().map(Version::to_string),
            description: file.description.clone(),
            script: file.script.clone(),
            execution_time_ms: row.execution_time,
            in_transaction: job.in_transaction,
        });
    }
    state.history.extend(rows);
    Ok(())
}

/// Where in the script a failing text started.
enum Place {
    /// The text sent started at `stmt_offset` of the script, after `chars_before` characters
    /// of our own; `line` is the statement's line, for errors without a position.
    Script {
        stmt_offset: usize,
        chars_before: usize,
        line: Option<usize>,
    },
}

fn stmt_place(stmt: &Statement<'_>) -> Place {
    Place::Script {
        stmt_offset: stmt.offset,
        chars_before: 0,
        line: Some(stmt.line),
    }
}

fn stmt_copy(stmt: &Statement<'_>) -> Option<usize> {
    stmt.copy_data.as_ref().map(|c| c.line)
}

fn elapsed_ms(started: Instant) -> i32 {
    i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX)
}

/// `FILE:LINE: message`, with the server's error position mapped back to a line of the script;
/// a bad COPY row by the line number the server gives (`COPY t, line 3`) from the data's first
/// line; otherwise the line of the statement that failed, when known.
fn failure(
    file: &MigrationFile,
    sql: &str,
    place: Place,
    e: &tokio_postgres::Error,
    copy_first_line: Option<usize>,
) -> MigrateError {
    let Place::Script {
        stmt_offset,
        chars_before,
        line: stmt_line,
    } = place;
    let db_error = e.as_db_error();
    let from_position = db_error.and_then(|d| d.position()).and_then(|p| match p {
        tokio_postgres::error::ErrorPosition::Original(pos) => {
            // The server counts characters from 1 within the text it was sent.
            let pos = (*pos as usize).checked_sub(chars_before + 1)?;
            let text = &sql[stmt_offset..];
            let (byte, _) = text.char_indices().nth(pos)?;
            Some(line_of_offset(sql, stmt_offset + byte))
        }
        tokio_postgres::error::ErrorPosition::Internal { .. } => None,
    });
    let from_copy = copy_first_line.and_then(|first| {
        let context = db_error?.where_()?;
        let n: usize = context
            .split(", line ")
            .nth(1)?
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()?;
        Some(first + n.saturating_sub(1))
    });
    MigrateError::Failed(Box::new(Failure {
        script: file.path.display().to_string(),
        line: from_position.or(from_copy).or(stmt_line),
        sqlstate: db_error.map(|d| d.code().code().to_string()),
        message: describe_pg(e),
        note: None,
    }))
}
