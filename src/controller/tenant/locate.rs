//! Where a tenant's database is, before anything is placed: a placed database never moves,
//! and placing one twice makes a second, empty database and repoints its Secret. In order:
//! the Tenant's status, this process's in-flight placement, the app Secret's
//! `servicedb.io/database-server` annotation, the catalogs of the servers. Only when none of
//! them knows is the database placed, and not while a server that may hold it could not be
//! looked at and a Secret of the database shows it was made before.

use std::sync::Arc;

use kube::ResourceExt;

use super::TenantContext;
use super::database::key;
use super::placement::{explain, ours, recorded, server_ready};
use super::status::DbState;
use crate::api::conditions::reasons;
use crate::api::{DATABASE_SERVER_ANNOTATION, DatabaseServer, ServiceDatabase, Tenant};
use crate::controller::database_server::status::not_ready_why;
use crate::controller::database_server::{connect, operator_namespace};
use crate::controller::provisioning;
use crate::controller::service_database::secrets::{KubeSecrets, refuse_foreign};
use crate::service::Layout;
use crate::service::placement::PlacementError;

/// What the database's app Secret says of where the database is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSays {
    /// No Secret of this Tenant's (none, or someone else's): nothing was provisioned here.
    Nothing,
    /// Ours, written before servicedb recorded the server on it.
    Unannotated,
    Server(String),
}

/// One server's catalog, as far as it could be looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Looked {
    Holds,
    Lacks,
    /// Not Ready or unreachable: why.
    Unchecked(String),
}

/// What to do about the database's place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    At(String),
    Place,
    /// It may exist on a server that could not be looked at: the message says which.
    Wait(String),
}

/// The first record of the database's place: status, in-flight placement, Secret. Pure.
pub fn known(
    recorded: Option<String>,
    in_flight: Option<String>,
    secret: &SecretSays,
) -> Option<String> {
    recorded.or(in_flight).or_else(|| match secret {
        SecretSays::Server(s) => Some(s.clone()),
        _ => None,
    })
}

/// After the catalogs: found, placed, or waited for. A Secret without the annotation shows
/// the database was made before, so a server that could not be looked at may hold it; a
/// brand-new database (no Secret) is placed whatever the other servers' state. Pure.
pub fn after_catalogs(
    database: &str,
    secret_name: &str,
    secret: &SecretSays,
    looked: &[(String, Looked)],
) -> Location {
    if let Some((server, _)) = looked.iter().find(|(_, l)| *l == Looked::Holds) {
        return Location::At(server.clone());
    }
    if *secret != SecretSays::Unannotated {
        return Location::Place;
    }
    let unchecked: Vec<String> = looked
        .iter()
        .filter_map(|(server, l)| match l {
            Looked::Unchecked(why) => Some(format!("DatabaseServer {server} ({why})")),
            _ => None,
        })
        .collect();
    if unchecked.is_empty() {
        return Location::Place;
    }
    Location::Wait(format!(
        "database {database} was provisioned before (its Secret {secret_name} exists) but no status or annotation \
         records its server and no Ready server holds it; it may be on {}, which could not be checked: \
         waiting for it rather than placing the database a second time",
        unchecked.join(", ")
    ))
}

/// What the Secret `secret` (if any) says, for the Tenant with uid `owner`. Pure.
pub fn secret_says(secret: Option<&k8s_openapi::api::core::v1::Secret>, owner: &str) -> SecretSays {
    let Some(secret) = secret.filter(|s| refuse_foreign(s, owner).is_none()) else {
        return SecretSays::Nothing;
    };
    secret
        .annotations()
        .get(DATABASE_SERVER_ANNOTATION)
        .filter(|s| !s.is_empty())
        .map_or(SecretSays::Unannotated, |s| SecretSays::Server(s.clone()))
}

/// Where the database is, or goes. The app Secret is read through `secrets`, so the core's
/// read of it costs no second GET.
pub async fn locate(
    tenant: &Tenant,
    sdb: &ServiceDatabase,
    layout: &Layout,
    secrets: &KubeSecrets,
    tc: &TenantContext,
) -> Result<String, DbState> {
    let service = sdb.name_any();
    let key = key(tenant, &service);
    let (recorded, in_flight) = (recorded(tenant, &service), tc.placer.in_flight(&key));
    if let Some(server) = known(recorded.clone(), in_flight.clone(), &SecretSays::Nothing) {
        return Ok(server);
    }
    let app = &layout.app_secret().name;
    let secret = secrets
        .fetch(&layout.namespace, app)
        .await
        .map_err(|e| DbState::Waiting {
            reason: reasons::PROVISIONING_FAILED.into(),
            message: format!("reading Secret {}/{app}: {e} (retrying)", layout.namespace),
        })?;
    let says = secret_says(secret.as_ref(), &tenant.uid().unwrap_or_default());
    if let Some(server) = known(recorded, in_flight, &says) {
        return Ok(server);
    }
    let all = tc.servers.state();
    // Every server is looked at, another installation's too: it cannot be checked (its
    // connection is refused), so a tenant whose database may be there waits rather than
    // getting a second one. Only placing is limited to this installation's servers.
    let looked = look(tc, &all, &layout.database).await;
    let servers = ours(all.clone(), &operator_namespace(&tc.ctx));
    match after_catalogs(&layout.database, app, &says, &looked) {
        Location::At(server) => return Ok(server),
        Location::Wait(message) => {
            return Err(DbState::Waiting {
                reason: reasons::SERVER_NOT_READY.into(),
                message,
            });
        }
        Location::Place => {}
    }
    let pin = tenant.spec.server.as_deref().or(sdb.spec.server.as_deref());
    let tenants = tc.tenants.state();
    let sdbs = tc.services.state();
    // A pin is kept as written: one to another installation's server then fails at its
    // connection, which says which Secret is where.
    let choices = if pin.is_some() { &all } else { &servers };
    tc.placer
        .place(&key, pin, choices, &tenants, &sdbs)
        .map_err(|e| match e {
            PlacementError::Full => DbState::Stalled {
                reason: reasons::NO_CAPACITY.into(),
                message: format!(
                    "no DatabaseServer has room for database {}: {e}",
                    layout.database
                ),
            },
            PlacementError::UnknownServer(_) | PlacementError::NoServers => DbState::Waiting {
                reason: reasons::SERVER_NOT_FOUND.into(),
                message: explain(&e, &servers),
            },
        })
}

