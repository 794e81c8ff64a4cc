//! Locating the PostgreSQL server binaries (`initdb`, `postgres`, `pg_ctl`).

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::error::EmbeddedError;

/// Environment variable naming the directory that holds `initdb`, `postgres` and `pg_ctl`.
pub const PG_BIN_ENV: &str = "SERVICEDB_PG_BIN";

/// Where Debian/Ubuntu install the versioned server binaries (`<root>/<N>/bin`).
pub const DEBIAN_PG_LIB_ROOT: &str = "/usr/lib/postgresql";

const REQUIRED: [&str; 3] = ["initdb", "postgres", "pg_ctl"];

/// A directory holding the PostgreSQL server binaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgBinaries {
    bin_dir: PathBuf,
}

impl PgBinaries {
    /// Finds the server binaries, in this order: the directory in `SERVICEDB_PG_BIN`, the
    /// directory of `initdb` found on `PATH`, the highest-numbered
    /// `/usr/lib/postgresql/<N>/bin` holding `initdb`.
    pub fn locate() -> Result<Self, EmbeddedError> {
        let env_dir = std::env::var_os(PG_BIN_ENV).filter(|v| !v.is_empty());
        let path_var = std::env::var_os("PATH");
        let bin_dir = locate_bin_dir(
            env_dir.as_deref(),
            path_var.as_deref(),
            Path::new(DEBIAN_PG_LIB_ROOT),
        )?;
        Ok(Self { bin_dir })
    }

    /// Uses the binaries in `dir`, checking that all of them are there.
    pub fn from_dir(dir: impl Into<PathBuf>) -> Result<Self, EmbeddedError> {
        let bin_dir = dir.into();
        check_complete(&bin_dir, "an explicit directory", &|p: &Path| p.is_file())?;
        Ok(Self { bin_dir })
    }

    /// The directory holding the binaries.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// Path of `initdb`.
    pub fn initdb(&self) -> PathBuf {
        self.bin_dir.join("initdb")
    }

    /// Path of `postgres`.
    pub fn postgres(&self) -> PathBuf {
        self.bin_dir.join("postgres")
    }

    /// Path of `pg_ctl`.
    pub fn pg_ctl(&self) -> PathBuf {
        self.bin_dir.join("pg_ctl")
    }

