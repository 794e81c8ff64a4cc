//! Which DatabaseServer a ServiceDatabase lives on, and whether it is usable. The choice is
//! pure; fetching lists the DatabaseServers once.

use std::sync::Arc;

use kube::ResourceExt;
use kube::api::{Api, ListParams};

use crate::api::conditions::{self, find_condition, reasons, types};
use crate::api::{DatabaseServer, ServiceDatabase};
use crate::controller::Context;
use crate::controller::database_server::connect::{self, ServerProblem};
use crate::controller::triggers::Triggers;
use crate::provision::server::Server;

/// The server named by `spec.server`, else the one marked default.
pub fn choose<'a>(
    named: Option<&str>,
    servers: &'a [DatabaseServer],
) -> Result<&'a DatabaseServer, String> {
    match named {
        Some(name) => servers
            .iter()
            .find(|s| s.name_any() == name)
            .ok_or_else(|| format!("spec.server: DatabaseServer {name} does not exist")),
        None => {
            let defaults: Vec<&DatabaseServer> =
                servers.iter().filter(|s| s.spec.default).collect();
            match defaults.as_slice() {
                [one] => Ok(one),
                [] => Err("spec.server is not set and no DatabaseServer has default: true".into()),
                many => Err(format!(
                    "spec.server is not set and {} DatabaseServers have default: true ({}); mark only one",
                    many.len(),
                    many.iter()
                        .map(|s| s.name_any())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            }
        }
    }
}

/// Whether a DatabaseServer event matters to ServiceDatabases: its spec (generation) or its
/// readiness, never its databaseCount (which every other database changes).
pub fn trigger_hash(dbs: &DatabaseServer) -> Option<u64> {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let ready = dbs
        .status
        .as_ref()
        .and_then(|s| find_condition(&s.conditions, types::READY))
        .map(|c| (c.status.clone(), c.observed_generation));
    let mut h = DefaultHasher::new();
    (dbs.metadata.generation, ready).hash(&mut h);
    Some(h.finish())
}

/// Which DatabaseServer events reach the ServiceDatabases: a change of spec or readiness
/// ([`trigger_hash`]), and every deletion.
pub fn server_triggers() -> Triggers<DatabaseServer> {
    Triggers::new(trigger_hash)
}

/// Whether the ServiceDatabase uses this DatabaseServer (by name, or as the default).
pub fn uses(sdb: &ServiceDatabase, dbs: &DatabaseServer) -> bool {
    match &sdb.spec.server {
        Some(name) => *name == dbs.name_any(),
        None => dbs.spec.default,
    }
}

/// Why the ServiceDatabase cannot go ahead yet.
pub enum Unavailable {
    /// Not found, not Ready: waits for the DatabaseServer (its watch brings the change).
    Waiting {
        reason: &'static str,
        message: String,
    },
    Problem(ServerProblem),
    Kube(kube::Error),
}

/// The connected server for the ServiceDatabase, with its name.
pub async fn server_for(
    ctx: &Context,
    sdb: &ServiceDatabase,
) -> Result<(String, Arc<Server>), Unavailable> {
    let servers = find(ctx, sdb).await?;
    let dbs = servers;
    let name = dbs.name_any();
    let ready = dbs
        .status
        .as_ref()
        .is_some_and(|s| conditions::is_ready(&s.conditions, dbs.metadata.generation));
    if !ready {
        let why = dbs
            .status
            .as_ref()
            .and_then(|s| find_condition(&s.conditions, types::READY))
            .map(|c| c.message.clone())
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| "not checked yet".to_string());
        return Err(Unavailable::Waiting {
            reason: reasons::SERVER_NOT_READY,
            message: format!("waiting for DatabaseServer {name} to be Ready: {why}"),
        });
    }
    let server = connect::connect(ctx, &dbs)
        .await
        .map_err(Unavailable::Problem)?;
    Ok((name, server))
}

/// The DatabaseServer the ServiceDatabase names (or the default one).
pub async fn find(ctx: &Context, sdb: &ServiceDatabase) -> Result<DatabaseServer, Unavailable> {
    let all = Api::<DatabaseServer>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await
        .map_err(Unavailable::Kube)?
        .items;
    choose(sdb.spec.server.as_deref(), &all)
        .cloned()
        .map_err(|message| Unavailable::Waiting {
            reason: reasons::SERVER_NOT_FOUND,
            message,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dbs(name: &str, default: bool) -> DatabaseServer {
        let mut d = DatabaseServer::new(name, Default::default());
        d.spec.default = default;
        d
    }

    #[test]
    fn named_then_the_single_default() {
        let servers = [dbs("a", false), dbs("b", true)];
        assert_eq!(choose(Some("a"), &servers).unwrap().name_any(), "a");
        assert_eq!(choose(None, &servers).unwrap().name_any(), "b");
        assert!(
            choose(Some("c"), &servers)
                .unwrap_err()
                .contains("DatabaseServer c does not exist")
        );
        let two = [dbs("a", true), dbs("b", true)];
        assert!(
            choose(None, &two)
                .unwrap_err()
                .contains("2 DatabaseServers have default: true (a, b)")
        );
        assert!(
            choose(None, &[dbs("a", false)])
                .unwrap_err()
                .contains("no DatabaseServer has default")
        );
    }

    /// Locks "a deleted DatabaseServer reaches its ServiceDatabases" next to "an unchanged
    /// one does not".
    #[test]
    fn deletions_always_pass_unchanged_applies_do_not() {
        use kube::runtime::watcher::Event;
        let mut t = server_triggers();
        let mut d = dbs("a", true);
        d.metadata.generation = Some(1);
        assert!(t.pass(Event::InitApply(d.clone())).is_some());
        assert!(t.pass(Event::InitDone).is_none());
        assert!(t.pass(Event::Apply(d.clone())).is_none(), "nothing changed");
        assert!(
            t.pass(Event::Delete(d.clone())).is_some(),
            "deleted as it was"
        );
        assert!(t.pass(Event::Apply(d.clone())).is_some(), "created again");
        d.metadata.generation = Some(2);
        assert!(t.pass(Event::Apply(d)).is_some());
    }

    /// Locks "databaseCount changes do not fan out to every ServiceDatabase".
    #[test]
    fn database_count_does_not_trigger_but_readiness_does() {
        let mut d = dbs("a", true);
        d.metadata.generation = Some(1);
        let before = trigger_hash(&d);
        d.status = Some(crate::api::DatabaseServerStatus {
            database_count: Some(5),
            ..Default::default()
        });
        assert_eq!(trigger_hash(&d), before);
        let mut status = d.status.clone().unwrap();
        conditions::set_ready(
            &mut status.conditions,
            conditions::Readiness::ready("Reconciled", "ok"),
            Some(1),
            &conditions::now(),
        );
        d.status = Some(status);
        assert_ne!(trigger_hash(&d), before);
    }
}
