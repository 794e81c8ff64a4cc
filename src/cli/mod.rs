//! The `servicedb` command line.
mod dev;
mod migrate;
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
    /// Log format on stderr.
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
    /// Show every migration and its state.
    Info(MigrateArgs),
    /// Check applied migrations against the files: changed, missing, failed, out of order.
    Validate(MigrateArgs),
    /// Take over a database without history: record a version as already applied.
    Baseline(BaselineArgs),
    /// Remove failed rows, realign checksums and descriptions, mark missing files deleted.
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
    },
    /// Show databases, versions and Secret files.
    Status,
    /// Stop the embedded PostgreSQL, keeping its data.
    Down,
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
    /// Apply versioned migrations up to and including this version.
    #[arg(long)]
    pub target: Option<String>,
    /// Apply a pending version even when it is older than the latest applied one.
    #[arg(long)]
    pub out_of_order: bool,
    /// A placeholder value, NAME=VALUE, for ${NAME} in scripts (repeatable).
    #[arg(long = "placeholder", value_name = "NAME=VALUE")]
    pub placeholders: Vec<String>,
    /// Leave ${...} in scripts as written.
    #[arg(long)]
    pub no_placeholder_replacement: bool,
    /// Print machine-readable JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct BaselineArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// The version the database is already at.
    #[arg(long, default_value = "1")]
    pub baseline_version: String,
    #[arg(long, default_value = "<< Flyway Baseline >>")]
    pub baseline_description: String,
    #[arg(long)]
    pub json: bool,
}

/// `servicedb run`: the controllers, until SIGTERM or SIGINT.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Watch ServiceDatabases (and their Secrets and ConfigMaps) in this namespace only.
    /// Default: all namespaces. DatabaseServers are cluster-scoped and always watched.
    #[arg(long, env = "SERVICEDB_NAMESPACE")]
    pub namespace: Option<String>,
    /// How often every resource is checked even without a change, to repair drift (a role
    /// dropped by hand, a Secret deleted); spread by ±10% per resource.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub resync: std::time::Duration,
    /// How long a deletion with reclaimPolicy Delete waits for an unreachable server
    /// before the finalizer is removed anyway (with a Warning Event).
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub finalizer_timeout: std::time::Duration,
    /// This installation's id in the servers' ownership catalogs (one per cluster).
    #[arg(long, env = "SERVICEDB_INSTALLATION_ID")]
    pub installation_id: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct WaitArgs {
    /// The schema version to wait for.
    #[arg(long)]
    pub version: String,
    /// Give up after this long (e.g. 90s, 10m, 1h).
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

/// Parses arguments, runs the command and returns the process exit code: 0 done, 1 failed,
/// 2 bad usage.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Migrate { action } => migrate::run(action).await,
        Command::Wait(args) => wait::run(args).await,
        Command::Run(args) => run::run(args).await,
        Command::Crd => {
            print!("{}", crate::api::crd::crd_yaml());
            ExitCode::SUCCESS
        }
        Command::Dev { action, state_dir } => dev::run(action, state_dir).await,
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.without_time().with_target(false).init(),
    }
}

/// Prints an error the way every command does.
fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::FAILURE
}
