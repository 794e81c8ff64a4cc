//! Secrets as `.servicedb/secrets/<namespace>/<name>.env` files (mode 0600), the local
//! stand-in for Kubernetes Secrets.

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

    pub fn path(&self, namespace: &str, name: &str) -> PathBuf {
        self.root.join(namespace).join(format!("{name}.env"))
    }

    /// Every Secret file, as (namespace, name, keys).
    pub fn all(&self) -> Vec<(String, String, BTreeMap<String, String>)> {
        let mut out = Vec::new();
        let Ok(namespaces) = std::fs::read_dir(&self.root) else {
            return out;
        };
        for ns in namespaces.flatten() {
            let Ok(files) = std::fs::read_dir(ns.path()) else {
                continue;
            };
            for f in files.flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                if let (Some(stem), Ok(text)) =
                    (name.strip_suffix(".env"), std::fs::read_to_string(f.path()))
                {
                    out.push((
                        ns.file_name().to_string_lossy().into_owned(),
                        stem.to_string(),
                        parse_env_file(&text),
                    ));
                }
            }
        }
        out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        out
    }
}

fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

impl SecretStore for EnvFileStore {
    type Error = std::io::Error;

    async fn read(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>, Self::Error> {
        match std::fs::read_to_string(self.path(namespace, name)) {
            Ok(text) => Ok(Some(parse_env_file(&text))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Written to a temporary file and renamed, so a crash never leaves half a Secret.
    async fn write(
        &self,
        layout: &Layout,
        name: &str,
        data: &BTreeMap<String, String>,
    ) -> Result<(), Self::Error> {
        let path = self.path(&layout.namespace, name);
        let dir = path.parent().unwrap_or(&self.root);
        private_dir(&self.root)?;
        private_dir(dir)?;
        let tmp = dir.join(format!(".{name}.env.tmp"));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(to_env_file(data).as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    }
}
