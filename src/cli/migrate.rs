//! `servicedb migrate apply|info|validate|baseline|repair`.

use std::io::IsTerminal;
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use super::{ConnectionArgs, MigrateAction, MigrateArgs, fail, output, table};
use crate::controller::migration::failure::describe_error;
use crate::migrate::batch_report;
use crate::migrate::engine::{Applied, Engine, MigrateError, Progress, Settings};
use crate::migrate::history::HistoryTable;
use crate::migrate::outcome::{ErrorSummary, Summary};
use crate::migrate::placeholders::Placeholders;
use crate::migrate::plan::{Entry, Options};
use crate::migrate::source::MigrationFile;
use crate::migrate::version::Version;
use crate::pg::ConnectOptions;

pub async fn run(action: MigrateAction) -> ExitCode {
    match &action {
        MigrateAction::Apply(a) if !a.database_url_envs.is_empty() => {
            return apply_batch(a.clone()).await;
        }
        MigrateAction::Info(a) | MigrateAction::Validate(a) | MigrateAction::Repair(a)
            if !a.database_url_envs.is_empty() =>
        {
            return fail("--database-url-env is for `migrate apply` only");
        }
        _ => {}
    }
    let (json, termination_log) = match &action {
        MigrateAction::Apply(a)
        | MigrateAction::Info(a)
        | MigrateAction::Validate(a)
        | MigrateAction::Repair(a) => (a.json, a.termination_log.clone()),
        MigrateAction::Baseline(a) => (a.json, a.termination_log.clone()),
    };
    let command = match &action {
        MigrateAction::Apply(_) => "apply",
        MigrateAction::Info(_) => "info",
        MigrateAction::Validate(_) => "validate",
        MigrateAction::Repair(_) => "repair",
        MigrateAction::Baseline(_) => "baseline",
    };
    let mut done = Done::default();
    let result = match action {
        MigrateAction::Apply(args) => apply(args, &mut done).await,
        MigrateAction::Info(args) => info(args).await,
        MigrateAction::Validate(args) => validate(args, &mut done).await,
        MigrateAction::Repair(args) => repair(args).await,
        MigrateAction::Baseline(args) => baseline(args).await,
    };
    if json {
        // Also on failure: what was done, then the error.
        print_json(&full_json(&done, &result));
    }
    if let Some(path) = termination_log {
        let summary = Summary::new(
            command,
            &done.applied,
            done.current.clone(),
            result.as_ref().err(),
        );
        if let Err(e) = std::fs::write(&path, summary.to_termination_message()) {
            eprintln!(
                "warning: cannot write the termination log {}: {e}",
                path.display()
            );
        }
    }
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

/// The command's JSON: its result and `"outcome": "succeeded"`, or what it did before it
/// failed (applied migrations, the version reached), then `"outcome": "failed"` and the error.
fn full_json(done: &Done, result: &Result<Value, MigrateError>) -> Value {
    match result {
        Ok(body) => {
            let mut body = body.clone();
            if let Value::Object(map) = &mut body {
                map.insert("outcome".into(), "succeeded".into());
            }
            body
        }
        Err(e) => json!({
            "outcome": "failed",
            "applied": done.applied,
            "current": done.current,
            "error": ErrorSummary::from_error(e),
        }),
    }
}

/// What a command did before it ended, kept for the JSON and the termination log even when it
/// then failed.
#[derive(Debug, Default)]
pub struct Done {
    pub applied: Vec<Applied>,
    pub current: Option<String>,
    pub pending: Vec<String>,
}

fn history_table(c: &ConnectionArgs) -> HistoryTable {
    HistoryTable {
        schema: c.schema.clone(),
        table: c.table.clone(),
    }
}

async fn open(args: &MigrateArgs) -> Result<Engine, MigrateError> {
    let target = args
        .target
        .as_deref()
        .map(Version::parse)
        .transpose()
        .map_err(|e| MigrateError::Refused(format!("--target: {e}")))?;
    let mut placeholders = Placeholders::new(&args.placeholders)?;
    placeholders.enabled = !args.no_placeholder_replacement;
    let settings = Settings {
        dirs: args.dirs.clone(),
        history: history_table(&args.connection),
        options: Options {
            target,
            out_of_order: args.out_of_order,
        },
        placeholders,
        allow_non_empty_schema: false,
    };
    let connect = ConnectOptions::from_url_or_env(args.connection.database_url.as_deref())?;
    let engine = Engine::open(&connect, settings).await?;
    for w in engine.warnings() {
        eprintln!("warning: {w}");
    }
    Ok(engine)
}

fn print_json(value: &impl serde::Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(s) => output::print(&s),
        Err(e) => eprintln!("error: cannot print JSON: {e}"),
    }
}

