//! A server that stops by itself when a watched process exits (used by tests).
//!
//! A small `sh` supervisor starts `postgres` in the background and polls; once the
//! watched process is gone (exited, killed, even by SIGKILL, or a zombie) it stops the
//! server (SIGINT: fast shutdown), waits for it and removes a given directory. The
//! watched process is checked through `/proc/<pid>` rather than `kill -0`, because the
//! supervisor may run as another user (`postgres`), for which `kill -0` fails with EPERM.

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::Duration;

use super::account::{ServerAccount, absolute, display_command};
use super::binaries::PgBinaries;
use super::cluster::is_initialized;
use super::error::EmbeddedError;
use super::readiness::{EarlyExit, LOG_TAIL_LINES, wait_ready_or_exit};
use super::settings::{ServerSettings, path_str, shell_join, shell_quote};

/// A running server supervised by a shell that stops it once the watched process exits.
#[derive(Debug)]
pub struct SupervisedServer {
    supervisor: Child,
    data_dir: PathBuf,
    log_path: PathBuf,
    settings: ServerSettings,
    watched_pid: u32,
}

impl SupervisedServer {
    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.settings.port
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &ServerSettings {
        &self.settings
    }

    /// Its data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The file its output goes to.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The process whose exit stops the server.
    pub fn watched_pid(&self) -> u32 {
        self.watched_pid
    }

    /// PID of the supervisor (the `sh`, or `runuser` around it when root).
    pub fn supervisor_pid(&self) -> u32 {
        self.supervisor.id()
    }

    /// The supervisor's exit status once it has stopped the server and cleaned up (and
    /// reaps it); `None` while it is still running.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, EmbeddedError> {
        self.supervisor
            .try_wait()
            .map_err(|e| EmbeddedError::io("wait for the supervisor of", &self.data_dir, e))
    }
}

/// Starts `postgres` on the cluster in `data_dir` under a supervisor that stops it when
/// process `watched_pid` exits, then removes `cleanup_dir` (if given; it must contain
/// `data_dir`). Output goes to `log_path`. Returns once the server accepts connections
/// (up to `timeout`); otherwise the error quotes the end of the log.
///
/// The supervisor runs in its own process group, so a Ctrl-C aimed at the caller does
/// not kill it before it has cleaned up.
pub fn start_supervised(
    bins: &PgBinaries,
    data_dir: &Path,
    settings: &ServerSettings,
    log_path: &Path,
    watched_pid: u32,
    cleanup_dir: Option<&Path>,
    timeout: Duration,
) -> Result<SupervisedServer, EmbeddedError> {
    let account = ServerAccount::detect()?;
    let data_dir = absolute(data_dir)?;
    let log_path = absolute(log_path)?;
    if !is_initialized(&data_dir) {
        return Err(EmbeddedError::BadPath {
            path: data_dir,
            reason: "no database cluster here (PG_VERSION missing); run init_cluster first"
                .to_owned(),
        });
    }
    let cleanup_dir = cleanup_dir.map(absolute).transpose()?;
    if let Some(dir) = &cleanup_dir
        && (dir.parent().is_none() || !data_dir.starts_with(dir))
    {
        return Err(EmbeddedError::BadPath {
            path: dir.clone(),
            reason: format!(
                "the directory removed after shutdown must contain the data directory {}",
                data_dir.display()
            ),
        });
    }
    let mut postgres_argv = vec![
        path_str(&bins.postgres())?.to_owned(),
        "-D".to_owned(),
        path_str(&data_dir)?.to_owned(),
    ];
    postgres_argv.extend(settings.postgres_args()?);
    let script = supervisor_script(
        &postgres_argv,
        path_str(&log_path)?,
        watched_pid,
        cleanup_dir.as_deref().map(path_str).transpose()?,
    );

    account.check_reachable(&data_dir)?;
    account.prepare_dir(&settings.socket_dir)?;
    account.prepare_file(&log_path)?;

    let args = [OsString::from("-c"), OsString::from(script)];
    let argv = account.command_line("/bin/sh".as_ref(), &args);
    let mut supervisor = account
        .command("/bin/sh".as_ref(), &args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|source| EmbeddedError::Spawn {
            command: display_command(&argv),
            source,
        })?;

    let mut exited = || match supervisor.try_wait() {
        Ok(None) => None,
        Ok(Some(status)) => Some(EarlyExit {
            reason: format!("the server exited during startup ({status})"),
            captured_log: Some(drain(&mut supervisor)),
        }),
        Err(e) => Some(EarlyExit {
            reason: format!("could not check the supervisor process: {e}"),
            captured_log: None,
        }),
    };
    wait_ready_or_exit(&data_dir, settings, &log_path, timeout, &mut exited)?;
    Ok(SupervisedServer {
        supervisor,
        data_dir,
        log_path,
        settings: settings.clone(),
        watched_pid,
    })
}

