//! `servicedb wait --version V`: block until the schema reaches V, for init containers.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use super::{WaitArgs, fail};
use crate::migrate::history::HistoryTable;
use crate::migrate::plan::current_version;
use crate::migrate::version::Version;
use crate::pg::{ConnectOptions, ErrorClass, classify, describe_pg};

/// What one look at the database showed.
enum Seen {
    Reached(Option<Version>),
    Behind(String),
    Failed(String),
}

pub async fn run(args: WaitArgs) -> ExitCode {
    let wanted = match Version::parse(&args.version) {
        Ok(v) => v,
        Err(e) => return fail(format!("--version: {e}")),
    };
    let connect = match ConnectOptions::from_url_or_env(args.connection.database_url.as_deref()) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let table = HistoryTable {
        schema: args.connection.schema.clone(),
        table: args.connection.table.clone(),
    };
    let deadline = Instant::now() + args.timeout;
    let mut delay = Duration::from_millis(200);
    let mut client = None;
    loop {
        let seen = match &client {
            Some(c) => look(c, &table, &wanted).await,
            None => match connect.connect().await {
                Ok(c) => {
                    let seen = look(&c, &table, &wanted).await;
                    client = Some(c);
                    seen
                }
                Err(e) if e.class() == ErrorClass::Permanent => {
                    Seen::Failed(permanent(&e, e.sqlstate()))
                }
                Err(e) => Seen::Behind(e.to_string()),
            },
        };
        if client.as_ref().is_some_and(|c| c.is_closed()) {
            client = None;
        }
        match seen {
            Seen::Reached(at) => {
                let at = at.map_or_else(|| wanted.to_string(), |v| v.to_string());
                super::output::print(&format!("Schema at version {at} (waited for {wanted})"));
                return ExitCode::SUCCESS;
            }
            Seen::Failed(why) => return fail(why),
            Seen::Behind(why) => {
                let now = Instant::now();
                if now >= deadline {
                    return fail(format!(
                        "timed out after {} waiting for schema version {wanted}: {why}",
                        humantime::format_duration(args.timeout)
                    ));
                }
                tracing::info!(%why, "waiting");
                tokio::time::sleep(delay.min(deadline - now)).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn look(client: &tokio_postgres::Client, table: &HistoryTable, wanted: &Version) -> Seen {
    match table.exists(client).await {
        Ok(true) => {}
        Ok(false) => return Seen::Behind(format!("no {} table yet", table.qualified())),
        Err(e) => return seen_error(&e),
    }
    let rows = match table.rows_after(client, -1).await {
        Ok(rows) => rows,
        Err(e) => return seen_error(&e),
    };
    if let Some(failed) = rows.iter().find(|r| !r.success) {
        return Seen::Failed(format!(
            "migration {} failed; it needs `servicedb migrate repair` before the schema can reach {wanted}",
            failed.script
        ));
    }
    match current_version(&rows) {
        Some(v) if &v >= wanted => Seen::Reached(Some(v)),
        Some(v) => Seen::Behind(format!("the schema is at version {v}")),
        None => Seen::Behind("no migration applied yet".to_string()),
    }
}

/// Waiting cannot fix a wrong password, a missing database or a missing grant: say so at once.
fn permanent(e: &dyn std::fmt::Display, sqlstate: Option<&str>) -> String {
    let code = sqlstate
        .map(|c| format!(" (SQLSTATE {c})"))
        .unwrap_or_default();
    format!("{e}{code}; waiting will not change this, so servicedb wait gives up at once")
}

fn seen_error(e: &tokio_postgres::Error) -> Seen {
    match classify(e) {
        ErrorClass::Permanent => {
            Seen::Failed(permanent(&describe_pg(e), crate::pg::class::sqlstate(e)))
        }
        ErrorClass::Transient => Seen::Behind(describe_pg(e)),
    }
}
