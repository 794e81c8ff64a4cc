//! The `servicedb` command line.
mod dev;
mod migrate;
pub(crate) mod output;
mod run;
mod table;
mod wait;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "servicedb",
    version,
    about = "A PostgreSQL database, roles, Secret and Flyway-compatible migrations for every service and tenant"
)]
pub struct Cli {
    /// How errors, notes and logs are written on stderr: text lines, or one JSON object per
    /// line (timestamp, level, message).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "SERVICEDB_LOG_FORMAT")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controller (in a cluster, or against KUBECONFIG).
    Run(RunArgs),
    /// Print the CustomResourceDefinitions as YAML.
    Crd,
    /// Flyway-compatible migrations: apply, info, validate, baseline, repair.
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Block until the database schema reaches a version (for an init container).
    Wait(WaitArgs),
    /// Local development without a cluster, on an embedded PostgreSQL.
    Dev {
        /// Where dev keeps its server and Secret files (default .servicedb, or SERVICEDB_DEV_DIR).
        #[arg(long, global = true)]
        state_dir: Option<PathBuf>,
        #[command(subcommand)]
        action: DevAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum MigrateAction {
    /// Validate, then apply every pending migration (up to --target).
    Apply(MigrateArgs),
    /// Show every migration and its state; changes nothing.
    #[command(
        mut_arg("target", |a| a.help("Show versions above this one as \"Above Target\" instead of pending")),
        mut_arg("out_of_order", |a| a.help("Show a pending version older than the latest applied one as pending, not ignored")),
        mut_arg("json", |a| a.help("Print the migrations, the current version and any problems as JSON on stdout")),
    )]
    Info(MigrateArgs),
    /// Check applied migrations against the files: changed, missing, failed, out of order;
    /// changes nothing.
    #[command(
        mut_arg("target", |a| a.help("Check as `apply --target` would: versions above it are not expected to be applied")),
        mut_arg("out_of_order", |a| a.help("Accept a pending version older than the latest applied one, as `apply --out-of-order` would")),
        mut_arg("json", |a| a.help("Print {valid, problems} as JSON on stdout")),
    )]
    Validate(MigrateArgs),
    /// Take over a database without history: record a version as already applied.
    Baseline(BaselineArgs),
    /// Remove failed rows, realign checksums and descriptions, mark missing files deleted.
    #[command(
        mut_arg("target", |a| a.help("Ignored by repair (accepted so the same flags work for every command)")),
        mut_arg("out_of_order", |a| a.help("Ignored by repair (accepted so the same flags work for every command)")),
        mut_arg("json", |a| a.help("Print what was repaired as JSON on stdout")),
    )]
    Repair(MigrateArgs),
}

#[derive(Debug, Subcommand)]
pub enum DevAction {
    /// Start the embedded PostgreSQL (unless the manifests declare DatabaseServers),
    /// provision and migrate every ServiceDatabase and Tenant, write Secrets as .env files.
    Up {
        /// Manifest file or directory (repeatable): DatabaseServer, ServiceDatabase, Tenant,
        /// ConfigMap (migrations) and Secret (admin credentials) documents.
        #[arg(short = 'f', long = "file", required = true)]
        files: Vec<PathBuf>,
        /// Apply the reclaimPolicy of resources no longer in the manifests: Delete drops their
        /// database, roles and Secret files; Retain keeps them and says so.
        #[arg(long)]
        prune: bool,
    },
    /// Show the servers (with the admin connection), databases, versions, Secret files and
    /// resources no longer in the manifests.
    Status,
    /// Stop the embedded PostgreSQL, keeping its data.
    Down,
    /// Stop the embedded PostgreSQL and delete the state directory: its data, Secret files and
    /// records. Databases on declared DatabaseServers are not touched.
    Reset {
        /// Do not ask for confirmation (needed without a terminal).
        #[arg(long)]
        yes: bool,
    },
}

/// How to reach the database and where its history lives.
#[derive(Debug, Clone, Args)]
pub struct ConnectionArgs {
    /// postgresql:// URL; without it, DATABASE_URL, then libpq's PGHOST, PGPORT, PGDATABASE,
    /// PGUSER, PGPASSWORD, PGSSLMODE.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Schema of the history table.
    #[arg(long, default_value = "public")]
    pub schema: String,
    /// Name of the history table.
    #[arg(long, default_value = "flyway_schema_history")]
    pub table: String,
}

