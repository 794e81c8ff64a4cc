//! `servicedb dev up` on a declared DatabaseServer (the tests' own server): manifests checked
//! as the cluster checks them, Secret files every .env reader loads, every Secret file in the
//! table, and `dev status` showing the declared server.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::postgres::server as pg;

fn servicedb(state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_servicedb"))
        .args(args)
        .env("SERVICEDB_DEV_DIR", state)
        .env_remove("RUST_LOG")
        .env_remove("SERVICEDB_LOG_FORMAT")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn write(dir: &Path, name: &str, yaml: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, yaml).unwrap();
    p
}

fn unique_ns() -> String {
    let suffix = servicedb::password::Password::generate().expose()[..6].to_lowercase();
    format!("ns{suffix}")
}

/// The tests' server as a DatabaseServer, with its admin Secret.
fn server_yaml() -> String {
    format!(
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
    )
}

async fn databases(ns: &str) -> Vec<String> {
    pg().admin_client("postgres")
        .await
        .query(
            "SELECT datname::text FROM pg_database WHERE datname LIKE $1 ORDER BY 1",
            &[&format!("{ns}_%")],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn manifests_are_checked_as_the_cluster_checks_them() {
    let state = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ns = unique_ns();
    write(dir.path(), "server.yaml", &server_yaml());
    let sdb = |name: &str, spec: &str| {
        format!(
            "apiVersion: servicedb.io/v1alpha1\nkind: ServiceDatabase\nmetadata: {{ name: {name}, namespace: {ns} }}\nspec: {spec}\n"
        )
    };
    write(
        dir.path(),
        "typo.yaml",
        &sdb(
            "typo",
            "{ databseName: typo_db, app: { connectionLimit: 5, conectionLimit: 7 } }",
        ),
    );
    write(
        dir.path(),
        "lots.yaml",
        &sdb("lots", "{ app: { connectionLimit: \"lots\" } }"),
    );
    write(
        dir.path(),
        "enums.yaml",
        &sdb(
            "enums",
            "{ tenancy: Pertenant, roles: [{ name: ro, access: admin }] }",
        ),
    );
    write(
        dir.path(),
        "kinds.yaml",
        &format!(
            "apiVersion: servicedb.io/v1alpha1\nkind: ServiceDatabse\nmetadata: {{ name: k, namespace: {ns} }}\nspec: {{}}\n---\napiVersion: servicedb.io/v1beta9\nkind: ServiceDatabase\nmetadata: {{ name: v, namespace: {ns} }}\nspec: {{}}\n"
        ),
    );
    write(dir.path(), "fine.yaml", &sdb("fine", "{}"));
    let out = servicedb(
        state.path(),
        &["dev", "up", "-f", dir.path().to_str().unwrap()],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for expected in [
        format!("typo.yaml: ServiceDatabase {ns}/typo: spec.app.conectionLimit: unknown field"),
        format!("typo.yaml: ServiceDatabase {ns}/typo: spec.databseName: unknown field"),
        format!(
            "lots.yaml: ServiceDatabase {ns}/lots: spec.app.connectionLimit: must be of type integer, not string \"lots\""
        ),
        format!(
            "enums.yaml: ServiceDatabase {ns}/enums: spec.tenancy: unsupported value \"Pertenant\""
        ),
        format!(
            "enums.yaml: ServiceDatabase {ns}/enums: spec.roles[0].access: unsupported value \"admin\""
        ),
        "kinds.yaml: document 1: kind \"ServiceDatabse\" does not exist in servicedb.io"
            .to_string(),
        "kinds.yaml: document 2: ServiceDatabase is not served as servicedb.io/v1beta9".to_string(),
    ] {
        assert!(stderr.contains(&expected), "{expected}\n---\n{stderr}");
    }
    // Only the valid one was created; the refused ones left no trace.
    assert_eq!(databases(&ns).await, [format!("{ns}_fine")]);
    assert!(!stderr.contains("typo_db"), "{stderr}");

    let empty = tempfile::tempdir().unwrap();
    let out = servicedb(
        state.path(),
        &["dev", "up", "-f", empty.path().to_str().unwrap()],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("nothing found in") && stderr.contains("0 YAML file(s)"),
        "{stderr}"
    );
}

/// What `set -a; . FILE; set +a` puts into the environment, under `set -e`.
fn bash_loads(file: &Path) -> BTreeMap<String, String> {
    let out = Command::new("bash")
        .arg("-c")
        .arg(r#"set -euo pipefail; set -a; . "$1"; set +a; echo LOADED-OK >&2; env -0"#)
        .arg("bash")
        .arg(file)
        .env_clear()
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(
        out.status.success() && stderr.trim() == "LOADED-OK",
        "{stderr}"
    );
    out.stdout
        .split(|b| *b == 0)
        .filter_map(|kv| {
            let kv = String::from_utf8_lossy(kv).into_owned();
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// What python-dotenv reads, or None when it is not installed.
fn dotenv_loads(file: &Path) -> Option<BTreeMap<String, String>> {
    let out = Command::new("python3")
        .arg("-c")
        .arg(
            "import json, sys\ntry:\n    import dotenv\nexcept ImportError:\n    sys.exit(3)\nprint(json.dumps(dotenv.dotenv_values(sys.argv[1])))",
        )
        .arg(file)
        .output()
        .ok()?;
    if out.status.code() == Some(3) {
        return None;
    }
    assert!(out.status.success(), "{}", text(&out.stderr));
    // python-dotenv warns on stderr about lines it cannot parse.
    assert_eq!(text(&out.stderr), "", "python-dotenv complained");
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

#[tokio::test]
async fn secret_files_load_in_shells_and_dotenv_and_all_are_listed() {
    let state = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ns = unique_ns();
    write(dir.path(), "server.yaml", &server_yaml());
    write(
        dir.path(),
        "reviews.yaml",
        &format!(
            r#"apiVersion: servicedb.io/v1alpha1
kind: ServiceDatabase
metadata: {{ name: reviews, namespace: {ns} }}
spec:
  roles: [{{ name: analytics, access: read }}]
  secret:
    template:
      GREETING: "it's {{{{ username }}}}"
      NOT_EXPANDED: "$HOME/x"
      spring.datasource.url: "jdbc:postgresql://{{{{ host }}}}:{{{{ port }}}}/{{{{ database }}}}"
"#
        ),
    );
    let out = servicedb(
        state.path(),
        &["dev", "up", "-f", dir.path().to_str().unwrap()],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));

    // Every Secret file written is in the table, and the count says so.
    let listed: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.split('|').nth(6))
        .map(str::trim)
        .filter(|f| f.ends_with(".env"))
        .collect();
    let secrets = state.path().join("secrets").join(&ns);
    for name in ["reviews-db", "reviews-migrator", "reviews-db-analytics"] {
        let f = secrets.join(format!("{name}.env"));
        assert!(listed.contains(&f.to_str().unwrap()), "{name}:\n{stdout}");
    }
    assert!(
        stdout.contains(&format!("{} Secret file(s) written", listed.len())),
        "{stdout}"
    );

    let env_file = secrets.join("reviews-db.env");
    let exact: BTreeMap<String, String> =
        serde_json::from_str(&std::fs::read_to_string(secrets.join("reviews-db.json")).unwrap())
            .unwrap();
    let shell = bash_loads(&env_file);
    // Every key the service gets in the cluster: as it is, or under its alias; pgpass (two
    // lines) only in the JSON file.
    for (key, value) in &exact {
        let name = match key.as_str() {
            "jdbc-uri" => "JDBC_URI",
            "spring.datasource.url" => "SPRING_DATASOURCE_URL",
            "pgpass" => continue,
            k => k,
        };
        assert_eq!(shell.get(name), Some(value), "{key} as {name}");
    }
    assert_eq!(shell["GREETING"], format!("it's {ns}_reviews_app"));
    assert_eq!(shell["NOT_EXPANDED"], "$HOME/x");
    // The app can connect with what the shell loaded.
    servicedb::pg::ConnectOptions::from_url(&shell["DATABASE_URL"])
        .unwrap()
        .connect()
        .await
        .unwrap();
    match dotenv_loads(&env_file) {
        None => eprintln!("note: python-dotenv is not installed; only bash was checked"),
        Some(dotenv) => {
            assert!(!dotenv.is_empty());
            for (k, v) in &dotenv {
                assert_eq!(shell.get(k), Some(v), "python-dotenv reads {k} differently");
            }
        }
    }

    // Status reports the declared server, its admin connection and the databases on it.
    let status = servicedb(state.path(), &["dev", "status"]);
    let stdout = text(&status.stdout);
    assert!(status.status.success(), "{}", text(&status.stderr));
    assert!(
        stdout.contains(&format!(
            "main (reachable): postgresql://{}@{}:{}/postgres?sslmode=disable",
            pg().admin_user(),
            pg().host(),
            pg().port()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("password: key \"password\" of Secret servicedb-system/pg-admin in "),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("{ns}_reviews")), "{stdout}");
    assert!(!stdout.contains(pg().admin_password()), "{stdout}");
}
