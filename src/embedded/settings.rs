//! Server settings and the command-line arguments they turn into.

use std::path::{Path, PathBuf};

use super::error::EmbeddedError;

/// The default TCP listen address: loopback only.
pub const DEFAULT_LISTEN_ADDRESS: &str = "127.0.0.1";

/// Longest Unix socket path the kernel accepts (`sizeof(sun_path) - 1`).
const MAX_SOCKET_PATH: usize = 107;

/// How a server is run: port, TCP listen address, Unix socket directory (always one of
/// ours, never `/var/run/postgresql`) and extra `-c name=value` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    /// TCP port (also names the Unix socket `.s.PGSQL.<port>`).
    pub port: u16,
    /// Value of `listen_addresses`; [`DEFAULT_LISTEN_ADDRESS`] unless changed.
    pub listen_address: String,
    /// Value of `unix_socket_directories`.
    pub socket_dir: PathBuf,
    /// Further settings, passed in order as `-c name=value`.
    pub extra: Vec<(String, String)>,
}

impl ServerSettings {
    /// Settings listening on `127.0.0.1:<port>` with the socket in `socket_dir`.
    pub fn new(port: u16, socket_dir: impl Into<PathBuf>) -> Self {
        Self {
            port,
            listen_address: DEFAULT_LISTEN_ADDRESS.to_owned(),
            socket_dir: socket_dir.into(),
            extra: Vec::new(),
        }
    }

    /// Replaces the listen address (`listen_addresses`).
    pub fn with_listen_address(mut self, address: impl Into<String>) -> Self {
        self.listen_address = address.into();
        self
    }

    /// Adds an extra `-c name=value` setting.
    pub fn with_setting(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra.push((name.into(), value.into()));
        self
    }

    /// Checks that every setting can be passed on the command line and that the socket
    /// path fits the kernel limit.
    pub fn validate(&self) -> Result<(), EmbeddedError> {
        let socket_dir = path_str(&self.socket_dir)?;
        if !self.socket_dir.is_absolute() {
            return Err(EmbeddedError::BadPath {
                path: self.socket_dir.clone(),
                reason: "the Unix socket directory must be absolute".to_owned(),
            });
        }
        let socket = format!("{socket_dir}/.s.PGSQL.{}", self.port);
        if socket.len() > MAX_SOCKET_PATH {
            return Err(EmbeddedError::BadPath {
                path: PathBuf::from(socket),
                reason: format!(
                    "a Unix socket path may have at most {MAX_SOCKET_PATH} bytes; \
                     use a shorter socket directory"
                ),
            });
        }
        if socket_dir.contains(',') {
            return Err(EmbeddedError::BadPath {
                path: self.socket_dir.clone(),
                reason: "unix_socket_directories is a comma-separated list".to_owned(),
            });
        }
        for (name, value) in &self.extra {
            validate_setting(name, value)?;
        }
        validate_setting("listen_addresses", &self.listen_address)
    }

    /// Arguments for `postgres` after `-D <dir>`:
    /// `-p <port> -c listen_addresses=.. -c unix_socket_directories=.. -c name=value ...`.
    pub fn postgres_args(&self) -> Result<Vec<String>, EmbeddedError> {
        self.validate()?;
        let mut args = vec!["-p".to_owned(), self.port.to_string()];
        let fixed = [
            ("listen_addresses", self.listen_address.as_str()),
            ("unix_socket_directories", path_str(&self.socket_dir)?),
        ];
        let extra = self.extra.iter().map(|(n, v)| (n.as_str(), v.as_str()));
        for (name, value) in fixed.into_iter().chain(extra) {
            args.push("-c".to_owned());
            args.push(format!("{name}={value}"));
        }
        Ok(args)
    }

    /// The same arguments as one shell-quoted string, for `pg_ctl -o` (pg_ctl hands it to
    /// `/bin/sh`).
    pub fn pg_ctl_options(&self) -> Result<String, EmbeddedError> {
        Ok(shell_join(&self.postgres_args()?))
    }

