//! `servicedb dev` as a developer runs it: the examples on an embedded PostgreSQL, and
//! manifests that declare a DatabaseServer (here, the tests' own server).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use servicedb::secret::parse_env_file;
use support::postgres::server as pg;

fn servicedb(state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_servicedb"))
        .args(args)
        .env("SERVICEDB_DEV_DIR", state)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

async fn connect(
    env_file: &Path,
    db_override: Option<&str>,
) -> Result<tokio_postgres::Client, String> {
    let keys = parse_env_file(&std::fs::read_to_string(env_file).unwrap());
    let mut url = keys["uri"].clone();
    if let Some(db) = db_override {
        url = url.replace(&format!("/{}?", keys["PGDATABASE"]), &format!("/{db}?"));
    }
    servicedb::pg::ConnectOptions::from_url(&url)
        .unwrap()
        .connect()
        .await
        .map_err(|e| e.to_string())
}

/// The README's first command: both examples come up on an embedded PostgreSQL with their
/// migrations and local seed data; the Secret files work; a second run changes nothing;
/// status and down work; down keeps the data.
#[tokio::test]
async fn examples_come_up_and_a_second_run_changes_nothing() {
    let state = tempfile::tempdir().unwrap();
    let shop = examples().join("shop");
    let fitbuddy = examples().join("fitbuddy");
    let up = |s: &Path| {
        servicedb(
            s,
            &[
                "dev",
                "up",
                "-f",
                shop.to_str().unwrap(),
                "-f",
                fitbuddy.to_str().unwrap(),
            ],
        )
    };
    let out = up(state.path());
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    for db in [
        "shop_orders",
        "shop_payments",
        "affiliate_mgt",
        "app_gym_42",
        "app_crossfit_north",
        "app_yoga_loft",
    ] {
        assert!(stdout.contains(db), "{db} missing:\n{stdout}");
    }
    let secrets = state.path().join("secrets");
    let gym = secrets.join("fitbuddy/app-db-gym-42.env");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&gym).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    // The app role reads the seed data through the view the migrations made; no DDL.
    let app = connect(&gym, None).await.unwrap();
    let row = app
        .query_one(
            "SELECT count(*), min(display_name) FROM leaderboard_standings",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 3);
    assert!(app.batch_execute("DROP TABLE users").await.is_err());
    // One tenant's credentials do not open another tenant's database.
    assert!(connect(&gym, Some("app_yoga_loft")).await.is_err());
    let before = std::fs::read_to_string(&gym).unwrap();

    let again = up(state.path());
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(
        text(&again.stdout)
            .contains("0 statement(s) executed, 0 Secret file(s) written, 0 migration(s) applied"),
        "{}",
        text(&again.stdout)
    );
    assert_eq!(
        std::fs::read_to_string(&gym).unwrap(),
        before,
        "passwords unchanged"
    );

    let status = servicedb(state.path(), &["dev", "status"]);
    assert!(
        text(&status.stdout).contains("app_crossfit_north"),
        "{}",
        text(&status.stdout)
    );
    let down = servicedb(state.path(), &["dev", "down"]);
    assert!(
        text(&down.stdout).contains("Stopped"),
        "{}",
        text(&down.stdout)
    );
    assert!(connect(&gym, None).await.is_err(), "the server is stopped");
    let status = servicedb(state.path(), &["dev", "status"]);
    assert!(text(&status.stdout).contains("not running"));
    // Data is kept: up again finds everything in place.
    let third = up(state.path());
    assert!(
        text(&third.stdout).contains("0 migration(s) applied"),
        "{}",
        text(&third.stdout)
    );
    servicedb(state.path(), &["dev", "down"]);
}

fn write(dir: &Path, name: &str, yaml: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, yaml).unwrap();
    p
}

