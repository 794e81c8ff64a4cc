//! Finding migration files in directories and reading their Flyway names:
//! `V<version>__<description>.sql` and `R__<description>.sql`, with optional `<file>.conf` sidecars.

use std::fmt;
use std::path::{Path, PathBuf};

use super::checksum::checksum;
use super::version::{Version, VersionError};

/// What a file name says a migration is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Versioned(Version),
    Repeatable,
}

/// One migration file, read and checked.
#[derive(Debug, Clone)]
pub struct MigrationFile {
    /// Path relative to its directory, `/`-separated: what Flyway stores in the `script` column.
    pub script: String,
    pub path: PathBuf,
    pub kind: Kind,
    /// The name's description with underscores as spaces.
    pub description: String,
    /// The decoded text, leading BOM removed.
    pub sql: String,
    /// Checksum of the file as it is (before placeholders), as Flyway computes it.
    pub checksum: i32,
    /// `executeInTransaction` from a sidecar `<file>.conf`, when given.
    pub execute_in_transaction: Option<bool>,
}

impl MigrationFile {
    pub fn version(&self) -> Option<&Version> {
        match &self.kind {
            Kind::Versioned(v) => Some(v),
            Kind::Repeatable => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read migrations from {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {problem}")]
    BadName { path: PathBuf, problem: String },
    #[error("{path}: {source}; rename the file")]
    BadVersion { path: PathBuf, source: VersionError },
    #[error("{path}: not valid UTF-8 at byte {offset}; save the file as UTF-8")]
    NotUtf8 { path: PathBuf, offset: usize },
    #[error(
        "version {version} is defined twice: {first} and {second}; every versioned migration needs its own version"
    )]
    DuplicateVersion {
        version: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error(
        "repeatable migration {description:?} is defined twice: {first} and {second}; give one of them another description"
    )]
    DuplicateRepeatable {
        description: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("{} misnamed migration files:\n{}", .0.len(), .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    BadNames(Vec<SourceError>),
    #[error("{path}:{line}: {problem}")]
    BadConf {
        path: PathBuf,
        line: usize,
        problem: String,
    },
}

/// Files found in the migration directories, plus notes about files that were skipped.
#[derive(Debug, Default)]
pub struct Scan {
    /// Versioned migrations in version order, then repeatables by description.
    pub files: Vec<MigrationFile>,
    pub warnings: Vec<String>,
}

/// How a directory entry's name classifies, before its content is read.
#[derive(Debug, PartialEq, Eq)]
enum Name {
    Migration {
        kind: Kind,
        description: String,
    },
    Conf,
    /// Not a migration; the string says why it is skipped.
    Other(String),
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Versioned(v) => write!(f, "V{v}"),
            Kind::Repeatable => f.write_str("R"),
        }
    }
}

/// Whether a stem reads as a migration name that someone meant Flyway to run, even if mistyped.
fn looks_like_migration(stem: &str) -> bool {
    let mut chars = stem.chars();
    match (chars.next(), chars.next()) {
        (Some('V' | 'v' | 'R' | 'r'), Some(c)) => c.is_ascii_digit() || c == '_',
        _ => false,
    }
}

/// Reads a file name. Errors are names that look like a migration but would be skipped or
/// misread, because silently not running a migration is the worst outcome.
fn classify(file_name: &str, path: &Path) -> Result<Name, SourceError> {
    let bad = |problem: String| SourceError::BadName {
        path: path.to_path_buf(),
        problem,
    };
    if file_name.ends_with(".conf") {
        return Ok(Name::Conf);
    }
    let (stem, ext) = match file_name.rsplit_once('.') {
        Some((stem, ext)) => (stem, Some(ext)),
        None => (file_name, None),
    };
    let is_sql = ext.is_some_and(|e| e.eq_ignore_ascii_case("sql"));
    if !looks_like_migration(stem) {
        let why = if is_sql {
            "a .sql file whose name is neither V<version>__<description>.sql nor R__<description>.sql"
        } else {
            "not a .sql file"
        };
        return Ok(Name::Other(why.to_string()));
    }
    if !is_sql {
        // `V10__x.sql.bak`, `V3__y.sql.orig`: a copy of a migration, not one to be renamed `.sql.sql`.
        if let Some((original, _)) = stem
            .rsplit_once('.')
            .filter(|(_, e)| e.eq_ignore_ascii_case("sql"))
        {
            return Err(bad(format!(
                "looks like a copy of {original}.sql and would never run; move it out of the migration \
                 directory, or name it {original}.sql if it should run"
            )));
        }
        return Err(bad(format!(
            "looks like a migration but does not end in .sql, so it would never run; name it {stem}.sql"
        )));
    }
    let first = stem.as_bytes()[0];
    if first == b'v' || first == b'r' {
        return Err(bad(format!(
            "the prefix is case-sensitive: use {}{} (lower-case `{}` is never run)",
            (first as char).to_ascii_uppercase(),
            &stem[1..],
            first as char
        )));
    }
    let rest = &stem[1..];
    let Some((version, description)) = rest.split_once("__") else {
        return Err(bad(
            "missing `__` (two underscores) between version and description, e.g. V2__add_email.sql"
                .to_string(),
        ));
    };
    let description = description.replace('_', " ");
    if first == b'R' {
        if !version.is_empty() {
            return Err(bad(
                "a repeatable migration has no version: name it R__<description>.sql".to_string(),
            ));
        }
        return Ok(Name::Migration {
            kind: Kind::Repeatable,
            description,
        });
    }
    let version = Version::parse(version).map_err(|source| SourceError::BadVersion {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Name::Migration {
        kind: Kind::Versioned(version),
        description,
    })
}

/// Reads a `<migration>.sql.conf` sidecar (Flyway script config): only `executeInTransaction`
/// changes behaviour here; other keys are reported, not silently dropped.
fn read_conf(path: &Path, text: &str, warnings: &mut Vec<String>) -> Result<bool, SourceError> {
    let mut in_transaction = true;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(SourceError::BadConf {
                path: path.to_path_buf(),
                line: i + 1,
                problem: format!("expected key=value, got {line:?}"),
            });
        };
        match key.trim() {
            "executeInTransaction" => {
                in_transaction = match value.trim().to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    other => {
                        return Err(SourceError::BadConf {
                            path: path.to_path_buf(),
                            line: i + 1,
                            problem: format!(
                                "executeInTransaction must be true or false, got {other:?}"
                            ),
                        });
                    }
                }
            }
            other => warnings.push(format!(
                "{}:{}: setting {other:?} is not supported and has no effect",
                path.display(),
                i + 1
            )),
        }
    }
    Ok(in_transaction)
}

