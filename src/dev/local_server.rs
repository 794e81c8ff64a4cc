//! The embedded PostgreSQL of `servicedb dev`: initialised on first use under the state
//! directory, reused later, stopped by `dev down` with its data kept.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::embedded::{
    EmbeddedError, PgBinaries, ServerAccount, ServerSettings, free_port, init_cluster,
    is_initialized, is_running, start_detached, stop,
};
use crate::password::Password;
use crate::pg::{ConnectError, ConnectOptions, quote_ident, quote_literal};

const SUPERUSER: &str = "servicedb_superuser";
/// Provisioning uses a non-superuser admin locally too, so what works here works on a
/// managed cloud.
const ADMIN: &str = "servicedb_admin";

/// What is remembered between runs, in `<state>/server.json` (0600: it holds passwords).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalServer {
    pub port: u16,
    pub data_dir: PathBuf,
    pub socket_dir: PathBuf,
    pub log_file: PathBuf,
    superuser_password: String,
    /// The admin's name beside its password, for whoever reads this file to connect.
    #[serde(default = "admin_name")]
    admin_user: String,
    admin_password: String,
}

fn admin_name() -> String {
    ADMIN.to_string()
}

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(transparent)]
    Embedded(#[from] EmbeddedError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}; delete it to start afresh")]
    State {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("setting up the admin role: {0}")]
    Admin(String),
    #[error(transparent)]
    Connect(#[from] ConnectError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LocalError + '_ {
    move |source| LocalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn state_file(state: &Path) -> PathBuf {
    state.join("server.json")
}

impl LocalServer {
    /// The remembered server, if `dev up` ever ran here.
    pub fn load(state: &Path) -> Result<Option<LocalServer>, LocalError> {
        let path = state_file(state);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|source| LocalError::State { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }

    fn save(&self, state: &Path) -> Result<(), LocalError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = state_file(state);
        let text = serde_json::to_string_pretty(self).map_err(|source| LocalError::State {
            path: path.clone(),
            source,
        })?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .map_err(io(&path))?;
        f.write_all(text.as_bytes()).map_err(io(&path))
    }

    /// Starts (initialising on first use) the server, telling `note` each step as it begins.
    pub fn up(state: &Path, note: &mut dyn FnMut(String)) -> Result<LocalServer, LocalError> {
        std::fs::create_dir_all(state).map_err(io(state))?;
        let state = std::path::absolute(state).map_err(io(state))?;
        let bins = PgBinaries::locate()?;
        let mut server = match Self::load(&state)? {
            Some(s) => s,
            None => {
                let base = data_home(&state, note)?;
                LocalServer {
                    port: free_port()?,
                    data_dir: base.join("pgdata"),
                    socket_dir: base.join("run"),
                    log_file: base.join("postgres.log"),
                    superuser_password: Password::generate().expose().to_string(),
                    admin_user: admin_name(),
                    admin_password: Password::generate().expose().to_string(),
                }
            }
        };
        if !is_initialized(&server.data_dir) {
            note(format!(
                "initialising PostgreSQL in {}",
                server.data_dir.display()
            ));
            init_cluster(
                &bins,
                &server.data_dir,
                SUPERUSER,
                &server.superuser_password,
            )?;
        }
        if !is_running(&server.data_dir) {
            if std::net::TcpListener::bind(("127.0.0.1", server.port)).is_err() {
                // Another program took the port since last time: Secrets follow the new one.
                server.port = free_port()?;
            }
            note(format!(
                "starting the embedded PostgreSQL on 127.0.0.1:{}",
                server.port
            ));
            start_detached(
                &bins,
                &server.data_dir,
                &server.settings(),
                &server.log_file,
            )?;
            note(format!("PostgreSQL listening on 127.0.0.1:{}", server.port));
        }
        server.save(&state)?;
        Ok(server)
    }

    /// The admin's connection URL without its password.
    pub fn admin_url(&self) -> String {
        format!(
            "postgresql://{ADMIN}@127.0.0.1:{}/postgres?sslmode=disable",
            self.port
        )
    }

    /// Where the cluster's files live when that is outside the state directory (the
    /// /var/tmp fallback), so `dev reset` removes them too.
    pub fn outside_data(&self, state: &Path) -> Option<PathBuf> {
        let base = self.data_dir.parent()?;
        let state = std::path::absolute(state).ok()?;
        (!base.starts_with(&state)).then(|| base.to_path_buf())
    }

    fn settings(&self) -> ServerSettings {
        ServerSettings::new(self.port, &self.socket_dir)
            .with_setting("log_statement", "ddl")
            .with_setting("log_line_prefix", "%m [%p] %u@%d ")
    }

    /// Stops the server, keeping its data. Returns whether it was running.
    pub fn down(state: &Path) -> Result<bool, LocalError> {
        let Some(server) = Self::load(state)? else {
            return Ok(false);
        };
        if !is_running(&server.data_dir) {
            return Ok(false);
        }
        stop(&PgBinaries::locate()?, &server.data_dir)?;
        Ok(true)
    }

    pub fn is_running(&self) -> bool {
        is_running(&self.data_dir)
    }

    fn url(&self, user: &str, password: &str, db: &str) -> String {
        format!(
            "postgresql://{user}:{password}@127.0.0.1:{}/{db}?sslmode=disable",
            self.port
        )
    }

    /// The non-superuser admin's connection to the maintenance database, creating the role
    /// (with a client-side SCRAM verifier) if it is missing.
    pub async fn admin(&self) -> Result<ConnectOptions, LocalError> {
        let admin = ConnectOptions::from_url(&self.url(ADMIN, &self.admin_password, "postgres"))?;
        if admin.connect().await.is_ok() {
            return Ok(admin);
        }
        let su =
            ConnectOptions::from_url(&self.url(SUPERUSER, &self.superuser_password, "postgres"))?
                .connect()
                .await?;
        let verifier = Password::from_existing(self.admin_password.clone()).scram_verifier();
        let exists = su
            .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&ADMIN])
            .await
            .map_err(|e| LocalError::Admin(crate::pg::describe_pg(&e)))?
            .is_some();
        let verb = if exists { "ALTER" } else { "CREATE" };
        su.batch_execute(&format!(
            "{verb} ROLE {} LOGIN CREATEROLE CREATEDB NOSUPERUSER PASSWORD {}",
            quote_ident(ADMIN),
            quote_literal(&verifier)
        ))
        .await
        .map_err(|e| LocalError::Admin(crate::pg::describe_pg(&e)))?;
        Ok(admin)
    }
}

/// Where the cluster lives: under the state directory, unless (as root) the `postgres` user
/// cannot reach it, e.g. a checkout under /root; then under /var/tmp, named after the state
/// directory so each project keeps its own.
fn data_home(state: &Path, note: &mut dyn FnMut(String)) -> Result<PathBuf, LocalError> {
    let account = ServerAccount::detect()?;
    let local = state.join("postgres");
    match account.check_reachable(&local) {
        Ok(()) => Ok(local),
        Err(e) => {
            let tag = crate::naming::short_hash(&state.display().to_string());
            let fallback = PathBuf::from("/var/tmp").join(format!("servicedb-{tag}"));
            account.check_reachable(&fallback)?;
            note(format!(
                "{e}; keeping the PostgreSQL data in {} instead",
                fallback.display()
            ));
            Ok(fallback)
        }
    }
}
