//! The migration engine against a real PostgreSQL, as its users run it: the `servicedb migrate`
//! and `servicedb wait` commands, connected as a non-superuser that owns the database.

mod migrate_case;
mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use migrate_case::*;
use support::postgres::server;

/// Applying creates Flyway's history, runs every migration once, and a re-run sends no DDL.
#[tokio::test]
async fn apply_then_rerun_executes_nothing() {
    let case = Case::new("rerun").await;
    case.write(
        "V1__create_users.sql",
        "CREATE TABLE users (id int PRIMARY KEY, email text);\n",
    )
    .write(
        "V1_1__add_name.sql",
        "ALTER TABLE users ADD COLUMN name text;\n",
    )
    .write(
        "V2__seed.sql",
        "INSERT INTO users VALUES (1, 'a@example.com', 'A');\n",
    );
    let out = case.migrate("apply", &[]);
    assert_ok(&out);
    assert!(text(&out.stdout).contains("Applied 3 migrations; schema now at version 2"));
    let versions: Vec<_> = case.history().await.into_iter().map(|r| r.0).collect();
    assert_eq!(versions, rows(&["1", "1.1", "2"]));

    let log_start = server().log_len();
    let out = case.migrate("apply", &[]);
    assert_ok(&out);
    assert!(
        text(&out.stdout).contains("up to date at version 2"),
        "{}",
        text(&out.stdout)
    );
    // The log is shared with concurrent tests: only this database's lines count.
    let log = server().log_since(log_start);
    let ours: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(&format!("@{} ", case.db)))
        .collect();
    assert!(!ours.is_empty(), "the re-run's queries are in the log");
    // Nothing pending by what it read: it neither waits for nor takes the migration lock.
    assert!(
        !ours.iter().any(|l| l.contains("advisory")),
        "a no-op re-run took the lock:\n{}",
        ours.join("\n")
    );
    // Who we are with whether the history exists, and the history: one statement each,
    // pipelined. Every further statement would be a cost on each Job that finds nothing to do.
    let statements: Vec<&&str> = ours
        .iter()
        .filter(|l| l.contains(" execute ") || l.contains(" statement: "))
        .collect();
    assert_eq!(statements.len(), 2, "{statements:#?}");
    for ddl in ["CREATE", "ALTER", "INSERT", "DROP"] {
        assert!(
            !ours
                .iter()
                .any(|l| l.contains(&format!("statement: {ddl}"))),
            "re-run sent {ddl}:\n{}",
            ours.join("\n")
        );
    }
    assert_eq!(case.scalar_i64("SELECT count(*) FROM users").await, 1);
}

/// A broken V3 leaves V1 and V2 applied, no V3 row, nothing of V3 created, and the error names
/// the file and line; fixing the file lets the next run finish the job.
#[tokio::test]
async fn failed_migration_rolls_back_whole_and_names_file_and_line() {
    let case = Case::new("syntax").await;
    case.write("V1__a.sql", "CREATE TABLE a (id int);\n")
        .write("V2__b.sql", "CREATE TABLE b (id int);\n")
        .write(
            "V3__c.sql",
            "CREATE TABLE c (id int);\nINSERT INTO c VALUES (1);\n\nCREATE TABLEE oops (id int);\n",
        );
    let err = assert_failed(&case.migrate("apply", &[]));
    assert!(
        err.contains("V3__c.sql:4: ERROR: syntax error at or near \"TABLEE\""),
        "{err}"
    );
    let versions: Vec<_> = case.history().await.into_iter().map(|r| r.0).collect();
    assert_eq!(versions, rows(&["1", "2"]));
    assert_eq!(
        case.scalar_i64("SELECT count(*) FROM pg_tables WHERE tablename = 'c'")
            .await,
        0
    );

    case.write(
        "V3__c.sql",
        "CREATE TABLE c (id int);\nINSERT INTO c VALUES (1);\n\nCREATE TABLE ok (id int);\n",
    );
    assert_ok(&case.migrate("apply", &[]));
    assert_eq!(case.history().await.len(), 3);
}