async fn apply(args: MigrateArgs, done: &mut Done) -> Result<Value, MigrateError> {
    let mut engine = open(&args).await?;
    let mut progress = CliProgress::new(args.json);
    let result = engine.apply(&mut progress).await;
    progress.finish();
    done.applied = engine.applied().to_vec();
    done.current = match &result {
        Ok(report) => report.current.clone(),
        // Planned again only after a failure: what the history says now.
        Err(_) => engine.info().current.as_ref().map(Version::to_string),
    };
    let report = result?;
    if !args.json {
        let at = report.current.as_deref().unwrap_or("<none>");
        match report.applied.len() {
            0 => output::print(&format!(
                "Schema is up to date at version {at}: nothing to apply"
            )),
            n => output::print(&format!(
                "Applied {n} migration{}; schema now at version {at}",
                if n == 1 { "" } else { "s" }
            )),
        }
    }
    Ok(serde_json::to_value(&report).unwrap_or_default())
}

/// `apply` over each `--database-url-env` database in turn, going on after a failure; the
/// termination log gets one line per database ([`batch_report`]).
async fn apply_batch(args: MigrateArgs) -> ExitCode {
    let mut results = Vec::new();
    let mut bodies = Vec::new();
    for env in &args.database_url_envs {
        if !args.json {
            output::print(&format!("Database {env}:"));
        }
        let mut done = Done::default();
        let result = match std::env::var(env) {
            Ok(url) if !url.trim().is_empty() => {
                let mut one = args.clone();
                one.connection.database_url = Some(url);
                one.database_url_envs.clear();
                apply(one, &mut done).await
            }
            _ => Err(MigrateError::Refused(format!(
                "environment variable {env} (--database-url-env) is not set"
            ))),
        };
        if let Err(e) = &result {
            output::error(format!("{env}: {e}"));
        }
        let mut body = full_json(&done, &result);
        if let Value::Object(map) = &mut body {
            map.insert("databaseUrlEnv".into(), env.clone().into());
        }
        bodies.push(body);
        results.push(batch_report::DatabaseResult {
            env: env.clone(),
            succeeded: result.is_ok(),
            current: done.current.clone(),
            detail: result
                .as_ref()
                .err()
                .map(|e| describe_error(&ErrorSummary::from_error(e))),
        });
    }
    let failed = results.iter().filter(|r| !r.succeeded).count();
    if args.json {
        print_json(&json!({
            "outcome": if failed == 0 { "succeeded" } else { "failed" },
            "databases": bodies,
        }));
    }
    if let Some(path) = &args.termination_log
        && let Err(e) = std::fs::write(path, batch_report::render(&results))
    {
        eprintln!(
            "warning: cannot write the termination log {}: {e}",
            path.display()
        );
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        fail(format!(
            "{failed} of {} database(s) failed to migrate",
            results.len()
        ))
    }
}

async fn info(args: MigrateArgs) -> Result<Value, MigrateError> {
    let engine = open(&args).await?;
    let plan = engine.info();
    let body = json!({
        "current": plan.current.as_ref().map(Version::to_string),
        "migrations": plan.entries,
        "problems": plan.problems,
    });
    if args.json {
        return Ok(body);
    }
    let rows: Vec<Vec<String>> = plan.entries.iter().map(info_row).collect();
    output::print(&format!(
        "Schema version: {}",
        plan.current
            .as_ref()
            .map_or("<< Empty Schema >>".to_string(), Version::to_string)
    ));
    output::print(&table::render(
        &[
            "Category",
            "Version",
            "Description",
            "Type",
            "Installed On",
            "State",
        ],
        &rows,
    ));
    for p in &plan.problems {
        eprintln!("warning: {p}");
    }
    Ok(body)
}

