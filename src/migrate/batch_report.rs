//! The termination message of a batch run (`migrate apply --database-url-env A
//! --database-url-env B ...`): one line per database, in the order given,
//!
//! ```text
//! DATABASE_URL_0 succeeded 3
//! DATABASE_URL_1 failed 2 V3__bad.sql (ConfigMap app-migrations) line 2, SQLSTATE 42601: syntax error ...
//! ```
//!
//! that is `<env name> succeeded|failed <version reached, or -> [<why it failed>]`, where a
//! version equal to the line before's is written `=` (a batch mostly ends at one version,
//! however long it is). A line per database rather than a JSON summary each, so that 100
//! databases still fit in the 4096 bytes Kubernetes keeps: when the lines are too long, the failure details are cut (their
//! end first: the file, line and SQLSTATE lead), then, as a last resort, trailing lines go
//! (the reader treats a database without a line as unreported). Pure.

use super::outcome::TERMINATION_MESSAGE_MAX;

/// Where one database of a batch got to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseResult {
    /// The environment variable that held its URL: the database's name in the report.
    pub env: String,
    pub succeeded: bool,
    /// The version it is at afterwards.
    pub current: Option<String>,
    /// Why it failed, on one line.
    pub detail: Option<String>,
}

const SUCCEEDED: &str = "succeeded";
const FAILED: &str = "failed";
const NO_VERSION: &str = "-";
/// The version of the line before (no version has this character).
const SAME_VERSION: &str = "=";

fn version(r: &DatabaseResult) -> Option<&str> {
    r.current.as_deref().filter(|c| !c.is_empty())
}

fn head(r: &DatabaseResult, before: Option<&DatabaseResult>) -> String {
    let outcome = if r.succeeded { SUCCEEDED } else { FAILED };
    let current = version(r);
    let shown = match current {
        Some(_) if before.and_then(version) == current => SAME_VERSION,
        Some(v) => v,
        None => NO_VERSION,
    };
    format!("{} {outcome} {shown}", r.env)
}

/// Newlines and runs of spaces become one space, so a detail stays on its line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The report, at most [`TERMINATION_MESSAGE_MAX`] bytes.
pub fn render(results: &[DatabaseResult]) -> String {
    render_within(results, TERMINATION_MESSAGE_MAX)
}

fn render_within(results: &[DatabaseResult], max: usize) -> String {
    let heads: Vec<String> = results
        .iter()
        .enumerate()
        .map(|(i, r)| head(r, i.checked_sub(1).map(|b| &results[b])))
        .collect();
    let details: Vec<Option<String>> = results
        .iter()
        .map(|r| {
            r.detail
                .as_deref()
                .map(one_line)
                .filter(|d| !d.is_empty() && !r.succeeded)
        })
        .collect();
    let lines = |details: &[Option<String>]| -> Vec<String> {
        heads
            .iter()
            .zip(details)
            .map(|(h, d)| match d {
                Some(d) => format!("{h} {d}"),
                None => h.clone(),
            })
            .collect()
    };
    let joined = |lines: &[String]| lines.join("\n");
    let text = joined(&lines(&details));
    if text.len() <= max {
        return text;
    }
    // Share what the heads leave among the failures' details, each cut to its share.
    let fixed: usize = heads.iter().map(|h| h.len() + 1).sum();
    let failing = details.iter().filter(|d| d.is_some()).count().max(1);
    let share = max.saturating_sub(fixed) / failing;
    let cut_details: Vec<Option<String>> = details
        .iter()
        .map(|d| {
            d.as_ref()
                .filter(|_| share > 8)
                .map(|d| cut_to_bytes(d, share - 1))
        })
        .collect();
    let mut kept = lines(&cut_details);
    while joined(&kept).len() > max {
        kept.pop();
    }
    joined(&kept)
}

/// The longest prefix of `d` (ending in `...` when cut) of at most `bytes` bytes.
fn cut_to_bytes(d: &str, bytes: usize) -> String {
    if d.len() <= bytes {
        return d.to_string();
    }
    let mut end = bytes.saturating_sub(3);
    while !d.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &d[..end])
}

/// The results in a report; lines that are not results (a log's tail left by a crash) are
/// skipped.
pub fn parse(text: &str) -> Vec<DatabaseResult> {
    let mut before: Option<String> = None;
    text.lines()
        .filter_map(|line| {
            let mut parts = line.trim_end().splitn(4, ' ');
            let env = parts.next().filter(|e| is_env_name(e))?;
            let succeeded = match parts.next()? {
                SUCCEEDED => true,
                FAILED => false,
                _ => return None,
            };
            let current = parts.next()?;
            let detail = parts.next().map(str::to_string).filter(|d| !d.is_empty());
            let current = match current {
                NO_VERSION => None,
                SAME_VERSION => before.clone(),
                v => Some(v.to_string()),
            };
            before = current.clone();
            Some(DatabaseResult {
                env: env.to_string(),
                succeeded,
                current,
                detail,
            })
        })
        .collect()
}