/// A runtime error deep in a script is mapped to its line too.
#[tokio::test]
async fn runtime_error_line_is_reported() {
    let case = Case::new("runtime").await;
    case.write(
        "V1__a.sql",
        "-- comment\nCREATE TABLE a (id int);\n\nINSERT INTO a\n  SELECT * FROM missing_table;\n",
    );
    let err = assert_failed(&case.migrate("apply", &[]));
    assert!(
        err.contains("V1__a.sql:5: ERROR: relation \"missing_table\" does not exist"),
        "{err}"
    );
}

/// Two runners started together on an empty database both succeed and apply each migration once.
#[tokio::test]
async fn concurrent_runners_apply_each_migration_once() {
    let case = Case::new("concurrent").await;
    for i in 1..=15 {
        case.write(
            &format!("V{i}__step.sql"),
            &format!("SELECT pg_sleep(0.01);\nCREATE TABLE t{i} (id int);\n"),
        );
    }
    let dir = case.dir.path().to_str().unwrap().to_string();
    let spawn = || {
        case.command(&["migrate", "apply", "--dir", &dir])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    assert_ok(&a.wait_with_output().unwrap());
    assert_ok(&b.wait_with_output().unwrap());
    let history = case.history().await;
    assert_eq!(history.len(), 15, "{history:?}");
    assert_eq!(
        case.scalar_i64("SELECT count(DISTINCT version) FROM flyway_schema_history WHERE success")
            .await,
        15
    );
}

/// A database migrated by Flyway (its DDL, its rows, its checksums) validates clean and only new
/// files are applied.
#[tokio::test]
async fn takes_over_a_flyway_database() {
    let case = Case::new("takeover").await;
    let v1 =
        "CREATE TABLE users (\n    id BIGSERIAL PRIMARY KEY,\n    email TEXT NOT NULL UNIQUE\n);\n";
    let v2 = "SELECT 1;\nSELECT 2;\n";
    // Exactly what Flyway 10 writes on PostgreSQL.
    case.client()
        .await
        .batch_execute(&format!(
            r#"CREATE TABLE "public"."flyway_schema_history" (
    "installed_rank" INT NOT NULL,
    "version" VARCHAR(50),
    "description" VARCHAR(200) NOT NULL,
    "type" VARCHAR(20) NOT NULL,
    "script" VARCHAR(1000) NOT NULL,
    "checksum" INTEGER,
    "installed_by" VARCHAR(100) NOT NULL,
    "installed_on" TIMESTAMP NOT NULL DEFAULT now(),
    "execution_time" INTEGER NOT NULL,
    "success" BOOLEAN NOT NULL
);
ALTER TABLE "public"."flyway_schema_history" ADD CONSTRAINT "flyway_schema_history_pk" PRIMARY KEY ("installed_rank");
CREATE INDEX "flyway_schema_history_s_idx" ON "public"."flyway_schema_history" ("success");
{v1}
INSERT INTO flyway_schema_history VALUES
  (1, '1', 'create users', 'SQL', 'V1__create_users.sql', -893234179, 'flyway', now(), 31, true),
  (2, '1.1', 'noop', 'SQL', 'V1_1__noop.sql', -1665099012, 'flyway', now(), 4, true);"#
        ))
        .await
        .unwrap();
    case.write("V1__create_users.sql", v1)
        .write("V1_1__noop.sql", v2)
        .write(
            "V2__add_name.sql",
            "ALTER TABLE users ADD COLUMN name text;\n",
        );
    let out = case.migrate("validate", &[]);
    assert_ok(&out);
    let out = case.migrate("apply", &[]);
    assert_ok(&out);
    assert!(
        text(&out.stdout).contains("Applied 1 migration;"),
        "{}",
        text(&out.stdout)
    );
    let history = case.history().await;
    assert_eq!(
        history.last().unwrap(),
        &(Some("2".into()), "V2__add_name.sql".into(), true)
    );
}

