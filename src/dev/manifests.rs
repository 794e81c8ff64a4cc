//! Reading the YAML a platform engineer would apply: DatabaseServer, ServiceDatabase, Tenant,
//! and the ConfigMaps (migrations) and Secrets (admin credentials) they refer to.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use serde::Deserialize;

use crate::api::{DatabaseServer, ServiceDatabase, Tenant};

/// A resource and the file it came from.
#[derive(Debug, Clone)]
pub struct Sourced<T> {
    pub file: PathBuf,
    pub value: T,
}

/// Everything found, keyed as the cluster would: (namespace, name).
#[derive(Debug, Default)]
pub struct Manifests {
    pub servers: Vec<Sourced<DatabaseServer>>,
    pub services: Vec<Sourced<ServiceDatabase>>,
    pub tenants: Vec<Sourced<Tenant>>,
    pub config_maps: BTreeMap<(String, String), Sourced<BTreeMap<String, String>>>,
    pub secrets: BTreeMap<(String, String), Sourced<BTreeMap<String, String>>>,
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: document {index}: {message}")]
    Parse {
        path: PathBuf,
        index: usize,
        message: String,
    },
    #[error("{path}: {kind} {namespace}/{name} is defined twice (also in {other})")]
    Duplicate {
        path: PathBuf,
        kind: String,
        namespace: String,
        name: String,
        other: PathBuf,
    },
    #[error(
        "no manifests given: pass -f FILE_OR_DIRECTORY (e.g. servicedb dev up -f examples/shop)"
    )]
    Nothing,
}

const DEFAULT_NAMESPACE: &str = "default";

/// Reads files and directories (recursively; `.yaml`/`.yml` files).
pub fn load(paths: &[PathBuf]) -> Result<Manifests, ManifestError> {
    if paths.is_empty() {
        return Err(ManifestError::Nothing);
    }
    let mut out = Manifests::default();
    for path in paths {
        for file in yaml_files(path)? {
            let text = std::fs::read_to_string(&file).map_err(|source| ManifestError::Io {
                path: file.clone(),
                source,
            })?;
            read_documents(&file, &text, &mut out)?;
        }
    }
    Ok(out)
}

fn yaml_files(path: &Path) -> Result<Vec<PathBuf>, ManifestError> {
    let io = |source| ManifestError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(path)
        .map_err(io)?
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let p = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if p.is_dir() {
            files.extend(yaml_files(&p)?);
        } else if name.ends_with(".yaml") || name.ends_with(".yml") {
            files.push(p);
        }
    }
    Ok(files)
}

#[derive(Deserialize)]
struct Head {
    #[serde(rename = "apiVersion", default)]
    api_version: String,
    #[serde(default)]
    kind: String,
}

