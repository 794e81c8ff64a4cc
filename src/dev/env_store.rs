//! Secrets as files under `.servicedb/secrets/<namespace>/` (mode 0600), the local stand-in
//! for Kubernetes Secrets: `<name>.json` holds the Secret exactly (every key as the cluster
//! has it; what dev reads back), `<name>.env` the same for shells, docker compose and dotenv
//! (see `crate::secret::to_env_file`).

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::secret::{parse_env_file, to_env_file};
use crate::service::{Layout, SecretStore};

pub struct EnvFileStore {
    root: PathBuf,
}

impl EnvFileStore {
    pub fn new(root: impl Into<PathBuf>) -> EnvFileStore {
        EnvFileStore { root: root.into() }
    }

    /// The `.env` file: what a developer loads.
    pub fn path(&self, namespace: &str, name: &str) -> PathBuf {
        self.root.join(namespace).join(format!("{name}.env"))
    }

    /// The exact Secret, as JSON.
    pub fn json_path(&self, namespace: &str, name: &str) -> PathBuf {
        self.root.join(namespace).join(format!("{name}.json"))
    }

    /// One Secret's keys: from the JSON file, or from a `.env` file an older version wrote.
    fn load(
        &self,
        namespace: &str,
        name: &str,
    ) -> std::io::Result<Option<BTreeMap<String, String>>> {
        match std::fs::read_to_string(self.json_path(namespace, name)) {
            Ok(text) => {
                return serde_json::from_str(&text)
                    .map(Some)
                    .map_err(std::io::Error::other);
            }
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            Err(_) => {}
        }
        match std::fs::read_to_string(self.path(namespace, name)) {
            Ok(text) => Ok(Some(parse_env_file(&text))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every Secret, as (namespace, name, keys).
    pub fn all(&self) -> Vec<(String, String, BTreeMap<String, String>)> {
        let mut out = Vec::new();
        let Ok(namespaces) = std::fs::read_dir(&self.root) else {
            return out;
        };
        for ns in namespaces.flatten() {
            let Ok(files) = std::fs::read_dir(ns.path()) else {
                continue;
            };
            let namespace = ns.file_name().to_string_lossy().into_owned();
            for f in files.flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                if let Some(stem) = name.strip_suffix(".env")
                    && let Ok(Some(keys)) = self.load(&namespace, stem)
                {
                    out.push((namespace.clone(), stem.to_string(), keys));
                }
            }
        }
        out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        out
    }

    /// Deletes a Secret's files (pruning a dropped database).
    pub fn remove(&self, namespace: &str, name: &str) -> std::io::Result<()> {
        for p in [self.path(namespace, name), self.json_path(namespace, name)] {
            match std::fs::remove_file(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }
}

fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Written to a temporary file and renamed, so a crash never leaves half a file.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy()
    ));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

impl SecretStore for EnvFileStore {
    type Error = std::io::Error;

    async fn read(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>, Self::Error> {
        let data = self.load(namespace, name)?;
        // A `.env` file alone was written by an older version, in a form shells choke on
        // (`jdbc-uri=...`): both files are written anew, the keys unchanged.
        if let Some(keys) = &data
            && !self.json_path(namespace, name).exists()
        {
            self.write_files(namespace, name, keys)?;
        }
        Ok(data)
    }

    /// JSON first: it is what is read back and decides passwords, so it must never lag
    /// behind a role. (A crash between the two files leaves the `.env` file one write
    /// behind until the Secret next changes.)
    async fn write(
        &self,
        layout: &Layout,
        name: &str,
        data: &BTreeMap<String, String>,
    ) -> Result<(), Self::Error> {
        self.write_files(&layout.namespace, name, data)
    }
}

impl EnvFileStore {
    fn write_files(
        &self,
        namespace: &str,
        name: &str,
        data: &BTreeMap<String, String>,
    ) -> std::io::Result<()> {
        let env = self.path(namespace, name);
        private_dir(&self.root)?;
        private_dir(env.parent().unwrap_or(&self.root))?;
        let json = serde_json::to_string_pretty(data).map_err(std::io::Error::other)?;
        write_private(&self.json_path(namespace, name), &json)?;
        write_private(&env, &to_env_file(data, &format!("{name}.json")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_legacy_env_file_is_rewritten_when_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = EnvFileStore::new(dir.path());
        std::fs::create_dir_all(dir.path().join("shop")).unwrap();
        let legacy = "PGUSER=u\njdbc-uri=jdbc:postgresql://h:5432/d?user=u&password=p\npgpass='h:5432:d:u:p\n'\n";
        std::fs::write(store.path("shop", "orders-db"), legacy).unwrap();
        let keys = store.read("shop", "orders-db").await.unwrap().unwrap();
        assert_eq!(
            keys["jdbc-uri"],
            "jdbc:postgresql://h:5432/d?user=u&password=p"
        );
        assert_eq!(keys["pgpass"], "h:5432:d:u:p\n");
        let json: BTreeMap<String, String> = serde_json::from_str(
            &std::fs::read_to_string(store.json_path("shop", "orders-db")).unwrap(),
        )
        .unwrap();
        assert_eq!(json, keys);
        let env = std::fs::read_to_string(store.path("shop", "orders-db")).unwrap();
        assert!(
            env.contains("\nJDBC_URI='jdbc:postgresql://h:5432/d?user=u&password=p'\n"),
            "{env}"
        );
        assert!(!env.contains("\njdbc-uri="), "{env}");
    }
}
