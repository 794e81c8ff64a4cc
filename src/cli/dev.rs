//! `servicedb dev up|status|down|reset`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use super::output::{self, print};
use super::{DevAction, fail, table};
use crate::dev::{self, DevProgress, Row};

/// From this many databases on, a terminal shows a bar instead of a spinner.
const BAR_FROM: usize = 4;

pub async fn run(action: DevAction, state_dir: Option<PathBuf>) -> ExitCode {
    let state = dev::state_dir(state_dir.as_deref());
    match action {
        DevAction::Up { files, prune } => up(files, prune, &state).await,
        DevAction::Status => status(&state).await,
        DevAction::Down => match dev::down(&state, &mut Steps::new()).await {
            Ok(true) => {
                print(&format!(
                    "Stopped the embedded PostgreSQL; its data is kept under {}",
                    state.display()
                ));
                ExitCode::SUCCESS
            }
            Ok(false) => {
                print("The embedded PostgreSQL was not running");
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        DevAction::Reset { yes } => reset(&state, yes).await,
    }
}

async fn up(files: Vec<PathBuf>, prune: bool, state: &Path) -> ExitCode {
    let mut progress = Steps::new();
    let result = dev::up(&files, state, prune, &mut progress).await;
    progress.finish();
    let report = match result {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    if !report.rows.is_empty() {
        print(&render(&report.rows));
    }
    // Also when every unit failed: what a unit did before failing is still done.
    let did_something = report.statements + report.secrets_written + report.migrations_applied > 0;
    if !report.rows.is_empty() || did_something {
        print(&format!(
            "{} statement(s) executed, {} Secret file(s) written, {} migration(s) applied",
            report.statements, report.secrets_written, report.migrations_applied
        ));
    }
    if report.errors.is_empty() {
        return ExitCode::SUCCESS;
    }
    for e in &report.errors {
        output::error(e);
    }
    ExitCode::FAILURE
}

async fn status(state: &Path) -> ExitCode {
    let s = match dev::status(state).await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    if s.servers.is_empty() {
        print(&format!(
            "Nothing set up in {} yet; start with `servicedb dev up -f <manifests>`",
            state.display()
        ));
        return ExitCode::SUCCESS;
    }
    let mut text = String::from("Servers (admin connection; the password is not printed):\n");
    for line in &s.servers {
        text.push_str(&format!(
            "  {} ({}): {}  password: {}\n",
            line.name, line.state, line.admin_url, line.password_at
        ));
    }
    print(&text);
    if s.local_stopped && s.servers.len() == 1 {
        print(&format!(
            "The embedded PostgreSQL is not running (its data is kept under {}); start it with `servicedb dev up -f <manifests>`",
            state.display()
        ));
    }
    if !s.rows.is_empty() {
        print(&render(&s.rows));
    }
    if !s.orphans.is_empty() {
        let mut text = String::from(
            "\nNo longer in the manifests of the last `dev up` (orphaned; `servicedb dev up --prune` applies their reclaimPolicy):\n",
        );
        for o in &s.orphans {
            text.push_str(&format!("  {o}\n"));
        }
        print(&text);
    }
    ExitCode::SUCCESS
}

async fn reset(state: &Path, yes: bool) -> ExitCode {
    if !state.is_dir() {
        print(&format!(
            "Nothing to reset: {} does not exist",
            state.display()
        ));
        return ExitCode::SUCCESS;
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            return usage(format!(
                "`servicedb dev reset` deletes {} (the embedded PostgreSQL's data and every Secret file); \
                 without a terminal to confirm on, pass --yes",
                state.display()
            ));
        }
        eprint!(
            "This stops the embedded PostgreSQL and deletes {} with its data and Secret files, \
             keeping only its installation id (databases on declared DatabaseServers are not \
             touched and stay this directory's). Type yes to go on: ",
            state.display()
        );
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        if std::io::stdin().lock().read_line(&mut answer).is_err() || answer.trim() != "yes" {
            output::error("not confirmed; nothing was deleted");
            return ExitCode::FAILURE;
        }
    }
    match dev::reset(state, &mut Steps::new()).await {
        Ok(removed) if removed.is_empty() => {
            print(&format!("Nothing to reset in {}", state.display()));
            ExitCode::SUCCESS
        }
        Ok(removed) => {
            for p in removed {
                print(&format!("Deleted {}", p.display()));
            }
            print(&format!(
                "Kept {}: databases this directory's `dev up` made on declared DatabaseServers \
                 are still its own (see docs/security-model.md to move them elsewhere)",
                state.join(dev::servers::INSTALLATION_FILE).display()
            ));
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

fn usage(message: String) -> ExitCode {
    output::error(message);
    ExitCode::from(2)
}

/// The table: one line per database, then one line per further Secret file of it.
fn render(rows: &[Row]) -> String {
    let mut lines: Vec<Vec<String>> = Vec::new();
    for r in rows {
        let mut files = r.secret_files.iter();
        lines.push(vec![
            r.service.clone(),
            r.tenant.clone(),
            r.server.clone(),
            r.database.clone(),
            r.version.clone(),
            files.next().cloned().unwrap_or_default(),
        ]);
        for f in files {
            let mut more = vec![String::new(); 5];
            more.push(f.clone());
            lines.push(more);
        }
    }
    table::render(
        &[
            "Service",
            "Tenant",
            "Server",
            "Database",
            "Version",
            "Secret files",
        ],
        &lines,
    )
}

/// A spinner, or a bar for many databases, on a terminal; plain lines on stderr otherwise.
struct Steps {
    bar: Option<ProgressBar>,
}

impl Steps {
    fn new() -> Steps {
        let live = std::io::stderr().is_terminal() && !output::json_logs();
        let bar = live.then(|| {
            let s = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}") {
                s.set_style(style);
            }
            s.enable_steady_tick(Duration::from_millis(100));
            s
        });
        Steps { bar }
    }

    fn finish(&mut self) {
        if let Some(s) = self.bar.take() {
            s.finish_and_clear();
        }
    }
}

/// A spinner left behind (an early return, `down`, `reset`) is cleared, not left drawn.
impl Drop for Steps {
    fn drop(&mut self) {
        self.finish();
    }
}

impl DevProgress for Steps {
    fn step(&mut self, message: &str) {
        match &self.bar {
            Some(s) => s.set_message(message.to_string()),
            None => output::progress(message),
        }
    }

    fn note(&mut self, message: &str) {
        match &self.bar {
            Some(s) => s.suspend(|| output::note(message)),
            None => output::note(message),
        }
    }

    fn units(&mut self, total: usize) {
        if let Some(s) = &self.bar
            && total >= BAR_FROM
        {
            s.set_length(total as u64);
            s.set_position(0);
            if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}") {
                s.set_style(style);
            }
        }
    }

    fn unit_done(&mut self) {
        if let Some(s) = &self.bar {
            s.inc(1);
        }
    }
}
