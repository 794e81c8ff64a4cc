//! N Tenants of one PerTenant service with one migration: through the controller (apply
//! all, time until all are Ready), then the same N through `servicedb dev up` on the same
//! PostgreSQL (one run, timed as a developer would).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::fixture::{Fixture, Operator, V1, tenant_name};
use crate::job_player::JobPlayer;
use crate::support::postgres::server as pg;
use crate::{row, scaled, secs, table};

pub async fn run() {
    let n = scaled(500);
    println!(
        "\nonboard: {n} Tenants of one PerTenant service (1 migration), fake API server, real PostgreSQL"
    );
    let f = Fixture::start().await;
    let operator = Operator::start(&f, Duration::from_secs(600), false).await;
    let player = JobPlayer::start(&f);
    f.wait_server().await;
    f.migrations(&[("V1__items.sql", V1)]).await;
    f.service(serde_json::json!({"maxParallel": 8})).await;

    let started = Instant::now();
    f.tenants(0..n, true).await;
    let applied = started.elapsed();
    let ready = f.wait_fleet(n, Some("1"), timeout(n)).await - started;
    let jobs = player.since(started);
    let failed = jobs.iter().filter(|j| !j.succeeded).count();
    let most = player.most();
    drop(player);
    operator.stop().await;

    let dev = dev_up(n).await;
    table(
        &format!("onboard: {n} Tenants to Ready"),
        &[
            row(
                "controller: apply all -> all Ready",
                secs(ready),
                format!("dev up: {}", secs(dev)),
                None,
            ),
            row(
                "controller / dev up",
                format!("{:.2}x", ready.as_secs_f64() / dev.as_secs_f64()),
                "1.00x".into(),
                None,
            ),
            row(
                "controller: per tenant",
                format!("{:.1} ms", ready.as_secs_f64() * 1000.0 / n as f64),
                format!("dev up: {:.1} ms", dev.as_secs_f64() * 1000.0 / n as f64),
                None,
            ),
            row("applying the Tenants", secs(applied), String::new(), None),
            row(
                "migration Jobs (most at once)",
                format!("{} ({most})", jobs.len()),
                format!("{failed} failed"),
                Some(failed == 0),
            ),
        ],
    );
}

fn timeout(n: usize) -> Duration {
    Duration::from_secs(120 + n as u64)
}

/// `servicedb dev up` of the same fleet on the same server (declared, not embedded).
async fn dev_up(n: usize) -> Duration {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let state = tempfile::tempdir().expect("a temporary directory");
    let suffix = servicedb::password::Password::generate().expose()[..5].to_lowercase();
    let ns = format!("devbench{suffix}");
    let mut yaml = format!(
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
apiVersion: v1
kind: ConfigMap
metadata: {{ name: app-migrations, namespace: {ns} }}
data:
  V1__items.sql: "{v1}"
---
apiVersion: servicedb.io/v1alpha1
kind: ServiceDatabase
metadata: {{ name: app, namespace: {ns} }}
spec:
  tenancy: PerTenant
  server: main
  migrations: {{ configMaps: [app-migrations] }}
"#,
        host = pg().host(),
        port = pg().port(),
        user = pg().admin_user(),
        password = pg().admin_password(),
        v1 = V1.trim(),
    );
    for i in 0..n {
        let _ = write!(
            yaml,
            "---\napiVersion: servicedb.io/v1alpha1\nkind: Tenant\nmetadata: {{ name: {}, namespace: {ns} }}\nspec: {{ services: [app] }}\n",
            tenant_name(i)
        );
    }
    let file = dir.path().join("fleet.yaml");
    std::fs::write(&file, yaml).expect("writing the manifests");
    let started = Instant::now();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_servicedb"))
        .args(["dev", "up", "-f"])
        .arg(&file)
        .env("SERVICEDB_DEV_DIR", state.path())
        .env_remove("RUST_LOG")
        .output()
        .await
        .expect("running servicedb dev up");
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "servicedb dev up failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}
