//! One `dev up`/`down`/`reset` at a time per state directory: an exclusive lock on
//! `<state>/lock`, held until the command ends (the OS releases it if the process dies). A
//! second command waits a bounded time, saying who holds the lock, then gives up.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// How long a second command waits, unless `SERVICEDB_DEV_LOCK_TIMEOUT` says otherwise.
const DEFAULT_WAIT: Duration = Duration::from_secs(120);

/// The holder writes its line just after taking the lock; a waiter that looks in between
/// gives it this long to appear before saying it waits for an unnamed command.
const NAME_GRACE: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is held by {holder}; gave up after {waited} (one dev command at a time per state \
         directory; set SERVICEDB_DEV_LOCK_TIMEOUT to wait longer)"
    )]
    Busy {
        path: PathBuf,
        holder: String,
        waited: String,
    },
    #[error("SERVICEDB_DEV_LOCK_TIMEOUT: {0}")]
    Timeout(String),
}

/// Held for as long as it lives.
#[derive(Debug)]
pub struct StateLock {
    file: File,
}

impl Drop for StateLock {
    /// Clears the holder's line before the lock goes (closing the file releases it): the
    /// next command's waiter must not name a holder that has finished.
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
    }
}

fn wait_limit() -> Result<Duration, LockError> {
    match std::env::var("SERVICEDB_DEV_LOCK_TIMEOUT") {
        Ok(v) => humantime::parse_duration(&v).map_err(|e| LockError::Timeout(e.to_string())),
        Err(_) => Ok(DEFAULT_WAIT),
    }
}

/// Takes the lock for `command`, waiting (and telling `waiting` once) while another holds it.
pub async fn lock(
    state: &Path,
    command: &str,
    waiting: &mut dyn FnMut(String),
) -> Result<StateLock, LockError> {
    lock_with(state, command, wait_limit()?, waiting).await
}

async fn lock_with(
    state: &Path,
    command: &str,
    limit: Duration,
    waiting: &mut dyn FnMut(String),
) -> Result<StateLock, LockError> {
    let path = state.join("lock");
    let io = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(state).map_err(io)?;
    // Not truncated on open: the holder's line must survive a waiter opening the file.
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    let start = Instant::now();
    let mut told = false;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) => {
                let named = holder(&mut file);
                let known = named.is_some();
                let holder = named.unwrap_or_else(|| "another servicedb dev command".into());
                if start.elapsed() >= limit {
                    return Err(LockError::Busy {
                        path,
                        holder,
                        waited: humantime::format_duration(limit).to_string(),
                    });
                }
                if !told && (known || start.elapsed() >= NAME_GRACE) {
                    waiting(format!(
                        "waiting for {holder} to finish ({})",
                        path.display()
                    ));
                    told = true;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
    }
    let line = format!(
        "pid {} (servicedb dev {command}, since {})\n",
        std::process::id(),
        humantime::format_rfc3339_seconds(SystemTime::now())
    );
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    file.write_all(line.as_bytes()).map_err(io)?;
    Ok(StateLock { file })
}

/// The holder's line, once it has written it.
fn holder(file: &mut File) -> Option<String> {
    let mut text = String::new();
    let _ = file.rewind().and_then(|()| file.read_to_string(&mut text));
    Some(text.trim().to_string()).filter(|line| !line.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_holder_waits_then_fails_naming_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock(dir.path(), "up", &mut |_| {}).await.unwrap();
        let mut told = Vec::new();
        let err = lock_with(dir.path(), "down", Duration::from_millis(500), &mut |m| {
            told.push(m)
        })
        .await
        .unwrap_err()
        .to_string();
        let holder = format!("pid {} (servicedb dev up, since", std::process::id());
        assert!(err.contains(&holder), "{err}");
        assert!(err.contains("gave up after 500ms"), "{err}");
        assert_eq!(told.len(), 1, "told once: {told:?}");
        assert!(
            told[0].starts_with(&format!("waiting for {holder}")),
            "{told:?}"
        );
        drop(first);
        lock(dir.path(), "down", &mut |_| {}).await.unwrap();
    }

    /// Two commands started together: the waiter may look before the holder has written its
    /// line. It names the holder all the same (CI once saw "waiting for another servicedb dev
    /// command" here).
    #[tokio::test]
    async fn a_waiter_that_looks_before_the_holder_writes_still_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let mut raw = File::create(&path).unwrap();
        raw.try_lock().unwrap();
        let mut told = Vec::new();
        let mut tell = |m| told.push(m);
        let waiter = lock_with(dir.path(), "up", Duration::from_secs(10), &mut tell);
        let holder = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            raw.write_all(b"pid 4242 (servicedb dev up, since now)\n")
                .unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
            drop(raw);
        };
        let (taken, ()) = tokio::join!(waiter, holder);
        taken.unwrap();
        assert_eq!(told.len(), 1, "{told:?}");
        assert!(told[0].starts_with("waiting for pid 4242 "), "{told:?}");
    }

    /// The line goes with the lock: a command that starts after another has finished, and
    /// looks before the new holder has written its own line, names no one who has gone.
    #[tokio::test]
    async fn a_finished_holder_leaves_no_line_behind() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock(dir.path(), "up", &mut |_| {}).await.unwrap();
        let line = std::fs::read_to_string(dir.path().join("lock")).unwrap();
        assert!(line.starts_with("pid "), "{line}");
        drop(first);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("lock")).unwrap(),
            ""
        );
    }
}