/// A declared DatabaseServer (any reachable PostgreSQL) is used instead of the embedded one;
/// seed data asked for on a non-local server is refused and nothing is created; an invalid
/// resource is reported with its file and field and touches nothing.
#[tokio::test]
async fn declared_server_refuses_seed_and_reports_invalid_input() {
    let state = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let suffix = servicedb::password::Password::generate().expose()[..6].to_lowercase();
    let ns = format!("ns{suffix}");
    write(
        dir.path(),
        "server.yaml",
        &format!(
            r#"apiVersion: servicedb.io/v1alpha1
kind: DatabaseServer
metadata: {{ name: main }}
spec:
  host: {host}
  port: {port}
  sslMode: disable
  adminSecretRef: {{ namespace: servicedb-system, name: pg-admin }}
  environment: production
---
apiVersion: v1
kind: Secret
metadata: {{ name: pg-admin, namespace: servicedb-system }}
stringData: {{ username: {user}, password: {password} }}
"#,
            host = pg().host(),
            port = pg().port(),
            user = pg().admin_user(),
            password = pg().admin_password()
        ),
    );
    write(
        dir.path(),
        "services.yaml",
        &format!(
            r#"apiVersion: servicedb.io/v1alpha1
kind: ServiceDatabase
metadata: {{ name: seeded, namespace: {ns} }}
spec:
  migrations:
    configMaps: [m]
    seed: {{ configMaps: [m] }}
---
apiVersion: servicedb.io/v1alpha1
kind: ServiceDatabase
metadata: {{ name: plain, namespace: {ns} }}
spec:
  migrations: {{ configMaps: [m] }}
---
apiVersion: v1
kind: ConfigMap
metadata: {{ name: m, namespace: {ns} }}
data:
  V1__t.sql: "CREATE TABLE t (id int);"
"#
        ),
    );
    let out = servicedb(
        state.path(),
        &["dev", "up", "-f", dir.path().to_str().unwrap()],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("services.yaml: ServiceDatabase {ns}/seeded: spec.migrations.seed: seed data runs only on a server whose environment is local")),
        "{stderr}"
    );
    // The valid one went ahead on the declared server, the refused one left no trace.
    let admin = pg().admin_client("postgres").await;
    let dbs: Vec<String> = admin
        .query(
            "SELECT datname::text FROM pg_database WHERE datname LIKE $1 ORDER BY 1",
            &[&format!("{ns}_%")],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(dbs, [format!("{ns}_plain")]);
    assert!(
        !state.path().join("server.json").exists(),
        "no embedded server was started"
    );

    // Hostile input: rejected with file and field, before any SQL.
    let bad = tempfile::tempdir().unwrap();
    write(
        bad.path(),
        "server.yaml",
        &std::fs::read_to_string(dir.path().join("server.yaml")).unwrap(),
    );
    write(
        bad.path(),
        "bad.yaml",
        &format!(
            "apiVersion: servicedb.io/v1alpha1\nkind: ServiceDatabase\nmetadata: {{ name: evil, namespace: {ns} }}\nspec:\n  databaseName: 'x\"; DROP DATABASE postgres; --'\n"
        ),
    );
    write(
        bad.path(),
        "fine.yaml",
        &format!(
            "apiVersion: servicedb.io/v1alpha1\nkind: ServiceDatabase\nmetadata: {{ name: fine, namespace: {ns} }}\nspec: {{}}\n"
        ),
    );
    let start = pg().log_len();
    let out = servicedb(
        state.path(),
        &["dev", "up", "-f", bad.path().to_str().unwrap()],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("bad.yaml: ServiceDatabase") && stderr.contains("spec.databaseName"),
        "{stderr}"
    );
    assert!(
        !pg().log_since(start).contains("DROP DATABASE"),
        "no SQL ran for the hostile one"
    );
    // The valid resource beside it went ahead.
    assert!(
        text(&out.stdout).contains(&format!("{ns}_fine")),
        "{}",
        text(&out.stdout)
    );
}

