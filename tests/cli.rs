//! The command line as a user meets it: exit codes, help texts, stdout closed or full, JSON
//! logs, and `wait` giving up at once on errors that waiting cannot fix.

mod support;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::postgres::server as pg;

fn servicedb(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_servicedb"))
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("DATABASE_URL")
        .env_remove("SERVICEDB_LOG_FORMAT")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs with stdout on a pipe whose reading end is already closed, as `| head` leaves it.
fn to_closed_pipe(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    Command::new(env!("CARGO_BIN_EXE_servicedb"))
        .args(args)
        .env_remove("RUST_LOG")
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

#[test]
fn a_closed_stdout_ends_quietly_and_a_full_one_fails_with_a_message() {
    let out = to_closed_pipe(&["crd"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");

    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_servicedb"))
        .arg("crd")
        .stdout(full)
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.trim(),
        "error: cannot write to stdout: No space left on device (os error 28)"
    );
}

/// `migrate info | head`: the table goes nowhere, nothing panics, and the command's own exit
/// code (0) stands, as for every other command writing to a closed stdout.
#[tokio::test]
async fn migrate_info_to_a_closed_pipe_does_not_panic() {
    let db = pg().create_database("cli_pipe").await;
    let dir = tempfile::tempdir().unwrap();
    for v in 1..=30 {
        std::fs::write(
            dir.path().join(format!("V{v}__t{v}.sql")),
            format!("CREATE TABLE t{v} (id int);"),
        )
        .unwrap();
    }
    let url = pg().admin_url(&db);
    let out = to_closed_pipe(&[
        "migrate",
        "info",
        "--dir",
        dir.path().to_str().unwrap(),
        "--database-url",
        &url,
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("error"), "{stderr}");
}

#[test]
fn malformed_flag_values_are_usage_errors() {
    for (args, flag) in [
        (&["wait", "--version", "abc"][..], "--version"),
        (
            &["wait", "--version", "1", "--timeout", "2x"][..],
            "--timeout",
        ),
        (
            &["migrate", "apply", "--dir", ".", "--target", "abc"][..],
            "--target",
        ),
        (
            &["migrate", "info", "--dir", ".", "--placeholder", "novalue"][..],
            "--placeholder",
        ),
        (
            &["migrate", "baseline", "--baseline-version", "1.x"][..],
            "--baseline-version",
        ),
        (&["dev", "up"][..], "--file"),
        // A lease too short for a renewal every second with slack, or not whole seconds.
        (
            &["run", "--leader-election-lease-duration", "2s"][..],
            "at least 3s",
        ),
        (
            &["run", "--leader-election-lease-duration", "4500ms"][..],
            "whole seconds",
        ),
    ] {
        let out = servicedb(args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
}

#[test]
fn log_format_json_makes_stderr_json_lines() {
    let args = [
        "wait",
        "--version",
        "1",
        "--timeout",
        "1s",
        "--database-url",
        "postgresql://nobody:x@127.0.0.1:1/none?sslmode=disable",
    ];
    let out = servicedb(&args);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("error: timed out"),
        "{}",
        text(&out.stderr)
    );

    let mut json_args = vec!["--log-format", "json"];
    json_args.extend(args);
    let out = servicedb(&json_args);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    let last = lines.last().unwrap();
    assert_eq!(last["level"], "ERROR", "{last}");
    assert!(
        last["fields"]["message"]
            .as_str()
            .unwrap()
            .starts_with("timed out after 1s"),
        "{last}"
    );
    assert!(last["timestamp"].is_string(), "{last}");
    // The waiting itself is logged too (INFO), as JSON.
    assert!(lines.iter().any(|l| l["level"] == "INFO"), "{stderr}");
}

/// Options a help text lists without saying what they do (beside the flag, or on the next,
/// further indented line).
fn undescribed_options(help: &str) -> Vec<String> {
    let lines: Vec<&str> = help.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    lines
        .iter()
        .enumerate()
        .filter(|(i, l)| {
            let t = l.trim_start();
            let described_below = lines.get(i + 1).is_some_and(|next| {
                indent(next) > indent(l) && !next.trim_start().starts_with('-')
            });
            t.starts_with('-') && !t.contains("  ") && !described_below
        })
        .map(|(_, l)| l.to_string())
        .collect()
}

#[test]
fn every_help_text_is_its_own_and_describes_every_option() {
    let helps: Vec<(Vec<&str>, String)> = [
        vec!["migrate", "apply"],
        vec!["migrate", "info"],
        vec!["migrate", "validate"],
        vec!["migrate", "repair"],
        vec!["migrate", "baseline"],
        vec!["wait"],
        vec!["crd"],
        vec!["dev", "up"],
        vec!["dev", "status"],
        vec!["dev", "down"],
        vec!["dev", "reset"],
    ]
    .into_iter()
    .map(|cmd| {
        let mut args = cmd.clone();
        args.push("-h");
        let out = servicedb(&args);
        assert_eq!(out.status.code(), Some(0), "{cmd:?}");
        (cmd, text(&out.stdout))
    })
    .collect();
    for (cmd, help) in &helps {
        assert_eq!(
            undescribed_options(help),
            Vec::<String>::new(),
            "{cmd:?}:\n{help}"
        );
        if cmd[0] == "migrate" && cmd[1] != "apply" {
            assert!(
                !help.contains("Apply versioned migrations up to"),
                "{cmd:?} reuses apply's wording:\n{help}"
            );
        }
    }
    let help = |name: &str| {
        &helps
            .iter()
            .find(|(c, _)| c.last() == Some(&name))
            .unwrap()
            .1
    };
    assert!(help("info").contains("Above Target"), "{}", help("info"));
    assert!(
        help("repair").contains("Ignored by repair"),
        "{}",
        help("repair")
    );
    assert!(
        help("baseline").contains("The description of the baseline row"),
        "{}",
        help("baseline")
    );
}

async fn wait_fails_at_once(url: &str, code: &str) {
    let start = Instant::now();
    let out = servicedb(&[
        "wait",
        "--version",
        "1",
        "--timeout",
        "10m",
        "--database-url",
        url,
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("(SQLSTATE {code}); waiting will not change this")),
        "{stderr}"
    );
    // Retrying would take the whole 10 minutes.
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn wait_gives_up_at_once_on_errors_waiting_cannot_fix() {
    let (host, port) = (pg().host(), pg().port());
    let user = pg().admin_user();
    // Wrong password.
    wait_fails_at_once(
        &format!("postgresql://{user}:wrong@{host}:{port}/postgres?sslmode=disable"),
        "28P01",
    )
    .await;
    // No such database.
    wait_fails_at_once(
        &format!(
            "postgresql://{user}:{}@{host}:{port}/no_such_db_here?sslmode=disable",
            pg().admin_password()
        ),
        "3D000",
    )
    .await;
    // Permission denied on the history table.
    let db = pg().create_database("cli_wait").await;
    let owner = pg().admin_client(&db).await;
    owner
        .batch_execute(
            "CREATE TABLE flyway_schema_history (installed_rank int PRIMARY KEY, version varchar(50), \
             description varchar(200) NOT NULL, type varchar(20) NOT NULL, script varchar(1000) NOT NULL, \
             checksum int, installed_by varchar(100) NOT NULL, installed_on timestamp NOT NULL DEFAULT now(), \
             execution_time int NOT NULL, success boolean NOT NULL);
             DROP ROLE IF EXISTS cli_wait_nobody;
             CREATE ROLE cli_wait_nobody LOGIN PASSWORD 'pw';",
        )
        .await
        .unwrap();
    wait_fails_at_once(
        &format!("postgresql://cli_wait_nobody:pw@{host}:{port}/{db}?sslmode=disable"),
        "42501",
    )
    .await;
}
