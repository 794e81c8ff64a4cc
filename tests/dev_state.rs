//! `servicedb dev`'s state directory on an embedded PostgreSQL: two `dev up` at once, found
//! from a subdirectory, the admin connection in `dev status`, progress as it happens,
//! orphans and `--prune`, `dev reset`.

use std::path::Path;
use std::process::{Command, Output, Stdio};

fn servicedb(cwd: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_servicedb"));
    c.args(args)
        .current_dir(cwd)
        .env_remove("SERVICEDB_DEV_DIR")
        .env_remove("RUST_LOG")
        .env_remove("SERVICEDB_LOG_FORMAT")
        .stdin(Stdio::null());
    c
}

fn run(cwd: &Path, args: &[&str]) -> Output {
    servicedb(cwd, args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn service(name: &str, policy: &str) -> String {
    format!(
        "apiVersion: servicedb.io/v1alpha1\nkind: ServiceDatabase\nmetadata: {{ name: {name}, namespace: st }}\nspec: {{ reclaimPolicy: {policy} }}\n"
    )
}

async fn admin(project: &Path) -> Result<tokio_postgres::Client, String> {
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(project.join(".servicedb/server.json"))
            .map_err(|e| e.to_string())?,
    )
    .unwrap();
    let url = format!(
        "postgresql://servicedb_admin:{}@127.0.0.1:{}/postgres?sslmode=disable",
        state["adminPassword"].as_str().unwrap(),
        state["port"]
    );
    servicedb::pg::ConnectOptions::from_url(&url)
        .unwrap()
        .connect()
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn state_directory_lifecycle() {
    let project = tempfile::tempdir().unwrap();
    let p = project.path();
    let manifests = p.join("deploy");
    std::fs::create_dir_all(&manifests).unwrap();
    std::fs::write(manifests.join("gone.yaml"), service("gone", "Delete")).unwrap();
    std::fs::write(manifests.join("kept.yaml"), service("kept", "Retain")).unwrap();
    std::fs::write(manifests.join("stay.yaml"), service("stay", "Retain")).unwrap();

    // Two `dev up` at once on a fresh state directory: one waits for the other.
    let up = ["dev", "up", "-f", "deploy"];
    let a = servicedb(p, &up)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let b = servicedb(p, &up)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let (ea, eb) = (text(&a.stderr), text(&b.stderr));
    assert!(a.status.success(), "{ea}");
    assert!(b.status.success(), "{eb}");
    assert!(
        ea.contains("waiting for pid") || eb.contains("waiting for pid"),
        "one waited:\n{ea}\n---\n{eb}"
    );
    // Progress as it happens: the start is told before any database is reconciled, and
    // only by the run that started the server.
    let first = if ea.contains("starting the embedded PostgreSQL") {
        &ea
    } else {
        &eb
    };
    let other = if std::ptr::eq(first, &ea) { &eb } else { &ea };
    let start = first.find("starting the embedded PostgreSQL").unwrap();
    let init = first.find("initialising PostgreSQL").unwrap();
    let reconciling = first.find("reconciling").unwrap();
    assert!(init < start && start < reconciling, "{first}");
    assert!(
        !other.contains("starting the embedded PostgreSQL"),
        "{other}"
    );

    // Status from a subdirectory finds the state directory above, with the admin connection.
    let sub = p.join("src/deep");
    std::fs::create_dir_all(&sub).unwrap();
    let status = run(&sub, &["dev", "status"]);
    let stdout = text(&status.stdout);
    assert!(stdout.contains("st_stay"), "{stdout}");
    assert!(
        stdout.contains("local (running): postgresql://servicedb_admin@127.0.0.1:"),
        "{stdout}"
    );
    let server_json = p.join(".servicedb/server.json");
    assert!(
        stdout.contains(&format!(
            "password: \"adminPassword\" in {}",
            server_json.display()
        )),
        "{stdout}"
    );
    assert!(!sub.join(".servicedb").exists());
    // The admin connection works as shown, and server.json names the user too.
    admin(p).await.unwrap();
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&server_json).unwrap()).unwrap();
    assert_eq!(saved["adminUser"], "servicedb_admin");

    // Two resources leave the manifests: reported as orphaned, nothing dropped yet.
    std::fs::remove_file(manifests.join("gone.yaml")).unwrap();
    std::fs::remove_file(manifests.join("kept.yaml")).unwrap();
    let out = run(p, &up);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains("starting the embedded PostgreSQL"),
        "{stderr}"
    );
    assert!(
        stderr.contains("ServiceDatabase st/gone (database st_gone on local) is no longer in the manifests; `servicedb dev up --prune` applies its reclaimPolicy (Delete)"),
        "{stderr}"
    );
    let status = text(&run(&sub, &["dev", "status"]).stdout);
    assert!(status.contains("orphaned"), "{status}");
    assert!(
        status.contains("ServiceDatabase st/kept: database st_kept on local, reclaimPolicy Retain"),
        "{status}"
    );
    let exists = |db: &'static str| async move {
        admin(p)
            .await
            .unwrap()
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&db])
            .await
            .unwrap()
            .is_some()
    };
    assert!(exists("st_gone").await);

    // --prune: Delete drops, Retain keeps; both stop being tracked.
    let out = run(p, &["dev", "up", "-f", "deploy", "--prune"]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("pruned ServiceDatabase st/gone: dropped database st_gone and its roles (reclaimPolicy Delete)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("pruned ServiceDatabase st/kept: kept database st_kept and its roles (reclaimPolicy Retain)"),
        "{stderr}"
    );
    assert!(!exists("st_gone").await);
    assert!(exists("st_kept").await);
    assert!(!p.join(".servicedb/secrets/st/gone-db.env").exists());
    let status = text(&run(p, &["dev", "status"]).stdout);
    assert!(!status.contains("orphaned"), "{status}");

    // reset: refused without a terminal or --yes, then done with --yes.
    let out = run(p, &["dev", "reset"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("pass --yes"),
        "{}",
        text(&out.stderr)
    );
    assert!(p.join(".servicedb/server.json").exists());
    let id = std::fs::read_to_string(p.join(".servicedb/installation-id")).unwrap();
    let out = run(p, &["dev", "reset", "--yes"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // All but the installation id, which the databases on declared servers are claimed by.
    let left: Vec<_> = std::fs::read_dir(p.join(".servicedb"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["installation-id"]);
    assert_eq!(
        std::fs::read_to_string(p.join(".servicedb/installation-id")).unwrap(),
        id
    );
    let status = text(&run(p, &["dev", "status"]).stdout);
    assert!(status.contains("Nothing set up"), "{status}");
}

/// On a terminal, many databases get a bar counting them (run under `script`, which gives the
/// command a pseudo-terminal); without one, plain lines.
#[test]
fn a_terminal_gets_a_progress_bar_for_many_databases() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("note: skipped: `script` (util-linux) is not installed");
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let fitbuddy = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/fitbuddy");
    let typescript = state.path().join("typescript");
    let command = format!(
        "{} dev up -f {} >/dev/null",
        env!("CARGO_BIN_EXE_servicedb"),
        fitbuddy.display()
    );
    let out = Command::new("script")
        .args(["-qec", &command])
        .arg(&typescript)
        .env("SERVICEDB_DEV_DIR", state.path().join(".servicedb"))
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let seen = String::from_utf8_lossy(&std::fs::read(&typescript).unwrap()).into_owned();
    // reset, not down: as root the data lives under /var/tmp, which reset removes too.
    run(
        state.path(),
        &["dev", "--state-dir", ".servicedb", "reset", "--yes"],
    );
    assert!(out.status.success(), "{seen}");
    // Four databases (the management one and three tenants'), reconciled several at once:
    // the bar starts at 0 of 4 and counts them as they finish.
    // (The bar redraws at most 20 times a second and databases are reconciled several at
    // once, so which later counts get drawn before it is cleared varies: not asserted.)
    assert!(seen.contains(" 0/4 reconciling"), "{seen}");
}

/// `dev reset` on a terminal asks; only "yes" deletes. (`script` gives it a terminal and
/// passes our stdin through.)
#[test]
fn reset_asks_on_a_terminal_and_only_yes_deletes() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("note: skipped: `script` (util-linux) is not installed");
        return;
    }
    let project = tempfile::tempdir().unwrap();
    let state = project.path().join(".servicedb");
    std::fs::create_dir_all(state.join("secrets/shop")).unwrap();
    std::fs::write(state.join("secrets/shop/orders-db.env"), "PGUSER=x\n").unwrap();
    let reset = |answer: &str| {
        let typescript = project.path().join("typescript");
        let mut child = Command::new("script")
            .args([
                "-qec",
                &format!("{} dev reset", env!("CARGO_BIN_EXE_servicedb")),
            ])
            .arg(&typescript)
            .current_dir(project.path())
            .env_remove("SERVICEDB_DEV_DIR")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{answer}\n").as_bytes())
            .unwrap();
        let status = child.wait().unwrap();
        let seen = String::from_utf8_lossy(&std::fs::read(&typescript).unwrap()).into_owned();
        (status, seen)
    };
    let (status, seen) = reset("no");
    assert!(seen.contains("Type yes to go on"), "{seen}");
    assert!(
        seen.contains("not confirmed; nothing was deleted"),
        "{seen}"
    );
    assert!(!status.success());
    assert!(state.join("secrets/shop/orders-db.env").exists());
    let (status, seen) = reset("yes");
    assert!(status.success(), "{seen}");
    assert!(!state.join("secrets").exists(), "{seen}");
    assert!(!state.join("server.json").exists(), "{seen}");
}
