//! One throwaway PostgreSQL server per test binary, started lazily on first use and
//! shared by all its tests.
//!
//! The server runs from a temporary directory with password (SCRAM) authentication on
//! 127.0.0.1, logs every statement to a file the tests can read, and is supervised by
//! the test process: when the test binary exits (normally, on panic, or killed) the
//! server stops and the directory is removed.
//!
//! Tests get a NON-superuser admin role `servicedb_admin` (LOGIN CREATEROLE CREATEDB),
//! which is what the code under test should connect as. The bootstrap superuser is
//! only for assertions.
//!
//! Each `#[tokio::test]` has its own runtime, so no client is kept here: connect per
//! call with [`TestServer::admin_client`] or a URL.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use rand::distr::{Alphanumeric, SampleString};
use servicedb::embedded::{
    DEFAULT_START_TIMEOUT, EmbeddedError, PgBinaries, ServerAccount, ServerSettings,
    SupervisedServer, free_port, init_cluster, start_supervised,
};
use tokio_postgres::NoTls;

const HOST: &str = "127.0.0.1";
const ADMIN_USER: &str = "servicedb_admin";
const SUPERUSER: &str = "servicedb_superuser";
const START_ATTEMPTS: usize = 3;

/// The shared server of this test binary.
pub struct TestServer {
    port: u16,
    superuser_password: String,
    admin_password: String,
    log_path: PathBuf,
    /// Keeps the supervisor handle (its pipes) for the life of the process.
    _supervised: SupervisedServer,
}

static SERVER: OnceLock<Result<TestServer, String>> = OnceLock::new();
static DATABASE_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The server of this test binary, started on first call (synchronously; fine to call
/// from inside a test's runtime). Panics with a clear message when it cannot start, e.g.
/// when the PostgreSQL server binaries are not installed.
pub fn server() -> &'static TestServer {
    match SERVER.get_or_init(start) {
        Ok(server) => server,
        Err(message) => panic!("test PostgreSQL server unavailable: {message}"),
    }
}

/// A server of the test's own, for tests that need several servers or counts nobody else
/// changes; it stops when the test binary exits.
#[allow(dead_code)]
pub fn private_server() -> TestServer {
    start().unwrap_or_else(|message| panic!("test PostgreSQL server unavailable: {message}"))
}

fn start() -> Result<TestServer, String> {
    let bins = PgBinaries::locate().map_err(|e| e.to_string())?;
    let mut last_error = String::new();
    // A port picked as free can be taken by someone else before the server binds it;
    // the server then exits early and the supervisor removes everything: start afresh.
    for _ in 0..START_ATTEMPTS {
        match start_once(&bins) {
            Ok(server) => return create_admin(server),
            Err(e @ EmbeddedError::ServerStart { .. }) => last_error = e.to_string(),
            Err(e) => return Err(e.to_string()),
        }
    }
    Err(last_error)
}

fn start_once(bins: &PgBinaries) -> Result<TestServer, EmbeddedError> {
    let account = ServerAccount::detect()?;
    let dir = tempfile::Builder::new()
        .prefix("servicedb-test-pg-")
        .tempdir()
        .map_err(|e| EmbeddedError::Io {
            action: "create a temporary directory in",
            path: std::env::temp_dir(),
            source: e,
        })?
        // Statics are never dropped: the supervisor removes the directory instead.
        .keep();
    // Private: the statement log holds the admin's SCRAM verifier.
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(|e| {
        EmbeddedError::Io {
            action: "set permissions of",
            path: dir.clone(),
            source: e,
        }
    })?;
    account.hand_over(&dir)?;
    let data_dir = dir.join("data");
    let log_path = dir.join("postgres.log");
    let superuser_password = random_password();
    init_cluster(bins, &data_dir, SUPERUSER, &superuser_password)?;

    let settings = ServerSettings::new(free_port()?, &dir)
        .with_setting("fsync", "off")
        .with_setting("synchronous_commit", "off")
        .with_setting("full_page_writes", "off")
        .with_setting("log_statement", "all")
        .with_setting("log_min_messages", "warning")
        .with_setting("max_connections", "300")
        .with_setting("log_line_prefix", "%m [%p] %u@%d ");
    let supervised = start_supervised(
        bins,
        &data_dir,
        &settings,
        &log_path,
        std::process::id(),
        Some(&dir),
        DEFAULT_START_TIMEOUT,
    )?;
    Ok(TestServer {
        port: supervised.port(),
        superuser_password,
        admin_password: random_password(),
        log_path,
        _supervised: supervised,
    })
}

/// Creates the admin role with a SCRAM verifier computed here, so that its plaintext
/// password never reaches the server (whose log has every statement).
fn create_admin(server: TestServer) -> Result<TestServer, String> {
    let url = server.superuser_url("postgres");
    let verifier = postgres_protocol::password::scram_sha_256(server.admin_password.as_bytes());
    let statement = format!(
        "CREATE ROLE {ADMIN_USER} LOGIN CREATEROLE CREATEDB NOSUPERUSER PASSWORD '{verifier}'"
    );
    block_on_new_runtime(async move {
        let (client, connection) = tokio_postgres::connect(&url, NoTls)
            .await
            .map_err(|e| format!("connecting as the superuser: {e}"))?;
        tokio::spawn(connection);
        check_major(&client).await?;
        client
            .batch_execute(&statement)
            .await
            .map_err(|e| format!("creating role {ADMIN_USER}: {e}"))
    })?;
    Ok(server)
}

