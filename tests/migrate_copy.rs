//! `COPY ... FROM stdin` with inline data (pg_dump style, ended by `\.`), in transactional and
//! non-transactional scripts; a bad row is reported at its line of the file.

mod migrate_case;
mod support;

use migrate_case::*;

const SEED: &str = "CREATE TABLE t (a int, b text);\n\
COPY public.t (a, b) FROM stdin;\n\
1\tone; it's\n\
2\t$x$ \\N\n\
3\t\\N\n\
\\.\n\
INSERT INTO t VALUES (4, 'four');\n";

async fn rows(case: &Case) -> Vec<(i32, Option<String>)> {
    case.client()
        .await
        .query("SELECT a, b FROM t ORDER BY a", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

fn seeded() -> Vec<(i32, Option<String>)> {
    vec![
        (1, Some("one; it's".into())),
        (2, Some("$x$ N".into())),
        (3, None),
        (4, Some("four".into())),
    ]
}

#[tokio::test]
async fn copy_in_a_transactional_script() {
    let case = Case::new("copytx").await;
    case.write("V1__seed.sql", SEED)
        .write("V2__more.sql", "INSERT INTO t VALUES (5, 'five');\n");
    assert_ok(&case.migrate("apply", &[]));
    let mut want = seeded();
    want.push((5, Some("five".into())));
    assert_eq!(rows(&case).await, want);
    assert_eq!(case.history().await.len(), 2);
}

#[tokio::test]
async fn copy_in_a_non_transactional_script() {
    let case = Case::new("copynotx").await;
    case.write("V1__seed.sql", SEED)
        .write("V1__seed.sql.conf", "executeInTransaction=false\n");
    assert_ok(&case.migrate("apply", &[]));
    assert_eq!(rows(&case).await, seeded());
}

/// A bad data row fails at its own line, with the server's SQLSTATE, and (in a transaction)
/// nothing of the script stays.
#[tokio::test]
async fn bad_copy_row_names_file_and_line() {
    let case = Case::new("copybad").await;
    case.write("V1__t.sql", "CREATE TABLE t (a int, b text);\n")
        .write(
            "V2__seed.sql",
            "-- seed\nINSERT INTO t VALUES (0, 'zero');\nCOPY t (a, b) FROM stdin;\n1\tone\nnot a number\ttwo\n\\.\n",
        );
    let out = case.migrate("apply", &[]);
    let err = assert_failed(&out);
    assert!(
        err.contains("V2__seed.sql:5: ERROR: invalid input syntax for type integer"),
        "{err}"
    );
    assert!(rows(&case).await.is_empty(), "the transaction rolled back");
    assert_eq!(case.history().await.len(), 1);

    // Outside a transaction the rows before stay, and the failed row is recorded.
    let case = Case::new("copybadnotx").await;
    case.write("V1__t.sql", "CREATE TABLE t (a int, b text);\n")
        .write(
            "V2__seed.sql",
            "INSERT INTO t VALUES (0, 'zero');\nCOPY t (a, b) FROM stdin;\n1\tone\n2\n\\.\n",
        )
        .write("V2__seed.sql.conf", "executeInTransaction=false\n");
    let err = assert_failed(&case.migrate("apply", &[]));
    assert!(err.contains("V2__seed.sql:4: ERROR:"), "{err}");
    assert_eq!(rows(&case).await, [(0, Some("zero".into()))]);
    assert!(!case.history().await[1].2);
}
