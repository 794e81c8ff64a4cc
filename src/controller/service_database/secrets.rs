//! The core's `SecretStore` over Kubernetes Secrets: server-side apply of `data` (never
//! `stringData`, which misbehaves under SSA), labelled as DESIGN says, owned by the
//! ServiceDatabase so they go with it. A Secret of that name that servicedb does not manage
//! (or that another resource owns) is never overwritten. Each write carries the rotation
//! record annotations the caller set (`service::rotation`), in the same apply as the data.

use std::collections::BTreeMap;
use std::sync::Mutex;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, Patch, PatchParams};

use crate::api::labels;
use crate::controller::status_patch::FIELD_MANAGER;
use crate::naming;
use crate::service::{Layout, SecretStore};

#[derive(Debug, thiserror::Error)]
pub enum SecretStoreError {
    /// Someone else's Secret has the name: a conflict only a person can resolve.
    #[error("{0}")]
    Foreign(String),
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

pub struct KubeSecrets {
    client: kube::Client,
    owner: OwnerReference,
    foreign: Mutex<Option<String>>,
    /// Secrets fetched ahead (by `namespace/name`), so the core's read costs no second GET.
    fetched: Mutex<BTreeMap<String, Option<Secret>>>,
    /// Annotations to write with each Secret (by name).
    annotations: Mutex<BTreeMap<String, BTreeMap<String, String>>>,
    /// Annotations every Secret write carries.
    every: Mutex<BTreeMap<String, String>>,
}

impl KubeSecrets {
    pub fn new(client: kube::Client, owner: OwnerReference) -> KubeSecrets {
        KubeSecrets {
            client,
            owner,
            foreign: Mutex::new(None),
            fetched: Mutex::default(),
            annotations: Mutex::default(),
            every: Mutex::default(),
        }
    }

    /// Reads a Secret whole (metadata too) ahead of the core, which then reads it from here;
    /// one fetched ahead already (and not read by the core since) is not read again.
    pub async fn fetch(&self, namespace: &str, name: &str) -> Result<Option<Secret>, kube::Error> {
        let key = format!("{namespace}/{name}");
        if let Some(secret) = lock(&self.fetched).get(&key) {
            return Ok(secret.clone());
        }
        let secret = Api::<Secret>::namespaced(self.client.clone(), namespace)
            .get_opt(name)
            .await?;
        lock(&self.fetched).insert(key, secret.clone());
        Ok(secret)
    }

    /// Fetches `names` ahead, all at once (one round trip instead of one each).
    pub async fn fetch_all(&self, namespace: &str, names: &[&str]) -> Result<(), kube::Error> {
        futures::future::try_join_all(names.iter().map(|name| self.fetch(namespace, name)))
            .await
            .map(drop)
    }

    /// Each Secret fetched ahead, by `namespace/name`, with its resourceVersion (None: it
    /// does not exist).
    pub fn fetched_versions(&self) -> Vec<(String, Option<String>)> {
        lock(&self.fetched)
            .iter()
            .map(|(name, s)| {
                let version = s.as_ref().and_then(|s| s.metadata.resource_version.clone());
                (name.clone(), version)
            })
            .collect()
    }

    /// The annotations every later write of each named Secret carries.
    pub fn annotate_writes(&self, annotations: BTreeMap<String, BTreeMap<String, String>>) {
        *lock(&self.annotations) = annotations;
    }

    /// An annotation every later write of every Secret carries (besides `annotate_writes`').
    pub fn annotate_every_write(&self, key: &str, value: &str) {
        lock(&self.every).insert(key.to_string(), value.to_string());
    }

    /// Why a read refused a Secret, if one did (the core keeps only the message).
    pub fn foreign(&self) -> Option<String> {
        self.foreign
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Why the existing Secret `secret` is not ours to overwrite, if it is not. Pure.
pub fn refuse_foreign(secret: &Secret, owner_uid: &str) -> Option<String> {
    let meta = &secret.metadata;
    let name = format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    );
    let managed = meta
        .labels
        .as_ref()
        .and_then(|l| l.get(labels::MANAGED_BY))
        .is_some_and(|v| v == labels::MANAGED_BY_VALUE);
    if !managed {
        return Some(format!(
            "Secret {name} already exists and is not managed by servicedb; delete it or choose another Secret name (spec.secret.name, spec.roles[].secretName)"
        ));
    }
    let other_controller = meta
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true) && o.uid != owner_uid);
    other_controller.map(|o| {
        format!(
            "Secret {name} belongs to {} {}; choose another Secret name (spec.secret.name, spec.roles[].secretName)",
            o.kind, o.name
        )
    })
}