/// Each server's catalog, until one holds the database (one indexed lookup each).
async fn look(
    tc: &TenantContext,
    servers: &[Arc<DatabaseServer>],
    database: &str,
) -> Vec<(String, Looked)> {
    let mut looked = Vec::with_capacity(servers.len());
    for dbs in servers {
        let l = if !server_ready(dbs) {
            Looked::Unchecked(not_ready_why(dbs))
        } else {
            match connect::connect(&tc.ctx, dbs).await {
                Err(problem) => Looked::Unchecked(problem.to_string()),
                Ok(server) => match provisioning::holds(&server, database).await {
                    Ok(true) => Looked::Holds,
                    Ok(false) => Looked::Lacks,
                    Err(e) => Looked::Unchecked(e),
                },
            }
        };
        let holds = l == Looked::Holds;
        looked.push((dbs.name_any(), l));
        if holds {
            break;
        }
    }
    looked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    #[test]
    fn status_then_in_flight_then_secret() {
        let on_c = SecretSays::Server("c".into());
        assert_eq!(known(server("a"), server("b"), &on_c), server("a"));
        assert_eq!(known(None, server("b"), &on_c), server("b"));
        assert_eq!(known(None, None, &on_c), server("c"));
        assert_eq!(known(None, None, &SecretSays::Unannotated), None);
        assert_eq!(known(None, None, &SecretSays::Nothing), None);
    }

    /// Locks the double-placement guard: an old database whose server could not be looked
    /// at is waited for; a new one is placed even while some server is down.
    #[test]
    fn an_unchecked_server_holds_back_only_a_database_made_before() {
        let down = |s: &str| {
            (
                s.to_string(),
                Looked::Unchecked("connection refused".into()),
            )
        };
        let lacks = |s: &str| (s.to_string(), Looked::Lacks);
        let holds = |s: &str| (s.to_string(), Looked::Holds);
        let old = SecretSays::Unannotated;
        let decide = |secret: &SecretSays, looked: &[(String, Looked)]| {
            after_catalogs("shop_app_t1", "app-db-t1", secret, looked)
        };
        assert_eq!(
            decide(&old, &[down("a"), holds("b")]),
            Location::At("b".into())
        );
        let Location::Wait(message) = decide(&old, &[down("a"), lacks("b")]) else {
            panic!("waits for a");
        };
        assert!(
            message.contains("DatabaseServer a (connection refused)")
                && message.contains("app-db-t1")
                && !message.contains("DatabaseServer b"),
            "{message}"
        );
        assert_eq!(decide(&old, &[lacks("a"), lacks("b")]), Location::Place);
        assert_eq!(
            decide(&SecretSays::Nothing, &[down("a"), lacks("b")]),
            Location::Place
        );
        assert_eq!(decide(&SecretSays::Nothing, &[]), Location::Place);
    }

    #[test]
    fn only_our_own_secret_says_where() {
        use crate::api::labels;
        use k8s_openapi::api::core::v1::Secret;
        use std::collections::BTreeMap;
        let mut s = Secret::default();
        assert_eq!(secret_says(None, "me"), SecretSays::Nothing);
        assert_eq!(
            secret_says(Some(&s), "me"),
            SecretSays::Nothing,
            "not managed by servicedb"
        );
        s.metadata.labels = Some(BTreeMap::from([(
            labels::MANAGED_BY.to_string(),
            labels::MANAGED_BY_VALUE.to_string(),
        )]));
        assert_eq!(secret_says(Some(&s), "me"), SecretSays::Unannotated);
        s.metadata.annotations = Some(BTreeMap::from([(
            DATABASE_SERVER_ANNOTATION.to_string(),
            "a".to_string(),
        )]));
        assert_eq!(secret_says(Some(&s), "me"), SecretSays::Server("a".into()));
    }
}
