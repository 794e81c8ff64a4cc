//! A server started through `pg_ctl`: it outlives our process (used by `servicedb dev up`).

use std::ffi::OsString;
use std::path::Path;

use super::account::{ServerAccount, absolute};
use super::binaries::PgBinaries;
use super::cluster::is_initialized;
use super::error::EmbeddedError;
use super::readiness::{LOG_TAIL_LINES, is_running, log_tail};
use super::settings::ServerSettings;

/// Seconds `pg_ctl -w` waits for the server to start or stop.
pub const PG_CTL_TIMEOUT_SECS: u32 = 60;

/// Starts the cluster in `data_dir` with `pg_ctl ... -w start`, logging to `log_path`,
/// and returns once it accepts connections. The server keeps running after our process
/// exits; stop it with [`stop`]. On failure the error quotes the end of the log.
pub fn start_detached(
    bins: &PgBinaries,
    data_dir: &Path,
    settings: &ServerSettings,
    log_path: &Path,
) -> Result<(), EmbeddedError> {
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
    let options = settings.pg_ctl_options()?;
    account.check_reachable(&data_dir)?;
    account.prepare_dir(&settings.socket_dir)?;
    account.prepare_file(&log_path)?;
    let args = pg_ctl_start_args(&data_dir, &log_path, &options);
    match account.run(&bins.pg_ctl(), &args) {
        Ok(_) => Ok(()),
        Err(EmbeddedError::CommandFailed {
            command,
            status,
            output,
        }) => Err(EmbeddedError::ServerStart {
            reason: format!("`{command}` failed ({status}): {}", output.trim()),
            log_tail: log_tail(&log_path, LOG_TAIL_LINES),
            log_path,
        }),
        Err(other) => Err(other),
    }
}

/// Stops the server of `data_dir` with `pg_ctl -D <dir> -m fast -w stop` (active
/// sessions are disconnected). Does nothing when it is not running.
pub fn stop(bins: &PgBinaries, data_dir: &Path) -> Result<(), EmbeddedError> {
    let data_dir = absolute(data_dir)?;
    if !is_running(&data_dir) {
        return Ok(());
    }
    let account = ServerAccount::detect()?;
    account.run(&bins.pg_ctl(), &pg_ctl_stop_args(&data_dir))?;
    Ok(())
}

/// `pg_ctl` arguments to start: `-D <data> -l <log> -w -t <secs> -o <options> start`.
pub fn pg_ctl_start_args(data_dir: &Path, log_path: &Path, options: &str) -> Vec<OsString> {
    vec![
        "-D".into(),
        data_dir.into(),
        "-l".into(),
        log_path.into(),
        "-w".into(),
        "-t".into(),
        PG_CTL_TIMEOUT_SECS.to_string().into(),
        "-o".into(),
        options.into(),
        "start".into(),
    ]
}

/// `pg_ctl` arguments to stop: `-D <data> -m fast -w -t <secs> stop`.
pub fn pg_ctl_stop_args(data_dir: &Path) -> Vec<OsString> {
    vec![
        "-D".into(),
        data_dir.into(),
        "-m".into(),
        "fast".into(),
        "-w".into(),
        "-t".into(),
        PG_CTL_TIMEOUT_SECS.to_string().into(),
        "stop".into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[OsString]) -> Vec<String> {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn start_args() {
        let options = ServerSettings::new(5544, "/p/.servicedb")
            .pg_ctl_options()
            .unwrap();
        let args = pg_ctl_start_args(
            Path::new("/p/.servicedb/data"),
            Path::new("/p/.servicedb/postgres.log"),
            &options,
        );
        assert_eq!(
            strings(&args),
            vec![
                "-D",
                "/p/.servicedb/data",
                "-l",
                "/p/.servicedb/postgres.log",
                "-w",
                "-t",
                "60",
                "-o",
                "'-p' '5544' '-c' 'listen_addresses=127.0.0.1' '-c' \
                 'unix_socket_directories=/p/.servicedb'",
                "start",
            ]
        );
    }

    #[test]
    fn stop_args_use_fast_mode_and_wait() {
        assert_eq!(
            strings(&pg_ctl_stop_args(Path::new("/d"))),
            vec!["-D", "/d", "-m", "fast", "-w", "-t", "60", "stop"]
        );
    }
}
