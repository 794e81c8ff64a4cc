//! The pure heart of the engine: from the files and the history table, each migration's state
//! (as Flyway's `info` names them), what `validate` objects to, and what `apply` would run.

use std::collections::BTreeMap;

use serde::Serialize;

use super::history::{AppliedRow, stored_description};
use super::source::{Kind, MigrationFile};
use super::version::Version;

/// A migration's state, with Flyway's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum State {
    Pending,
    Success,
    Failed,
    /// A repeatable whose file changed since it was applied: it will run again.
    Outdated,
    /// An earlier application of a repeatable that has since been re-applied.
    Superseded,
    /// Applied, but its file is gone.
    Missing,
    /// Applied, newer than every file (another branch or a newer deployment applied it).
    Future,
    /// Not applied and older than the latest applied version: skipped unless out-of-order.
    Ignored,
    Baseline,
    #[serde(rename = "Below Baseline")]
    BelowBaseline,
    #[serde(rename = "Above Target")]
    AboveTarget,
    /// Marked deleted by `repair`.
    Deleted,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "Pending",
            State::Success => "Success",
            State::Failed => "Failed",
            State::Outdated => "Outdated",
            State::Superseded => "Superseded",
            State::Missing => "Missing",
            State::Future => "Future",
            State::Ignored => "Ignored",
            State::Baseline => "Baseline",
            State::BelowBaseline => "Below Baseline",
            State::AboveTarget => "Above Target",
            State::Deleted => "Deleted",
        }
    }
}

/// One line of `info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub version: Option<String>,
    pub description: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub script: String,
    pub checksum: Option<i32>,
    pub installed_rank: Option<i32>,
    /// RFC 3339, with the offset.
    pub installed_on: Option<String>,
    #[serde(rename = "executionTimeMs")]
    pub execution_time: Option<i32>,
    pub state: State,
    /// Index into the files, when there is one.
    #[serde(skip)]
    pub file: Option<usize>,
}

/// What `validate` refuses, with the file and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Problem {
    pub script: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.script, self.message)
    }
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub target: Option<Version>,
    pub out_of_order: bool,
}

/// Everything the engine decides before touching the database.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub entries: Vec<Entry>,
    pub problems: Vec<Problem>,
    /// Files to apply, in order: versioned by version, then repeatables by description.
    pub pending: Vec<usize>,
    /// The highest successfully applied version (or baseline).
    pub current: Option<Version>,
    /// Whether `--target` names a version that exists as a file or in the history.
    pub target_known: bool,
}