fn read_documents(file: &Path, text: &str, out: &mut Manifests) -> Result<(), ManifestError> {
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let index = i + 1;
        let parse = |message: String| ManifestError::Parse {
            path: file.to_path_buf(),
            index,
            message,
        };
        let value = serde_yaml::Value::deserialize(doc).map_err(|e| parse(e.to_string()))?;
        if value.is_null() {
            continue;
        }
        let head: Head = serde_yaml::from_value(value.clone()).map_err(|e| parse(e.to_string()))?;
        let typed = |what: &str| {
            let what = what.to_string();
            move |e: serde_yaml::Error| parse(format!("{what}: {e}"))
        };
        match (head.api_version.as_str(), head.kind.as_str()) {
            ("servicedb.io/v1alpha1", "DatabaseServer") => {
                let v: DatabaseServer =
                    serde_yaml::from_value(value).map_err(typed("DatabaseServer"))?;
                out.servers.push(Sourced {
                    file: file.to_path_buf(),
                    value: v,
                });
            }
            ("servicedb.io/v1alpha1", "ServiceDatabase") => {
                let mut v: ServiceDatabase =
                    serde_yaml::from_value(value).map_err(typed("ServiceDatabase"))?;
                v.metadata
                    .namespace
                    .get_or_insert_with(|| DEFAULT_NAMESPACE.to_string());
                out.services.push(Sourced {
                    file: file.to_path_buf(),
                    value: v,
                });
            }
            ("servicedb.io/v1alpha1", "Tenant") => {
                let mut v: Tenant = serde_yaml::from_value(value).map_err(typed("Tenant"))?;
                v.metadata
                    .namespace
                    .get_or_insert_with(|| DEFAULT_NAMESPACE.to_string());
                out.tenants.push(Sourced {
                    file: file.to_path_buf(),
                    value: v,
                });
            }
            ("v1", "ConfigMap") => {
                let v: ConfigMap = serde_yaml::from_value(value).map_err(typed("ConfigMap"))?;
                let key = key_of(&v.metadata);
                let data = v.data.unwrap_or_default();
                insert(&mut out.config_maps, "ConfigMap", key, file, data)?;
            }
            ("v1", "Secret") => {
                let v: Secret = serde_yaml::from_value(value).map_err(typed("Secret"))?;
                let key = key_of(&v.metadata);
                let mut data: BTreeMap<String, String> = v
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, b)| (k, String::from_utf8_lossy(&b.0).into_owned()))
                    .collect();
                data.extend(v.string_data.unwrap_or_default());
                insert(&mut out.secrets, "Secret", key, file, data)?;
            }
            (api, kind) => out.warnings.push(format!(
                "{}: document {index}: {kind} ({api}) is not used by servicedb dev; skipped",
                file.display()
            )),
        }
    }
    Ok(())
}

fn key_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> (String, String) {
    (
        meta.namespace
            .clone()
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string()),
        meta.name.clone().unwrap_or_default(),
    )
}

fn insert(
    map: &mut BTreeMap<(String, String), Sourced<BTreeMap<String, String>>>,
    kind: &str,
    key: (String, String),
    file: &Path,
    data: BTreeMap<String, String>,
) -> Result<(), ManifestError> {
    if let Some(other) = map.get(&key) {
        return Err(ManifestError::Duplicate {
            path: file.to_path_buf(),
            kind: kind.to_string(),
            namespace: key.0,
            name: key.1,
            other: other.file.clone(),
        });
    }
    map.insert(
        key,
        Sourced {
            file: file.to_path_buf(),
            value: data,
        },
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_multi_document_yaml_with_defaults_and_skips_other_kinds() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("all.yaml"),
            r#"
apiVersion: servicedb.io/v1alpha1
kind: ServiceDatabase
metadata: { name: orders, namespace: shop }
spec:
  migrations: { configMaps: [orders-migrations] }
---
apiVersion: v1
kind: ConfigMap
metadata: { name: orders-migrations, namespace: shop }
data:
  V1__init.sql: "CREATE TABLE t (id int);"
---
apiVersion: v1
kind: Secret
metadata: { name: admin }
stringData: { username: a, password: b }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: x }
"#,
        )
        .unwrap();
        let m = load(&[dir.path().to_path_buf()]).unwrap();
        assert_eq!(m.services.len(), 1);
        assert_eq!(
            m.config_maps[&("shop".into(), "orders-migrations".into())].value["V1__init.sql"],
            "CREATE TABLE t (id int);"
        );
        assert_eq!(
            m.secrets[&("default".into(), "admin".into())].value["password"],
            "b"
        );
        assert_eq!(m.warnings.len(), 1);
    }

    #[test]
    fn errors_name_the_file_and_document() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("bad.yaml");
        std::fs::write(
            &f,
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: servicedb.io/v1alpha1\nkind: ServiceDatabase\nmetadata: {name: x}\nspec: {tenancy: Sometimes}\n",
        )
        .unwrap();
        let err = load(&[f]).unwrap_err().to_string();
        assert!(
            err.contains("bad.yaml: document 2: ServiceDatabase"),
            "{err}"
        );
        assert!(err.contains("Sometimes"), "{err}");
    }
}