#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    /// Directory of migration files (repeatable); a mounted ConfigMap works as it is.
    #[arg(long = "dir", value_name = "DIR", required = true)]
    pub dirs: Vec<PathBuf>,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// `apply` only: migrate several databases in turn, each with the postgresql:// URL held
    /// by this environment variable (repeatable; --database-url and DATABASE_URL are then
    /// not used). A database that fails does not stop the next; the exit status is non-zero
    /// when any failed, and the termination log has one line per database.
    #[arg(long = "database-url-env", value_name = "NAME", value_parser = env_name_arg)]
    pub database_url_envs: Vec<String>,
    /// Apply versioned migrations up to and including this version.
    #[arg(long, value_parser = version_arg)]
    pub target: Option<String>,
    /// Apply a pending version even when it is older than the latest applied one.
    #[arg(long)]
    pub out_of_order: bool,
    /// A placeholder value, NAME=VALUE, for ${NAME} in scripts (repeatable).
    #[arg(long = "placeholder", value_name = "NAME=VALUE", value_parser = placeholder_arg)]
    pub placeholders: Vec<String>,
    /// Leave ${...} in scripts as written.
    #[arg(long)]
    pub no_placeholder_replacement: bool,
    /// Print machine-readable JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Also write a short JSON summary here (outcome, applied versions, and on failure the
    /// script, line, SQLSTATE and message; at most 4 KiB), success or failure: the migration
    /// Job passes /dev/termination-log, where Kubernetes keeps it for the operator.
    #[arg(long, value_name = "PATH", env = "SERVICEDB_TERMINATION_LOG")]
    pub termination_log: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct BaselineArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// The version the database is already at: migrations up to it are recorded as applied
    /// without running, later ones will be applied.
    #[arg(long, default_value = "1", value_parser = version_arg)]
    pub baseline_version: String,
    /// The description of the baseline row in the history table.
    #[arg(long, default_value = "<< Flyway Baseline >>")]
    pub baseline_description: String,
    /// Print the baselined version as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Also write a short JSON summary here, success or failure (see `apply --help`).
    #[arg(long, value_name = "PATH", env = "SERVICEDB_TERMINATION_LOG")]
    pub termination_log: Option<PathBuf>,
}

/// `servicedb run`: the controllers, until SIGTERM or SIGINT.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Watch ServiceDatabases (and their Secrets and ConfigMaps) in this namespace only.
    /// Default: all namespaces. DatabaseServers are cluster-scoped and always watched.
    #[arg(long, env = "SERVICEDB_NAMESPACE")]
    pub namespace: Option<String>,
    /// The operator's own namespace, the only one DatabaseServers' admin (and CA) Secrets
    /// are read from. Default: POD_NAMESPACE (the chart sets it from the downward API),
    /// else the kubeconfig context's namespace.
    #[arg(long, env = "POD_NAMESPACE")]
    pub operator_namespace: Option<String>,
    /// How often every resource is checked even without a change, to repair drift (a role
    /// dropped by hand, a Secret deleted); spread by ±10% per resource. Tenants' checks only
    /// take free reconcile slots, so on an overloaded fleet they come round less often.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub resync: std::time::Duration,
    /// How long a deletion with reclaimPolicy Delete waits for an unreachable server
    /// before the finalizer is removed anyway (with a Warning Event).
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub finalizer_timeout: std::time::Duration,
    /// This installation's id in the servers' ownership catalogs (one per cluster).
    /// Default: derived from the uid of the cluster's kube-system namespace.
    #[arg(long, env = "SERVICEDB_INSTALLATION_ID")]
    pub installation_id: Option<String>,
    /// Address of the operator's HTTP endpoint: `/healthz` (alive), `/readyz` (CRDs found;
    /// leader, standby or running) and Prometheus `/metrics`. Default: none.
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// The image migration Jobs run unless a ServiceDatabase names its own
    /// (`spec.migrations.job.image`): the operator's own, which the chart passes. It must
    /// hold this binary at `/servicedb`. Default: ghcr.io/servicedb/servicedb:<this version>.
    #[arg(long, env = "SERVICEDB_MIGRATION_IMAGE", value_name = "IMAGE")]
    pub migration_image: Option<String>,
    /// Run the controllers only while holding a coordination.k8s.io Lease, so that several
    /// replicas never act at once (the chart turns this on).
    #[arg(long, env = "SERVICEDB_LEADER_ELECTION")]
    pub leader_election: bool,
    /// Namespace of the Lease. Default: the pod's own (POD_NAMESPACE, from the downward
    /// API), else the kubeconfig's namespace.
    #[arg(long, env = "POD_NAMESPACE", value_name = "NAMESPACE")]
    pub leader_election_namespace: Option<String>,
    /// Name of the Lease; replicas sharing it elect one leader.
    #[arg(long, default_value = "servicedb-leader")]
    pub leader_election_lease_name: String,
    /// How long the lease lasts without renewal: a crashed leader is replaced after at
    /// most this long, and each reconcile is bounded to a third of it. At least 3s.
    #[arg(long, default_value = "30s", value_parser = lease_duration_arg)]
    pub leader_election_lease_duration: std::time::Duration,
}

