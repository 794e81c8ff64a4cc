//! Offboarding: the Tenant's reclaimPolicy on a database, when the Tenant is deleted (the
//! finalizer's Cleanup) or a service is removed from `spec.services` (then its Secrets are
//! deleted too; with the Tenant they go by garbage collection). Works for a database never
//! provisioned, and never holds the finalizer forever: past `finalizer_timeout`, a Warning
//! Event says what was left behind and the finalizer goes.

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use super::TenantContext;
use super::database::{connected, key};
use super::error::Error;
use super::locate::{known, secret_says};
use crate::api::{ReclaimPolicy, Tenant, TenantDatabaseStatus};
use crate::controller::events::{self, reasons as event_reasons};
use crate::controller::provisioning::{self, Failure};
use crate::controller::service_database::cleanup::expired;
use crate::controller::service_database::secrets::refuse_foreign;
use crate::service::Layout;
use crate::service::reconcile::Deletion;

/// What happened to one database.
#[derive(Debug, PartialEq, Eq)]
enum Reclaimed {
    /// There was never anything on a server.
    Nothing,
    Kept(String),
    Dropped(String),
    /// Not dropped, and nothing more can be done about it: a warning.
    LeftBehind(String),
}

/// The reclaimPolicy on one database of the Tenant. Err: a failure worth retrying.
async fn reclaim(
    tenant: &Tenant,
    entry: &TenantDatabaseStatus,
    tc: &TenantContext,
) -> Result<Reclaimed, String> {
    let name = tenant.name_any();
    let ns = tenant.namespace().unwrap_or_default();
    let mut database = entry.database.clone().unwrap_or_else(|| "?".into());
    let mut server_name = entry
        .server
        .clone()
        .or_else(|| tc.placer.in_flight(&key(tenant, &entry.service)));
    if server_name.is_none()
        && let Some(sdb) = tc.service(&ns, &entry.service)
    {
        // A status lost (restored from a backup without it, say): the app Secret still
        // says where its database was made.
        let layout = Layout::new(&sdb, Some(&name));
        database = layout.database.clone();
        let secrets: Api<Secret> = Api::namespaced(tc.ctx.client.clone(), &ns);
        let secret = secrets
            .get_opt(&layout.app_secret().name)
            .await
            .map_err(|e| format!("reading Secret {}: {e}", layout.app_secret().name))?;
        let says = secret_says(secret.as_ref(), &tenant.uid().unwrap_or_default());
        server_name = known(None, None, &says);
    }
    let Some(server_name) = server_name else {
        // Never placed, so never provisioned.
        return Ok(Reclaimed::Nothing);
    };
    if tenant.spec.reclaim_policy != ReclaimPolicy::Delete {
        return Ok(Reclaimed::Kept(format!(
            "reclaimPolicy Retain: database {database} of service {} and its roles are kept on DatabaseServer {server_name}",
            entry.service
        )));
    }
    let Some(sdb) = tc.service(&ns, &entry.service) else {
        return Ok(Reclaimed::LeftBehind(format!(
            "ServiceDatabase {ns}/{} no longer exists, so the roles of database {database} are not known; database {database} on DatabaseServer {server_name} was not dropped: drop it by hand",
            entry.service
        )));
    };
    if tc.server(&server_name).is_none() {
        return Ok(Reclaimed::LeftBehind(format!(
            "DatabaseServer {server_name} no longer exists; database {database} was not dropped"
        )));
    }
    let server = connected(tc, &server_name)
        .await
        .map_err(|(state, _)| state.message().unwrap_or_default())?;
    let _turn = tc.ctx.servers.turn(&server_name).await;
    match provisioning::cleanup_tenant(&server, &sdb, &name, ReclaimPolicy::Delete).await {
        Ok(provisioning::Reclaimed::Deleted(deletion)) => {
            Ok(deleted(&deletion, &database, &entry.service, &server_name))
        }
        Ok(provisioning::Reclaimed::Retained) => {
            Ok(Reclaimed::Kept(format!("database {database} kept")))
        }
        Ok(provisioning::Reclaimed::NotOurs(why)) => {
            Ok(Reclaimed::Kept(format!("nothing dropped: {why}")))
        }
        Err(Failure::Permanent { message, .. } | Failure::Transient { message }) => Err(message),
    }
}

/// What a Delete did, in the core's words: a database it left alone (replaced by hand, not
/// servicedb's) is reported kept, never dropped; a repeated pass that found nothing of ours
/// says nothing (the first pass did). Pure.
fn deleted(deletion: &Deletion, database: &str, service: &str, server: &str) -> Reclaimed {
    if !deletion.changed() && deletion.left_alone().is_none() {
        return Reclaimed::Nothing;
    }
    let note = format!(
        "service {service}: {} on DatabaseServer {server} ({} statements)",
        deletion.summary(database),
        deletion.executed().len()
    );
    match deletion.left_alone() {
        Some(_) => Reclaimed::Kept(note),
        None => Reclaimed::Dropped(note),
    }
}

async fn announce(tc: &TenantContext, tenant: &Tenant, reclaimed: Reclaimed) {
    let regarding = tenant.object_ref(&());
    match reclaimed {
        Reclaimed::Nothing => {}
        Reclaimed::Kept(note) => {
            events::normal(&tc.ctx, &regarding, event_reasons::RETAINED, "Delete", note).await
        }
        Reclaimed::Dropped(note) => {
            events::normal(&tc.ctx, &regarding, event_reasons::DROPPED, "Delete", note).await
        }
        Reclaimed::LeftBehind(note) => {
            events::warning(
                &tc.ctx,
                &regarding,
                event_reasons::DROP_FAILED,
                "Delete",
                note,
            )
            .await
        }
    }
}