/// Editing an applied file is caught by validate and apply, naming the file and the fix.
#[tokio::test]
async fn edited_applied_file_is_refused() {
    let case = Case::new("edited").await;
    case.write("V1__a.sql", "CREATE TABLE a (id int);\n");
    assert_ok(&case.migrate("apply", &[]));
    case.write("V1__a.sql", "CREATE TABLE a (id bigint);\n")
        .write("V2__b.sql", "CREATE TABLE b (id int);\n");
    for action in ["validate", "apply"] {
        let err = assert_failed(&case.migrate(action, &[]));
        assert!(
            err.contains("V1__a.sql: checksum mismatch for version 1"),
            "{action}: {err}"
        );
        assert!(err.contains("new version"), "{err}");
    }
    assert_eq!(case.history().await.len(), 1, "apply must change nothing");
    // A deliberate edit is accepted after repair.
    assert_ok(&case.migrate("repair", &[]));
    assert_ok(&case.migrate("apply", &[]));
    assert_eq!(case.history().await.len(), 2);
}

/// Statements that refuse a transaction block run outside one; a failure there leaves a failed
/// row that blocks further runs until repair.
#[tokio::test]
async fn create_index_concurrently_and_failed_row_blocks_until_repair() {
    let case = Case::new("concurrently").await;
    case.write(
        "V1__t.sql",
        "CREATE TABLE t (x int);\nINSERT INTO t SELECT generate_series(1, 100);\n",
    )
    .write(
        "V2__idx.sql",
        "-- needs autocommit\nCREATE INDEX CONCURRENTLY t_x ON t (x);\n",
    );
    assert_ok(&case.migrate("apply", &[]));
    assert_eq!(
        case.scalar_i64(
            "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = 't_x' AND i.indisvalid"
        )
        .await,
        1
    );

    case.write(
        "V3__bad.sql",
        "CREATE INDEX CONCURRENTLY t_x2 ON t (x);\nCREATE INDEX CONCURRENTLY t_y ON t (no_such_column);\n",
    );
    let err = assert_failed(&case.migrate("apply", &[]));
    assert!(err.contains("V3__bad.sql:2:"), "{err}");
    // Said at once: what of the script stays applied, and that the failed row now blocks.
    assert!(
        err.contains(
            "1 statement before the failing one had already run and stay applied:\n    line 1: CREATE INDEX CONCURRENTLY t_x2 ON t (x)\n"
        ),
        "{err}"
    );
    assert!(
        err.contains("version 3 is now recorded as failed and blocks every run")
            && err.contains("then run `servicedb migrate repair` to remove the failed row"),
        "{err}"
    );
    let last = case.history().await.pop().unwrap();
    assert_eq!(last, (Some("3".into()), "V3__bad.sql".into(), false));

    case.write(
        "V3__bad.sql",
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS t_x2 ON t (x);\n",
    );
    let err = assert_failed(&case.migrate("apply", &[]));
    assert!(err.contains("failed") && err.contains("repair"), "{err}");
    let out = case.migrate("repair", &[]);
    assert_ok(&out);
    assert!(text(&out.stdout).contains("Removed failed row of V3__bad.sql"));
    assert_ok(&case.migrate("apply", &[]));
    assert!(case.history().await.last().unwrap().2);
}

/// `executeInTransaction=false` in a sidecar .conf runs the script outside a transaction.
#[tokio::test]
async fn conf_sidecar_disables_the_transaction() {
    let case = Case::new("conf").await;
    // VACUUM would be detected anyway; a plain statement proves the sidecar is what decides.
    case.write("V1__a.sql", "CREATE TABLE a (id int);\nSELECT 1/0;\n")
        .write("V1__a.sql.conf", "executeInTransaction=false\n");
    assert_failed(&case.migrate("apply", &[]));
    // Outside a transaction the first statement stays and a failed row is recorded.
    assert_eq!(
        case.scalar_i64("SELECT count(*) FROM pg_tables WHERE tablename = 'a'")
            .await,
        1
    );
    assert_eq!(
        case.history().await,
        vec![(Some("1".into()), "V1__a.sql".into(), false)]
    );
}

