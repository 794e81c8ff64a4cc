//! `--json` always prints the result, also on failure (what was applied, then the error), in
//! one key style (camelCase), with RFC 3339 timestamps and durations named with their unit;
//! the termination log summarises the run for the operator.

mod migrate_case;
mod support;

use serde_json::Value;

use migrate_case::*;

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", text(&out.stdout)))
}

/// Every object key in the document, recursively.
fn keys(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                out.push(k.clone());
                keys(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| keys(v, out)),
        _ => {}
    }
}

#[track_caller]
fn assert_camel_case(v: &Value) {
    let mut all = Vec::new();
    keys(v, &mut all);
    let bad: Vec<_> = all
        .iter()
        .filter(|k| k.contains('_') || k.starts_with(|c: char| c.is_ascii_uppercase()))
        .collect();
    assert!(bad.is_empty(), "not camelCase: {bad:?} in {v}");
}

fn is_rfc3339_with_zone(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 25
        && b[4] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && (b[19] == b'+' || b[19] == b'-')
        && b[22] == b':'
        && humantime::parse_rfc3339_weak(&s[..19].replace('T', " ")).is_ok()
}

fn broken_set(case: &Case) {
    case.write("V1__a.sql", "CREATE TABLE a (id int);\n")
        .write("V2__b.sql", "CREATE TABLE b (id int);\n")
        .write(
            "V3__c.sql",
            "CREATE TABLE c (id int);\nCREATE TABLEE oops (id int);\n",
        );
}

#[tokio::test]
async fn apply_json_on_failure_says_what_was_applied_then_the_error() {
    let case = Case::new("jsonfail").await;
    broken_set(&case);
    let out = case.migrate("apply", &["--json"]);
    assert_failed(&out);
    let v = json(&out);
    assert_camel_case(&v);
    assert_eq!(v["outcome"], "failed", "{v}");
    let applied: Vec<&str> = v["applied"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["script"].as_str().unwrap())
        .collect();
    assert_eq!(applied, ["V1__a.sql", "V2__b.sql"]);
    assert!(v["applied"][0]["executionTimeMs"].is_i64(), "{v}");
    assert_eq!(v["current"], "2");
    let error = &v["error"];
    assert!(
        error["script"].as_str().unwrap().ends_with("V3__c.sql"),
        "{v}"
    );
    assert_eq!(error["line"], 2);
    assert_eq!(error["sqlstate"], "42601");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .starts_with("ERROR: syntax error at or near \"TABLEE\""),
        "{v}"
    );

    // Success has the same shape.
    case.write("V3__c.sql", "CREATE TABLE c (id int);\n");
    let out = case.migrate("apply", &["--json"]);
    assert_ok(&out);
    let v = json(&out);
    assert_camel_case(&v);
    assert_eq!(v["outcome"], "succeeded");
    assert_eq!(v["applied"][0]["script"], "V3__c.sql");
    assert_eq!(v["current"], "3");
}

#[tokio::test]
async fn info_validate_repair_baseline_json_also_on_failure() {
    let case = Case::new("jsonall").await;
    case.write("V1__first.sql", "SELECT 1;\n");
    assert_ok(&case.migrate("apply", &[]));
    case.write("V2__second.sql", "SELECT 2;\n");

    let out = case.migrate("info", &["--json"]);
    assert_ok(&out);
    let v = json(&out);
    assert_camel_case(&v);
    let first = &v["migrations"][0];
    assert_eq!(first["installedRank"], 1, "{v}");
    assert!(first["executionTimeMs"].is_i64(), "{v}");
    let on = first["installedOn"].as_str().unwrap();
    assert!(is_rfc3339_with_zone(on), "installedOn {on:?}");

    // Pending is not a validation error (README says why); it is listed.
    let out = case.migrate("validate", &["--json"]);
    assert_ok(&out);
    let v = json(&out);
    assert_eq!(
        (v["outcome"].as_str(), v["valid"].as_bool()),
        (Some("succeeded"), Some(true))
    );
    assert_eq!(v["pending"], serde_json::json!(["V2__second.sql"]));

    case.write("V1__first.sql", "SELECT 'edited';\n");
    let out = case.migrate("validate", &["--json"]);
    assert_failed(&out);
    let v = json(&out);
    assert_camel_case(&v);
    assert_eq!(v["outcome"], "failed");
    assert_eq!(v["error"]["problems"][0]["script"], "V1__first.sql");
    assert!(
        v["error"]["problems"][0]["message"]
            .as_str()
            .unwrap()
            .contains("checksum mismatch")
    );

    let out = case.migrate("repair", &["--json"]);
    assert_ok(&out);
    let v = json(&out);
    assert_camel_case(&v);
    assert_eq!(v["realigned"], serde_json::json!(["V1__first.sql"]));

    // Baseline refuses a database with history: still JSON.
    let out = case
        .command(&["migrate", "baseline", "--json"])
        .output()
        .unwrap();
    assert_failed(&out);
    let v = json(&out);
    assert_eq!(v["outcome"], "failed");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("baseline is only for")
    );

    // A server that cannot be reached: still JSON.
    let dir = case.dir.path().to_str().unwrap().to_string();
    let out = case
        .command(&["migrate", "apply", "--json", "--dir", &dir])
        .env(
            "DATABASE_URL",
            "postgresql://nobody@127.0.0.1:1/x?sslmode=disable",
        )
        .output()
        .unwrap();
    assert_failed(&out);
    let v = json(&out);
    assert_eq!(
        (v["outcome"].as_str(), v["applied"].as_array().map(Vec::len)),
        (Some("failed"), Some(0))
    );
    assert!(!v["error"]["message"].as_str().unwrap().is_empty());
}