/// A service removed from `spec.services`: its database by the reclaimPolicy, then its
/// Secrets. Err: retried.
pub async fn offboard(
    tenant: &Tenant,
    entry: &TenantDatabaseStatus,
    tc: &TenantContext,
) -> Result<(), String> {
    let reclaimed = reclaim(tenant, entry, tc).await?;
    if let Some(sdb) = tc.service(&tenant.namespace().unwrap_or_default(), &entry.service) {
        let layout = Layout::new(&sdb, Some(&tenant.name_any()));
        delete_secrets(tc, tenant, &layout).await?;
    }
    announce(tc, tenant, reclaimed).await;
    tc.placer.forget(&key(tenant, &entry.service));
    Ok(())
}

/// Deletes the Secrets of one database that this Tenant owns (never someone else's).
async fn delete_secrets(
    tc: &TenantContext,
    tenant: &Tenant,
    layout: &Layout,
) -> Result<(), String> {
    let api: Api<Secret> = Api::namespaced(tc.ctx.client.clone(), &layout.namespace);
    let uid = tenant.uid().unwrap_or_default();
    for s in &layout.secrets {
        let found = api.get_opt(&s.name).await.map_err(|e| e.to_string())?;
        let Some(secret) = found else { continue };
        let ours = refuse_foreign(&secret, &uid).is_none()
            && secret
                .owner_references()
                .iter()
                .any(|o| o.uid == uid && o.controller == Some(true));
        if ours {
            match api.delete(&s.name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.is_not_found() => {}
                Err(e) => return Err(format!("deleting Secret {}: {e}", s.name)),
            }
        }
    }
    Ok(())
}

/// Every database the Tenant has or may have: the recorded ones and the listed ones.
fn all_databases(tenant: &Tenant) -> Vec<TenantDatabaseStatus> {
    let mut all: Vec<TenantDatabaseStatus> = tenant
        .status
        .as_ref()
        .map(|s| s.databases.clone())
        .unwrap_or_default();
    for service in &tenant.spec.services {
        if !all.iter().any(|d| &d.service == service) {
            all.push(TenantDatabaseStatus {
                service: service.clone(),
                ..Default::default()
            });
        }
    }
    all
}

/// The finalizer's Cleanup: every database by the reclaimPolicy (Secrets go with the Tenant
/// by garbage collection).
pub async fn cleanup(tenant: &Tenant, tc: &TenantContext) -> Result<Action, Error> {
    let mut failures = Vec::new();
    for entry in all_databases(tenant) {
        match reclaim(tenant, &entry, tc).await {
            Ok(reclaimed) => {
                announce(tc, tenant, reclaimed).await;
                tc.placer.forget(&key(tenant, &entry.service));
            }
            Err(message) => failures.push(format!("service {}: {message}", entry.service)),
        }
    }
    if failures.is_empty() {
        return Ok(Action::await_change());
    }
    let failure = failures.join("; ");
    let deleted_at = tenant.meta().deletion_timestamp.as_ref().map(|t| t.0);
    if deleted_at.is_some_and(|t| expired(t, Timestamp::now(), tc.ctx.config.finalizer_timeout)) {
        let note = format!(
            "gave up after {}: {failure}; the databases named were left on their servers; drop them by hand",
            humantime::format_duration(tc.ctx.config.finalizer_timeout),
        );
        let regarding = tenant.object_ref(&());
        events::warning(
            &tc.ctx,
            &regarding,
            event_reasons::FINALIZER_TIMEOUT,
            "Delete",
            note,
        )
        .await;
        return Ok(Action::await_change());
    }
    tracing::warn!(tenant = %tenant.name_any(), error = %failure, "cleanup will be retried");
    Err(Error::Transient(failure))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::Ident;
    use crate::provision::Conflict;
    use crate::provision::action::Action;
    use crate::provision::execute::Outcome;
    use crate::provision::plan::DatabaseFate;

    fn deletion(database: DatabaseFate, statements: usize) -> Deletion {
        let role = Ident::new("shop_app_t1_app".to_string()).unwrap();
        Deletion {
            outcome: Outcome {
                actions: vec![Action::DropRole { role }; statements],
                ..Outcome::default()
            },
            database,
        }
    }

    /// Locks the offboarding Events: a database the core left alone is never reported
    /// dropped; a pass that found nothing of ours says nothing.
    #[test]
    fn only_a_dropped_database_is_reported_dropped() {
        let note = |r: Reclaimed| match r {
            Reclaimed::Kept(n) | Reclaimed::Dropped(n) | Reclaimed::LeftBehind(n) => n,
            Reclaimed::Nothing => String::new(),
        };
        let dropped = deleted(&deletion(DatabaseFate::Dropped, 3), "db", "app", "a");
        assert!(matches!(dropped, Reclaimed::Dropped(_)), "{dropped:?}");
        assert_eq!(
            note(dropped),
            "service app: dropped database db and its roles (reclaimPolicy Delete) on DatabaseServer a (3 statements)"
        );
        let replaced = DatabaseFate::LeftAlone(Conflict::DatabaseReplaced {
            database: "db".into(),
        });
        let kept = deleted(&deletion(replaced, 2), "db", "app", "a");
        assert!(matches!(kept, Reclaimed::Kept(_)), "{kept:?}");
        let kept = note(kept);
        assert!(
            kept.starts_with("service app: left database db alone") && kept.contains("oid changed"),
            "{kept}"
        );
        let roles_only = deleted(&deletion(DatabaseFate::Absent, 1), "db", "app", "a");
        assert!(note(roles_only).contains("database db was already gone; dropped its roles"),);
        assert_eq!(
            deleted(&deletion(DatabaseFate::Absent, 0), "db", "app", "a"),
            Reclaimed::Nothing
        );
    }
}