    /// The output of `postgres --version`, e.g. `postgres (PostgreSQL) 15.8 (Debian 15.8-0+deb12u1)`.
    pub fn version(&self) -> Result<String, EmbeddedError> {
        let program = self.postgres();
        let command = format!("{} --version", program.display());
        let output = Command::new(&program)
            .arg("--version")
            .output()
            .map_err(|source| EmbeddedError::Spawn {
                command: command.clone(),
                source,
            })?;
        if !output.status.success() {
            return Err(EmbeddedError::CommandFailed {
                command,
                status: output.status.to_string(),
                output: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// The major version (e.g. 15) parsed from [`PgBinaries::version`].
    pub fn major_version(&self) -> Result<u32, EmbeddedError> {
        let version = self.version()?;
        parse_major_version(&version).ok_or_else(|| EmbeddedError::CommandFailed {
            command: format!("{} --version", self.postgres().display()),
            status: "unrecognised output".to_owned(),
            output: version,
        })
    }
}

/// Parses the major version out of `postgres (PostgreSQL) 15.8 (...)` / `... 9.6.24`.
pub fn parse_major_version(version_output: &str) -> Option<u32> {
    let number = version_output
        .split_whitespace()
        .find(|word| word.starts_with(|c: char| c.is_ascii_digit()))?;
    // Before 10 the major version had two components (9.6); this reports the first.
    number
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// The search order of [`PgBinaries::locate`], with the environment passed in.
pub fn locate_bin_dir(
    env_dir: Option<&OsStr>,
    path_var: Option<&OsStr>,
    lib_root: &Path,
) -> Result<PathBuf, EmbeddedError> {
    locate_bin_dir_with(env_dir, path_var, lib_root, &|p: &Path| p.is_file())
}

fn locate_bin_dir_with(
    env_dir: Option<&OsStr>,
    path_var: Option<&OsStr>,
    lib_root: &Path,
    is_file: &dyn Fn(&Path) -> bool,
) -> Result<PathBuf, EmbeddedError> {
    if let Some(dir) = env_dir {
        let dir = PathBuf::from(dir);
        check_complete(&dir, PG_BIN_ENV, is_file)?;
        return Ok(dir);
    }
    if let Some(path_var) = path_var {
        for dir in std::env::split_paths(path_var) {
            let initdb = dir.join("initdb");
            if !is_file(&initdb) {
                continue;
            }
            if missing_in(&dir, is_file).is_empty() {
                return Ok(dir);
            }
            // `initdb` alone may be symlinked onto PATH; look next to its target.
            if let Some(real_dir) = std::fs::canonicalize(&initdb)
                .ok()
                .and_then(|p| p.parent().map(Path::to_path_buf))
                && missing_in(&real_dir, is_file).is_empty()
            {
                return Ok(real_dir);
            }
        }
    }
    let versions = std::fs::read_dir(lib_root)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name())
                .collect::<Vec<OsString>>()
        })
        .unwrap_or_default();
    if let Some(dir) = pick_versioned_bin_dir(lib_root, &versions, is_file) {
        return Ok(dir);
    }
    Err(EmbeddedError::BinariesNotFound)
}

/// Among `<lib_root>/<N>/bin` for the given entry names, the highest numeric `N` whose
/// directory holds all binaries.
fn pick_versioned_bin_dir(
    lib_root: &Path,
    entries: &[OsString],
    is_file: &dyn Fn(&Path) -> bool,
) -> Option<PathBuf> {
    let mut versions: Vec<(u32, &OsString)> = entries
        .iter()
        .filter_map(|name| Some((name.to_str()?.parse::<u32>().ok()?, name)))
        .collect();
    versions.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
    versions
        .into_iter()
        .map(|(_, name)| lib_root.join(name).join("bin"))
        .find(|dir| missing_in(dir, is_file).is_empty())
}

fn missing_in(dir: &Path, is_file: &dyn Fn(&Path) -> bool) -> Vec<&'static str> {
    REQUIRED
        .iter()
        .copied()
        .filter(|name| !is_file(&dir.join(name)))
        .collect()
}

fn check_complete(
    dir: &Path,
    origin: &str,
    is_file: &dyn Fn(&Path) -> bool,
) -> Result<(), EmbeddedError> {
    let missing = missing_in(dir, is_file);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(EmbeddedError::BinariesIncomplete {
            dir: dir.to_path_buf(),
            origin: origin.to_owned(),
            missing: missing.join(", "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_fs(files: &'static [&'static str]) -> impl Fn(&Path) -> bool {
        move |p: &Path| files.iter().any(|f| Path::new(f) == p)
    }

    const ALL_15: &[&str] = &[
        "/usr/lib/postgresql/15/bin/initdb",
        "/usr/lib/postgresql/15/bin/postgres",
        "/usr/lib/postgresql/15/bin/pg_ctl",
        "/usr/lib/postgresql/9/bin/initdb",
        "/usr/lib/postgresql/9/bin/postgres",
        "/usr/lib/postgresql/9/bin/pg_ctl",
        "/opt/pg/bin/initdb",
        "/opt/pg/bin/postgres",
        "/opt/pg/bin/pg_ctl",
        "/custom/initdb",
        "/custom/postgres",
        "/custom/pg_ctl",
    ];

    #[test]
    fn env_dir_wins_over_path_and_lib_root() {
        let dir = locate_bin_dir_with(
            Some(OsStr::new("/custom")),
            Some(OsStr::new("/opt/pg/bin")),
            Path::new("/nonexistent-root"),
            &fake_fs(ALL_15),
        )
        .unwrap();
        assert_eq!(dir, PathBuf::from("/custom"));
    }

    #[test]
    fn env_dir_missing_binaries_is_an_error_naming_them() {
        let err = locate_bin_dir_with(
            Some(OsStr::new("/opt/pg")),
            Some(OsStr::new("/opt/pg/bin")),
            Path::new("/nonexistent-root"),
            &fake_fs(ALL_15),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("/opt/pg"), "{msg}");
        assert!(msg.contains("initdb, postgres, pg_ctl"), "{msg}");
        assert!(msg.contains("SERVICEDB_PG_BIN"), "{msg}");
    }

    #[test]
    fn path_is_searched_in_order() {
        let dir = locate_bin_dir_with(
            None,
            Some(OsStr::new("/usr/bin:/opt/pg/bin:/custom")),
            Path::new("/nonexistent-root"),
            &fake_fs(ALL_15),
        )
        .unwrap();
        assert_eq!(dir, PathBuf::from("/opt/pg/bin"));
    }

    #[test]
    fn highest_numbered_versioned_dir_is_chosen() {
        let entries: Vec<OsString> = ["9", "15", "README", "16"]
            .iter()
            .map(OsString::from)
            .collect();
        // 16 has no binaries, so 15 is the highest complete one; 15 beats 9 numerically.
        let dir =
            pick_versioned_bin_dir(Path::new("/usr/lib/postgresql"), &entries, &fake_fs(ALL_15));
        assert_eq!(dir, Some(PathBuf::from("/usr/lib/postgresql/15/bin")));
    }

    #[test]
    fn nothing_found_says_how_to_install() {
        let err = locate_bin_dir_with(
            None,
            Some(OsStr::new("/usr/bin")),
            Path::new("/nonexistent-root"),
            &fake_fs(&[]),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("apt-get install -y postgresql"), "{msg}");
        assert!(msg.contains("SERVICEDB_PG_BIN"), "{msg}");
        assert!(msg.contains("/usr/lib/postgresql/*/bin"), "{msg}");
    }

    #[test]
    fn major_version_parsing() {
        assert_eq!(
            parse_major_version("postgres (PostgreSQL) 15.8 (Debian 15.8-0+deb12u1)"),
            Some(15)
        );
        assert_eq!(
            parse_major_version("postgres (PostgreSQL) 17devel"),
            Some(17)
        );
        assert_eq!(parse_major_version("postgres (PostgreSQL) 9.6.24"), Some(9));
        assert_eq!(parse_major_version("garbage"), None);
    }
}
