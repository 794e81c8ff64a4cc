//! Which OS account runs the server commands.
//!
//! PostgreSQL refuses to run as root. When we are root, every server command runs as the
//! `postgres` OS user through `runuser -u postgres -- <cmd>`, and the directories and files
//! it uses are handed over to that user. Otherwise commands run directly.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::error::EmbeddedError;

/// The OS user the server runs as when we are root.
pub const SERVER_OS_USER: &str = "postgres";

/// How server commands are run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerAccount {
    /// Not root: commands run directly as the current user.
    CurrentUser,
    /// Root: commands run as the `postgres` OS user via `runuser`.
    Postgres {
        /// Its user id.
        uid: u32,
        /// Its primary group id.
        gid: u32,
        /// All its group ids (primary and supplementary).
        groups: Vec<u32>,
    },
}

/// Whether this process runs as root (checked without libc: the owner of `/proc/self`).
pub fn running_as_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

impl ServerAccount {
    /// [`ServerAccount::Postgres`] when running as root, else [`ServerAccount::CurrentUser`].
    pub fn detect() -> Result<Self, EmbeddedError> {
        if !running_as_root() {
            return Ok(Self::CurrentUser);
        }
        let passwd = command_stdout("getent", &["passwd", SERVER_OS_USER]).or_else(|| {
            fs::read_to_string("/etc/passwd").ok().and_then(|all| {
                all.lines()
                    .find(|l| l.starts_with(&format!("{SERVER_OS_USER}:")))
                    .map(str::to_owned)
            })
        });
        let (uid, gid) = passwd
            .as_deref()
            .and_then(|line| parse_passwd_line(line, SERVER_OS_USER))
            .ok_or(EmbeddedError::NoPostgresUser)?;
        let mut groups = command_stdout("id", &["-G", SERVER_OS_USER])
            .map(|out| parse_group_ids(&out))
            .unwrap_or_default();
        if !groups.contains(&gid) {
            groups.push(gid);
        }
        Ok(Self::Postgres { uid, gid, groups })
    }

    /// Whether commands are delegated to the `postgres` user.
    pub fn runs_as_postgres(&self) -> bool {
        matches!(self, Self::Postgres { .. })
    }

    /// The full argument vector (program first) that runs `program args` as this account.
    pub fn command_line(&self, program: &OsStr, args: &[OsString]) -> Vec<OsString> {
        let mut argv = Vec::with_capacity(args.len() + 5);
        if self.runs_as_postgres() {
            argv.push(runuser_program());
            argv.extend(["-u", SERVER_OS_USER, "--"].map(OsString::from));
        }
        argv.push(program.to_os_string());
        argv.extend(args.iter().cloned());
        argv
    }

    /// A [`Command`] running `program args` as this account. When delegating to
    /// `postgres`, the working directory is `/` (ours may not be reachable by it).
    pub fn command(&self, program: &OsStr, args: &[OsString]) -> Command {
        let argv = self.command_line(program, args);
        let mut command = Command::new(&argv[0]);
        command.args(&argv[1..]);
        if self.runs_as_postgres() {
            command.current_dir("/");
        }
        command
    }

