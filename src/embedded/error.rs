//! The error type of the embedded-PostgreSQL layer.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while locating, initialising, starting or stopping a
/// local PostgreSQL server. Each message names what failed (command, path, exit
/// status, and the tail of the server log when the server does not come up).
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// No directory holding `initdb`, `postgres` and `pg_ctl` was found.
    #[error(
        "PostgreSQL server binaries (initdb, postgres, pg_ctl) not found on PATH or in \
         /usr/lib/postgresql/*/bin; install them (Debian/Ubuntu: apt-get install -y postgresql) \
         or set SERVICEDB_PG_BIN to their directory"
    )]
    BinariesNotFound,

    /// `SERVICEDB_PG_BIN` (or an explicitly given directory) lacks some binaries.
    #[error(
        "{} (from {origin}) does not contain the PostgreSQL server binaries {missing}; \
         set SERVICEDB_PG_BIN to the directory holding initdb, postgres and pg_ctl \
         (Debian/Ubuntu: /usr/lib/postgresql/<version>/bin after apt-get install -y postgresql)",
        .dir.display()
    )]
    BinariesIncomplete {
        dir: PathBuf,
        origin: String,
        missing: String,
    },

    /// A file-system operation failed.
    #[error("could not {action} {}: {source}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A command could not be started at all.
    #[error("could not run `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },

    /// A command ran and failed.
    #[error("`{command}` failed ({status}){}", output_suffix(output))]
    CommandFailed {
        command: String,
        status: String,
        output: String,
    },

    /// Running as root, but there is no `postgres` OS user to run the server as.
    #[error(
        "running as root, but the OS user `postgres` does not exist (PostgreSQL refuses to run \
         as root); install the server package (Debian/Ubuntu: apt-get install -y postgresql) \
         or run as a non-root user"
    )]
    NoPostgresUser,

    /// Running as root, and the `postgres` OS user cannot traverse a directory on the way
    /// to a path the server needs.
    #[error(
        "the `postgres` OS user cannot reach {needed}: it has no search (x) permission on \
         {dir} (mode {mode:o}, owner uid {owner}); as root, PostgreSQL runs as `postgres`, so \
         every directory above its files must be searchable by it: use a directory outside it \
         (e.g. under /tmp or /var/lib) or run `chmod o+x {dir}`",
        needed = .needed.display(),
        dir = .dir.display()
    )]
    Unreachable {
        needed: PathBuf,
        dir: PathBuf,
        mode: u32,
        owner: u32,
    },

    /// A path cannot be passed to PostgreSQL (not UTF-8, too long for a socket, ...).
    #[error("unusable path {}: {reason}", .path.display())]
    BadPath { path: PathBuf, reason: String },

    /// A server setting cannot be passed as `-c name=value`.
    #[error("invalid server setting `{name}`: {reason}")]
    InvalidSetting { name: String, reason: String },

    /// The server did not come up (exited early or did not get ready in time).
    #[error(
        "PostgreSQL server did not start: {reason}; last lines of {}:\n{log_tail}",
        .log_path.display()
    )]
    ServerStart {
        reason: String,
        log_path: PathBuf,
        log_tail: String,
    },
}

impl EmbeddedError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

fn output_suffix(output: &str) -> String {
    let trimmed = output.trim();
    if trimmed.is_empty() {
        String::new()
    } else {
        format!(":\n{trimmed}")
    }
}
