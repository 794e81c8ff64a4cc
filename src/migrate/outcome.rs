//! A run's outcome in a form machines read: the error of a failed command (file, line,
//! SQLSTATE, message) and the compact summary a migration Job leaves in its termination
//! message, where the operator reads why it failed.

use serde::{Deserialize, Serialize};

use super::engine::{Applied, MigrateError};
use super::plan::Problem;

/// Kubernetes keeps at most 4096 bytes of a container's termination message.
pub const TERMINATION_MESSAGE_MAX: usize = 4096;

/// Why a command failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorSummary {
    /// The migration file, when one is to blame.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub script: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sqlstate: Option<String>,
    pub message: String,
    /// What else is true now (what stays applied, what blocks).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub note: Option<String>,
    /// Every validation problem, each naming its file.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub problems: Vec<Problem>,
}

impl ErrorSummary {
    pub fn from_error(e: &MigrateError) -> ErrorSummary {
        let mut summary = ErrorSummary {
            script: None,
            line: None,
            sqlstate: None,
            message: e.to_string(),
            note: None,
            problems: Vec::new(),
        };
        match e {
            MigrateError::Failed(f) => {
                summary.script = Some(f.script.clone());
                summary.line = f.line;
                summary.sqlstate = f.sqlstate.clone();
                summary.message = f.message.clone();
                summary.note = f.note.as_deref().map(|n| n.trim().to_string());
            }
            MigrateError::Db { source, .. } => {
                summary.sqlstate = source.code().map(|c| c.code().to_string());
            }
            MigrateError::Validation(problems) => {
                summary.script = problems.first().map(|p| p.script.clone());
                summary.problems = problems.clone();
            }
            _ => {}
        }
        summary
    }
}

/// The termination message: outcome, what was applied, and on failure where and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// `succeeded` or `failed`.
    pub outcome: String,
    pub command: String,
    /// Versions applied by this run (a repeatable by its script), oldest first; only the last
    /// ones when there are too many to fit, with `appliedCount` saying how many in all.
    pub applied: Vec<String>,
    pub applied_count: usize,
    /// The version the database is at afterwards.
    pub current: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<ErrorSummary>,
}

impl Summary {
    pub fn new(
        command: &str,
        applied: &[Applied],
        current: Option<String>,
        error: Option<&MigrateError>,
    ) -> Summary {
        Summary {
            outcome: if error.is_some() {
                "failed"
            } else {
                "succeeded"
            }
            .to_string(),
            command: command.to_string(),
            applied: applied
                .iter()
                .map(|a| a.version.clone().unwrap_or_else(|| a.script.clone()))
                .collect(),
            applied_count: applied.len(),
            current,
            error: error.map(|e| {
                // The full list and note are in the log; the summary says where and why.
                let mut s = ErrorSummary::from_error(e);
                s.problems.clear();
                s
            }),
        }
    }

    /// Compact JSON of at most [`TERMINATION_MESSAGE_MAX`] bytes: when it would be longer, the
    /// message and note are shortened first, then only the last applied versions are kept.
    pub fn to_termination_message(&self) -> String {
        let mut s = self.clone();
        for step in 0.. {
            let text = serde_json::to_string(&s).unwrap_or_default();
            if text.len() <= TERMINATION_MESSAGE_MAX || step > 4 {
                return text;
            }
            match (step, s.error.as_mut()) {
                (0, Some(e)) => {
                    e.note = None;
                    e.message = shorten(&e.message, 1500);
                }
                (1, Some(e)) => e.message = shorten(&e.message, 300),
                (2, _) | (0 | 1, None) => {
                    let keep = s.applied.len().min(20);
                    s.applied.drain(..s.applied.len() - keep);
                }
                _ => s.applied.clear(),
            }
        }
        unreachable!("the loop returns")
    }
}

fn shorten(s: &str, chars: usize) -> String {
    match s.char_indices().nth(chars) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::engine::Failure;

    fn applied(n: usize) -> Vec<Applied> {
        (1..=n)
            .map(|i| Applied {
                version: Some(format!("{i}.0.{i}")),
                description: "d".into(),
                script: format!("V{i}__d.sql"),
                execution_time_ms: 1,
                in_transaction: true,
            })
            .collect()
    }

    fn failed(message: String) -> MigrateError {
        MigrateError::Failed(Box::new(Failure {
            script: "db/V3__c.sql".into(),
            line: Some(4),
            sqlstate: Some("42601".into()),
            message,
            note: Some("\n  it ran outside a transaction".into()),
        }))
    }

    #[test]
    fn failure_summary_names_script_line_sqlstate() {
        let e = failed("ERROR: syntax error".into());
        let text = Summary::new("apply", &applied(2), Some("1.0.1".into()), Some(&e))
            .to_termination_message();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["outcome"], "failed");
        assert_eq!(v["applied"], serde_json::json!(["1.0.1", "2.0.2"]));
        assert_eq!(v["error"]["script"], "db/V3__c.sql");
        assert_eq!(v["error"]["line"], 4);
        assert_eq!(v["error"]["sqlstate"], "42601");
        assert_eq!(v["error"]["note"], "it ran outside a transaction");
    }

    #[test]
    fn termination_message_fits_in_4_kib_and_keeps_where() {
        let e = failed("x".repeat(10_000));
        let text = Summary::new("apply", &applied(2000), None, Some(&e)).to_termination_message();
        assert!(text.len() <= TERMINATION_MESSAGE_MAX, "{}", text.len());
        let s: Summary = serde_json::from_str(&text).unwrap();
        assert_eq!(s.applied_count, 2000);
        assert_eq!(s.applied.last().unwrap(), "2000.0.2000");
        let err = s.error.unwrap();
        assert_eq!(
            (err.script.as_deref(), err.line),
            (Some("db/V3__c.sql"), Some(4))
        );
        assert!(err.message.starts_with("xxx"));
        // Small summaries are left whole.
        let ok = Summary::new("apply", &applied(3), Some("3.0.3".into()), None);
        let back: Summary = serde_json::from_str(&ok.to_termination_message()).unwrap();
        assert_eq!(back, ok);
    }
}
