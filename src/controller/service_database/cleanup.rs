//! The Cleanup side of the finalizer: the reclaim policy, through `controller::provisioning`. Works for a
//! resource never provisioned, and never holds the finalizer forever: past
//! `finalizer_timeout` with the server unreachable, a Warning Event says what was left
//! behind and the finalizer goes.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use super::error::Error;
use super::server::{Unavailable, find, server_for};
use crate::api::validation::validate_service_database;
use crate::api::{ServiceDatabase, Tenancy, Tenant};
use crate::controller::Context;
use crate::controller::events::{self, reasons as event_reasons};
use crate::controller::provisioning::{self, Failure, Reclaimed};
use crate::provision::server::Server;

/// Whether deletion has waited longer than `timeout`. Pure.
pub fn expired(deleted_at: Timestamp, now: Timestamp, timeout: Duration) -> bool {
    let waited = now.duration_since(deleted_at);
    waited.as_secs() >= 0 && waited.unsigned_abs() >= timeout
}

pub async fn cleanup(sdb: &ServiceDatabase, ctx: &Context) -> Result<Action, Error> {
    let regarding = sdb.object_ref(&());
    // Nothing was ever provisioned for an invalid spec.
    if validate_service_database(sdb).is_err() {
        return Ok(Action::await_change());
    }
    if sdb.spec.tenancy == Tenancy::PerTenant {
        return wait_for_tenants(sdb, ctx).await;
    }
    let layout = provisioning::layout(sdb);
    if !provisioning::cleanup_needs_server(sdb) {
        let note = format!(
            "reclaimPolicy Retain: database {} and its roles are kept; applying this ServiceDatabase again adopts them",
            layout.database
        );
        events::normal(ctx, &regarding, event_reasons::RETAINED, "Delete", note).await;
        return Ok(Action::await_change());
    }
    let failure = match server_for(ctx, sdb).await {
        Ok((server_name, server)) => match cleanup_in_turn(ctx, &server_name, &server, sdb).await {
            Ok(Reclaimed::Deleted(deletion)) => {
                // A repeated Cleanup (the finalizer's removal raced another event) finds
                // nothing left of ours: the first pass already said what happened.
                if !deletion.changed() && deletion.left_alone().is_none() {
                    tracing::debug!(database = %layout.database, "nothing left to drop");
                    return Ok(Action::await_change());
                }
                let summary = deletion.summary(&layout.database);
                // A database replaced behind servicedb's back is someone else's data: the
                // Event says it is still there, under the reason a kept database has.
                let reason = match deletion.left_alone() {
                    Some(_) => event_reasons::RETAINED,
                    None => event_reasons::DROPPED,
                };
                let note = format!(
                    "{summary} on DatabaseServer {server_name} ({} statements)",
                    deletion.executed().len()
                );
                events::normal(ctx, &regarding, reason, "Delete", note).await;
                return Ok(Action::await_change());
            }
            Ok(Reclaimed::Retained) => return Ok(Action::await_change()),
            Ok(Reclaimed::NotOurs(why)) => {
                let note = format!("nothing dropped: {why}");
                events::normal(ctx, &regarding, event_reasons::RETAINED, "Delete", note).await;
                return Ok(Action::await_change());
            }
            Err(Failure::Permanent { message, .. } | Failure::Transient { message }) => message,
        },
        Err(Unavailable::Waiting { message, .. }) => {
            // A server that no longer exists holds nothing to drop from here.
            if matches!(find(ctx, sdb).await, Err(Unavailable::Waiting { .. })) {
                let note = format!("{message}; database {} was not dropped", layout.database);
                events::warning(ctx, &regarding, event_reasons::DROP_FAILED, "Delete", note).await;
                return Ok(Action::await_change());
            }
            message
        }
        Err(Unavailable::Problem(p)) => p.to_string(),
        Err(Unavailable::Kube(e)) => return Err(Error::kube("listing DatabaseServers")(e)),
    };
    let deleted_at = sdb.meta().deletion_timestamp.as_ref().map(|t| t.0);
    if deleted_at.is_some_and(|t| expired(t, Timestamp::now(), ctx.config.finalizer_timeout)) {
        let note = format!(
            "gave up after {}: {failure}; database {} and roles {} were left on the server; drop them by hand",
            humantime::format_duration(ctx.config.finalizer_timeout),
            layout.database,
            layout
                .roles()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        events::warning(
            ctx,
            &regarding,
            event_reasons::FINALIZER_TIMEOUT,
            "Delete",
            note,
        )
        .await;
        return Ok(Action::await_change());
    }
    tracing::warn!(resource = %sdb.name_any(), error = %failure, "cleanup will be retried");
    Err(Error::Transient(failure))
}

/// A PerTenant template goes only after its Tenants have offboarded their databases of it:
/// their cleanup needs it (the layout: database, roles, Secrets), so going first would leave
/// every tenant's database and roles behind (a namespace deletion removes both at once).
/// Bounded by `finalizer_timeout`, like an unreachable server.
async fn wait_for_tenants(sdb: &ServiceDatabase, ctx: &Context) -> Result<Action, Error> {
    let api: Api<Tenant> =
        Api::namespaced(ctx.client.clone(), &sdb.namespace().unwrap_or_default());
    let tenants = api
        .list(&ListParams::default())
        .await
        .map_err(Error::kube("listing Tenants"))?;
    let holding = holding_tenants(&sdb.name_any(), &tenants.items);
    if holding.is_empty() {
        return Ok(Action::await_change());
    }
    let names = holding.join(", ");
    let deleted_at = sdb.meta().deletion_timestamp.as_ref().map(|t| t.0);
    if deleted_at.is_some_and(|t| expired(t, Timestamp::now(), ctx.config.finalizer_timeout)) {
        let note = format!(
            "gave up after {} waiting for Tenants {names} to offboard their databases of this service; \
             those databases and roles stay on their servers: drop them by hand",
            humantime::format_duration(ctx.config.finalizer_timeout)
        );
        let regarding = sdb.object_ref(&());
        events::warning(
            ctx,
            &regarding,
            event_reasons::FINALIZER_TIMEOUT,
            "Delete",
            note,
        )
        .await;
        return Ok(Action::await_change());
    }
    Err(Error::Transient(format!(
        "waiting for Tenants {names} to offboard their databases of this service \
         (delete them, or remove this service from their spec.services)"
    )))
}

/// The Tenants that list the service or still hold a database of it. Pure.
pub fn holding_tenants(service: &str, tenants: &[Tenant]) -> Vec<String> {
    tenants
        .iter()
        .filter(|t| {
            t.spec.services.iter().any(|s| s == service)
                || t.status
                    .iter()
                    .flat_map(|s| &s.databases)
                    .any(|d| d.service == service)
        })
        .map(|t| t.name_any())
        .collect()
}

/// The reclaim policy on the server, within the server's bound of concurrent work.
async fn cleanup_in_turn(
    ctx: &Context,
    server_name: &str,
    server: &Server,
    sdb: &ServiceDatabase,
) -> Result<Reclaimed, Failure> {
    let _turn = ctx.servers.turn(server_name).await;
    provisioning::cleanup(server, sdb).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_that_list_or_still_hold_the_service_hold_it() {
        use crate::api::{TenantDatabaseStatus, TenantSpec, TenantStatus};
        let listing = Tenant::new(
            "a",
            TenantSpec {
                services: vec!["app".into()],
                ..Default::default()
            },
        );
        let mut offboarding = Tenant::new("b", TenantSpec::default());
        offboarding.status = Some(TenantStatus {
            databases: vec![TenantDatabaseStatus {
                service: "app".into(),
                ..Default::default()
            }],
            ..Default::default()
        });
        let other = Tenant::new(
            "c",
            TenantSpec {
                services: vec!["crm".into()],
                ..Default::default()
            },
        );
        assert_eq!(
            holding_tenants("app", &[listing, offboarding, other]),
            ["a", "b"]
        );
    }

    #[test]
    fn expiry_counts_from_the_deletion_timestamp() {
        let t0 = Timestamp::from_second(1_000).unwrap();
        let ten_min = Duration::from_secs(600);
        assert!(!expired(
            t0,
            Timestamp::from_second(1_599).unwrap(),
            ten_min
        ));
        assert!(expired(t0, Timestamp::from_second(1_600).unwrap(), ten_min));
        // A clock behind the server's never expires early.
        assert!(!expired(t0, Timestamp::from_second(900).unwrap(), ten_min));
    }
}