/// Repeatables run after versioned ones and again only when their content changes.
#[tokio::test]
async fn repeatables_rerun_only_on_change() {
    let case = Case::new("repeatable").await;
    case.write("V1__t.sql", "CREATE TABLE t (x int);\n").write(
        "R__view.sql",
        "CREATE OR REPLACE VIEW v AS SELECT x FROM t;\n",
    );
    assert_ok(&case.migrate("apply", &[]));
    assert_ok(&case.migrate("apply", &[]));
    let h = case.history().await;
    assert_eq!(h.len(), 2);
    assert_eq!(h[1], (None, "R__view.sql".into(), true));

    case.write(
        "R__view.sql",
        "CREATE OR REPLACE VIEW v AS SELECT x, x * 2 AS y FROM t;\n",
    );
    let out = case.migrate("info", &[]);
    assert!(
        text(&out.stdout).contains("Outdated"),
        "{}",
        text(&out.stdout)
    );
    assert_ok(&case.migrate("apply", &[]));
    assert_eq!(case.history().await.len(), 3);
    assert_eq!(
        case.scalar_i64("SELECT count(*) FROM information_schema.columns WHERE table_name = 'v'")
            .await,
        2
    );
}

/// `--target` stops at a version; a later run without it continues; an unknown target is refused.
#[tokio::test]
async fn target_stops_and_resumes() {
    let case = Case::new("target").await;
    for i in 1..=3 {
        case.write(
            &format!("V{i}__s.sql"),
            &format!("CREATE TABLE t{i} (id int);\n"),
        );
    }
    assert_ok(&case.migrate("apply", &["--target", "2"]));
    assert_eq!(case.history().await.len(), 2);
    let err = assert_failed(&case.migrate("apply", &["--target", "7"]));
    assert!(err.contains("--target 7 matches no migration"), "{err}");
    let out = case.migrate("apply", &["--json"]);
    assert_ok(&out);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["applied"][0]["script"], "V3__s.sql");
    assert_eq!(report["current"], "3");
}

/// A new file older than the applied version is refused unless out-of-order is allowed.
#[tokio::test]
async fn out_of_order_is_refused_unless_allowed() {
    let case = Case::new("outoforder").await;
    case.write("V1__a.sql", "SELECT 1;")
        .write("V3__c.sql", "SELECT 3;");
    assert_ok(&case.migrate("apply", &[]));
    case.write("V2__b.sql", "CREATE TABLE b (id int);");
    let err = assert_failed(&case.migrate("apply", &[]));
    assert!(
        err.contains("V2__b.sql: version 2 is not applied but is older than the applied version 3"),
        "{err}"
    );
    assert_ok(&case.migrate("apply", &["--out-of-order"]));
    assert_eq!(case.history().await.last().unwrap().1, "V2__b.sql");
}

/// A deleted file is reported missing until repair marks it deleted.
#[tokio::test]
async fn missing_file_is_reported_then_repaired() {
    let case = Case::new("missing").await;
    case.write("V1__a.sql", "SELECT 1;")
        .write("V2__b.sql", "SELECT 2;")
        .write("V3__c.sql", "SELECT 3;");
    assert_ok(&case.migrate("apply", &[]));
    case.remove("V2__b.sql");
    let err = assert_failed(&case.migrate("validate", &[]));
    assert!(
        err.contains("V2__b.sql: version 2 is applied but its file is missing"),
        "{err}"
    );
    assert_ok(&case.migrate("repair", &[]));
    assert_ok(&case.migrate("validate", &[]));
    let out = case.migrate("info", &["--json"]);
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let states: Vec<_> = info["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["state"].as_str().unwrap().to_string())
        .collect();
    assert!(states.contains(&"Deleted".to_string()), "{states:?}");
}

/// Placeholders are replaced; an unknown one fails before anything runs.
#[tokio::test]
async fn placeholders_are_replaced_and_unknown_ones_refused() {
    let case = Case::new("placeholders").await;
    case.write(
        "V1__a.sql",
        "CREATE TABLE ${table_name} (who text DEFAULT '${flyway:user}', db text DEFAULT '${flyway:database}');\n",
    )
    .write("V2__b.sql", "SELECT '${oops}';\n");
    let err = assert_failed(&case.migrate("apply", &["--placeholder", "table_name=things"]));
    assert!(
        err.contains("V2__b.sql:1: unknown placeholder ${oops}"),
        "{err}"
    );
    assert!(
        case.client()
            .await
            .query_opt("SELECT 1 FROM flyway_schema_history", &[])
            .await
            .is_err()
            || case.history().await.is_empty()
    );
    case.write("V2__b.sql", "INSERT INTO things DEFAULT VALUES;\n");
    assert_ok(&case.migrate("apply", &["--placeholder", "TABLE_NAME=things"]));
    let row = case
        .client()
        .await
        .query_one("SELECT who, db FROM things", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), server().admin_user());
    assert_eq!(row.get::<_, String>(1), case.db);
}