fn info_row(e: &Entry) -> Vec<String> {
    let category = match (e.kind.as_str(), &e.version) {
        ("SCHEMA", _) => "Schema",
        ("BASELINE", _) => "Baseline",
        (_, Some(_)) => "Versioned",
        (_, None) => "Repeatable",
    };
    vec![
        category.to_string(),
        e.version.clone().unwrap_or_default(),
        e.description.clone(),
        e.kind.clone(),
        e.installed_on.clone().unwrap_or_default(),
        e.state.as_str().to_string(),
    ]
}

async fn validate(args: MigrateArgs, done: &mut Done) -> Result<Value, MigrateError> {
    let engine = open(&args).await?;
    let plan = engine.info();
    done.current = plan.current.as_ref().map(Version::to_string);
    // Pending migrations are not a problem here (unlike Flyway's default): see README.
    done.pending = plan
        .pending
        .iter()
        .map(|&i| engine.files()[i].script.clone())
        .collect();
    if !plan.problems.is_empty() {
        return Err(MigrateError::Validation(plan.problems));
    }
    if !args.json {
        output::print(&format!(
            "Validated {} migration{}: no problems ({} pending)",
            engine.files().len(),
            if engine.files().len() == 1 { "" } else { "s" },
            plan.pending.len()
        ));
    }
    Ok(json!({ "valid": true, "problems": [], "pending": done.pending }))
}

async fn repair(args: MigrateArgs) -> Result<Value, MigrateError> {
    let mut engine = open(&args).await?;
    let report = engine.repair().await?;
    let body = serde_json::to_value(&report).unwrap_or_default();
    if args.json {
        return Ok(body);
    }
    for s in &report.removed_failed {
        output::print(&format!("Removed failed row of {s}"));
    }
    for s in &report.realigned {
        output::print(&format!("Realigned checksum and description of {s}"));
    }
    for s in &report.marked_deleted {
        output::print(&format!("Marked missing {s} as deleted"));
    }
    if report.removed_failed.is_empty()
        && report.realigned.is_empty()
        && report.marked_deleted.is_empty()
    {
        output::print("Nothing to repair");
    }
    Ok(body)
}

async fn baseline(args: super::BaselineArgs) -> Result<Value, MigrateError> {
    let version = Version::parse(&args.baseline_version)
        .map_err(|e| MigrateError::Refused(format!("--baseline-version: {e}")))?;
    let settings = Settings {
        dirs: Vec::new(),
        history: history_table(&args.connection),
        options: Options::default(),
        placeholders: Placeholders::default(),
        allow_non_empty_schema: false,
    };
    let connect = ConnectOptions::from_url_or_env(args.connection.database_url.as_deref())?;
    let mut engine = Engine::open(&connect, settings).await?;
    engine
        .baseline(&version, &args.baseline_description)
        .await?;
    if !args.json {
        output::print(&format!(
            "Baselined at version {version}: later versions will be applied"
        ));
    }
    Ok(json!({ "baselineVersion": version.to_string() }))
}

/// A bar on a terminal; plain lines otherwise (CI logs, Job logs), on stderr when stdout is JSON.
struct CliProgress {
    bar: Option<ProgressBar>,
    lines_to_stderr: bool,
}

impl CliProgress {
    fn new(json: bool) -> CliProgress {
        CliProgress {
            bar: None,
            lines_to_stderr: json || std::io::stderr().is_terminal(),
        }
    }

    fn line(&self, s: String) {
        match &self.bar {
            Some(bar) => bar.println(s),
            None if self.lines_to_stderr => eprintln!("{s}"),
            None => output::print(&s),
        }
    }
}

impl Progress for CliProgress {
    fn start(&mut self, pending: usize) {
        if std::io::stderr().is_terminal() && pending > 1 {
            let bar = ProgressBar::new(pending as u64);
            if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}") {
                bar.set_style(style);
            }
            self.bar = Some(bar);
        }
    }

    fn applying(&mut self, file: &MigrationFile) {
        if let Some(bar) = &self.bar {
            bar.set_message(file.script.clone());
        }
    }

    fn applied(&mut self, file: &MigrationFile, millis: i32) {
        self.line(format!("Applied {} in {millis} ms", file.script));
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