/// The Secret to apply. Pure.
pub fn desired_secret(
    layout: &Layout,
    name: &str,
    owner: &OwnerReference,
    data: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) -> Secret {
    let mut labels = BTreeMap::from([
        (
            labels::MANAGED_BY.to_string(),
            labels::MANAGED_BY_VALUE.to_string(),
        ),
        (
            labels::SERVICE_DATABASE.to_string(),
            naming::label_value(&layout.service),
        ),
    ]);
    if let Some(t) = &layout.tenant {
        labels.insert(labels::TENANT.to_string(), naming::label_value(t));
    }
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(layout.namespace.clone()),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then(|| annotations.clone()),
            owner_references: Some(vec![owner.clone()]),
            ..Default::default()
        },
        type_: Some("Opaque".to_string()),
        data: Some(
            data.iter()
                .map(|(k, v)| (k.clone(), ByteString(v.clone().into_bytes())))
                .collect(),
        ),
        ..Default::default()
    }
}

impl SecretStore for KubeSecrets {
    type Error = SecretStoreError;

    async fn read(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>, SecretStoreError> {
        let fetched = lock(&self.fetched).remove(&format!("{namespace}/{name}"));
        let secret = match fetched {
            Some(secret) => secret,
            None => {
                Api::<Secret>::namespaced(self.client.clone(), namespace)
                    .get_opt(name)
                    .await?
            }
        };
        let Some(secret) = secret else {
            return Ok(None);
        };
        if let Some(why) = refuse_foreign(&secret, &self.owner.uid) {
            *self.foreign.lock().unwrap_or_else(|e| e.into_inner()) = Some(why.clone());
            return Err(SecretStoreError::Foreign(why));
        }
        // A value that is not UTF-8 is left out, so the Secret counts as changed and is rewritten.
        Ok(Some(
            secret
                .data
                .unwrap_or_default()
                .into_iter()
                .filter_map(|(k, v)| String::from_utf8(v.0).ok().map(|v| (k, v)))
                .collect(),
        ))
    }

    async fn write(
        &self,
        layout: &Layout,
        name: &str,
        data: &BTreeMap<String, String>,
    ) -> Result<(), SecretStoreError> {
        let api = Api::<Secret>::namespaced(self.client.clone(), &layout.namespace);
        let mut annotations = lock(&self.every).clone();
        annotations.extend(
            lock(&self.annotations)
                .get(name)
                .cloned()
                .unwrap_or_default(),
        );
        let secret = desired_secret(layout, name, &self.owner, data, &annotations);
        // A copy fetched ahead is older than this write.
        lock(&self.fetched).remove(&format!("{}/{name}", layout.namespace));
        api.patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&secret),
        )
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(labels: &[(&str, &str)], owner_uid: Option<&str>) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some("orders-db".into()),
                namespace: Some("shop".into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                owner_references: owner_uid.map(|uid| {
                    vec![OwnerReference {
                        api_version: "servicedb.io/v1alpha1".into(),
                        kind: "ServiceDatabase".into(),
                        name: "other".into(),
                        uid: uid.into(),
                        controller: Some(true),
                        block_owner_deletion: Some(true),
                    }]
                }),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn only_our_own_secrets_may_be_overwritten() {
        let ours = [(labels::MANAGED_BY, labels::MANAGED_BY_VALUE)];
        assert_eq!(refuse_foreign(&secret(&ours, Some("me")), "me"), None);
        assert_eq!(refuse_foreign(&secret(&ours, None), "me"), None);
        let unmanaged = refuse_foreign(&secret(&[], None), "me").unwrap();
        assert!(
            unmanaged.contains("is not managed by servicedb"),
            "{unmanaged}"
        );
        let taken = refuse_foreign(&secret(&ours, Some("them")), "me").unwrap();
        assert!(
            taken.contains("belongs to ServiceDatabase other"),
            "{taken}"
        );
    }
}