/// A schema with tables but no history is not migrated blindly; baseline takes it over.
#[tokio::test]
async fn non_empty_schema_needs_baseline() {
    let case = Case::new("baseline").await;
    case.client()
        .await
        .batch_execute("CREATE TABLE legacy (id int);")
        .await
        .unwrap();
    case.write("V1__legacy.sql", "CREATE TABLE legacy (id int);\n")
        .write("V2__more.sql", "CREATE TABLE more (id int);\n");
    let err = assert_failed(&case.migrate("apply", &[]));
    assert!(err.contains("baseline"), "{err}");
    let out = case
        .command(&["migrate", "baseline", "--baseline-version", "1"])
        .output()
        .unwrap();
    assert_ok(&out);
    assert_ok(&case.migrate("apply", &[]));
    let h = case.history().await;
    assert_eq!(h.len(), 2);
    assert_eq!(h[0].1, "<< Flyway Baseline >>");
    assert_eq!(h[1].1, "V2__more.sql");
}

/// `--schema` keeps the history elsewhere and Flyway's schema-creation row is written.
#[tokio::test]
async fn history_in_another_schema() {
    let case = Case::new("schema").await;
    case.write(
        "V1__a.sql",
        "CREATE TABLE ${flyway:defaultSchema}.a (id int);\n",
    );
    assert_ok(&case.migrate("apply", &["--schema", "orders", "--table", "history"]));
    let c = case.client().await;
    let rows = c
        .query(
            "SELECT installed_rank, type, script FROM orders.history ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(i32, String, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        got,
        [
            (0, "SCHEMA".into(), "\"orders\"".into()),
            (1, "SQL".into(), "V1__a.sql".into())
        ]
    );
    // ${flyway:defaultSchema} put the migration's table in that schema.
    let n: i64 = c
        .query_one("SELECT count(*) FROM orders.a", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
}

/// `info` shows a Flyway-style table with every state.
#[tokio::test]
async fn info_prints_states() {
    let case = Case::new("info").await;
    case.write("V1__first_one.sql", "SELECT 1;");
    assert_ok(&case.migrate("apply", &[]));
    case.write("V2__second.sql", "SELECT 2;");
    let out = case.migrate("info", &[]);
    assert_ok(&out);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("Schema version: 1"), "{stdout}");
    let line = |needle: &str| {
        stdout
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_default()
            .to_string()
    };
    assert!(line("first one").contains("Success"), "{stdout}");
    assert!(line("second").contains("Pending"), "{stdout}");
}

/// Mistyped file names stop the run instead of being skipped silently.
#[tokio::test]
async fn mistyped_file_names_are_errors() {
    let case = Case::new("names").await;
    case.write("V1__a.sql", "SELECT 1;")
        .write("v2__b.sql", "SELECT 2;")
        .write("V10__x.sql.bak", "SELECT 10;");
    let err = assert_failed(&case.migrate("apply", &[]));
    // Both in one run, each with a hint that fits it.
    assert!(
        err.contains("v2__b.sql") && err.contains("case-sensitive"),
        "{err}"
    );
    assert!(
        err.contains("V10__x.sql.bak: looks like a copy of V10__x.sql")
            && !err.contains(".sql.sql"),
        "{err}"
    );
    assert_eq!(
        case.scalar_i64("SELECT count(*) FROM pg_tables WHERE tablename = 'flyway_schema_history'")
            .await,
        0
    );
    assert!(!Path::new(&case.dir.path().join("V2__b.sql")).exists());
}