/// `--leader-election-lease-duration`: whole seconds, at least the minimum.
fn lease_duration_arg(s: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    let min = crate::controller::leader::MIN_LEASE_DURATION;
    if d < min || d.subsec_nanos() != 0 {
        return Err(format!(
            "must be whole seconds, at least {} (got {s})",
            humantime::format_duration(min)
        ));
    }
    Ok(d)
}

#[derive(Debug, Clone, Args)]
pub struct WaitArgs {
    /// The schema version to wait for.
    #[arg(long, value_parser = version_arg)]
    pub version: String,
    /// Give up after this long (e.g. 90s, 10m, 1h).
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

/// `--version`, `--target`, `--baseline-version`: checked while parsing, so a malformed
/// value is a usage error (exit 2) like any other bad flag.
fn version_arg(s: &str) -> Result<String, String> {
    crate::migrate::version::Version::parse(s)
        .map(|_| s.to_string())
        .map_err(|e| e.to_string())
}

fn placeholder_arg(s: &str) -> Result<String, String> {
    crate::migrate::placeholders::Placeholders::new(&[s.to_string()])
        .map(|_| s.to_string())
        .map_err(|e| e.to_string())
}

/// Parses arguments, runs the command and returns the process exit code: 0 done, 1 failed,
/// 2 bad usage.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    output::install(cli.log_format);
    init_logging(cli.log_format);
    // One connection at a time needs no worker threads: starting them, and handing every
    // message between them and the main thread, is a good part of a short `migrate apply`.
    let mut builder = match cli.command {
        Command::Migrate { .. } | Command::Wait(_) | Command::Crd => {
            tokio::runtime::Builder::new_current_thread()
        }
        Command::Run(_) | Command::Dev { .. } => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(2);
            b
        }
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the async runtime: {e}")),
    };
    let code = runtime.block_on(run(cli));
    output::finish(code)
}

async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Migrate { action } => migrate::run(action).await,
        Command::Wait(args) => wait::run(args).await,
        Command::Run(args) => run::run(args).await,
        Command::Crd => {
            output::print(&crate::api::crd::crd_yaml());
            ExitCode::SUCCESS
        }
        Command::Dev { action, state_dir } => dev::run(action, state_dir).await,
    }
}

fn init_logging(format: LogFormat) {
    // JSON logs carry servicedb's own notes (info) too; text mode keeps stderr to warnings.
    let default = match format {
        LogFormat::Json => "warn,servicedb=info",
        LogFormat::Text => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.without_time().with_target(false).init(),
    }
}

fn env_name_arg(s: &str) -> Result<String, String> {
    if crate::migrate::batch_report::is_env_name(s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?} is not an environment variable name (letters, digits and _, not starting with a digit)"
        ))
    }
}

/// Prints an error the way every command does.
fn fail(e: impl std::fmt::Display) -> ExitCode {
    output::error(e);
    ExitCode::FAILURE
}