    /// Runs `program args` as this account and waits for it; fails with the command line,
    /// exit status and output when it exits unsuccessfully. Returns stdout and stderr.
    pub fn run(&self, program: &Path, args: &[OsString]) -> Result<String, EmbeddedError> {
        let argv = self.command_line(program.as_os_str(), args);
        let output = self
            .command(program.as_os_str(), args)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|source| EmbeddedError::Spawn {
                command: display_command(&argv),
                source,
            })?;
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        if output.status.success() {
            Ok(text)
        } else {
            Err(EmbeddedError::CommandFailed {
                command: display_command(&argv),
                status: output.status.to_string(),
                output: text,
            })
        }
    }

    /// Creates `dir` (and its parents) if missing; when delegating, checks that the
    /// `postgres` user can reach it and makes it owned by that user.
    pub fn prepare_dir(&self, dir: &Path) -> Result<(), EmbeddedError> {
        self.check_reachable(dir)?;
        fs::create_dir_all(dir).map_err(|e| EmbeddedError::io("create directory", dir, e))?;
        self.check_reachable(dir)?;
        self.hand_over(dir)
    }

    /// Creates the (empty) file `file` if missing; when delegating, checks that the
    /// `postgres` user can reach it and makes it owned by that user.
    pub fn prepare_file(&self, file: &Path) -> Result<(), EmbeddedError> {
        if let Some(parent) = file.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| EmbeddedError::io("create directory", parent, e))?;
        }
        self.check_reachable(file)?;
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
            .map_err(|e| EmbeddedError::io("create file", file, e))?;
        self.hand_over(file)
    }

    /// Makes `path` owned by the `postgres` user when delegating; no-op otherwise.
    pub fn hand_over(&self, path: &Path) -> Result<(), EmbeddedError> {
        if let Self::Postgres { uid, gid, .. } = self {
            std::os::unix::fs::chown(path, Some(*uid), Some(*gid))
                .map_err(|e| EmbeddedError::io("change the owner (to postgres) of", path, e))?;
        }
        Ok(())
    }

    /// When delegating, checks that the `postgres` user can search every existing
    /// directory above `target`; the error names the first one it cannot and what to do.
    pub fn check_reachable(&self, target: &Path) -> Result<(), EmbeddedError> {
        let Self::Postgres { uid, groups, .. } = self else {
            return Ok(());
        };
        let target = absolute(target)?;
        for dir in dirs_above(&target) {
            let Ok(meta) = fs::metadata(&dir) else {
                continue; // will be created by us
            };
            let perm = DirPermissions {
                owner: meta.uid(),
                group: meta.gid(),
                mode: meta.permissions().mode(),
            };
            if !perm.searchable_by(*uid, groups) {
                return Err(EmbeddedError::Unreachable {
                    needed: target,
                    dir,
                    mode: perm.mode & 0o7777,
                    owner: perm.owner,
                });
            }
        }
        Ok(())
    }
}

/// Makes `path` absolute (without touching the file system beyond the current directory).
pub(crate) fn absolute(path: &Path) -> Result<PathBuf, EmbeddedError> {
    std::path::absolute(path).map_err(|e| EmbeddedError::io("resolve", path, e))
}

/// Every directory strictly above `target`, from `/` down, with symlinks in the existing
/// part resolved (so the directories really traversed are checked).
fn dirs_above(target: &Path) -> Vec<PathBuf> {
    let Some(parent) = target.parent() else {
        return Vec::new();
    };
    // Resolve the deepest existing ancestor, keep the not-yet-existing rest as is.
    let mut existing = parent.to_path_buf();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(up)) => {
                rest.push(name.to_os_string());
                existing = up.to_path_buf();
            }
            _ => break,
        }
    }
    let mut resolved = fs::canonicalize(&existing).unwrap_or(existing);
    for name in rest.into_iter().rev() {
        resolved.push(name);
    }
    let mut dirs: Vec<PathBuf> = resolved.ancestors().map(Path::to_path_buf).collect();
    dirs.reverse();
    dirs
}

/// Owner, group and mode bits of a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirPermissions {
    pub owner: u32,
    pub group: u32,
    pub mode: u32,
}

impl DirPermissions {
    /// Whether a user with `uid` and `groups` may search (traverse) the directory, using
    /// the owner / group / other class that applies to it, like the kernel does.
    pub fn searchable_by(&self, uid: u32, groups: &[u32]) -> bool {
        if uid == 0 {
            true
        } else if self.owner == uid {
            self.mode & 0o100 != 0
        } else if groups.contains(&self.group) {
            self.mode & 0o010 != 0
        } else {
            self.mode & 0o001 != 0
        }
    }
}