/// CI runs the suites a second time on another major; this makes sure that run really got
/// the server it asked for, not a fallback to the machine's own binaries.
async fn check_major(client: &tokio_postgres::Client) -> Result<(), String> {
    let Ok(expected) = std::env::var("SERVICEDB_TEST_EXPECT_PG_MAJOR") else {
        return Ok(());
    };
    let num: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .map_err(|e| format!("reading the server version: {e}"))?
        .get(0);
    if (num / 10000).to_string() != expected.trim() {
        return Err(format!(
            "SERVICEDB_TEST_EXPECT_PG_MAJOR is {expected} but the test server is {num}"
        ));
    }
    Ok(())
}

/// Runs `future` to completion on a fresh current-thread runtime in its own thread, so
/// that it works from inside another runtime too.
fn block_on_new_runtime<T: Send + 'static>(
    future: impl Future<Output = Result<T, String>> + Send + 'static,
) -> Result<T, String> {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("building a tokio runtime: {e}"))?
            .block_on(future)
    })
    .join()
    .map_err(|_| "the setup thread panicked".to_owned())?
}

fn random_password() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 32)
}

/// `<prefix>_<n>_<random>`: lower-case, a valid unquoted identifier, at most 63 bytes.
fn unique_database_name(prefix: &str) -> String {
    let n = DATABASE_COUNTER.fetch_add(1, Ordering::Relaxed);
    let random = Alphanumeric
        .sample_string(&mut rand::rng(), 8)
        .to_ascii_lowercase();
    let suffix = format!("_{n}_{random}");
    let mut name: String = prefix
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '_') => c,
            _ => '_',
        })
        .collect();
    if !name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_') {
        name.insert(0, 'd');
    }
    name.truncate(63 - suffix.len());
    name + &suffix
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to {}: {e}", redact(url)));
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("test PostgreSQL connection ended with an error: {e}");
        }
    });
    client
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme_end), Some(at)) if scheme_end < at => {
            let credentials = &url[scheme_end + 3..at];
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

impl TestServer {
    /// Host to connect to: `127.0.0.1`.
    #[allow(dead_code)]
    pub fn host(&self) -> &str {
        HOST
    }

    /// TCP port.
    #[allow(dead_code)]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The non-superuser admin role (`LOGIN CREATEROLE CREATEDB`).
    #[allow(dead_code)]
    pub fn admin_user(&self) -> &str {
        ADMIN_USER
    }

    /// The admin's password (random per test binary).
    #[allow(dead_code)]
    pub fn admin_password(&self) -> &str {
        &self.admin_password
    }

    /// `postgresql://servicedb_admin:<pw>@127.0.0.1:<port>/<db>?sslmode=disable`.
    #[allow(dead_code)]
    pub fn admin_url(&self, db: &str) -> String {
        self.url(ADMIN_USER, &self.admin_password, db)
    }

    /// The bootstrap superuser's name; for assertions only.
    #[allow(dead_code)]
    pub fn superuser(&self) -> &str {
        SUPERUSER
    }

    /// Like [`TestServer::admin_url`] for the superuser: for assertions only, never for
    /// the code under test.
    #[allow(dead_code)]
    pub fn superuser_url(&self, db: &str) -> String {
        self.url(SUPERUSER, &self.superuser_password, db)
    }

    fn url(&self, user: &str, password: &str, db: &str) -> String {
        format!(
            "postgresql://{user}:{password}@{HOST}:{}/{db}?sslmode=disable",
            self.port
        )
    }

    /// The server log (every statement, with `%m [%p] %u@%d ` prefixes).
    #[allow(dead_code)]
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The whole server log so far.
    #[allow(dead_code)]
    pub fn log_contents(&self) -> String {
        self.log_since(0)
    }

    /// Current length of the log in bytes; pass it to [`TestServer::log_since`] later.
    #[allow(dead_code)]
    pub fn log_len(&self) -> u64 {
        fs::metadata(&self.log_path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", self.log_path.display()))
            .len()
    }

    /// What the server logged after byte `offset` (from [`TestServer::log_len`]). Other
    /// tests run concurrently, so look for something distinctive of your own.
    #[allow(dead_code)]
    pub fn log_since(&self, offset: u64) -> String {
        let read = || -> std::io::Result<String> {
            let mut file = fs::File::open(&self.log_path)?;
            file.seek(SeekFrom::Start(offset))?;
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes)?;
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        };
        read().unwrap_or_else(|e| panic!("reading {}: {e}", self.log_path.display()))
    }

    /// Creates a database with a unique name `<prefix>_<n>_<random>` as the admin (who
    /// therefore owns it) and returns the name.
    #[allow(dead_code)]
    pub async fn create_database(&self, prefix: &str) -> String {
        let name = unique_database_name(prefix);
        self.admin_client("postgres")
            .await
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap_or_else(|e| panic!("creating database {name}: {e}"));
        name
    }

    /// A client connected to `db` as the admin; its connection runs on the current runtime.
    #[allow(dead_code)]
    pub async fn admin_client(&self, db: &str) -> tokio_postgres::Client {
        connect(&self.admin_url(db)).await
    }

    /// A client connected to `db` as the superuser; for assertions only.
    #[allow(dead_code)]
    pub async fn superuser_client(&self, db: &str) -> tokio_postgres::Client {
        connect(&self.superuser_url(db)).await
    }
}
