//! Benchmark: provision 200 ServiceDatabases (no migrations) through the core, next to the
//! same CREATE ROLE / CREATE DATABASE / GRANT statements sent by one psql session, then a
//! no-change pass over all 200. `cargo bench --bench provision` (needs psql on PATH).

#[path = "../tests/support/postgres.rs"]
#[allow(dead_code)]
mod postgres;

use std::process::{Command, Stdio};

use futures::StreamExt;
use std::time::{Duration, Instant};

use servicedb::password::Password;
use servicedb::pg::{ConnectOptions, Ident, SslMode};
use servicedb::provision::action::Target;
use servicedb::provision::execute::reconcile;
use servicedb::provision::observe::{observe_database, observe_server};
use servicedb::provision::observed::{ObservedDatabase, ObservedServer};
use servicedb::provision::plan::{plan_database, plan_server};
use servicedb::provision::server::{DEFAULT_DATABASE_CONNECTIONS, Environment, Server, ServerSpec};
use servicedb::provision::{Claimant, DesiredDatabase, DesiredRole, RolePurpose};

const DATABASES: usize = 200;

fn desired(prefix: &str, i: usize) -> DesiredDatabase {
    let db = format!("{prefix}_{i}");
    let role = |suffix: &str, purpose| DesiredRole {
        name: Ident::new(format!("{db}_{suffix}")).unwrap(),
        purpose,
        connection_limit: -1,
        password: Password::generate(),
    };
    DesiredDatabase {
        installation: "bench".into(),
        claimant: Claimant {
            kind: "ServiceDatabase".into(),
            namespace: "bench".into(),
            name: db.clone(),
        },
        service: db.clone(),
        tenant: None,
        database: Ident::new(db.clone()).unwrap(),
        owner: role("owner", RolePurpose::Owner),
        app: Some(role("app", RolePurpose::App)),
        extra: Vec::new(),
        schemas: Vec::new(),
        extensions: Vec::new(),
    }
}

/// The statements servicedb would run on an empty server, as one psql script (without the
/// ownership catalog, which psql has no use for).
fn psql_script(databases: &[DesiredDatabase]) -> String {
    let mut script = String::from("\\set ON_ERROR_STOP on\n");
    let mut public = ObservedDatabase::default();
    public
        .schemas
        .insert("public".into(), "pg_database_owner".into());
    for d in databases {
        let plan = plan_server(d, &ObservedServer::default()).unwrap();
        for a in plan.actions.iter().filter(|a| a.target() == Target::Server) {
            script.push_str(&a.sql());
            script.push_str(";\n");
        }
        script.push_str(&format!("\\c {}\n", d.database.as_str()));
        for a in plan_database(d, &public) {
            script.push_str(&a.sql());
            script.push_str(";\n");
        }
        script.push_str("\\c postgres\n");
    }
    script
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pg = postgres::server();
    rt.block_on(async {
        let su = pg.superuser_client("postgres").await;
        su.batch_execute("ALTER SYSTEM SET log_statement = 'none'")
            .await
            .unwrap();
        su.batch_execute("SELECT pg_reload_conf()").await.unwrap();
    });

    // psql: one session, the same statements.
    let baseline: Vec<DesiredDatabase> = (0..DATABASES).map(|i| desired("bench_psql", i)).collect();
    let script_path =
        std::env::temp_dir().join(format!("servicedb-bench-{}.sql", std::process::id()));
    std::fs::write(&script_path, psql_script(&baseline)).unwrap();
    let started = Instant::now();
    let out = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-h",
            pg.host(),
            "-p",
            &pg.port().to_string(),
            "-U",
            pg.admin_user(),
            "-d",
            "postgres",
            "-f",
        ])
        .arg(&script_path)
        .env("PGPASSWORD", pg.admin_password())
        .stdin(Stdio::null())
        .output()
        .expect("psql on PATH");
    let psql_time = started.elapsed();
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_file(&script_path);

    let (create, pass, concurrent, parts) = rt.block_on(async {
        let server = Server::connect(ServerSpec {
            name: "bench".into(),
            admin: ConnectOptions::from_url(&pg.admin_url("postgres")).unwrap(),
            client_host: pg.host().into(),
            client_port: pg.port(),
            ssl_mode: SslMode::Disable,
            environment: Environment::Production,
            max_databases: None,
            installation: "bench".into(),
            database_connections: DEFAULT_DATABASE_CONNECTIONS,
        })
        .await
        .unwrap();
        let ours: Vec<DesiredDatabase> = (0..DATABASES).map(|i| desired("bench_sdb", i)).collect();
        let started = Instant::now();
        for d in &ours {
            reconcile(&server, d).await.unwrap();
        }
        let create = started.elapsed();
        let started = Instant::now();
        for d in &ours {
            let outcome = reconcile(&server, d).await.unwrap();
            assert!(
                !outcome.changed(),
                "no-change pass changed {}",
                d.database.as_str()
            );
        }
        let pass = started.elapsed();
        // The controller reconciles several objects at once; so does this pass.
        let started = Instant::now();
        let outcomes: Vec<_> = futures::stream::iter(ours.iter().map(|d| reconcile(&server, d)))
            .buffer_unordered(8)
            .collect()
            .await;
        assert!(outcomes.into_iter().all(|o| !o.unwrap().changed()));
        let concurrent = started.elapsed();
        // Where a no-change pass spends its time.
        let mut parts = [Duration::ZERO; 3];
        for d in &ours {
            let t = Instant::now();
            let catalog = server.catalog().await.unwrap();
            observe_server(&catalog, d).await.unwrap();
            parts[0] += t.elapsed();
            let t = Instant::now();
            let db = server
                .login(
                    d.database.as_str(),
                    d.owner.name.as_str(),
                    d.owner.password.expose(),
                )
                .await
                .unwrap();
            parts[1] += t.elapsed();
            let t = Instant::now();
            observe_database(&db, d, server.admin_user()).await.unwrap();
            parts[2] += t.elapsed();
        }
        (create, pass, concurrent, parts)
    });

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "\nprovisioning {DATABASES} databases (owner + app role, CONNECT, grants, default privileges):"
    );
    println!(
        "{:<44} {:>10.0} ms",
        "psql, one session, the same statements",
        ms(psql_time)
    );
    println!(
        "{:<44} {:>10.0} ms   ({:.2}x psql; goal <= 1.3x)",
        "servicedb core (observe, claim, execute)",
        ms(create),
        create.as_secs_f64() / psql_time.as_secs_f64()
    );
    println!(
        "{:<44} {:>10.0} ms   ({:.1} ms per database)",
        "no-change pass over all, one at a time",
        ms(pass),
        ms(pass) / DATABASES as f64
    );
    println!(
        "{:<44} {:>10.0} ms   ({:.1} ms per database; goal < 1000 ms)",
        "no-change pass, 8 at a time (as dev up runs)",
        ms(concurrent),
        ms(concurrent) / DATABASES as f64
    );
    for (label, d) in [
        "observe server + catalog",
        "log in as the owner (the probe)",
        "observe inside the database",
    ]
    .iter()
    .zip(parts)
    {
        println!("  {label:<42} {:>10.0} ms", ms(d));
    }
}