fn decode(path: &Path, bytes: Vec<u8>) -> Result<String, SourceError> {
    let text = String::from_utf8(bytes).map_err(|e| SourceError::NotUtf8 {
        path: path.to_path_buf(),
        offset: e.utf8_error().valid_up_to(),
    })?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    })
}

/// Every file below `dir`, as (relative script name, path). Entries whose name starts with `.`
/// are skipped: Kubernetes mounts a ConfigMap as `..data` and `..<timestamp>` beside symlinks
/// to the real keys, so reading those too would see every migration twice.
fn walk(dir: &Path) -> Result<Vec<(String, PathBuf)>, SourceError> {
    let io = |path: &Path, source| SourceError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut out = Vec::new();
    let mut stack = vec![(String::new(), dir.to_path_buf())];
    while let Some((prefix, current)) = stack.pop() {
        let entries = std::fs::read_dir(&current).map_err(|e| io(&current, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io(&current, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let path = entry.path();
            // The directory listing says what an entry is without a stat per file; only a
            // symlink (what a mounted ConfigMap holds) is followed with metadata().
            let kind = entry.file_type().map_err(|e| io(&path, e))?;
            let (is_dir, is_file) = if kind.is_symlink() {
                let meta = std::fs::metadata(&path).map_err(|e| io(&path, e))?;
                (meta.is_dir(), meta.is_file())
            } else {
                (kind.is_dir(), kind.is_file())
            };
            let script = format!("{prefix}{name}");
            if is_dir {
                stack.push((format!("{script}/"), path));
            } else if is_file {
                out.push((script, path));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Migrations from texts already in memory (ConfigMap data, compiled-in files): (script name,
/// a path for messages, text). `.conf` entries are read as sidecars of the file they name.
pub fn from_texts(
    texts: impl IntoIterator<Item = (String, PathBuf, String)>,
) -> Result<Scan, SourceError> {
    let mut scan = Scan::default();
    let mut confs = Vec::new();
    // Every misnamed file is reported at once, not one per run.
    let mut misnamed = Vec::new();
    for (script, path, text) in texts {
        let file_name = script.rsplit('/').next().unwrap_or(&script).to_string();
        let name = match classify(&file_name, &path) {
            Ok(name) => name,
            Err(e) => {
                misnamed.push(e);
                continue;
            }
        };
        match name {
            Name::Conf => confs.push((path, text)),
            Name::Other(why) => scan
                .warnings
                .push(format!("{}: skipped, {why}", path.display())),
            Name::Migration { kind, description } => {
                let sql = text.strip_prefix('\u{feff}').unwrap_or(&text).to_string();
                scan.files.push(MigrationFile {
                    checksum: checksum(&sql),
                    script,
                    path,
                    kind,
                    description,
                    sql,
                    execute_in_transaction: None,
                });
            }
        }
    }
    match misnamed.len() {
        0 => {}
        1 => return Err(misnamed.remove(0)),
        _ => return Err(SourceError::BadNames(misnamed)),
    }
    for (conf, text) in confs {
        let target = conf.with_extension("");
        let Some(file) = scan.files.iter_mut().find(|f| f.path == target) else {
            scan.warnings.push(format!(
                "{}: skipped, no migration {} beside it",
                conf.display(),
                target.display()
            ));
            continue;
        };
        file.execute_in_transaction = Some(read_conf(&conf, &text, &mut scan.warnings)?);
    }
    sort_and_check(&mut scan.files)?;
    Ok(scan)
}

/// Reads every migration below the given directories.
pub fn scan(dirs: &[PathBuf]) -> Result<Scan, SourceError> {
    let mut texts = Vec::new();
    for dir in dirs {
        for (script, path) in walk(dir)? {
            let file_name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            // Only migrations and their sidecars are read; other files are named in warnings,
            // misnamed ones in the error from_texts gives for all of them.
            let wanted = matches!(
                classify(&file_name, &path),
                Ok(Name::Migration { .. } | Name::Conf)
            );
            let text = if wanted {
                let bytes = std::fs::read(&path).map_err(|e| SourceError::Io {
                    path: path.clone(),
                    source: e,
                })?;
                decode(&path, bytes)?
            } else {
                String::new()
            };
            texts.push((script, path, text));
        }
    }
    from_texts(texts)
}

fn sort_and_check(files: &mut [MigrationFile]) -> Result<(), SourceError> {
    files.sort_by(|a, b| match (&a.kind, &b.kind) {
        (Kind::Versioned(x), Kind::Versioned(y)) => x.cmp(y),
        (Kind::Versioned(_), Kind::Repeatable) => std::cmp::Ordering::Less,
        (Kind::Repeatable, Kind::Versioned(_)) => std::cmp::Ordering::Greater,
        (Kind::Repeatable, Kind::Repeatable) => a.description.cmp(&b.description),
    });
    for pair in files.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        match (&a.kind, &b.kind) {
            (Kind::Versioned(x), Kind::Versioned(y)) if x == y => {
                return Err(SourceError::DuplicateVersion {
                    version: y.to_string(),
                    first: a.path.clone(),
                    second: b.path.clone(),
                });
            }
            (Kind::Repeatable, Kind::Repeatable) if a.description == b.description => {
                return Err(SourceError::DuplicateRepeatable {
                    description: a.description.clone(),
                    first: a.path.clone(),
                    second: b.path.clone(),
                });
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str) -> Result<Name, SourceError> {
        classify(n, Path::new(n))
    }

    fn versioned(n: &str) -> (String, String) {
        match name(n).unwrap() {
            Name::Migration {
                kind: Kind::Versioned(v),
                description,
            } => (v.to_string(), description),
            other => panic!("{n}: {other:?}"),
        }
    }

    #[test]
    fn reads_flyway_names() {
        assert_eq!(versioned("V1__init.sql"), ("1".into(), "init".into()));
        assert_eq!(
            versioned("V1_1__add_user_email.sql"),
            ("1.1".into(), "add user email".into())
        );
        assert_eq!(versioned("V2.0.1__x.SQL"), ("2.0.1".into(), "x".into()));
        assert_eq!(versioned("V001__x.Sql").0, "001");
        assert_eq!(
            name("R__views_and_functions.sql").unwrap(),
            Name::Migration {
                kind: Kind::Repeatable,
                description: "views and functions".into()
            }
        );
    }

    #[test]
    fn mistyped_migrations_are_errors_not_skips() {
        for bad in [
            "v1__x.sql",
            "r__x.sql",
            "V1_x.sql",
            "V1__x.sq",
            "V1__x",
            "V1.__x.sql",
            "V1a__x.sql",
            "V1..2__x.sql",
            "R1__x.sql",
        ] {
            assert!(name(bad).is_err(), "{bad} must be an error");
        }
        let msg = name("v1__x.sql").unwrap_err().to_string();
        assert!(msg.contains("V1__x"), "{msg}");
    }

    #[test]
    fn copies_of_migrations_get_a_hint_that_fits() {
        let msg = name("V10__x.sql.bak").unwrap_err().to_string();
        assert!(msg.contains("copy of V10__x.sql"), "{msg}");
        assert!(!msg.contains(".sql.sql"), "{msg}");
        let msg = name("V1__x.txt").unwrap_err().to_string();
        assert!(msg.contains("name it V1__x.sql"), "{msg}");
    }

    #[test]
    fn every_misnamed_file_is_reported_at_once() {
        let dir = tempfile::tempdir().unwrap();
        for (n, sql) in [
            ("V1__a.sql", "SELECT 1;"),
            ("v2__b.sql", "SELECT 2;"),
            ("V3_c.sql", "SELECT 3;"),
            ("V10__x.sql.bak", "SELECT 10;"),
        ] {
            std::fs::write(dir.path().join(n), sql).unwrap();
        }
        let err = scan(&[dir.path().to_path_buf()]).unwrap_err().to_string();
        assert!(err.starts_with("3 misnamed migration files:"), "{err}");
        for n in ["v2__b.sql", "V3_c.sql", "V10__x.sql.bak"] {
            assert!(err.contains(n), "{n}: {err}");
        }
    }

    #[test]
    fn unrelated_files_are_skipped() {
        for other in [
            "README.md",
            "notes.sql",
            "Views.sql",
            "data.csv",
            "rollback.sql",
        ] {
            assert!(matches!(name(other).unwrap(), Name::Other(_)), "{other}");
        }
        assert_eq!(name("V2__x.sql.conf").unwrap(), Name::Conf);
    }

    #[test]
    fn conf_sidecar_reads_execute_in_transaction() {
        let mut w = Vec::new();
        let p = Path::new("V2__x.sql.conf");
        assert!(!read_conf(p, "executeInTransaction=false\n", &mut w).unwrap());
        assert!(read_conf(p, "# c\nexecuteInTransaction = TRUE\n", &mut w).unwrap());
        assert!(read_conf(p, "executeInTransaction=maybe", &mut w).is_err());
        assert!(read_conf(p, "mixed=true", &mut w).unwrap());
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn scan_reads_dirs_skips_configmap_internals_and_rejects_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("V2__b.sql"), "SELECT 2;\n").unwrap();
        std::fs::write(d.join("V1__a.sql"), "\u{feff}SELECT 1;\n").unwrap();
        std::fs::write(d.join("R__v.sql"), "SELECT 3;").unwrap();
        std::fs::write(d.join("README.md"), "hi").unwrap();
        std::fs::create_dir(d.join("..2026_11_21")).unwrap();
        std::fs::write(d.join("..2026_11_21/V1__a.sql"), "SELECT 1;").unwrap();
        let scan = scan(&[d.to_path_buf()]).unwrap();
        let names: Vec<_> = scan.files.iter().map(|f| f.script.as_str()).collect();
        assert_eq!(names, ["V1__a.sql", "V2__b.sql", "R__v.sql"]);
        assert_eq!(scan.files[0].sql, "SELECT 1;\n");
        assert_eq!(scan.files[0].checksum, 78787420);
        assert_eq!(scan.warnings.len(), 1);

        std::fs::write(d.join("V1.0__again.sql"), "SELECT 1;").unwrap();
        let err = super::scan(&[d.to_path_buf()]).unwrap_err().to_string();
        assert!(err.contains("version 1") && err.contains("twice"), "{err}");
    }

    /// A mounted ConfigMap: keys are symlinks into `..data`, itself a symlink to a timestamped
    /// directory; symlinked directories are followed too.
    #[test]
    fn configmap_symlinks_are_followed() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("..2026_12_01")).unwrap();
        std::fs::write(d.join("..2026_12_01/V1__a.sql"), "SELECT 1;").unwrap();
        std::os::unix::fs::symlink("..2026_12_01", d.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/V1__a.sql", d.join("V1__a.sql")).unwrap();
        let other = tempfile::tempdir().unwrap();
        std::fs::write(other.path().join("V2__b.sql"), "SELECT 2;").unwrap();
        std::os::unix::fs::symlink(other.path(), d.join("more")).unwrap();
        let scan = scan(&[d.to_path_buf()]).unwrap();
        let names: Vec<_> = scan.files.iter().map(|f| f.script.as_str()).collect();
        assert_eq!(names, ["V1__a.sql", "more/V2__b.sql"]);
    }

    #[test]
    fn invalid_utf8_names_file_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("V1__a.sql"), b"SELECT '\xff';").unwrap();
        let err = scan(&[dir.path().to_path_buf()]).unwrap_err().to_string();
        assert!(err.contains("V1__a.sql") && err.contains("byte 8"), "{err}");
    }
}
