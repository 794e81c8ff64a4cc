//! Every line the CLI writes: results on stdout, errors and notes on stderr (text, or JSON
//! log lines with `--log-format json`).
//!
//! stdout is written here instead of with `println!`, which panics (exit 101) when stdout is
//! closed (`| head`) or full (`>/dev/full`). A closed stdout means the reader has seen
//! enough: the rest of the output is dropped quietly and the command's own exit code stands.
//! Any other write error is reported once at the end and makes the exit code 1.

use std::fmt::Display;
use std::io::{ErrorKind, Write};
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use super::LogFormat;

static JSON: AtomicBool = AtomicBool::new(false);
static CLOSED: AtomicBool = AtomicBool::new(false);
static FAILED: Mutex<Option<std::io::Error>> = Mutex::new(None);

/// Remembers the log format, and turns a stdout panic left anywhere (a `println!` not yet
/// moved here) into the same quiet exit or one-line error instead of a panic message.
pub fn install(format: LogFormat) {
    JSON.store(matches!(format, LogFormat::Json), Ordering::Relaxed);
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if let Some(why) = message.strip_prefix("failed printing to stdout: ") {
            // Not knowing how far the command got, it cannot claim success.
            if !why.contains("Broken pipe") {
                error(format!("cannot write to stdout: {why}"));
            }
            std::process::exit(1);
        }
        default(info);
    }));
}

/// Whether stderr diagnostics are JSON log lines.
pub fn json_logs() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// Writes `text` and a newline on stdout.
pub fn print(text: &str) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    let result = out
        .write_all(text.as_bytes())
        .and_then(|()| {
            if text.ends_with('\n') {
                Ok(())
            } else {
                out.write_all(b"\n")
            }
        })
        .and_then(|()| out.flush());
    if let Err(e) = result {
        note_failure(e);
    }
}

fn note_failure(e: std::io::Error) {
    CLOSED.store(true, Ordering::Relaxed);
    if e.kind() != ErrorKind::BrokenPipe
        && let Ok(mut failed) = FAILED.lock()
    {
        failed.get_or_insert(e);
    }
}

/// The exit code once everything is printed: a write error other than a closed pipe fails.
pub fn finish(code: ExitCode) -> ExitCode {
    if !CLOSED.load(Ordering::Relaxed)
        && let Err(e) = std::io::stdout().lock().flush()
    {
        note_failure(e);
    }
    match FAILED.lock().ok().and_then(|mut f| f.take()) {
        Some(e) => {
            error(format!("cannot write to stdout: {e}"));
            ExitCode::FAILURE
        }
        None => code,
    }
}

/// `error: ...` on stderr, or an ERROR log line.
pub fn error(message: impl Display) {
    if json_logs() {
        tracing::error!(target: "servicedb", "{message}");
    } else {
        eprintln!("error: {message}");
    }
}

/// `note: ...` on stderr, or a WARN log line: something the user should know.
pub fn note(message: impl Display) {
    if json_logs() {
        tracing::warn!(target: "servicedb", "{message}");
    } else {
        eprintln!("note: {message}");
    }
}

/// A progress line on stderr, or an INFO log line.
pub fn progress(message: impl Display) {
    if json_logs() {
        tracing::info!(target: "servicedb", "{message}");
    } else {
        eprintln!("{message}");
    }
}