/// The migration's description and checksum as the history should hold them; repeatables are
/// compared after placeholders, so the caller passes the effective checksum of each file.
pub fn plan(
    files: &[MigrationFile],
    checksums: &[i32],
    history: &[AppliedRow],
    options: &Options,
) -> Plan {
    let mut plan = Plan::default();
    let mut deleted = vec![false; history.len()];
    // Latest live row per version, per repeatable description; earlier repeatable rows.
    let mut by_version: BTreeMap<VersionKey, usize> = BTreeMap::new();
    let mut by_description: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut baseline: Option<Version> = None;

    for (i, row) in history.iter().enumerate() {
        let version = row.version.as_deref().and_then(|v| Version::parse(v).ok());
        match (row.kind.as_str(), &version) {
            ("SCHEMA", _) => {}
            ("DELETE", Some(v)) => {
                if let Some(j) = by_version.remove(&VersionKey(v.clone())) {
                    deleted[j] = true;
                }
            }
            ("DELETE", None) => {
                if let Some(rows) = by_description.get_mut(row.description.as_str()) {
                    for j in rows.drain(..) {
                        deleted[j] = true;
                    }
                }
            }
            ("BASELINE", Some(v)) => {
                baseline = Some(v.clone());
                by_version.insert(VersionKey(v.clone()), i);
            }
            (_, Some(v)) => {
                by_version.insert(VersionKey(v.clone()), i);
            }
            (_, None) => by_description
                .entry(row.description.as_str())
                .or_default()
                .push(i),
        }
    }

    plan.current = by_version
        .iter()
        .filter(|(_, i)| history[**i].success)
        .map(|(v, _)| v.0.clone())
        .max();
    let max_file_version = files.iter().filter_map(MigrationFile::version).max();
    plan.target_known = options.target.as_ref().is_some_and(|t| {
        files.iter().any(|f| f.version() == Some(t))
            || by_version.contains_key(&VersionKey(t.clone()))
    });

    // Rows shown as they are: schema creation, deletions.
    for (i, row) in history.iter().enumerate() {
        if row.kind == "SCHEMA" {
            plan.entries.push(entry_from_row(row, State::Success, None));
        } else if deleted[i] {
            plan.entries.push(entry_from_row(row, State::Deleted, None));
        }
    }

    let mut matched_rows = vec![false; history.len()];
    for (fi, file) in files.iter().enumerate() {
        let Kind::Versioned(version) = &file.kind else {
            continue;
        };
        let key = VersionKey(version.clone());
        if let Some(&ri) = by_version.get(&key) {
            matched_rows[ri] = true;
            let row = &history[ri];
            if row.kind == "BASELINE" {
                plan.entries
                    .push(entry_from_row(row, State::Baseline, Some(fi)));
                continue;
            }
            let state = if row.success {
                State::Success
            } else {
                State::Failed
            };
            plan.entries.push(entry_from_row(row, state, Some(fi)));
            check_applied(&mut plan.problems, file, checksums[fi], row);
            continue;
        }
        let state = if baseline.as_ref().is_some_and(|b| version <= b) {
            State::BelowBaseline
        } else if options.target.as_ref().is_some_and(|t| version > t) {
            State::AboveTarget
        } else if plan.current.as_ref().is_some_and(|c| version < c) {
            if options.out_of_order {
                State::Pending
            } else {
                plan.problems.push(Problem {
                    script: file.script.clone(),
                    message: format!(
                        "version {version} is not applied but is older than the applied version {}; \
                         give it a version above {} (rename the file), or apply with --out-of-order",
                        plan.current.as_ref().map(Version::to_string).unwrap_or_default(),
                        plan.current.as_ref().map(Version::to_string).unwrap_or_default(),
                    ),
                });
                State::Ignored
            }
        } else {
            State::Pending
        };
        if state == State::Pending {
            plan.pending.push(fi);
        }
        plan.entries
            .push(entry_from_file(file, checksums[fi], state, fi));
    }

    // Applied versions without a file.
    for (key, &ri) in &by_version {
        let row = &history[ri];
        if matched_rows[ri] || row.kind == "BASELINE" {
            if !matched_rows[ri] {
                plan.entries
                    .push(entry_from_row(row, State::Baseline, None));
            }
            continue;
        }
        let future = max_file_version.is_none_or(|m| &key.0 > m);
        if !row.success {
            plan.entries.push(entry_from_row(row, State::Failed, None));
            plan.problems.push(failed_problem(row));
        } else if future {
            plan.entries.push(entry_from_row(row, State::Future, None));
        } else {
            plan.entries.push(entry_from_row(row, State::Missing, None));
            plan.problems.push(Problem {
                script: row.script.clone(),
                message: format!(
                    "version {} is applied but its file is missing; restore the file, \
                     or run `servicedb migrate repair` to mark it deleted",
                    key.0
                ),
            });
        }
    }
    sort_versioned(&mut plan.entries);

    // Repeatables: each file against the latest live row of its description.
    let mut pending_repeatables = Vec::new();
    for (fi, file) in files.iter().enumerate() {
        if file.kind != Kind::Repeatable {
            continue;
        }
        let rows = by_description
            .remove(stored_description(&file.description).as_ref())
            .unwrap_or_default();
        for &ri in rows.iter().rev().skip(1).rev() {
            plan.entries
                .push(entry_from_row(&history[ri], State::Superseded, Some(fi)));
        }
        match rows.last().map(|&ri| &history[ri]) {
            None => {
                pending_repeatables.push(fi);
                plan.entries
                    .push(entry_from_file(file, checksums[fi], State::Pending, fi));
            }
            Some(row) if !row.success => {
                plan.entries
                    .push(entry_from_row(row, State::Failed, Some(fi)));
                plan.problems.push(failed_problem(row));
            }
            Some(row) if row.checksum == Some(checksums[fi]) => {
                plan.entries
                    .push(entry_from_row(row, State::Success, Some(fi)));
            }
            Some(row) => {
                plan.entries
                    .push(entry_from_row(row, State::Superseded, Some(fi)));
                pending_repeatables.push(fi);
                plan.entries
                    .push(entry_from_file(file, checksums[fi], State::Outdated, fi));
            }
        }
    }
    for (description, rows) in by_description {
        let Some(&last) = rows.last() else { continue };
        let row = &history[last];
        plan.entries.push(entry_from_row(row, State::Missing, None));
        plan.problems.push(Problem {
            script: row.script.clone(),
            message: format!(
                "repeatable migration {description:?} is applied but its file is missing; restore the file, \
                 or run `servicedb migrate repair` to mark it deleted"
            ),
        });
    }
    plan.pending.extend(pending_repeatables);
    plan
}

