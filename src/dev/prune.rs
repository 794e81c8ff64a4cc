//! `dev up --prune`: what earlier runs set up and the manifests no longer declare gets its
//! reclaimPolicy, as deleting the resource in a cluster would: Delete drops the database and
//! its roles, Retain keeps them; either way its Secret files go (in a cluster the Secrets are
//! owned by the resource) and dev stops tracking it.

use super::DevProgress;
use super::env_store::EnvFileStore;
use super::record::Record;
use super::servers::Servers;
use crate::service::reconcile::{Cleanup, cleanup_unit};

pub async fn prune(
    record: &mut Record,
    servers: &Servers,
    store: &EnvFileStore,
    progress: &mut dyn DevProgress,
    errors: &mut Vec<String>,
) {
    let mut keep = Vec::new();
    for u in std::mem::take(&mut record.units) {
        if !u.orphaned {
            keep.push(u);
            continue;
        }
        let Some(server) = servers.named(&u.server) else {
            errors.push(format!(
                "{}: its database {} is on server {:?}, which the manifests no longer declare; \
                 declare it again to prune",
                u.describe(),
                u.database,
                u.server
            ));
            keep.push(u);
            continue;
        };
        progress.step(&format!("pruning {}", u.describe()));
        let what = match cleanup_unit(server, &u.resource, u.tenant.as_deref(), u.policy()).await {
            Ok(Cleanup::Retained) => format!(
                "kept database {} and its roles (reclaimPolicy Retain)",
                u.database
            ),
            Ok(Cleanup::Dropped(deletion)) => deletion.summary(&u.database),
            Err(e) => {
                errors.push(format!("{}: pruning: {e}", u.describe()));
                keep.push(u);
                continue;
            }
        };
        let mut removed = Vec::new();
        for name in &u.secrets {
            match store.remove(&u.namespace, name) {
                Ok(()) => removed.push(store.path(&u.namespace, name).display().to_string()),
                Err(e) => errors.push(format!("{}: Secret {name}: {e}", u.describe())),
            }
        }
        progress.note(&format!(
            "pruned {}: {what}; removed {}",
            u.describe(),
            if removed.is_empty() {
                "no Secret files".to_string()
            } else {
                removed.join(", ")
            }
        ));
    }
    record.units = keep;
}