/// Everything an exited supervisor wrote (its stdout holds the log tail it saved before
/// removing the directory; its stderr e.g. `runuser` errors).
fn drain(child: &mut Child) -> String {
    let mut text = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut text);
    }
    if let Some(mut err) = child.stderr.take() {
        let mut err_text = String::new();
        let _ = err.read_to_string(&mut err_text);
        text.push_str(&err_text);
    }
    text
}

/// The supervisor's `sh` script: runs `postgres_argv` in the background with output
/// appended to `log_path`, polls every 0.2 s while both the watched process and the
/// server live, then stops the server, waits for it and removes `cleanup_dir`. If the
/// server stopped on its own, it first prints the end of the log on stdout. It exits
/// with the server's exit status. The watched process counts as alive while its
/// `/proc/<pid>/status` exists and does not say zombie (`kill -0` would fail with EPERM
/// for another user's process, and a zombie keeps its `/proc` entry until reaped).
pub fn supervisor_script(
    postgres_argv: &[String],
    log_path: &str,
    watched_pid: u32,
    cleanup_dir: Option<&str>,
) -> String {
    let cleanup = cleanup_dir
        .map(|dir| format!("rm -rf -- {}", shell_quote(dir)))
        .unwrap_or_else(|| ":".to_owned());
    format!(
        r#"watched={watched_pid}
log={log}
alive() {{
  state=
  {{ while read -r key value rest; do
      if [ "$key" = "State:" ]; then state=$value; break; fi
    done < "/proc/$watched/status"; }} 2>/dev/null
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}}
if ! alive; then
  echo "supervisor: watched process $watched is not visible in /proc (exited already, or /proc is mounted with hidepid)"
  {cleanup}
  exit 3
fi
{postgres} </dev/null >>"$log" 2>&1 &
pg=$!
while alive && kill -0 "$pg" 2>/dev/null; do sleep 0.2; done
if alive; then
  tail -n {tail_lines} "$log" 2>/dev/null || true
fi
kill -INT "$pg" 2>/dev/null
wait "$pg"
status=$?
{cleanup}
exit "$status"
"#,
        log = shell_quote(log_path),
        postgres = shell_join(postgres_argv),
        tail_lines = LOG_TAIL_LINES,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_runs_postgres_quoted_with_log_redirect_and_cleanup() {
        let argv: Vec<String> = [
            "/pg/bin/postgres",
            "-D",
            "/t/data",
            "-c",
            "log_line_prefix=%m [%p] ",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let script = supervisor_script(&argv, "/t/postgres.log", 4242, Some("/t"));
        assert!(
            script.starts_with("watched=4242\nlog='/t/postgres.log'\n"),
            "{script}"
        );
        assert!(
            script.contains(
                "'/pg/bin/postgres' '-D' '/t/data' '-c' 'log_line_prefix=%m [%p] ' \
                 </dev/null >>\"$log\" 2>&1 &\npg=$!\n"
            ),
            "{script}"
        );
        assert!(script.contains("/proc/$watched/status"), "{script}");
        assert!(!script.contains("kill -0 \"$watched\""), "{script}");
        assert!(script.contains("kill -INT \"$pg\""), "{script}");
        assert!(
            script.ends_with("wait \"$pg\"\nstatus=$?\nrm -rf -- '/t'\nexit \"$status\"\n"),
            "{script}"
        );
    }

    #[test]
    fn script_without_cleanup_removes_nothing() {
        let script = supervisor_script(&["/pg/postgres".to_owned()], "/l", 1, None);
        assert!(!script.contains("rm -rf"), "{script}");
    }

    /// The script really stops its child when the watched process dies, also when the
    /// latter lingers as a zombie. A stand-in (`sleep 30`) plays postgres; like postgres
    /// it must not ignore SIGINT (background jobs of `sh` start with it ignored, postgres
    /// installs its own handler), hence GNU `env --default-signal=INT`.
    #[test]
    fn script_stops_the_server_when_the_watched_process_dies() {
        let dir = tempfile::tempdir().unwrap();
        let cleanup = dir.path().join("cleanup");
        std::fs::create_dir(&cleanup).unwrap();
        let log = cleanup.join("log");
        let mut watched = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let script = supervisor_script(
            &["env", "--default-signal=INT", "sleep", "30"].map(str::to_owned),
            log.to_str().unwrap(),
            watched.id(),
            Some(cleanup.to_str().unwrap()),
        );
        let mut supervisor = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(&script)
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        assert!(supervisor.try_wait().unwrap().is_none());
        watched.kill().unwrap(); // stays a zombie until waited for
        let start = std::time::Instant::now();
        let status = loop {
            if let Some(status) = supervisor.try_wait().unwrap() {
                break status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "supervisor still running"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        watched.wait().unwrap();
        // The stand-in dies of SIGINT (128 + 2); postgres exits 0 after a fast shutdown.
        assert_eq!(status.code(), Some(130), "{status}");
        assert!(!cleanup.exists());
    }
}