/// Versions compared numerically, as map keys.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct VersionKey(Version);

fn check_applied(
    problems: &mut Vec<Problem>,
    file: &MigrationFile,
    checksum: i32,
    row: &AppliedRow,
) {
    if !row.success {
        problems.push(failed_problem(row));
        return;
    }
    if row.kind != "SQL" {
        problems.push(Problem {
            script: file.script.clone(),
            message: format!(
                "type mismatch for version {}: applied as {}, the file is SQL; \
                 run `servicedb migrate repair` if the file replaces it deliberately",
                row.version.as_deref().unwrap_or(""),
                row.kind
            ),
        });
    }
    if row.checksum.is_some_and(|c| c != checksum) {
        problems.push(Problem {
            script: file.script.clone(),
            message: format!(
                "checksum mismatch for version {}: applied {}, file now {}. An applied migration must not change: \
                 revert the edit and put the change in a new version (or, for a deliberate cosmetic edit, \
                 run `servicedb migrate repair`)",
                row.version.as_deref().unwrap_or(""),
                row.checksum.unwrap_or_default(),
                checksum
            ),
        });
    }
    if row.description != stored_description(&file.description) {
        problems.push(Problem {
            script: file.script.clone(),
            message: format!(
                "description mismatch for version {}: applied {:?}, file says {:?}; \
                 rename the file back, or run `servicedb migrate repair`",
                row.version.as_deref().unwrap_or(""),
                row.description,
                file.description
            ),
        });
    }
}

fn failed_problem(row: &AppliedRow) -> Problem {
    Problem {
        script: row.script.clone(),
        message: format!(
            "{} failed on {} outside a transaction, so part of it may have run; {REPAIR_ADVICE}",
            what_failed(row.version.as_deref(), &row.description),
            row.installed_on
        ),
    }
}

const REPAIR_ADVICE: &str =
    "undo what it did by hand, then run `servicedb migrate repair` to remove the failed row";

fn what_failed(version: Option<&str>, description: &str) -> String {
    match version {
        Some(v) => format!("version {v}"),
        None => format!("repeatable migration {description:?}"),
    }
}