    /// Where a client connects over TCP to reach this server: the first listen address,
    /// with wildcards mapped to loopback; `None` when TCP is off (`listen_addresses=''`).
    pub fn tcp_probe_host(&self) -> Option<String> {
        let first = self.listen_address.split(',').next()?.trim();
        match first {
            "" => None,
            "*" | "0.0.0.0" | "localhost" => Some("127.0.0.1".to_owned()),
            "::" => Some("::1".to_owned()),
            other => Some(other.to_owned()),
        }
    }
}

fn validate_setting(name: &str, value: &str) -> Result<(), EmbeddedError> {
    let bad = |reason: &str| EmbeddedError::InvalidSetting {
        name: name.to_owned(),
        reason: reason.to_owned(),
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')
    {
        return Err(bad(
            "names consist of lower-case letters, digits, `_` and `.`",
        ));
    }
    if value.contains(['\0', '\n', '\r']) {
        return Err(bad("values cannot contain NUL or line breaks"));
    }
    Ok(())
}

/// `path` as UTF-8 (PostgreSQL settings and our shell scripts need text).
pub(crate) fn path_str(path: &Path) -> Result<&str, EmbeddedError> {
    path.to_str().ok_or_else(|| EmbeddedError::BadPath {
        path: path.to_path_buf(),
        reason: "not valid UTF-8".to_owned(),
    })
}

/// Quotes `s` for a POSIX shell: wrapped in single quotes, embedded `'` as `'\''`.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Joins shell-quoted words with spaces.
pub fn shell_join<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|w| shell_quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Quotes only when needed, for readable messages.
pub(crate) fn shell_quote_for_display(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+%".contains(c));
    if plain { s.to_owned() } else { shell_quote(s) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ServerSettings {
        ServerSettings::new(54321, "/tmp/sdb")
            .with_setting("fsync", "off")
            .with_setting("log_line_prefix", "%m [%p] %u@%d ")
    }

    #[test]
    fn postgres_args_list_port_addresses_socket_and_extras_in_order() {
        assert_eq!(
            settings().postgres_args().unwrap(),
            vec![
                "-p",
                "54321",
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "unix_socket_directories=/tmp/sdb",
                "-c",
                "fsync=off",
                "-c",
                "log_line_prefix=%m [%p] %u@%d ",
            ]
        );
    }

    #[test]
    fn pg_ctl_options_are_shell_quoted() {
        assert_eq!(
            settings().pg_ctl_options().unwrap(),
            "'-p' '54321' '-c' 'listen_addresses=127.0.0.1' '-c' \
             'unix_socket_directories=/tmp/sdb' '-c' 'fsync=off' '-c' \
             'log_line_prefix=%m [%p] %u@%d '"
        );
    }

    #[test]
    fn shell_quote_escapes_single_quotes() {
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(
            shell_quote_for_display("/usr/bin/pg_ctl"),
            "/usr/bin/pg_ctl"
        );
        assert_eq!(shell_quote_for_display("a b"), "'a b'");
    }

    #[test]
    fn invalid_settings_are_rejected() {
        let err = settings()
            .with_setting("Bad Name", "x")
            .postgres_args()
            .unwrap_err();
        assert!(err.to_string().contains("Bad Name"), "{err}");
        assert!(
            settings()
                .with_setting("work_mem", "1\n2")
                .validate()
                .is_err()
        );
        assert!(
            settings()
                .with_setting("custom.setting", "x")
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn socket_dir_must_be_absolute_and_short() {
        assert!(ServerSettings::new(5432, "rel").validate().is_err());
        let long = format!("/{}", "x".repeat(100));
        let err = ServerSettings::new(5432, long).validate().unwrap_err();
        assert!(err.to_string().contains("at most 107 bytes"), "{err}");
    }

    #[test]
    fn tcp_probe_host_maps_wildcards_to_loopback() {
        let s = |a: &str| ServerSettings::new(1, "/s").with_listen_address(a);
        assert_eq!(
            s("127.0.0.1").tcp_probe_host().as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(s("*").tcp_probe_host().as_deref(), Some("127.0.0.1"));
        assert_eq!(s("::").tcp_probe_host().as_deref(), Some("::1"));
        assert_eq!(
            s("10.0.0.1, 127.0.0.1").tcp_probe_host().as_deref(),
            Some("10.0.0.1")
        );
        assert_eq!(s("").tcp_probe_host(), None);
    }
}
