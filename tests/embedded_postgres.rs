//! Smoke tests of the embedded-PostgreSQL layer and of the shared test server
//! (`tests/support/postgres.rs`) that the other integration tests rely on.

mod support;

use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rand::distr::{Alphanumeric, SampleString};
use servicedb::embedded::{
    EmbeddedError, PgBinaries, ServerAccount, ServerSettings, free_port, init_cluster,
    is_initialized, is_running, running_as_root, start_detached, start_supervised, stop,
};
use support::postgres::server;
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

fn is_valid_identifier(name: &str) -> bool {
    name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// A fresh directory the server account can use, not removed on drop (a supervisor or
/// the test removes it).
fn server_dir() -> std::path::PathBuf {
    let dir = tempfile::Builder::new()
        .prefix("servicedb-smoke-")
        .tempdir()
        .unwrap()
        .keep();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    ServerAccount::detect().unwrap().hand_over(&dir).unwrap();
    dir
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The admin role the code under test connects as can log in and is NOT a superuser,
/// but may create roles and databases.
#[tokio::test]
async fn admin_logs_in_and_is_not_a_superuser() {
    let client = server().admin_client("postgres").await;
    let row = client
        .query_one(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, current_user::text \
             FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .unwrap();
    assert!(!row.get::<_, bool>(0), "admin must not be a superuser");
    assert!(row.get::<_, bool>(1), "admin must have CREATEROLE");
    assert!(row.get::<_, bool>(2), "admin must have CREATEDB");
    assert_eq!(row.get::<_, String>(3), server().admin_user());
    assert_eq!(server().host(), "127.0.0.1");
    assert!(
        server()
            .admin_url("x")
            .ends_with(&format!("@127.0.0.1:{}/x?sslmode=disable", server().port()))
    );
}

/// `create_database` gives distinct, valid database names, and the databases are owned
/// by the admin (created by it, not by the superuser).
#[tokio::test]
async fn created_databases_are_distinct_and_owned_by_the_admin() {
    let first = server().create_database("Smoke-Owner").await;
    let second = server().create_database("Smoke-Owner").await;
    assert_ne!(first, second);
    for name in [&first, &second] {
        assert!(is_valid_identifier(name), "{name}");
        assert!(name.starts_with("smoke_owner_"), "{name}");
    }
    let long = server().create_database(&"x".repeat(80)).await;
    assert!(is_valid_identifier(&long), "{long}");

    let superuser = server().superuser_client("postgres").await;
    for name in [&first, &second, &long] {
        let owner: String = superuser
            .query_one(
                "SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = $1",
                &[name],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(owner, server().admin_user(), "owner of {name}");
    }
    // The admin can use its database.
    let client = server().admin_client(&first).await;
    client
        .batch_execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1)")
        .await
        .unwrap();
}

/// Every statement is logged (`log_statement=all`) and can be read back with
/// `log_since`, while the admin's plaintext password never appears in the log (the role
/// was created with a client-side SCRAM verifier).
#[tokio::test]
async fn statements_are_logged_but_the_admin_password_is_not() {
    let marker = format!(
        "smoke_marker_{}",
        Alphanumeric
            .sample_string(&mut rand::rng(), 12)
            .to_ascii_lowercase()
    );
    let offset = server().log_len();
    let client = server().admin_client("postgres").await;
    client
        .batch_execute(&format!("SELECT '{marker}'"))
        .await
        .unwrap();
    let since = server().log_since(offset);
    let line = since
        .lines()
        .find(|l| l.contains(&marker))
        .unwrap_or_else(|| panic!("{marker} not in the log since {offset}:\n{since}"));
    assert!(line.contains("servicedb_admin@postgres"), "{line}");
    assert!(line.contains("statement: SELECT"), "{line}");

    let log = server().log_contents();
    assert!(log.contains(&marker));
    assert!(
        log.contains("CREATE ROLE servicedb_admin"),
        "role creation is logged"
    );
    assert!(
        !log.contains(server().admin_password()),
        "the admin password leaked into {}",
        server().log_path().display()
    );
}

/// Password authentication (scram-sha-256) is really on: a wrong password is rejected.
#[tokio::test]
async fn a_wrong_password_is_rejected() {
    let url = format!(
        "postgresql://{}:not-the-password@127.0.0.1:{}/postgres?sslmode=disable",
        server().admin_user(),
        server().port()
    );
    let err = tokio_postgres::connect(&url, NoTls)
        .await
        .err()
        .expect("login with a wrong password must fail");
    assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD), "{err}");
}

/// A supervised server stops by itself (and its directory is removed) once the process
/// it watches exits, here a child killed with SIGKILL and left unreaped (a zombie).
#[tokio::test]
async fn supervised_server_stops_when_the_watched_process_exits() {
    let bins = PgBinaries::locate().unwrap();
    let dir = server_dir();
    let data_dir = dir.join("data");
    init_cluster(&bins, &data_dir, "smoke", "smoke-password").unwrap();
    let port = free_port().unwrap();
    let settings = ServerSettings::new(port, &dir).with_setting("fsync", "off");
    let mut watched = Command::new("sleep").arg("30").spawn().unwrap();
    let mut supervised = start_supervised(
        &bins,
        &data_dir,
        &settings,
        &dir.join("postgres.log"),
        watched.id(),
        Some(&dir),
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(supervised.port(), port);

    let url = format!("postgresql://smoke:smoke-password@127.0.0.1:{port}/postgres");
    let (client, connection) = tokio_postgres::connect(&url, NoTls).await.unwrap();
    let connection = tokio::spawn(connection);
    let one: i32 = client.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    drop(client);
    let _ = connection.await;

    watched.kill().unwrap();
    wait_for("the port to close", Duration::from_secs(10), || {
        TcpStream::connect(("127.0.0.1", port)).is_err()
    });
    wait_for("the directory removal", Duration::from_secs(10), || {
        !dir.exists()
    });
    let mut status = None;
    wait_for("the supervisor to exit", Duration::from_secs(10), || {
        status = supervised.try_wait().unwrap();
        status.is_some()
    });
    let status = status.unwrap();
    assert!(
        status.success(),
        "server exit status after fast shutdown: {status}"
    );
    watched.wait().unwrap();
}

/// Stops a detached server when dropped, so a failing test does not leave it running.
struct StopOnDrop<'a>(&'a PgBinaries, &'a Path);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        let _ = stop(self.0, self.1);
    }
}