/// Said at once when a migration outside a transaction fails: which of its statements had
/// already run (they stay applied), and that its failed row now blocks every run until repair.
pub fn partly_applied_note(
    version: Option<&str>,
    description: &str,
    ran: &[crate::migrate::sql_split::Statement<'_>],
) -> String {
    let ran = match ran.len() {
        0 => "no statement of it had run before the failing one".to_string(),
        n => format!(
            "{n} statement{} before the failing one had already run and stay applied:\n{}",
            if n == 1 { "" } else { "s" },
            ran.iter()
                .map(|s| format!(
                    "    line {}: {}",
                    s.line,
                    s.sql.lines().next().unwrap_or("")
                ))
                .collect::<Vec<_>>()
                .join("\n")
        ),
    };
    format!(
        "\n  it ran outside a transaction: {ran}\n  {} is now recorded as failed and blocks every run; {REPAIR_ADVICE}",
        what_failed(version, description)
    )
}

fn entry_from_row(row: &AppliedRow, state: State, file: Option<usize>) -> Entry {
    Entry {
        version: row.version.clone(),
        description: row.description.clone(),
        kind: row.kind.clone(),
        script: row.script.clone(),
        checksum: row.checksum,
        installed_rank: Some(row.installed_rank),
        installed_on: Some(row.installed_on.clone()),
        execution_time: Some(row.execution_time),
        state,
        file,
    }
}

fn entry_from_file(file: &MigrationFile, checksum: i32, state: State, index: usize) -> Entry {
    Entry {
        version: file.version().map(Version::to_string),
        description: file.description.clone(),
        kind: "SQL".to_string(),
        script: file.script.clone(),
        checksum: Some(checksum),
        installed_rank: None,
        installed_on: None,
        execution_time: None,
        state,
        file: Some(index),
    }
}

/// Schema rows first, then versions in order (a deleted row before what replaced it).
fn sort_versioned(entries: &mut [Entry]) {
    // Each version parsed once, not once per comparison: with hundreds of migrations this
    // sort was most of what planning a run with nothing to do cost.
    entries.sort_by_cached_key(|e| {
        (
            e.kind != "SCHEMA",
            e.version.as_deref().and_then(|v| Version::parse(v).ok()),
            e.installed_rank.unwrap_or(i32::MAX),
        )
    });
}

/// The version a database is at (highest successful version or baseline), from its history alone.
pub fn current_version(history: &[AppliedRow]) -> Option<Version> {
    plan(&[], &[], history, &Options::default()).current
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn file(script: &str, sql: &str) -> MigrationFile {
        let (kind, description) = if let Some(rest) = script.strip_prefix("R__") {
            (
                Kind::Repeatable,
                rest.trim_end_matches(".sql").replace('_', " "),
            )
        } else {
            let stem = script.trim_start_matches('V').trim_end_matches(".sql");
            let (v, d) = stem.split_once("__").unwrap();
            (
                Kind::Versioned(Version::parse(v).unwrap()),
                d.replace('_', " "),
            )
        };
        MigrationFile {
            script: script.into(),
            path: PathBuf::from(script),
            kind,
            description,
            sql: sql.into(),
            checksum: super::super::checksum::checksum(sql),
            execute_in_transaction: None,
        }
    }

    fn row(rank: i32, f: &MigrationFile, success: bool) -> AppliedRow {
        AppliedRow {
            installed_rank: rank,
            version: f.version().map(|v| v.to_string()),
            description: f.description.clone(),
            kind: "SQL".into(),
            script: f.script.clone(),
            checksum: Some(f.checksum),
            installed_by: "u".into(),
            installed_on: "2026-01-01 00:00:00".into(),
            execution_time: 1,
            success,
        }
    }

    fn run(files: &[MigrationFile], history: &[AppliedRow], options: &Options) -> Plan {
        let sums: Vec<i32> = files.iter().map(|f| f.checksum).collect();
        plan(files, &sums, history, options)
    }

    fn states(p: &Plan) -> Vec<(String, &'static str)> {
        p.entries
            .iter()
            .map(|e| (e.script.clone(), e.state.as_str()))
            .collect()
    }

    #[test]
    fn empty_database_has_everything_pending_in_order() {
        let files = [
            file("V1__a.sql", "1"),
            file("V1_10__c.sql", "3"),
            file("V1_2__b.sql", "2"),
            file("R__v.sql", "v"),
        ];
        let mut sorted = files.to_vec();
        sorted.sort_by(|a, b| match (a.version(), b.version()) {
            (Some(x), Some(y)) => x.cmp(y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            _ => std::cmp::Ordering::Equal,
        });
        let p = run(&sorted, &[], &Options::default());
        let order: Vec<_> = p
            .pending
            .iter()
            .map(|&i| sorted[i].script.as_str())
            .collect();
        assert_eq!(
            order,
            ["V1__a.sql", "V1_2__b.sql", "V1_10__c.sql", "R__v.sql"]
        );
        assert!(p.problems.is_empty());
        assert_eq!(p.current, None);
    }

    #[test]
    fn fully_applied_has_nothing_pending() {
        let files = [
            file("V1__a.sql", "1"),
            file("V2__b.sql", "2"),
            file("R__v.sql", "v"),
        ];
        let history: Vec<_> = files
            .iter()
            .enumerate()
            .map(|(i, f)| row(i as i32 + 1, f, true))
            .collect();
        let p = run(&files, &history, &Options::default());
        assert!(p.pending.is_empty());
        assert!(p.problems.is_empty());
        assert_eq!(p.current.as_ref().unwrap().to_string(), "2");
        assert!(states(&p).iter().all(|(_, s)| *s == "Success"));
    }

    #[test]
    fn changed_checksum_and_description_are_problems_naming_the_file() {
        let v1 = file("V1__a.sql", "1");
        let edited = file("V1__a.sql", "1 edited");
        let renamed = file("V1__b.sql", "1");
        let h = [row(1, &v1, true)];
        let p = run(&[edited], &h, &Options::default());
        assert_eq!(p.problems.len(), 1);
        assert!(
            p.problems[0]
                .to_string()
                .starts_with("V1__a.sql: checksum mismatch")
        );
        let p = run(&[renamed], &h, &Options::default());
        assert!(p.problems[0].message.contains("description mismatch"));
    }

    #[test]
    fn missing_future_and_failed() {
        let (v1, v2, v3) = (
            file("V1__a.sql", "1"),
            file("V2__b.sql", "2"),
            file("V3__c.sql", "3"),
        );
        let h = [row(1, &v1, true), row(2, &v2, true), row(3, &v3, true)];
        // V2's file is gone: Missing (problem); V3 is beyond every file: Future (fine).
        let p = run(std::slice::from_ref(&v1), &h[..2], &Options::default());
        assert_eq!(
            states(&p),
            [
                ("V1__a.sql".into(), "Success"),
                ("V2__b.sql".into(), "Future")
            ]
        );
        assert!(p.problems.is_empty());
        let p = run(&[v1.clone(), v3.clone()], &h, &Options::default());
        assert!(states(&p).contains(&("V2__b.sql".into(), "Missing")));
        assert_eq!(p.problems.len(), 1);
        // A failed row blocks.
        let p = run(
            &[v1.clone(), v2.clone()],
            &[row(1, &v1, true), row(2, &v2, false)],
            &Options::default(),
        );
        assert!(states(&p).contains(&("V2__b.sql".into(), "Failed")));
        assert!(p.problems[0].message.contains("repair"));
        assert!(p.pending.is_empty());
    }

    #[test]
    fn older_unapplied_version_is_ignored_unless_out_of_order() {
        let (v1, v1_5, v2) = (
            file("V1__a.sql", "1"),
            file("V1_5__x.sql", "x"),
            file("V2__b.sql", "2"),
        );
        let files = [v1.clone(), v1_5.clone(), v2.clone()];
        let h = [row(1, &v1, true), row(2, &v2, true)];
        let p = run(&files, &h, &Options::default());
        assert!(states(&p).contains(&("V1_5__x.sql".into(), "Ignored")));
        assert!(p.problems[0].message.contains("--out-of-order"));
        assert!(p.pending.is_empty());
        let p = run(
            &files,
            &h,
            &Options {
                out_of_order: true,
                ..Options::default()
            },
        );
        assert!(p.problems.is_empty());
        assert_eq!(p.pending, [1]);
    }

    #[test]
    fn target_stops_versioned_but_not_repeatables() {
        let files = [
            file("V1__a.sql", "1"),
            file("V2__b.sql", "2"),
            file("V3__c.sql", "3"),
            file("R__v.sql", "v"),
        ];
        let options = Options {
            target: Some(Version::parse("2").unwrap()),
            ..Options::default()
        };
        let p = run(&files, &[], &options);
        assert_eq!(p.pending, [0, 1, 3]);
        assert!(states(&p).contains(&("V3__c.sql".into(), "Above Target")));
        assert!(p.target_known);
        let options = Options {
            target: Some(Version::parse("9").unwrap()),
            ..Options::default()
        };
        assert!(!run(&files, &[], &options).target_known);
    }

    #[test]
    fn repeatables_rerun_only_when_changed() {
        let old = file("R__v.sql", "v1");
        let new = file("R__v.sql", "v2");
        let h = [row(1, &old, true)];
        assert!(
            run(std::slice::from_ref(&old), &h, &Options::default())
                .pending
                .is_empty()
        );
        let p = run(std::slice::from_ref(&new), &h, &Options::default());
        assert_eq!(p.pending, [0]);
        assert_eq!(
            states(&p),
            [
                ("R__v.sql".into(), "Superseded"),
                ("R__v.sql".into(), "Outdated")
            ]
        );
        // After the re-run the old row is superseded and the new one current.
        let h2 = [row(1, &old, true), row(2, &new, true)];
        let p = run(std::slice::from_ref(&new), &h2, &Options::default());
        assert!(p.pending.is_empty());
        assert_eq!(
            states(&p),
            [
                ("R__v.sql".into(), "Superseded"),
                ("R__v.sql".into(), "Success")
            ]
        );
    }

    #[test]
    fn baseline_hides_older_versions_and_counts_as_current() {
        let files = [
            file("V1__a.sql", "1"),
            file("V2__b.sql", "2"),
            file("V3__c.sql", "3"),
        ];
        let baseline = AppliedRow {
            installed_rank: 1,
            version: Some("2".into()),
            description: "<< Flyway Baseline >>".into(),
            kind: "BASELINE".into(),
            script: "<< Flyway Baseline >>".into(),
            checksum: None,
            installed_by: "u".into(),
            installed_on: "t".into(),
            execution_time: 0,
            success: true,
        };
        let p = run(&files, &[baseline], &Options::default());
        assert_eq!(p.pending, [2]);
        assert!(p.problems.is_empty());
        assert_eq!(p.current.as_ref().unwrap().to_string(), "2");
        assert_eq!(
            states(&p),
            [
                ("V1__a.sql".into(), "Below Baseline"),
                ("<< Flyway Baseline >>".into(), "Baseline"),
                ("V3__c.sql".into(), "Pending")
            ]
        );
    }

    #[test]
    fn repair_delete_rows_clear_missing() {
        let (v1, v2, v3) = (
            file("V1__a.sql", "1"),
            file("V2__b.sql", "2"),
            file("V3__c.sql", "3"),
        );
        let mut del = row(4, &v2, true);
        del.kind = "DELETE".into();
        let h = [row(1, &v1, true), row(2, &v2, true), row(3, &v3, true), del];
        let p = run(&[v1, v3], &h, &Options::default());
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        assert!(states(&p).contains(&("V2__b.sql".into(), "Deleted")));
    }

    /// Planning is a pure function: the same inputs give the same plan.
    #[test]
    fn planning_is_deterministic() {
        let files = [file("V1__a.sql", "1"), file("R__v.sql", "v")];
        let h = [row(1, &files[0], true)];
        let a = run(&files, &h, &Options::default());
        let b = run(&files, &h, &Options::default());
        assert_eq!(a.entries, b.entries);
        assert_eq!(a.pending, b.pending);
    }
}
