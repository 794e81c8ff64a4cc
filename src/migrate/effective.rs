//! What the plan compares with the history: each file's effective checksum (a repeatable's
//! after placeholders, which name the session's user and database), and the plan of files
//! against history rows read on some other session. Pure.

use super::engine::{MigrateError, Settings};
use super::history::AppliedRow;
use super::placeholders::Builtins;
use super::plan::{Plan, plan};
use super::source::{Kind, MigrationFile};

/// The built-in placeholders of a session as `user` in `database`.
pub fn builtins(settings: &Settings, user: String, database: String) -> Builtins {
    Builtins {
        default_schema: settings.history.schema.clone(),
        user,
        database,
        table: settings.history.table.clone(),
        timestamp: humantime::format_rfc3339_seconds(std::time::SystemTime::now())
            .to_string()
            .replace('T', " ")
            .trim_end_matches('Z')
            .to_string(),
    }
}

/// Effective checksums, in file order: as the file for versioned migrations, after
/// placeholders for repeatables (as Flyway computes them).
pub fn checksums(
    settings: &Settings,
    files: &[MigrationFile],
    builtins: &Builtins,
) -> Result<Vec<i32>, MigrateError> {
    let mut out = Vec::with_capacity(files.len());
    for f in files {
        out.push(match f.kind {
            Kind::Versioned(_) => f.checksum,
            Kind::Repeatable => super::checksum::checksum(
                &settings
                    .placeholders
                    .substitute(&f.sql, &f.script, builtins)?,
            ),
        });
    }
    Ok(out)
}

/// History rows as read by a session as `user` in `database`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRows {
    pub user: String,
    pub database: String,
    /// In rank order; empty when the table does not exist.
    pub rows: Vec<AppliedRow>,
}

/// The plan `info` shows for `files` against `read`, without a session of its own.
pub fn plan_read(
    settings: &Settings,
    files: &[MigrationFile],
    read: &ReadRows,
) -> Result<Plan, MigrateError> {
    let builtins = builtins(settings, read.user.clone(), read.database.clone());
    let checksums = checksums(settings, files, &builtins)?;
    Ok(plan(files, &checksums, &read.rows, &settings.options))
}
