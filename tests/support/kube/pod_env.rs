//! What a Job's container would see, built for a local process: its volumes
//! (ConfigMap, Secret, projected, emptyDir) written to a temporary directory, and its
//! environment (`envFrom`, `env` with `valueFrom`) resolved through the API, as the
//! kubelet would. A reference to something missing is an error, as the pod would not
//! start (CreateContainerConfigError), unless it is `optional`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{ConfigMap, Container, EnvVar, KeyToPath, Secret, Volume};
use kube::api::Api;

/// `$(VAR)` expansion as the kubelet does it: defined variables are replaced, undefined
/// references stay as written, `$$` is a literal `$`.
pub(crate) fn expand(text: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
            && let Some(value) = env.get(&inner[..end])
        {
            out.push_str(value);
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Reads what a pod of `namespace` would mount and see, with `client`.
pub(crate) struct PodEnv<'a> {
    pub client: &'a kube::Client,
}

impl PodEnv<'_> {
    /// Writes each volume to `dir/vol-<i>`; returns (mountPath, local path) pairs of the
    /// container's mounts, longest mount path first.
    pub async fn write_volumes(
        &self,
        namespace: &str,
        dir: &Path,
        volumes: &[Volume],
        container: &Container,
    ) -> Result<Vec<(String, PathBuf)>, String> {
        let mut local: BTreeMap<String, PathBuf> = BTreeMap::new();
        for (i, volume) in volumes.iter().enumerate() {
            let path = dir.join(format!("vol-{i}"));
            std::fs::create_dir_all(&path).map_err(|e| format!("volume {}: {e}", volume.name))?;
            let mut files: Vec<(String, Vec<u8>)> = vec![];
            if let Some(cm) = &volume.config_map {
                files.extend(
                    self.config_map_files(namespace, &cm.name, cm.items.as_deref(), cm.optional)
                        .await?,
                );
            }
            if let Some(secret) = &volume.secret {
                let name = secret.secret_name.clone().unwrap_or_default();
                files.extend(
                    self.secret_files(namespace, &name, secret.items.as_deref(), secret.optional)
                        .await?,
                );
            }
            for source in volume
                .projected
                .iter()
                .flat_map(|p| p.sources.iter().flatten())
            {
                if let Some(cm) = &source.config_map {
                    files.extend(
                        self.config_map_files(
                            namespace,
                            &cm.name,
                            cm.items.as_deref(),
                            cm.optional,
                        )
                        .await?,
                    );
                }
                if let Some(secret) = &source.secret {
                    files.extend(
                        self.secret_files(
                            namespace,
                            &secret.name,
                            secret.items.as_deref(),
                            secret.optional,
                        )
                        .await?,
                    );
                }
            }
            for (file, content) in files {
                let target = path.join(&file);
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| format!("volume {}: {e}", volume.name))?;
                }
                std::fs::write(&target, content)
                    .map_err(|e| format!("writing {}: {e}", target.display()))?;
            }
            local.insert(volume.name.clone(), path);
        }
        let mut mounts = vec![];
        for m in container.volume_mounts.iter().flatten() {
            let base = local
                .get(&m.name)
                .ok_or_else(|| format!("volumeMount {} names no volume", m.name))?;
            let path = match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
                Some(sub) => base.join(sub),
                None => base.clone(),
            };
            mounts.push((m.mount_path.clone(), path));
        }
        mounts.sort_by_key(|(mount, _)| std::cmp::Reverse(mount.len()));
        Ok(mounts)
    }

    async fn config_map_data(
        &self,
        namespace: &str,
        name: &str,
        optional: Option<bool>,
    ) -> Result<BTreeMap<String, Vec<u8>>, String> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        match api
            .get_opt(name)
            .await
            .map_err(|e| format!("ConfigMap {name}: {e}"))?
        {
            Some(cm) => {
                let mut data: BTreeMap<String, Vec<u8>> = cm
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.into_bytes()))
                    .collect();
                data.extend(
                    cm.binary_data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.0)),
                );
                Ok(data)
            }
            None if optional == Some(true) => Ok(BTreeMap::new()),
            None => Err(format!(
                "ConfigMap {namespace}/{name} not found (the pod would not start)"
            )),
        }
    }

    async fn secret_data(
        &self,
        namespace: &str,
        name: &str,
        optional: Option<bool>,
    ) -> Result<BTreeMap<String, Vec<u8>>, String> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        match api
            .get_opt(name)
            .await
            .map_err(|e| format!("Secret {name}: {e}"))?
        {
            Some(secret) => Ok(secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect()),
            None if optional == Some(true) => Ok(BTreeMap::new()),
            None => Err(format!(
                "Secret {namespace}/{name} not found (the pod would not start)"
            )),
        }
    }

    fn select_items(
        data: BTreeMap<String, Vec<u8>>,
        items: Option<&[KeyToPath]>,
        what: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, String> {
        match items {
            None => Ok(data.into_iter().collect()),
            Some(items) => items
                .iter()
                .map(|i| {
                    data.get(&i.key)
                        .map(|v| (i.path.clone(), v.clone()))
                        .ok_or_else(|| format!("{what} has no key {:?}", i.key))
                })
                .collect(),
        }
    }

    async fn config_map_files(
        &self,
        namespace: &str,
        name: &str,
        items: Option<&[KeyToPath]>,
        optional: Option<bool>,
    ) -> Result<Vec<(String, Vec<u8>)>, String> {
        let data = self.config_map_data(namespace, name, optional).await?;
        Self::select_items(data, items, &format!("ConfigMap {name}"))
    }

    async fn secret_files(
        &self,
        namespace: &str,
        name: &str,
        items: Option<&[KeyToPath]>,
        optional: Option<bool>,
    ) -> Result<Vec<(String, Vec<u8>)>, String> {
        let data = self.secret_data(namespace, name, optional).await?;
        Self::select_items(data, items, &format!("Secret {name}"))
    }

    pub async fn environment(
        &self,
        namespace: &str,
        pod_name: &str,
        container: &Container,
    ) -> Result<BTreeMap<String, String>, String> {
        let mut env = BTreeMap::new();
        for source in container.env_from.iter().flatten() {
            let prefix = source.prefix.clone().unwrap_or_default();
            let data = if let Some(cm) = &source.config_map_ref {
                self.config_map_data(namespace, &cm.name, cm.optional)
                    .await?
            } else if let Some(secret) = &source.secret_ref {
                self.secret_data(namespace, &secret.name, secret.optional)
                    .await?
            } else {
                BTreeMap::new()
            };
            for (k, v) in data {
                env.insert(
                    format!("{prefix}{k}"),
                    String::from_utf8_lossy(&v).into_owned(),
                );
            }
        }
        for var in container.env.iter().flatten() {
            if let Some(value) = self.env_value(namespace, pod_name, var, &env).await? {
                env.insert(var.name.clone(), value);
            }
        }
        Ok(env)
    }

    async fn env_value(
        &self,
        namespace: &str,
        pod_name: &str,
        var: &EnvVar,
        env: &BTreeMap<String, String>,
    ) -> Result<Option<String>, String> {
        let Some(from) = &var.value_from else {
            return Ok(Some(expand(var.value.as_deref().unwrap_or_default(), env)));
        };
        let missing = |what: String, optional: Option<bool>| {
            if optional == Some(true) {
                Ok(None)
            } else {
                Err(format!(
                    "env {}: {what} (the pod would not start)",
                    var.name
                ))
            }
        };
        if let Some(r) = &from.secret_key_ref {
            let data = self.secret_data(namespace, &r.name, r.optional).await?;
            return match data.get(&r.key) {
                Some(v) => Ok(Some(String::from_utf8_lossy(v).into_owned())),
                None => missing(
                    format!("Secret {} has no key {:?}", r.name, r.key),
                    r.optional,
                ),
            };
        }
        if let Some(r) = &from.config_map_key_ref {
            let data = self.config_map_data(namespace, &r.name, r.optional).await?;
            return match data.get(&r.key) {
                Some(v) => Ok(Some(String::from_utf8_lossy(v).into_owned())),
                None => missing(
                    format!("ConfigMap {} has no key {:?}", r.name, r.key),
                    r.optional,
                ),
            };
        }
        if let Some(f) = &from.field_ref {
            return match f.field_path.as_str() {
                "metadata.namespace" => Ok(Some(namespace.to_string())),
                "metadata.name" => Ok(Some(pod_name.to_string())),
                other => Err(format!(
                    "env {}: fieldRef {other} is not supported by the test Job runner",
                    var.name
                )),
            };
        }
        Err(format!(
            "env {}: this valueFrom is not supported by the test Job runner",
            var.name
        ))
    }
}