/// `dev reset` wipes the local state but not the databases `dev up` made on a declared
/// DatabaseServer; the next `dev up` still owns them (the installation id survives the
/// reset) instead of meeting its own databases as another installation's Conflict.
#[tokio::test]
async fn after_reset_dev_up_still_owns_its_databases_on_a_declared_server() {
    let state = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let suffix = servicedb::password::Password::generate().expose()[..6].to_lowercase();
    let ns = format!("rs{suffix}");
    write(
        dir.path(),
        "all.yaml",
        &format!(
            r#"apiVersion: servicedb.io/v1alpha1
kind: DatabaseServer
metadata: {{ name: main }}
spec:
  host: {host}
  port: {port}
  sslMode: disable
  adminSecretRef: {{ namespace: servicedb-system, name: pg-admin }}
  environment: staging
---
apiVersion: v1
kind: Secret
metadata: {{ name: pg-admin, namespace: servicedb-system }}
stringData: {{ username: {user}, password: {password} }}
---
apiVersion: servicedb.io/v1alpha1
kind: ServiceDatabase
metadata: {{ name: orders, namespace: {ns} }}
spec: {{}}
"#,
            host = pg().host(),
            port = pg().port(),
            user = pg().admin_user(),
            password = pg().admin_password()
        ),
    );
    let up = ["dev", "up", "-f", dir.path().to_str().unwrap()];
    let out = servicedb(state.path(), &up);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id_file = state.path().join("installation-id");
    let id = std::fs::read_to_string(&id_file).unwrap();

    let out = servicedb(state.path(), &["dev", "reset", "--yes"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("Kept"),
        "the reset says what it kept: {}",
        text(&out.stdout)
    );
    assert!(!state.path().join("secrets").exists(), "Secret files go");
    assert_eq!(std::fs::read_to_string(&id_file).unwrap(), id);

    let out = servicedb(state.path(), &up);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains("another servicedb installation"),
        "{stderr}"
    );
    // Its Secret file is back and logs in (the password was set anew for the kept role).
    let env_file = state.path().join(format!("secrets/{ns}/orders-db.env"));
    let client = connect(&env_file, None).await.unwrap();
    let db: String = client
        .query_one("SELECT current_database()::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(db, format!("{ns}_orders"));
}

/// As root, a project directory the `postgres` user cannot reach (a checkout under /root)
/// still works: the data goes to /var/tmp and a note says where.
#[tokio::test]
async fn unreachable_state_directory_falls_back_with_a_note() {
    if !servicedb::embedded::running_as_root() {
        eprintln!("skipped: only meaningful as root");
        return;
    }
    let private = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        private.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let state = private.path().join(".servicedb");
    let orders = examples().join("shop/orders.yaml");
    let cms = examples().join("shop/orders-migrations.yaml");
    let out = servicedb(
        &state,
        &[
            "dev",
            "up",
            "-f",
            orders.to_str().unwrap(),
            "-f",
            cms.to_str().unwrap(),
        ],
    );
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let note = stderr
        .lines()
        .find(|l| l.contains("keeping the PostgreSQL data in"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(note.contains("/var/tmp/servicedb-"), "{note}");
    assert!(text(&out.stdout).contains("shop_orders"));
    servicedb(&state, &["dev", "down"]);
    let fallback = note.rsplit(' ').nth(1).unwrap();
    assert!(fallback.starts_with("/var/tmp/servicedb-"), "{fallback}");
    std::fs::remove_dir_all(fallback).unwrap();
}

/// A unit that fails part-way (an extension the server does not have) reports what it did
/// before failing: the database, roles and Secret files it made are counted, not "0"; the
/// next run reports the same error and changes nothing else.
#[tokio::test]
async fn a_failure_part_way_reports_what_was_done() {
    let state = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let suffix = servicedb::password::Password::generate().expose()[..6].to_lowercase();
    write(
        dir.path(),
        "server.yaml",
        &format!(
            r#"apiVersion: servicedb.io/v1alpha1
kind: DatabaseServer
metadata: {{ name: main }}
spec:
  host: {host}
  port: {port}
  sslMode: disable
  adminSecretRef: {{ namespace: servicedb-system, name: pg-admin }}
---
apiVersion: v1
kind: Secret
metadata: {{ name: pg-admin, namespace: servicedb-system }}
stringData: {{ username: {user}, password: {password} }}
---
apiVersion: servicedb.io/v1alpha1
kind: ServiceDatabase
metadata: {{ name: ext, namespace: part{suffix} }}
spec:
  extensions: [no_such_extension]
"#,
            host = pg().host(),
            port = pg().port(),
            user = pg().admin_user(),
            password = pg().admin_password()
        ),
    );
    let f = dir.path().display().to_string();
    let out = servicedb(state.path(), &["dev", "up", "-f", &f]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success());
    assert!(stderr.contains("no_such_extension"), "{stderr}");
    let summary = stdout
        .lines()
        .chain(stderr.lines())
        .find(|l| l.contains("statement(s) executed"))
        .unwrap_or_else(|| panic!("no summary in\n{stdout}\n{stderr}"))
        .to_string();
    assert!(
        !summary.starts_with("0 statement(s)") && summary.contains(" 2 Secret file(s) written"),
        "{summary}"
    );
    let again = servicedb(state.path(), &["dev", "up", "-f", &f]);
    let (stdout, stderr) = (text(&again.stdout), text(&again.stderr));
    assert!(stderr.contains("no_such_extension"), "{stderr}");
    // Nothing more to do: no summary of work, or one that says none was done.
    if let Some(summary) = stdout.lines().find(|l| l.contains("statement(s) executed")) {
        assert!(
            summary.starts_with("0 statement(s)") && summary.contains(" 0 Secret file(s)"),
            "{summary}"
        );
    }
}
