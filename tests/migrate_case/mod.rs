//! What the `servicedb migrate` test binaries share: a fresh database with a directory of
//! migration files, and running the real binary against it.
#![allow(dead_code)]

use std::process::{Command, Output, Stdio};

use crate::support::postgres::server;

pub const FLYWAY_KEY: i64 = 77433833903597;

/// A fresh database and a directory of migration files.
pub struct Case {
    pub db: String,
    pub dir: tempfile::TempDir,
}

impl Case {
    pub async fn new(prefix: &str) -> Case {
        Case {
            db: server().create_database(prefix).await,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn url(&self) -> String {
        server().admin_url(&self.db)
    }

    pub fn write(&self, name: &str, sql: &str) -> &Self {
        std::fs::write(self.dir.path().join(name), sql).unwrap();
        self
    }

    pub fn remove(&self, name: &str) {
        std::fs::remove_file(self.dir.path().join(name)).unwrap();
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_servicedb"));
        cmd.args(args)
            .env("DATABASE_URL", self.url())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        cmd
    }

    /// `servicedb migrate <action> --dir <dir> <extra>`.
    pub fn migrate(&self, action: &str, extra: &[&str]) -> Output {
        let dir = self.dir.path().to_str().unwrap().to_string();
        let mut args = vec!["migrate", action, "--dir", dir.as_str()];
        args.extend_from_slice(extra);
        self.command(&args).output().unwrap()
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        server().admin_client(&self.db).await
    }

    /// (version or description, script, success) of every history row, in rank order.
    pub async fn history(&self) -> Vec<(Option<String>, String, bool)> {
        self.client()
            .await
            .query(
                "SELECT version, script, success FROM flyway_schema_history ORDER BY installed_rank",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    }

    pub async fn scalar_i64(&self, sql: &str) -> i64 {
        self.client()
            .await
            .query_one(sql, &[])
            .await
            .unwrap()
            .get(0)
    }
}

pub fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

#[track_caller]
pub fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[track_caller]
pub fn assert_failed(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected failure\nstdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stderr)
}

pub fn rows(versions: &[&str]) -> Vec<Option<String>> {
    versions.iter().map(|v| Some(v.to_string())).collect()
}
