//! Flyway's advisory lock: runners wait for it without holding a transaction, so a runner
//! building an index concurrently is never blocked by the runners waiting for it.

mod migrate_case;
mod support;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use migrate_case::*;

/// Starts `servicedb migrate apply` in the background.
fn spawn_apply(case: &Case) -> Child {
    let dir = case.dir.path().to_str().unwrap().to_string();
    case.command(&["migrate", "apply", "--dir", &dir])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// What PostgreSQL shows of the runners' sessions on this database that last asked for the
/// lock (not the observer's, not the holder's): (transaction open, snapshot held, queued in
/// pg_locks).
async fn lock_pollers(observer: &tokio_postgres::Client, db: &str) -> Vec<(bool, bool, bool)> {
    observer
        .query(
            "SELECT a.xact_start IS NOT NULL, a.backend_xmin IS NOT NULL, \
                    EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND NOT l.granted) \
             FROM pg_stat_activity a \
             WHERE a.datname = $1 AND a.pid <> pg_backend_pid() AND a.application_name <> 'lock holder' \
               AND a.query ILIKE '%advisory%lock%'",
            &[&db],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// Waits (bounded) until `n` runners are seen polling for the lock.
async fn until_pollers(observer: &tokio_postgres::Client, db: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while lock_pollers(observer, db).await.len() < n {
        assert!(
            Instant::now() < deadline,
            "no runner came to wait for the lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A runner finding the lock held (by Flyway, say) waits its turn, and while it waits it holds
/// no transaction and no snapshot and is not queued in pg_locks: it polls.
#[tokio::test]
async fn waiter_holds_no_transaction_while_the_lock_is_held() {
    let case = Case::new("lockwait").await;
    case.write("V1__a.sql", "CREATE TABLE a (id int);\n");
    assert_ok(&case.migrate("apply", &[]));
    case.write("V2__b.sql", "CREATE TABLE b (id int);\n");
    let holder = case.client().await;
    holder
        .batch_execute("SET application_name = 'lock holder'")
        .await
        .unwrap();
    holder
        .execute("SELECT pg_advisory_lock($1)", &[&FLYWAY_KEY])
        .await
        .unwrap();
    let child = spawn_apply(&case);
    let observer = case.client().await;
    until_pollers(&observer, &case.db, 1).await;
    // Seen over several polls: a poll itself lasts a fraction of a millisecond, so at most
    // the odd sample may catch one in flight; a waiter inside a transaction shows in all.
    let mut idle = 0;
    for _ in 0..20 {
        let seen = lock_pollers(&observer, &case.db).await;
        assert_eq!(seen.len(), 1, "{seen:?}");
        let (in_transaction, snapshot, queued) = seen[0];
        assert!(!queued, "the waiter is queued in pg_locks: {seen:?}");
        if !in_transaction && !snapshot {
            idle += 1;
        }
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    assert!(
        idle >= 18,
        "the waiter held a transaction or snapshot in {} of 20 samples",
        20 - idle
    );
    assert_eq!(
        case.history().await.len(),
        1,
        "nothing ran while the lock was held"
    );
    holder
        .execute("SELECT pg_advisory_unlock($1)", &[&FLYWAY_KEY])
        .await
        .unwrap();
    assert_ok(&child.wait_with_output().unwrap());
    assert_eq!(case.history().await.len(), 2);
}

/// Two runners over a set with `CREATE INDEX CONCURRENTLY` whose build takes over a second:
/// the one waiting for the lock must not block the index build (CIC waits for every older
/// snapshot). Both exit 0, each migration is applied once, and the index is valid.
#[tokio::test]
async fn concurrent_runners_and_create_index_concurrently() {
    let case = Case::new("lockcic").await;
    // An index expression that costs 2 ms a row: 600 rows take over a second to index.
    case.write(
        "V1__t.sql",
        "CREATE FUNCTION slow(x int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS \
         $$ BEGIN PERFORM pg_sleep(0.002); RETURN x; END $$;\n\
         CREATE TABLE t (x int);\nINSERT INTO t SELECT generate_series(1, 600);\n",
    )
    .write(
        "V2__idx.sql",
        "CREATE INDEX CONCURRENTLY t_slow ON t (slow(x));\n",
    )
    .write("V3__after.sql", "CREATE TABLE after_idx (id int);\n");
    // Both runners are started while the lock is held, so one certainly waits during the build.
    let holder = case.client().await;
    holder
        .batch_execute("SET application_name = 'lock holder'")
        .await
        .unwrap();
    holder
        .execute("SELECT pg_advisory_lock($1)", &[&FLYWAY_KEY])
        .await
        .unwrap();
    let (a, b) = (spawn_apply(&case), spawn_apply(&case));
    let observer = case.client().await;
    until_pollers(&observer, &case.db, 2).await;
    holder
        .execute("SELECT pg_advisory_unlock($1)", &[&FLYWAY_KEY])
        .await
        .unwrap();
    let started = Instant::now();
    assert_ok(&a.wait_with_output().unwrap());
    assert_ok(&b.wait_with_output().unwrap());
    assert!(
        started.elapsed() > Duration::from_secs(1),
        "the index build was meant to take over a second"
    );
    let history = case.history().await;
    assert_eq!(
        history,
        vec![
            (Some("1".into()), "V1__t.sql".into(), true),
            (Some("2".into()), "V2__idx.sql".into(), true),
            (Some("3".into()), "V3__after.sql".into(), true),
        ]
    );
    assert_eq!(
        case.scalar_i64(
            "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
             WHERE c.relname = 't_slow' AND i.indisvalid"
        )
        .await,
        1,
        "the concurrently built index is valid"
    );
}

/// Two runners started together on an empty database, with transactional and
/// non-transactional scripts, both succeed and apply each migration once.
#[tokio::test]
async fn concurrent_runners_with_mixed_scripts_apply_each_once() {
    let case = Case::new("lockmixed").await;
    case.write("V1__t.sql", "CREATE TABLE t (x int);\n");
    for i in 2..=9 {
        let sql = if i % 3 == 0 {
            format!("CREATE INDEX CONCURRENTLY t_{i} ON t (x);\n")
        } else {
            format!("SELECT pg_sleep(0.01);\nCREATE TABLE t{i} (id int);\n")
        };
        case.write(&format!("V{i}__step.sql"), &sql);
    }
    let (a, b) = (spawn_apply(&case), spawn_apply(&case));
    assert_ok(&a.wait_with_output().unwrap());
    assert_ok(&b.wait_with_output().unwrap());
    let history = case.history().await;
    assert_eq!(history.len(), 9, "{history:?}");
    assert!(history.iter().all(|r| r.2), "{history:?}");
}

/// A caller that keeps the connection after a failed apply (`dev` does) must not keep the lock:
/// it is released on error, and the connection is left usable.
#[tokio::test]
async fn lock_is_released_on_error_while_the_connection_stays() {
    use servicedb::migrate::engine::{Engine, Quiet};
    use servicedb::migrate::placeholders::Placeholders;

    let case = Case::new("lockrelease").await;
    case.write("V1__a.sql", "CREATE TABLE a (id int);\n")
        .write("V2__b.sql", "SELECT * FROM missing;\n");
    let scan = servicedb::migrate::source::scan(&[case.dir.path().to_path_buf()]).unwrap();
    let settings = support::migrate::flyway_settings(Placeholders::default());
    let mut engine = Engine::with_client(case.client().await, settings, scan.files, scan.warnings)
        .await
        .unwrap();
    let err = engine.apply(&mut Quiet).await.unwrap_err().to_string();
    assert!(err.contains("V2__b.sql:1:"), "{err}");
    assert_eq!(engine.applied().len(), 1, "V1 was applied before V2 failed");
    let kept = engine.into_client();
    let other = case.client().await;
    let locked: bool = other
        .query_one("SELECT pg_try_advisory_lock($1)", &[&FLYWAY_KEY])
        .await
        .unwrap()
        .get(0);
    assert!(locked, "the failed apply kept Flyway's lock");
    let n: i64 = kept
        .query_one("SELECT count(*) FROM flyway_schema_history", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
}