/// A shell-style environment variable name, as `--database-url-env` takes.
pub fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(env: &str, current: Option<&str>) -> DatabaseResult {
        DatabaseResult {
            env: env.into(),
            succeeded: true,
            current: current.map(str::to_string),
            detail: None,
        }
    }

    fn failed(env: &str, detail: &str) -> DatabaseResult {
        DatabaseResult {
            env: env.into(),
            succeeded: false,
            current: Some("2".into()),
            detail: Some(detail.into()),
        }
    }

    #[test]
    fn a_line_per_database_read_back_as_written() {
        let results = vec![
            ok("DATABASE_URL_0", Some("3")),
            failed(
                "DATABASE_URL_1",
                "V3__bad.sql line 2, SQLSTATE 42601: syntax error\nat or near  \"SELEC\"",
            ),
            ok("DATABASE_URL_2", None),
        ];
        let text = render(&results);
        assert_eq!(
            text,
            "DATABASE_URL_0 succeeded 3\n\
             DATABASE_URL_1 failed 2 V3__bad.sql line 2, SQLSTATE 42601: syntax error at or near \"SELEC\"\n\
             DATABASE_URL_2 succeeded -"
        );
        let back = parse(&text);
        assert_eq!(back[0], results[0]);
        assert_eq!(back[2], results[2]);
        assert_eq!(
            back[1].detail.as_deref(),
            Some("V3__bad.sql line 2, SQLSTATE 42601: syntax error at or near \"SELEC\"")
        );
    }

    #[test]
    fn a_hundred_failures_fit_and_keep_where_they_failed() {
        let results: Vec<DatabaseResult> = (0..100)
            .map(|i| {
                failed(
                    &format!("DATABASE_URL_{i}"),
                    &format!("V3__bad.sql line 2, SQLSTATE 42601: {}", "é".repeat(500)),
                )
            })
            .collect();
        let text = render(&results);
        assert!(text.len() <= TERMINATION_MESSAGE_MAX, "{}", text.len());
        let back = parse(&text);
        assert_eq!(back.len(), 100);
        assert!(back.iter().all(|r| !r.succeeded));
        assert!(
            back[99]
                .detail
                .as_deref()
                .unwrap()
                .starts_with("V3__bad.sql "),
            "{:?}",
            back[99]
        );
        // One long failure among successes keeps more of its detail.
        let mut mixed: Vec<DatabaseResult> = (0..99)
            .map(|i| ok(&format!("DATABASE_URL_{i}"), Some("3")))
            .collect();
        mixed.push(failed("DATABASE_URL_99", &"x".repeat(10_000)));
        let text = render(&mixed);
        assert!(text.len() <= TERMINATION_MESSAGE_MAX);
        let back = parse(&text);
        assert_eq!(back.len(), 100);
        assert!(back[99].detail.as_ref().unwrap().len() > 1000);
    }

    /// Locks "100 members with a long version all report": before versions were written
    /// once, 100 lines of a 40-character version did not fit and the last ones counted as
    /// unreported (failed).
    #[test]
    fn a_hundred_successes_at_a_long_version_all_fit() {
        let long = "2026.12.01.1234567890.1234567890.12345678";
        let mut results: Vec<DatabaseResult> = (0..100)
            .map(|i| ok(&format!("DATABASE_URL_{i}"), Some(long)))
            .collect();
        results[50].current = Some("7".into());
        results[51].current = None;
        let text = render(&results);
        assert!(text.len() <= TERMINATION_MESSAGE_MAX, "{}", text.len());
        assert_eq!(parse(&text), results);
    }

    #[test]
    fn lines_that_are_not_results_are_skipped() {
        let text = "thread 'main' panicked at src/x.rs\nDATABASE_URL_0 succeeded 3\n\
                    DATABASE_URL_1 exploded 3\nDATABASE_URL_2 failed -\n";
        let back = parse(text);
        assert_eq!(back.len(), 2);
        assert_eq!(back[0], ok("DATABASE_URL_0", Some("3")));
        assert_eq!(
            back[1],
            DatabaseResult {
                env: "DATABASE_URL_2".into(),
                succeeded: false,
                current: None,
                detail: None
            }
        );
        assert!(is_env_name("DATABASE_URL_0") && is_env_name("_x"));
        assert!(!is_env_name("0X") && !is_env_name("A-B") && !is_env_name(""));
    }

    #[test]
    fn too_many_heads_drop_trailing_lines_only() {
        let results: Vec<DatabaseResult> = (0..10)
            .map(|i| ok(&format!("DATABASE_URL_{i}"), Some("3")))
            .collect();
        let text = render_within(&results, 60);
        assert!(text.len() <= 60);
        assert_eq!(parse(&text), results[..2]);
    }
}
