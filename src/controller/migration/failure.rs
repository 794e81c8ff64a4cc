//! Why a migration Job failed, from its container's termination message (`migrate apply`
//! writes a JSON summary there; with FallbackToLogsOnError a crash leaves the log's tail).
//! Pure.

use crate::migrate::outcome::{ErrorSummary, Summary};

use super::job::MIGRATIONS_ROOT;

/// Longest detail kept from a message that is not a summary (the log's tail).
const MAX_RAW: usize = 1000;

/// `V3__add.sql (ConfigMap orders-migrations) line 2, SQLSTATE 42601: syntax error ...`, from
/// the termination message; None when there is none.
pub fn describe(termination_message: &str) -> Option<String> {
    let text = termination_message.trim();
    if text.is_empty() {
        return None;
    }
    let Ok(summary) = serde_json::from_str::<Summary>(text) else {
        return Some(format!("the migration container said: {}", tail(text)));
    };
    let Some(error) = summary.error else {
        return Some(format!(
            "the migration container reported {} without an error",
            summary.outcome
        ));
    };
    let mut out = describe_error(&error);
    if summary.applied_count > 0 {
        out.push_str(&format!(
            "; applied before it: {}",
            summary.applied.join(", ")
        ));
    }
    Some(out)
}

/// `V3__add.sql (ConfigMap orders-migrations) line 2, SQLSTATE 42601: syntax error ...`: an
/// error as a person finds its cause (also a batch report's failure detail).
pub fn describe_error(error: &ErrorSummary) -> String {
    let mut out = String::new();
    if let Some(script) = &error.script {
        out.push_str(&where_(script));
        if let Some(line) = error.line {
            out.push_str(&format!(" line {line}"));
        }
    }
    if let Some(state) = &error.sqlstate {
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push_str(&format!("SQLSTATE {state}"));
    }
    if !out.is_empty() {
        out.push_str(": ");
    }
    out.push_str(error.message.trim());
    if let Some(note) = error.note.as_deref().filter(|n| !n.is_empty()) {
        out.push_str(&format!(" ({note})"));
    }
    out
}

/// A script's path as the Job saw it, said the way a person finds the file: its name and
/// the ConfigMap it came from (`/migrations/<configmap>/<file>`).
fn where_(script: &str) -> String {
    let prefix = format!("{MIGRATIONS_ROOT}/");
    if let Some(rest) = script.strip_prefix(&prefix)
        && let Some((cm, file)) = rest.split_once('/')
    {
        let file = file.rsplit('/').next().unwrap_or(file);
        return format!("{file} (ConfigMap {cm})");
    }
    script.rsplit('/').next().unwrap_or(script).to_string()
}

fn tail(text: &str) -> &str {
    if text.len() <= MAX_RAW {
        return text;
    }
    let mut start = text.len() - MAX_RAW;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_becomes_file_line_sqlstate_message() {
        let message = r#"{"outcome":"failed","command":"apply","applied":["1"],"appliedCount":1,"current":"1","error":{"script":"/migrations/orders-migrations/V2__bad.sql","line":3,"sqlstate":"42601","message":"syntax error at or near \"SELEC\""}}"#;
        assert_eq!(
            describe(message).unwrap(),
            "V2__bad.sql (ConfigMap orders-migrations) line 3, SQLSTATE 42601: syntax error at or near \"SELEC\"; applied before it: 1"
        );
        let local = r#"{"outcome":"failed","command":"apply","applied":[],"appliedCount":0,"current":null,"error":{"script":"/tmp/x/vol-0/V2__bad.sql","line":3,"message":"m"}}"#;
        assert_eq!(describe(local).unwrap(), "V2__bad.sql line 3: m");
        let bare = r#"{"outcome":"failed","command":"apply","applied":[],"appliedCount":0,"current":null,"error":{"message":"connection refused"}}"#;
        assert_eq!(describe(bare).unwrap(), "connection refused");
    }

    #[test]
    fn logs_and_nothing() {
        assert_eq!(describe("  \n"), None);
        assert_eq!(
            describe("error: bad flag").unwrap(),
            "the migration container said: error: bad flag"
        );
        let long = "x".repeat(5000);
        assert!(describe(&long).unwrap().len() < 1100);
    }
}
