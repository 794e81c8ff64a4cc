//! Interoperating with histories Flyway wrote: long descriptions and script names are stored
//! shortened exactly as Flyway's AbbreviationUtils does.

mod migrate_case;
mod support;

use migrate_case::*;
use servicedb::migrate::checksum::checksum;

/// Flyway 10's history DDL on PostgreSQL.
const FLYWAY_DDL: &str = r#"CREATE TABLE "public"."flyway_schema_history" (
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
CREATE INDEX "flyway_schema_history_s_idx" ON "public"."flyway_schema_history" ("success");"#;

/// A description of `n` characters as a file name spells it (underscores) and as Flyway reads it.
fn long_description(word: &str, n: usize) -> (String, String) {
    let spaced: String = format!("{word} ").repeat(n).chars().take(n).collect();
    (spaced.replace(' ', "_"), spaced)
}

#[tokio::test]
async fn long_descriptions_match_flyways_history_and_are_written_as_flyway_does() {
    let case = Case::new("abbrev").await;
    let (name1, desc1) = long_description("first", 230);
    let (name2, desc2) = long_description("second", 210);
    let (name_r, _) = long_description("view", 205);
    let v1 = format!("V1__{name1}.sql");
    let sql1 = "CREATE TABLE a (id int);\n";
    case.write(&v1, sql1);
    // The row Flyway wrote for V1: description cut to 197 characters and "...".
    let flyway_description = format!("{}...", &desc1[..197]);
    let c = case.client().await;
    c.batch_execute(FLYWAY_DDL).await.unwrap();
    c.batch_execute(sql1).await.unwrap();
    c.execute(
        "INSERT INTO flyway_schema_history VALUES (1, '1', $1, 'SQL', $2, $3, 'flyway', now(), 5, true)",
        &[&flyway_description, &v1, &checksum(sql1)],
    )
    .await
    .unwrap();
    assert_ok(&case.migrate("validate", &[]));

    case.write(&format!("V2__{name2}.sql"), "SELECT 2;\n")
        .write(
            &format!("R__{name_r}.sql"),
            "CREATE OR REPLACE VIEW v AS SELECT 1 AS x;\n",
        );
    assert_ok(&case.migrate("apply", &[]));
    let stored: Vec<String> = c
        .query(
            "SELECT description FROM flyway_schema_history ORDER BY installed_rank",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(stored.len(), 3);
    assert_eq!(stored[1], format!("{}...", &desc2[..197]));
    assert_eq!(stored[2].chars().count(), 200);
    assert!(stored[2].ends_with("..."), "{}", stored[2]);
    // The long repeatable is recognised as applied, not re-run on every apply.
    let out = case.migrate("apply", &[]);
    assert_ok(&out);
    assert!(
        text(&out.stdout).contains("nothing to apply"),
        "{}",
        text(&out.stdout)
    );
    assert_ok(&case.migrate("validate", &[]));
}

/// A script path over 1000 characters is stored as Flyway stores it: "..." and then its
/// characters 3 to 1000.
#[tokio::test]
async fn long_script_names_are_written_as_flyway_does() {
    let case = Case::new("abbrevscript").await;
    let mut dir = case.dir.path().to_path_buf();
    let mut script = String::new();
    for i in 0..5 {
        let part = format!("{i}{}", "d".repeat(199));
        dir.push(&part);
        script.push_str(&part);
        script.push('/');
    }
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("V1__deep.sql"), "SELECT 1;\n").unwrap();
    script.push_str("V1__deep.sql");
    assert!(script.len() > 1000);
    assert_ok(&case.migrate("apply", &[]));
    let history = case.history().await;
    assert_eq!(history[0].1, format!("...{}", &script[3..1000]));
    assert_ok(&case.migrate("validate", &[]));
}

/// Flyway takes only a table for its history. A view of that name (here over a copy of a
/// history, so it is even updatable) is never written through: apply refuses the schema as
/// it would without one, and repair finds no history to repair.
#[tokio::test]
async fn a_view_named_like_the_history_is_not_written_to() {
    let case = Case::new("historyview").await;
    let sql1 = "CREATE TABLE a (id int);\n";
    case.write("V1__a.sql", sql1)
        .write("V2__b.sql", "CREATE TABLE b (id int);\n");
    let c = case.client().await;
    c.batch_execute(FLYWAY_DDL).await.unwrap();
    c.batch_execute(sql1).await.unwrap();
    c.execute(
        "INSERT INTO flyway_schema_history VALUES (1, '1', 'a', 'SQL', 'V1__a.sql', $1, 'flyway', now(), 5, true), \
         (2, '2', 'b', 'SQL', 'V2__b.sql', 0, 'flyway', now(), 5, false)",
        &[&checksum(sql1)],
    )
    .await
    .unwrap();
    c.batch_execute(
        "ALTER TABLE flyway_schema_history RENAME TO copied_history; \
         CREATE VIEW flyway_schema_history AS SELECT * FROM copied_history;",
    )
    .await
    .unwrap();
    let rows = || async { case.scalar_i64("SELECT count(*) FROM copied_history").await };

    let out = case.migrate("repair", &[]);
    assert_ok(&out);
    assert!(
        text(&out.stdout).contains("Nothing to repair"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(
        rows().await,
        2,
        "repair deleted the failed row through the view"
    );

    // With V2 pending and no failure in the way, apply gets as far as writing.
    c.batch_execute("DELETE FROM copied_history WHERE NOT success")
        .await
        .unwrap();
    let err = assert_failed(&case.migrate("apply", &[]));
    assert!(err.contains("flyway_schema_history"), "{err}");
    assert_eq!(rows().await, 1, "apply wrote through the view");
    assert_eq!(
        case.scalar_i64("SELECT count(*) FROM pg_tables WHERE tablename = 'b'")
            .await,
        0
    );
}
