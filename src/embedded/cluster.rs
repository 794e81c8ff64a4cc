//! Creating a database cluster (`initdb`).

use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::account::{ServerAccount, absolute};
use super::binaries::PgBinaries;
use super::error::EmbeddedError;

/// Whether `data_dir` already holds a cluster (it has a `PG_VERSION` file).
pub fn is_initialized(data_dir: &Path) -> bool {
    data_dir.join("PG_VERSION").is_file()
}

/// Creates a cluster in `data_dir` (missing or empty) with `superuser` as bootstrap
/// superuser, password authentication (`scram-sha-256`) for every connection, UTF-8 and
/// the C locale. The password goes through a 0600 file that is deleted afterwards.
///
/// As root, the cluster belongs to the `postgres` OS user: `data_dir` is handed over to
/// it, and every directory above must be searchable by it (else
/// [`EmbeddedError::Unreachable`] names the directory and what to do).
pub fn init_cluster(
    bins: &PgBinaries,
    data_dir: &Path,
    superuser: &str,
    superuser_password: &str,
) -> Result<(), EmbeddedError> {
    if superuser.is_empty() || superuser.contains('\0') {
        return Err(EmbeddedError::InvalidSetting {
            name: "superuser".to_owned(),
            reason: "the superuser name must be non-empty and without NUL".to_owned(),
        });
    }
    if superuser_password.is_empty() || superuser_password.contains(['\0', '\n', '\r']) {
        return Err(EmbeddedError::InvalidSetting {
            name: "superuser password".to_owned(),
            reason: "the password must be non-empty and on one line".to_owned(),
        });
    }
    let account = ServerAccount::detect()?;
    let data_dir = absolute(data_dir)?;
    account.prepare_dir(&data_dir)?;
    fs::set_permissions(&data_dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| EmbeddedError::io("set permissions of", &data_dir, e))?;

    let parent = data_dir.parent().unwrap_or(Path::new("/"));
    let pwfile = PasswordFile::create(
        &parent.join(format!(".servicedb-initdb-pw-{}", std::process::id())),
        superuser_password,
        &account,
    )?;
    account.run(
        &bins.initdb(),
        &initdb_args(&data_dir, superuser, pwfile.path()),
    )?;
    Ok(())
}

/// The `initdb` arguments used by [`init_cluster`].
pub fn initdb_args(data_dir: &Path, superuser: &str, pwfile: &Path) -> Vec<OsString> {
    let mut pwfile_arg = OsString::from("--pwfile=");
    pwfile_arg.push(pwfile);
    vec![
        "-D".into(),
        data_dir.as_os_str().to_os_string(),
        "-U".into(),
        superuser.into(),
        "--auth=scram-sha-256".into(),
        pwfile_arg,
        "-E".into(),
        "UTF8".into(),
        "--locale=C".into(),
        "--no-sync".into(),
    ]
}

/// A 0600 file holding a password, deleted when dropped.
struct PasswordFile {
    path: PathBuf,
}

impl PasswordFile {
    fn create(path: &Path, password: &str, account: &ServerAccount) -> Result<Self, EmbeddedError> {
        // A leftover from a crashed run would make create_new fail.
        let _ = fs::remove_file(path);
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| EmbeddedError::io("create password file", path, e))?;
        let guard = Self {
            path: path.to_path_buf(),
        };
        writeln!(file, "{password}")
            .map_err(|e| EmbeddedError::io("write password file", path, e))?;
        account.hand_over(path)?;
        Ok(guard)
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PasswordFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initdb_args_use_scram_pwfile_utf8_and_c_locale() {
        let args = initdb_args(Path::new("/x/data"), "admin", Path::new("/x/.pw"));
        let args: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            vec![
                "-D",
                "/x/data",
                "-U",
                "admin",
                "--auth=scram-sha-256",
                "--pwfile=/x/.pw",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]
        );
    }

    #[test]
    fn password_file_is_private_and_removed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        let file = PasswordFile::create(&path, "s3cret", &ServerAccount::CurrentUser).unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read_to_string(&path).unwrap(), "s3cret\n");
        drop(file);
        assert!(!path.exists());
    }
}
