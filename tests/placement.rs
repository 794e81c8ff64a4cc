//! Tenant placement across two real servers: least loaded with room, never moved, pins
//! honoured, full servers reported.

// This binary uses only private servers, not the shared one.
#[allow(dead_code)]
mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::postgres::{TestServer, private_server};

fn servicedb(state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_servicedb"))
        .args(args)
        .env("SERVICEDB_DEV_DIR", state)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn server_yaml(name: &str, s: &TestServer, max: u32) -> String {
    format!(
        r#"apiVersion: servicedb.io/v1alpha1
kind: DatabaseServer
metadata: {{ name: {name} }}
spec:
  host: {host}
  port: {port}
  sslMode: disable
  maxDatabases: {max}
  environment: local
  adminSecretRef: {{ namespace: ops, name: {name}-admin }}
---
apiVersion: v1
kind: Secret
metadata: {{ name: {name}-admin, namespace: ops }}
stringData: {{ username: {user}, password: {password} }}
"#,
        host = s.host(),
        port = s.port(),
        user = s.admin_user(),
        password = s.admin_password()
    )
}

fn tenant(name: &str, pin: Option<&str>) -> String {
    let server = pin.map(|p| format!(", server: {p}")).unwrap_or_default();
    format!(
        "---\napiVersion: servicedb.io/v1alpha1\nkind: Tenant\nmetadata: {{ name: {name}, namespace: gyms }}\nspec: {{ services: [app]{server} }}\n"
    )
}

/// Which server each tenant database is on, from the `dev up` table.
fn placements(out: &Output) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("| gyms/app"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells[2].to_string(), cells[3].to_string())
        })
        .collect();
    v.sort();
    v
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[tokio::test]
async fn tenants_go_to_the_least_loaded_server_and_stay_there() {
    let (a, b) = (private_server(), private_server());
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("servers.yaml"),
        format!(
            "{}---\n{}",
            server_yaml("a", &a, 2),
            server_yaml("b", &b, 2)
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("app.yaml"),
        "apiVersion: servicedb.io/v1alpha1\nkind: ServiceDatabase\nmetadata: { name: app, namespace: gyms }\nspec: { tenancy: PerTenant, databaseName: app }\n",
    )
    .unwrap();
    let tenants = dir.path().join("tenants.yaml");
    let f = dir.path().to_str().unwrap();

    // Both empty: a (by name); then b is less loaded; then a tie again: a.
    std::fs::write(
        &tenants,
        [tenant("t1", None), tenant("t2", None), tenant("t3", None)].concat(),
    )
    .unwrap();
    let out = servicedb(state.path(), &["dev", "up", "-f", f]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        placements(&out),
        pairs(&[("t1", "a"), ("t2", "b"), ("t3", "a")])
    );

    // A pinned tenant goes where it is told even when another server is emptier; existing
    // placements do not move; with both servers full the next tenant is reported, not placed.
    std::fs::write(
        &tenants,
        [
            tenant("t1", None),
            tenant("t2", None),
            tenant("t3", None),
            tenant("t4", Some("b")),
            tenant("t5", None),
        ]
        .concat(),
    )
    .unwrap();
    let out = servicedb(state.path(), &["dev", "up", "-f", f]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("(tenant t5)")
            && stderr.contains("every DatabaseServer is at its maxDatabases"),
        "{stderr}"
    );
    assert_eq!(
        placements(&out),
        pairs(&[("t1", "a"), ("t2", "b"), ("t3", "a"), ("t4", "b")])
    );
}
