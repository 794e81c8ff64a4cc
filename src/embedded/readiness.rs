//! Is the server up? Free ports, `postmaster.pid`, a protocol-level probe, log tails.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::error::EmbeddedError;
use super::settings::ServerSettings;

/// How many log lines error messages quote.
pub const LOG_TAIL_LINES: usize = 30;

/// Default time a server gets to become ready.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(30);

const POLL_INTERVAL: Duration = Duration::from_millis(50);
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read the port).
pub fn free_port() -> Result<u16, EmbeddedError> {
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .map_err(|e| EmbeddedError::io("bind a TCP port on", "127.0.0.1:0", e))?;
    let port = listener
        .local_addr()
        .map_err(|e| EmbeddedError::io("read the address of", "127.0.0.1:0", e))?
        .port();
    Ok(port)
}

/// The contents of `<data_dir>/postmaster.pid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostmasterPid {
    /// PID of the postmaster.
    pub pid: u32,
    /// Data directory it serves.
    pub data_dir: PathBuf,
    /// Port, if written yet.
    pub port: Option<u16>,
    /// First Unix socket directory, if any.
    pub socket_dir: Option<String>,
    /// First listen address, if any.
    pub listen_address: Option<String>,
    /// `starting`, `ready`, `stopping`, ... (PostgreSQL 10+), once written.
    pub status: Option<String>,
}

/// Reads `<data_dir>/postmaster.pid`; `None` if it is missing or unreadable.
pub fn read_postmaster_pid(data_dir: &Path) -> Option<PostmasterPid> {
    parse_postmaster_pid(&fs::read_to_string(data_dir.join("postmaster.pid")).ok()?)
}

/// Parses the `postmaster.pid` format (one value per line: pid, data dir, start time,
/// port, socket dir, listen address, shared memory key, status).
pub fn parse_postmaster_pid(text: &str) -> Option<PostmasterPid> {
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let non_empty = |i: usize| {
        lines
            .get(i)
            .filter(|l| !l.is_empty())
            .map(|l| (*l).to_owned())
    };
    Some(PostmasterPid {
        pid: lines.first()?.parse().ok()?,
        data_dir: PathBuf::from(lines.get(1)?),
        port: lines.get(3).and_then(|p| p.parse().ok()),
        socket_dir: non_empty(4),
        listen_address: non_empty(5),
        status: non_empty(7),
    })
}

/// Whether the postmaster recorded in `<data_dir>/postmaster.pid` is alive (its PID
/// exists and is a `postgres` process; a stale file after a crash does not count).
pub fn is_running(data_dir: &Path) -> bool {
    let Some(pid_file) = read_postmaster_pid(data_dir) else {
        return false;
    };
    fs::read_to_string(format!("/proc/{}/comm", pid_file.pid))
        .is_ok_and(|comm| matches!(comm.trim(), "postgres" | "postmaster"))
}

/// What a server answered to a startup packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// It asked for authentication (or answered with an error other than "starting up"):
    /// it accepts logins.
    Accepting,
    /// It answered "the database system is starting up / shutting down" (57P03).
    NotYet,
    /// No connection or no valid answer.
    NoAnswer,
}