/// A bad COPY row's line and SQLSTATE in the JSON error.
#[tokio::test]
async fn copy_error_in_json() {
    let case = Case::new("jsoncopy").await;
    case.write(
        "V1__seed.sql",
        "CREATE TABLE t (a int);\nCOPY t (a) FROM stdin;\n1\n2\nthree\n\\.\n",
    );
    let out = case.migrate("apply", &["--json"]);
    assert_failed(&out);
    let v = json(&out);
    assert_eq!(v["error"]["line"], 5, "{v}");
    assert_eq!(v["error"]["sqlstate"], "22P02", "{v}");
}

/// The summary a migration Job leaves for the operator (SERVICEDB_TERMINATION_LOG, which the
/// Job points at /dev/termination-log): written on success and on failure, at most 4 KiB.
#[tokio::test]
async fn termination_log_on_success_and_failure() {
    let case = Case::new("termlog").await;
    broken_set(&case);
    let log = case.dir.path().join("termination-log");
    let dir = case.dir.path().to_str().unwrap().to_string();
    let run = || {
        case.command(&["migrate", "apply", "--dir", &dir])
            .env("SERVICEDB_TERMINATION_LOG", &log)
            .output()
            .unwrap()
    };
    assert_failed(&run());
    let written = std::fs::read_to_string(&log).unwrap();
    assert!(written.len() <= 4096);
    let v: Value = serde_json::from_str(&written).unwrap();
    assert_camel_case(&v);
    assert_eq!(v["outcome"], "failed");
    assert_eq!(v["command"], "apply");
    assert_eq!(v["applied"], serde_json::json!(["1", "2"]));
    assert_eq!(v["current"], "2");
    assert!(
        v["error"]["script"]
            .as_str()
            .unwrap()
            .ends_with("V3__c.sql")
    );
    assert_eq!(v["error"]["line"], 2);
    assert_eq!(v["error"]["sqlstate"], "42601");
    assert!(v["error"]["message"].as_str().unwrap().contains("TABLEE"));

    case.write("V3__c.sql", "CREATE TABLE c (id int);\n");
    assert_ok(&run());
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&log).unwrap()).unwrap();
    assert_eq!(v["outcome"], "succeeded");
    assert_eq!(v["applied"], serde_json::json!(["3"]));
    assert_eq!(v["current"], "3");
    assert!(v.get("error").is_none(), "{v}");
}

/// Locks the batch run a batch migration Job makes: each `--database-url-env` database in
/// turn, a failure not stopping the next, the exit non-zero, one report line per database.
#[tokio::test]
async fn batch_apply_goes_on_after_a_failure_and_reports_each_database() {
    let good = Case::new("batchok").await;
    let bad = Case::new("batchbad").await;
    let last = Case::new("batchlast").await;
    // One directory of files for all three; the second database already has a table the
    // second migration creates, so it fails there.
    broken_set(&good);
    good.write("V3__c.sql", "CREATE TABLE c (id int);\n");
    let dir = good.dir.path().to_str().unwrap().to_string();
    assert_ok(
        &bad.command(&["migrate", "apply", "--dir", &dir, "--target", "1"])
            .output()
            .unwrap(),
    );
    bad.client()
        .await
        .batch_execute("CREATE TABLE b (id int)")
        .await
        .unwrap();
    let log = good.dir.path().join("termination-log");
    let out = good
        .command(&[
            "migrate",
            "apply",
            "--dir",
            &dir,
            "--database-url-env",
            "DATABASE_URL_0",
            "--database-url-env",
            "DATABASE_URL_1",
            "--database-url-env",
            "DATABASE_URL_2",
            "--database-url-env",
            "DATABASE_URL_3",
            "--termination-log",
            log.to_str().unwrap(),
        ])
        .env("DATABASE_URL_0", good.url())
        .env("DATABASE_URL_1", bad.url())
        .env("DATABASE_URL_2", last.url())
        .output()
        .unwrap();
    let stderr = assert_failed(&out);
    assert!(stderr.contains("2 of 4 database(s) failed"), "{stderr}");
    let report = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines.len(), 4, "{report}");
    assert_eq!(lines[0], "DATABASE_URL_0 succeeded 3");
    assert!(
        lines[1].starts_with("DATABASE_URL_1 failed 1 V2__b.sql, SQLSTATE 42P07: "),
        "{report}"
    );
    assert_eq!(lines[2], "DATABASE_URL_2 succeeded 3");
    assert!(
        lines[3].starts_with("DATABASE_URL_3 failed - ") && lines[3].contains("not set"),
        "{report}"
    );
    assert_eq!(good.history().await.len(), 3);
    assert_eq!(last.history().await.len(), 3);
    let bad_rows = bad.history().await;
    assert_eq!(
        bad_rows.len(),
        1,
        "the failed V2 leaves no row: {bad_rows:?}"
    );
}
