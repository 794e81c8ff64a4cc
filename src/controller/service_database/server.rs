//! Which DatabaseServer a ServiceDatabase lives on, and whether it is usable. The choice is
//! pure; fetching lists the DatabaseServers once.

use std::sync::Arc;

use kube::ResourceExt;
use kube::api::{Api, ListParams};

use crate::api::conditions::{find_condition, reasons, types};
use crate::api::{DatabaseServer, ServiceDatabase};
use crate::controller::Context;
use crate::controller::database_server::connect::{self, ServerProblem};
use crate::controller::database_server::operator_namespace;
use crate::controller::database_server::spec::is_ours;
use crate::controller::database_server::status::{not_ready_why, server_ready};
use crate::controller::triggers::Triggers;
use crate::provision::server::Server;

/// The server the database lives on (`status.server`, once provisioned: a database never
/// moves because the default server changed), else the one `spec.server` names, else the
/// one of this installation's servers ([`is_ours`]) marked default: another installation
/// in the cluster has a default of its own.
pub fn choose<'a>(
    named: Option<&str>,
    placed: Option<&str>,
    servers: &'a [DatabaseServer],
    operator_namespace: &str,
) -> Result<&'a DatabaseServer, String> {
    if let Some(placed) = placed {
        return servers.iter().find(|s| s.name_any() == placed).ok_or_else(|| {
            format!(
                "DatabaseServer {placed}, where this database lives (status.server), does not exist"
            )
        });
    }
    match named {
        Some(name) => servers
            .iter()
            .find(|s| s.name_any() == name)
            .ok_or_else(|| format!("spec.server: DatabaseServer {name} does not exist")),
        None => {
            let defaults: Vec<&DatabaseServer> = servers
                .iter()
                .filter(|s| s.spec.default && is_ours(s, operator_namespace))
                .collect();
            match defaults.as_slice() {
                [one] => Ok(one),
                [] => Err(format!(
                    "spec.server is not set and no DatabaseServer with its admin Secret in the \
                     operator's namespace {operator_namespace} has default: true"
                )),
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

/// The refusal when `spec.server` names another server than the one the database lives on:
/// servicedb never moves a database (the new server would get an empty one, the Secret
/// would point apps at it, and the data would stay behind).
pub fn server_change(sdb: &ServiceDatabase) -> Option<String> {
    let placed = placed(sdb)?;
    let named = sdb.spec.server.as_deref()?;
    (named != placed).then(|| {
        format!(
            "spec.server: the database lives on DatabaseServer {placed} and servicedb never moves \
             a database; set spec.server back to {placed} (to move it, copy the data and create a \
             new ServiceDatabase naming {named})"
        )
    })
}

/// The server the database was provisioned on.
pub fn placed(sdb: &ServiceDatabase) -> Option<&str> {
    sdb.status.as_ref().and_then(|s| s.server.as_deref())
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
    match placed(sdb).or(sdb.spec.server.as_deref()) {
        Some(name) => name == dbs.name_any(),
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
    if !server_ready(&dbs) {
        let why = not_ready_why(&dbs);
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
    let namespace = operator_namespace(ctx);
    choose(sdb.spec.server.as_deref(), placed(sdb), &all, &namespace)
        .cloned()
        .map_err(|message| Unavailable::Waiting {
            reason: reasons::SERVER_NOT_FOUND,
            message,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::conditions;

    const OURS: &str = "servicedb-system";

    fn dbs(name: &str, default: bool) -> DatabaseServer {
        let mut d = DatabaseServer::new(name, Default::default());
        d.spec.default = default;
        d.spec.admin_secret_ref.namespace = OURS.into();
        d
    }

    #[test]
    fn named_then_the_single_default() {
        let servers = [dbs("a", false), dbs("b", true)];
        assert_eq!(
            choose(Some("a"), None, &servers, OURS).unwrap().name_any(),
            "a"
        );
        assert_eq!(choose(None, None, &servers, OURS).unwrap().name_any(), "b");
        assert!(
            choose(Some("c"), None, &servers, OURS)
                .unwrap_err()
                .contains("DatabaseServer c does not exist")
        );
        let two = [dbs("a", true), dbs("b", true)];
        assert!(
            choose(None, None, &two, OURS)
                .unwrap_err()
                .contains("2 DatabaseServers have default: true (a, b)")
        );
        assert!(
            choose(None, None, &[dbs("a", false)], OURS)
                .unwrap_err()
                .contains("no DatabaseServer with its admin Secret in the operator's namespace")
        );
        // Another installation's default (its admin Secret in its own namespace) is not
        // this one's: a cluster with two installations has a default for each.
        let mut theirs = dbs("theirs", true);
        theirs.spec.admin_secret_ref.namespace = "other-operator".into();
        let mixed = [theirs, dbs("b", true)];
        assert_eq!(choose(None, None, &mixed, OURS).unwrap().name_any(), "b");
        assert!(
            choose(Some("theirs"), None, &mixed, OURS).is_ok(),
            "a server named explicitly is taken as named (its connection says what is wrong)"
        );
    }

    /// Locks "a database never moves": once provisioned, a new default does not take it
    /// elsewhere, and a changed spec.server is refused.
    #[test]
    fn a_placed_database_stays_where_it_is() {
        let servers = [dbs("old", false), dbs("new", true)];
        assert_eq!(
            choose(None, Some("old"), &servers, OURS)
                .unwrap()
                .name_any(),
            "old"
        );
        assert!(
            choose(None, Some("gone"), &servers, OURS)
                .unwrap_err()
                .contains("DatabaseServer gone, where this database lives")
        );
        let mut sdb = ServiceDatabase::new("orders", Default::default());
        assert!(server_change(&sdb).is_none(), "never provisioned");
        sdb.status = Some(crate::api::ServiceDatabaseStatus {
            server: Some("old".into()),
            ..Default::default()
        });
        assert!(server_change(&sdb).is_none(), "follows the placement");
        assert!(uses(&sdb, &servers[0]) && !uses(&sdb, &servers[1]));
        sdb.spec.server = Some("old".into());
        assert!(server_change(&sdb).is_none());
        sdb.spec.server = Some("new".into());
        let refused = server_change(&sdb).unwrap();
        assert!(refused.contains("lives on DatabaseServer old"), "{refused}");
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