/// Connects (TCP to the listen address, else the Unix socket), sends a startup packet and
/// classifies the first reply. It never authenticates: it closes the connection when
/// asked for a password, which the server does not log.
pub fn probe(settings: &ServerSettings) -> ProbeOutcome {
    let result = match settings.tcp_probe_host() {
        Some(host) => (host.as_str(), settings.port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .and_then(|addr| TcpStream::connect_timeout(&addr, PROBE_TIMEOUT).ok())
            .map(|stream| {
                let _ = stream.set_read_timeout(Some(PROBE_TIMEOUT));
                let _ = stream.set_write_timeout(Some(PROBE_TIMEOUT));
                exchange_startup(stream)
            }),
        None => {
            let socket = settings
                .socket_dir
                .join(format!(".s.PGSQL.{}", settings.port));
            UnixStream::connect(socket).ok().map(|stream| {
                let _ = stream.set_read_timeout(Some(PROBE_TIMEOUT));
                let _ = stream.set_write_timeout(Some(PROBE_TIMEOUT));
                exchange_startup(stream)
            })
        }
    };
    result.unwrap_or(ProbeOutcome::NoAnswer)
}

fn exchange_startup(mut stream: impl Read + Write) -> ProbeOutcome {
    if stream
        .write_all(&startup_packet("servicedb_probe", "postgres"))
        .is_err()
    {
        return ProbeOutcome::NoAnswer;
    }
    let mut header = [0u8; 5];
    if stream.read_exact(&mut header).is_err() {
        return ProbeOutcome::NoAnswer;
    }
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    let body_len = len.saturating_sub(4).min(8192);
    let mut body = vec![0u8; body_len];
    if stream.read_exact(&mut body).is_err() {
        return ProbeOutcome::NoAnswer;
    }
    classify_reply(header[0], &body)
}

/// A protocol 3.0 startup packet for `user` and `database`.
pub fn startup_packet(user: &str, database: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&196_608u32.to_be_bytes()); // protocol 3.0
    for (key, value) in [("user", user), ("database", database)] {
        body.extend_from_slice(key.as_bytes());
        body.push(0);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut packet = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    packet.extend_from_slice(&body);
    packet
}

/// Classifies the first message a server sends after a startup packet.
pub fn classify_reply(message_type: u8, body: &[u8]) -> ProbeOutcome {
    match message_type {
        b'R' => ProbeOutcome::Accepting,
        b'E' => {
            // Fields: a type byte then a NUL-terminated string, until a lone NUL.
            let code = body
                .split(|b| *b == 0)
                .find(|field| field.first() == Some(&b'C'))
                .map(|field| &field[1..]);
            match code {
                Some(b"57P03") | None => ProbeOutcome::NotYet,
                Some(_) => ProbeOutcome::Accepting,
            }
        }
        _ => ProbeOutcome::NoAnswer,
    }
}

/// Whether the server of `data_dir` is ready: `postmaster.pid` says `ready` and a probe on
/// the configured address gets asked for authentication.
pub fn is_ready(data_dir: &Path, settings: &ServerSettings) -> bool {
    read_postmaster_pid(data_dir).is_some_and(|p| p.status.as_deref() == Some("ready"))
        && probe(settings) == ProbeOutcome::Accepting
}

/// Why a server we started stopped early, as reported by its supervisor.
pub(crate) struct EarlyExit {
    pub reason: String,
    /// Log lines captured before the log may have been removed.
    pub captured_log: Option<String>,
}

/// Polls (every 50 ms, up to `timeout`) until [`is_ready`]; `exited` reports an early
/// exit. Errors carry the last lines of the log.
pub(crate) fn wait_ready_or_exit(
    data_dir: &Path,
    settings: &ServerSettings,
    log_path: &Path,
    timeout: Duration,
    exited: &mut dyn FnMut() -> Option<EarlyExit>,
) -> Result<(), EmbeddedError> {
    let start = Instant::now();
    loop {
        if let Some(exit) = exited() {
            let log_tail = exit
                .captured_log
                .filter(|l| !l.trim().is_empty())
                .unwrap_or_else(|| log_tail(log_path, LOG_TAIL_LINES));
            return Err(EmbeddedError::ServerStart {
                reason: exit.reason,
                log_path: log_path.to_path_buf(),
                log_tail,
            });
        }
        if is_ready(data_dir, settings) {
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(EmbeddedError::ServerStart {
                reason: format!(
                    "not accepting connections on port {} after {}s",
                    settings.port,
                    timeout.as_secs()
                ),
                log_path: log_path.to_path_buf(),
                log_tail: log_tail(log_path, LOG_TAIL_LINES),
            });
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Waits (up to `timeout`) until the server of `data_dir` is ready, e.g. one started
/// earlier by another process; on timeout the error quotes the end of `log_path`.
pub fn wait_until_ready(
    data_dir: &Path,
    settings: &ServerSettings,
    log_path: &Path,
    timeout: Duration,
) -> Result<(), EmbeddedError> {
    wait_ready_or_exit(data_dir, settings, log_path, timeout, &mut || None)
}

/// The last `lines` lines of the file at `path` (reads at most its last 64 KiB); a note
/// instead when it cannot be read.
pub fn log_tail(path: &Path, lines: usize) -> String {
    const MAX: u64 = 64 * 1024;
    let read = || -> std::io::Result<String> {
        let mut file = fs::File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(MAX)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read() {
        Ok(text) => last_lines(&text, lines),
        Err(e) => format!("(could not read {}: {e})", path.display()),
    }
}

/// The last `n` lines of `text`.
pub fn last_lines(text: &str, n: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_port_is_bindable() {
        let port = free_port().unwrap();
        assert_ne!(port, 0);
        TcpListener::bind(("127.0.0.1", port)).unwrap();
    }

    #[test]
    fn postmaster_pid_parsing() {
        let text =
            "4242\n/tmp/x/data\n1700000000\n54321\n/tmp/x\n127.0.0.1\n  1234 5678\nready   \n";
        let parsed = parse_postmaster_pid(text).unwrap();
        assert_eq!(parsed.pid, 4242);
        assert_eq!(parsed.data_dir, PathBuf::from("/tmp/x/data"));
        assert_eq!(parsed.port, Some(54321));
        assert_eq!(parsed.socket_dir.as_deref(), Some("/tmp/x"));
        assert_eq!(parsed.listen_address.as_deref(), Some("127.0.0.1"));
        assert_eq!(parsed.status.as_deref(), Some("ready"));

        let starting = parse_postmaster_pid("4242\n/d\n1\n5432\n").unwrap();
        assert_eq!(starting.status, None);
        assert_eq!(parse_postmaster_pid(""), None);
    }

    #[test]
    fn startup_packet_layout() {
        let packet = startup_packet("u", "db");
        let expected: &[u8] = b"\x00\x00\x00\x1c\x00\x03\x00\x00user\0u\0database\0db\0\0";
        assert_eq!(packet, expected);
    }

    #[test]
    fn replies_are_classified() {
        assert_eq!(
            classify_reply(b'R', &[0, 0, 0, 10]),
            ProbeOutcome::Accepting
        );
        let starting = b"SFATAL\0VFATAL\0C57P03\0Mthe database system is starting up\0\0";
        assert_eq!(classify_reply(b'E', starting), ProbeOutcome::NotYet);
        let too_many = b"SFATAL\0C53300\0Msorry, too many clients already\0\0";
        assert_eq!(classify_reply(b'E', too_many), ProbeOutcome::Accepting);
        assert_eq!(classify_reply(b'H', b""), ProbeOutcome::NoAnswer);
    }

    #[test]
    fn last_lines_keeps_the_end() {
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(last_lines("a", 5), "a");
        assert_eq!(last_lines("", 5), "");
    }
}
