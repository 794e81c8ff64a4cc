//! Reading the YAML a platform engineer would apply: DatabaseServer, ServiceDatabase, Tenant,
//! and the ConfigMaps (migrations) and Secrets (admin credentials) they refer to.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use serde::Deserialize;

use crate::api::schema_check::{check_object, schema_for};
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
    /// Documents refused as the API server would refuse them (schema, unknown kind), each
    /// naming file, resource and field; the others are still read.
    pub errors: Vec<String>,
    /// (kind, namespace, name) of resources refused above: declared, but not usable.
    pub rejected: Vec<(String, String, String)>,
}

impl Manifests {
    /// Whether a resource of this kind and name was in the manifests but refused.
    pub fn is_rejected(&self, kind: &str, namespace: &str, name: &str) -> bool {
        self.rejected
            .iter()
            .any(|(k, ns, n)| k == kind && ns == namespace && n == name)
    }
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
    #[error(
        "nothing found in {paths}: no DatabaseServer, ServiceDatabase or Tenant in {files} YAML file(s) (.yaml/.yml, searched recursively)"
    )]
    Empty { paths: String, files: usize },
}

const DEFAULT_NAMESPACE: &str = "default";

/// Reads files and directories (recursively; `.yaml`/`.yml` files).
pub fn load(paths: &[PathBuf]) -> Result<Manifests, ManifestError> {
    if paths.is_empty() {
        return Err(ManifestError::Nothing);
    }
    let mut out = Manifests::default();
    let mut files = 0;
    for path in paths {
        for file in yaml_files(path)? {
            files += 1;
            let text = std::fs::read_to_string(&file).map_err(|source| ManifestError::Io {
                path: file.clone(),
                source,
            })?;
            read_documents(&file, &text, &mut out)?;
        }
    }
    if out.servers.is_empty()
        && out.services.is_empty()
        && out.tenants.is_empty()
        && out.errors.is_empty()
    {
        return Err(ManifestError::Empty {
            paths: paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            files,
        });
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
        if head.api_version.split('/').next() == Some(crate::api::GROUP) {
            read_servicedb(file, index, &head, value, out);
            continue;
        }
        match (head.api_version.as_str(), head.kind.as_str()) {
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

/// A servicedb.io document, checked against its CRD's schema as the API server would; a
/// refused one is recorded in `out.errors` and `out.rejected`, never half-read.
fn read_servicedb(
    file: &Path,
    index: usize,
    head: &Head,
    value: serde_yaml::Value,
    out: &mut Manifests,
) {
    let at = |what: String| format!("{}: {what}", file.display());
    let schema = match schema_for(&head.api_version, &head.kind) {
        Ok(s) => s,
        Err(e) => {
            out.errors.push(at(format!("document {index}: {e}")));
            return;
        }
    };
    let mut json = match serde_json::to_value(&value) {
        Ok(j) => j,
        Err(e) => {
            out.errors.push(at(format!("document {index}: {e}")));
            return;
        }
    };
    let kind = head.kind.as_str();
    let cluster_scoped = kind == "DatabaseServer";
    let name = json["metadata"]["name"].as_str().unwrap_or("").to_string();
    let namespace = match json["metadata"]["namespace"].as_str() {
        _ if cluster_scoped => String::new(),
        Some(ns) => ns.to_string(),
        None => DEFAULT_NAMESPACE.to_string(),
    };
    let resource = if cluster_scoped {
        format!("{kind} {name}")
    } else {
        format!("{kind} {namespace}/{name}")
    };
    let mut errors: Vec<String> = check_object(&schema, &mut json)
        .iter()
        .map(|e| at(format!("{resource}: {e}")))
        .collect();
    if errors.is_empty() {
        let typed = match kind {
            "DatabaseServer" => serde_json::from_value(json).map(|v| {
                out.servers.push(Sourced {
                    file: file.to_path_buf(),
                    value: v,
                })
            }),
            "ServiceDatabase" => serde_json::from_value(json).map(|mut v: ServiceDatabase| {
                v.metadata.namespace = Some(namespace.clone());
                out.services.push(Sourced {
                    file: file.to_path_buf(),
                    value: v,
                })
            }),
            _ => serde_json::from_value(json).map(|mut v: Tenant| {
                v.metadata.namespace = Some(namespace.clone());
                out.tenants.push(Sourced {
                    file: file.to_path_buf(),
                    value: v,
                })
            }),
        };
        // The schema comes from these types, so this is a bug guard, not a user error path.
        if let Err(e) = typed {
            errors.push(at(format!("{resource}: {e}")));
        }
    }
    if !errors.is_empty() {
        out.errors.extend(errors);
        out.rejected.push((kind.to_string(), namespace, name));
    }
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
        let m = load(&[f]).unwrap();
        assert_eq!(m.errors.len(), 1, "{:?}", m.errors);
        let err = &m.errors[0];
        assert!(
            err.ends_with(r#"bad.yaml: ServiceDatabase default/x: spec.tenancy: unsupported value "Sometimes": supported values: "Shared", "PerTenant""#),
            "{err}"
        );
        assert!(m.services.is_empty());
        assert!(m.is_rejected("ServiceDatabase", "default", "x"));
    }

    #[test]
    fn unknown_servicedb_kinds_are_errors_and_empty_input_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("typo.yaml");
        std::fs::write(
            &f,
            "apiVersion: servicedb.io/v1alpha1\nkind: ServiceDatabse\nmetadata: {name: x}\n---\napiVersion: servicedb.io/v1beta9\nkind: ServiceDatabase\nmetadata: {name: y}\nspec: {}\n",
        )
        .unwrap();
        let m = load(std::slice::from_ref(&f)).unwrap();
        assert_eq!(m.errors.len(), 2, "{:?}", m.errors);
        assert!(
            m.errors[0].contains("typo.yaml: document 1: kind \"ServiceDatabse\" does not exist")
        );
        assert!(m.errors[1].contains(
            "typo.yaml: document 2: ServiceDatabase is not served as servicedb.io/v1beta9"
        ));
        let empty = tempfile::tempdir().unwrap();
        let err = load(&[empty.path().to_path_buf()]).unwrap_err().to_string();
        assert!(err.starts_with("nothing found in "), "{err}");
        assert!(
            err.ends_with("in 0 YAML file(s) (.yaml/.yml, searched recursively)"),
            "{err}"
        );
    }
}