/// `(uid, gid)` from a `passwd` line of `user`.
pub fn parse_passwd_line(line: &str, user: &str) -> Option<(u32, u32)> {
    let mut fields = line.trim().split(':');
    if fields.next()? != user {
        return None;
    }
    let _password = fields.next()?;
    let uid = fields.next()?.parse().ok()?;
    let gid = fields.next()?.parse().ok()?;
    Some((uid, gid))
}

fn parse_group_ids(output: &str) -> Vec<u32> {
    output
        .split_whitespace()
        .filter_map(|g| g.parse().ok())
        .collect()
}

fn command_stdout(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn runuser_program() -> OsString {
    ["/usr/sbin/runuser", "/sbin/runuser"]
        .iter()
        .find(|p| Path::new(p).is_file())
        .map_or_else(|| OsString::from("runuser"), OsString::from)
}

/// Renders an argument vector as a shell-like command line for messages.
pub(crate) fn display_command(argv: &[OsString]) -> String {
    argv.iter()
        .map(|a| super::settings::shell_quote_for_display(&a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn current_user_runs_commands_directly() {
        let argv = ServerAccount::CurrentUser
            .command_line(OsStr::new("/pg/bin/initdb"), &os(&["-D", "/data"]));
        assert_eq!(argv, os(&["/pg/bin/initdb", "-D", "/data"]));
    }

    #[test]
    fn root_wraps_commands_in_runuser() {
        let account = ServerAccount::Postgres {
            uid: 101,
            gid: 104,
            groups: vec![104],
        };
        let argv = account.command_line(OsStr::new("/pg/bin/pg_ctl"), &os(&["-D", "/d", "stop"]));
        assert!(argv[0].to_string_lossy().ends_with("runuser"), "{argv:?}");
        assert_eq!(
            &argv[1..],
            &os(&["-u", "postgres", "--", "/pg/bin/pg_ctl", "-D", "/d", "stop"])[..]
        );
    }

    #[test]
    fn passwd_parsing() {
        let line = "postgres:x:101:104:PostgreSQL administrator,,,:/var/lib/postgresql:/bin/bash";
        assert_eq!(parse_passwd_line(line, "postgres"), Some((101, 104)));
        assert_eq!(parse_passwd_line(line, "postgre"), None);
        assert_eq!(
            parse_passwd_line("postgres:x:abc:1::/:/bin/sh", "postgres"),
            None
        );
        assert_eq!(parse_group_ids("104 103\n"), vec![104, 103]);
    }

    #[test]
    fn search_permission_uses_the_applicable_class() {
        let root_private = DirPermissions {
            owner: 0,
            group: 0,
            mode: 0o40700,
        };
        assert!(!root_private.searchable_by(101, &[104]));
        assert!(root_private.searchable_by(0, &[0]));

        let others_x = DirPermissions {
            mode: 0o40711,
            ..root_private
        };
        assert!(others_x.searchable_by(101, &[104]));

        // Group class applies (and denies) even though "other" would allow.
        let group_denied = DirPermissions {
            owner: 0,
            group: 104,
            mode: 0o40701,
        };
        assert!(!group_denied.searchable_by(101, &[104]));
        let group_ok = DirPermissions {
            mode: 0o40710,
            ..group_denied
        };
        assert!(group_ok.searchable_by(101, &[103, 104]));

        // Owner class applies.
        let owned = DirPermissions {
            owner: 101,
            group: 0,
            mode: 0o40700,
        };
        assert!(owned.searchable_by(101, &[104]));
    }

    #[test]
    fn dirs_above_lists_every_ancestor_from_the_root() {
        let dirs = dirs_above(Path::new("/nonexistent-servicedb/a/b/data"));
        assert_eq!(
            dirs,
            vec![
                PathBuf::from("/"),
                PathBuf::from("/nonexistent-servicedb"),
                PathBuf::from("/nonexistent-servicedb/a"),
                PathBuf::from("/nonexistent-servicedb/a/b"),
            ]
        );
    }
}
