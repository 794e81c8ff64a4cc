//! Local PostgreSQL servers: locating the server binaries, creating a cluster, and
//! running it either detached through `pg_ctl` (`servicedb dev up` keeps one under
//! `.servicedb/`) or supervised so that it stops when a watched process exits (tests).
//!
//! PostgreSQL refuses to run as root: as root, every server command runs as the
//! `postgres` OS user (`runuser -u postgres -- ...`) and the directories it uses are
//! handed over to that user (see [`ServerAccount`]).

mod account;
mod binaries;
mod cluster;
mod detached;
mod error;
mod readiness;
mod settings;
mod supervised;

pub use account::{DirPermissions, SERVER_OS_USER, ServerAccount, running_as_root};
pub use binaries::{DEBIAN_PG_LIB_ROOT, PG_BIN_ENV, PgBinaries};
pub use cluster::{init_cluster, initdb_args, is_initialized};
pub use detached::{pg_ctl_start_args, pg_ctl_stop_args, start_detached, stop};
pub use error::EmbeddedError;
pub use readiness::{
    DEFAULT_START_TIMEOUT, PostmasterPid, ProbeOutcome, free_port, is_ready, is_running, log_tail,
    probe, read_postmaster_pid, wait_until_ready,
};
pub use settings::{DEFAULT_LISTEN_ADDRESS, ServerSettings, shell_quote};
pub use supervised::{SupervisedServer, start_supervised, supervisor_script};
