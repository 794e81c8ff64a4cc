//! `servicedb dev up|status|down`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use super::{DevAction, fail, table};
use crate::dev::{self, DevProgress, Row};

pub async fn run(action: DevAction, state_dir: Option<PathBuf>) -> ExitCode {
    let state = dev::state_dir(state_dir.as_deref());
    match action {
        DevAction::Up { files } => up(files, &state).await,
        DevAction::Status => match dev::status(&state).await {
            Ok(Some(rows)) => {
                println!("{}", render(&rows));
                ExitCode::SUCCESS
            }
            Ok(None) => {
                println!(
                    "The embedded PostgreSQL is not running; start it with `servicedb dev up -f <manifests>`"
                );
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        DevAction::Down => match dev::down(&state) {
            Ok(true) => {
                println!(
                    "Stopped the embedded PostgreSQL; its data is kept under {}",
                    state.display()
                );
                ExitCode::SUCCESS
            }
            Ok(false) => {
                println!("The embedded PostgreSQL was not running");
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
    }
}

async fn up(files: Vec<PathBuf>, state: &std::path::Path) -> ExitCode {
    let mut progress = Steps::new();
    let result = dev::up(&files, state, &mut progress).await;
    progress.finish();
    let report = match result {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    for note in &report.notes {
        eprintln!("note: {note}");
    }
    if !report.rows.is_empty() {
        println!("{}", render(&report.rows));
        println!(
            "{} statement(s) executed, {} Secret file(s) written, {} migration(s) applied",
            report.statements, report.secrets_written, report.migrations_applied
        );
    }
    if report.errors.is_empty() {
        return ExitCode::SUCCESS;
    }
    for e in &report.errors {
        eprintln!("error: {e}");
    }
    ExitCode::FAILURE
}

fn render(rows: &[Row]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.service.clone(),
                r.tenant.clone(),
                r.server.clone(),
                r.database.clone(),
                r.version.clone(),
                r.secret_file.clone(),
            ]
        })
        .collect();
    table::render(
        &[
            "Service",
            "Tenant",
            "Server",
            "Database",
            "Version",
            "Secret file",
        ],
        &rows,
    )
}

/// A spinner on a terminal; plain lines on stderr otherwise.
struct Steps {
    spinner: Option<ProgressBar>,
}

impl Steps {
    fn new() -> Steps {
        let spinner = std::io::stderr().is_terminal().then(|| {
            let s = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}") {
                s.set_style(style);
            }
            s.enable_steady_tick(Duration::from_millis(100));
            s
        });
        Steps { spinner }
    }

    fn finish(&mut self) {
        if let Some(s) = self.spinner.take() {
            s.finish_and_clear();
        }
    }
}

impl DevProgress for Steps {
    fn step(&mut self, message: &str) {
        match &self.spinner {
            Some(s) => s.set_message(message.to_string()),
            None => eprintln!("{message}"),
        }
    }
}