/// The detached server of `servicedb dev up`: `start_detached` (pg_ctl) returns once it
/// accepts logins, `is_running` follows it, and `stop` shuts it down; logging goes to
/// the given file and the socket to the given directory.
#[tokio::test]
async fn detached_server_starts_and_stops() {
    let bins = PgBinaries::locate().unwrap();
    let dir = server_dir();
    let data_dir = dir.join("data");
    let log_path = dir.join("logs").join("postgres.log");
    init_cluster(&bins, &data_dir, "dev", "dev-password").unwrap();
    assert!(is_initialized(&data_dir));
    assert!(!is_running(&data_dir));
    let port = free_port().unwrap();
    let settings = ServerSettings::new(port, dir.join("run"))
        .with_setting("log_line_prefix", "%m [%p] %u@%d ");
    start_detached(&bins, &data_dir, &settings, &log_path).unwrap();
    let guard = StopOnDrop(&bins, &data_dir);
    assert!(is_running(&data_dir));
    assert!(dir.join("run").join(format!(".s.PGSQL.{port}")).exists());

    let url = format!("postgresql://dev:dev-password@127.0.0.1:{port}/postgres");
    let (client, connection) = tokio_postgres::connect(&url, NoTls).await.unwrap();
    tokio::spawn(connection);
    let prefix: String = client
        .query_one("SHOW log_line_prefix", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(prefix, "%m [%p] %u@%d ");
    drop(client);

    stop(&bins, &data_dir).unwrap();
    assert!(!is_running(&data_dir));
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    stop(&bins, &data_dir).unwrap(); // stopping a stopped server is fine
    drop(guard);
    assert!(
        std::fs::read_to_string(&log_path)
            .unwrap()
            .contains("database system is ready")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// When the server exits during startup (here: its port is taken), the error says so
/// and quotes the end of the server log.
#[test]
fn early_exit_reports_the_server_log() {
    let bins = PgBinaries::locate().unwrap();
    let dir = server_dir();
    let data_dir = dir.join("data");
    init_cluster(&bins, &data_dir, "smoke", "smoke-password").unwrap();
    let taken = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    let settings = ServerSettings::new(port, &dir);
    let err = start_supervised(
        &bins,
        &data_dir,
        &settings,
        &dir.join("postgres.log"),
        std::process::id(),
        Some(&dir),
        Duration::from_secs(30),
    )
    .unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, EmbeddedError::ServerStart { .. }),
        "{message}"
    );
    assert!(message.contains("exited during startup"), "{message}");
    assert!(message.contains("could not bind"), "{message}");
    wait_for("the directory removal", Duration::from_secs(10), || {
        !dir.exists()
    });
}

/// As root the server runs as `postgres`; a data directory that user cannot reach gives
/// an error naming the blocking directory and what to do, before anything is created.
#[test]
fn init_cluster_into_an_unreachable_directory_is_a_clear_error() {
    if !running_as_root() {
        eprintln!("skipped: only meaningful as root (the server then runs as `postgres`)");
        return;
    }
    let bins = PgBinaries::locate().unwrap();
    let private = tempfile::tempdir().unwrap();
    std::fs::set_permissions(private.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let data_dir = private.path().join("nested").join("data");
    let err = init_cluster(&bins, &data_dir, "smoke", "pw").unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(&err, EmbeddedError::Unreachable { dir, .. } if dir == private.path()),
        "{message}"
    );
    assert!(message.contains("cannot reach"), "{message}");
    assert!(
        message.contains(&format!("chmod o+x {}", private.path().display())),
        "{message}"
    );
    assert!(!Path::new(&private.path().join("nested")).exists());
}