/// `wait` returns once a concurrent apply reaches the version, and times out saying what it saw.
#[tokio::test]
async fn wait_returns_when_reached_and_times_out_otherwise() {
    let case = Case::new("wait").await;
    case.write("V1__a.sql", "SELECT 1;")
        .write("V2__b.sql", "SELECT pg_sleep(0.3);");
    let waiter = case
        .command(&["wait", "--version", "2", "--timeout", "30s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_ok(&case.migrate("apply", &[]));
    let out = waiter.wait_with_output().unwrap();
    assert_ok(&out);
    assert!(text(&out.stdout).contains("Schema at version 2"));

    let out = case
        .command(&["wait", "--version", "3", "--timeout", "1s"])
        .output()
        .unwrap();
    let err = assert_failed(&out);
    assert!(
        err.contains("timed out after 1s waiting for schema version 3: the schema is at version 2"),
        "{err}"
    );
}

/// A script mixing statements that need a transaction with ones that refuse it is refused
/// before anything runs (as Flyway does), naming the file and line; a .conf sidecar opts in.
#[tokio::test]
async fn mixed_transactional_script_is_refused_before_anything_runs() {
    let case = Case::new("mixed").await;
    case.write("V1__t.sql", "CREATE TABLE t (x int);\n").write(
        "V2__mixed.sql",
        "ALTER TABLE t ADD COLUMN y int;\nCREATE INDEX CONCURRENTLY t_y ON t (y);\n",
    );
    let err = assert_failed(&case.migrate("apply", &[]));
    assert!(
        err.contains("V2__mixed.sql:2: CREATE INDEX CONCURRENTLY cannot run in a transaction"),
        "{err}"
    );
    assert_eq!(
        case.scalar_i64("SELECT count(*) FROM pg_tables WHERE tablename = 't'")
            .await,
        0
    );
    case.write("V2__mixed.sql.conf", "executeInTransaction=false\n");
    assert_ok(&case.migrate("apply", &[]));
    assert_eq!(case.history().await.len(), 2);
}

/// Without a URL, libpq's PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD and PGSSLMODE are
/// used, as psql and Flyway users expect.
#[tokio::test]
async fn libpq_environment_variables_connect() {
    let case = Case::new("pgenv").await;
    case.write("V1__a.sql", "CREATE TABLE a (id int);\n");
    let dir = case.dir.path().to_str().unwrap().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_servicedb"))
        .args(["migrate", "apply", "--dir", &dir])
        .env_remove("DATABASE_URL")
        .env("PGHOST", server().host())
        .env("PGPORT", server().port().to_string())
        .env("PGDATABASE", &case.db)
        .env("PGUSER", server().admin_user())
        .env("PGPASSWORD", server().admin_password())
        .env("PGSSLMODE", "disable")
        .output()
        .unwrap();
    assert_ok(&out);
    assert_eq!(case.history().await.len(), 1);
}

/// A script with its own COMMIT that then fails is not in an aborted transaction any more, so
/// nothing after it may already be on its way: the next migration must not run.
#[tokio::test]
async fn nothing_runs_after_a_failed_script_that_committed_itself() {
    let case = Case::new("owncommit").await;
    case.write("V1__a.sql", "CREATE TABLE a (id int);\n")
        .write(
            "V2__b.sql",
            "BEGIN;\nCREATE TABLE b (id int);\nCOMMIT;\nSELECT * FROM missing;\n",
        )
        .write("V3__c.sql", "CREATE TABLE c (id int);\n");
    let err = assert_failed(&case.migrate("apply", &[]));
    assert!(
        err.contains("V2__b.sql:4: ERROR: relation \"missing\" does not exist"),
        "{err}"
    );
    assert_eq!(
        case.scalar_i64("SELECT count(*) FROM pg_tables WHERE tablename = 'c'")
            .await,
        0,
        "V3 ran after V2 failed"
    );
    let versions: Vec<_> = case.history().await.into_iter().map(|r| r.0).collect();
    assert_eq!(versions, rows(&["1"]));
}
