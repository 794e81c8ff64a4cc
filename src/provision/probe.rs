//! Login probes: whether each role still logs in with its Secret's password. A non-superuser
//! admin cannot read `pg_authid`, so logging in (SCRAM: the password never crosses the wire)
//! is the only way to notice a password changed by hand.

use std::collections::BTreeSet;

use futures::future::join_all;

use super::desired::{DesiredDatabase, DesiredRole};
use super::observed::ObservedServer;
use super::server::{DatabaseConnection, Server};

/// SQLSTATE invalid_password: the one answer that means the password is wrong. Others (no
/// pg_hba entry for the operator's address, too many connections) say nothing about it.
const INVALID_PASSWORD: &str = "28P01";

/// What the probes found.
#[derive(Default)]
pub struct Probes {
    /// Roles whose Secret password the server refused.
    pub rejected: BTreeSet<String>,
    /// The owner's session, reused to look inside the database.
    pub owner: Option<DatabaseConnection>,
}

/// The roles worth a login: they exist and may log in, their database exists, and the
/// catalog believes they have their Secret's password (otherwise it is set anyway).
pub fn roles_to_probe<'a>(
    desired: &'a DesiredDatabase,
    observed: &ObservedServer,
) -> Vec<&'a DesiredRole> {
    if !observed.database_exists {
        return Vec::new();
    }
    desired
        .roles()
        .filter(|r| {
            let name = r.name.as_str();
            let can_login = observed.roles.get(name).is_some_and(|o| o.can_login);
            let recorded = observed
                .role_claims
                .get(name)
                .and_then(|c| c.fingerprint.as_deref());
            can_login && recorded == Some(r.password.fingerprint(name).as_str())
        })
        .collect()
}

/// Logs in as each role worth probing, at once (within the server's connection bound).
pub async fn probe_logins(
    server: &Server,
    desired: &DesiredDatabase,
    observed: &ObservedServer,
) -> Probes {
    let roles = roles_to_probe(desired, observed);
    let database = desired.database.as_str();
    let mut probes = Probes::default();
    // The owner's session is kept only when all probes fit in one batch: later batches
    // would wait for slots while it holds one.
    let keep_owner = roles.len() <= server.bound();
    for batch in roles.chunks(server.bound()) {
        // All slots of a batch are taken at once: holding the owner's session while waiting
        // for the app's could otherwise deadlock reconciles that each hold one.
        let mut slots = server.database_slots(batch.len()).await;
        let logins: Vec<_> = batch
            .iter()
            .map(|r| {
                let slot = slots.split(1).expect("one slot per role in the batch");
                server.login_within(slot, database, r.name.as_str(), r.password.expose())
            })
            .collect();
        for (role, result) in batch.iter().zip(join_all(logins).await) {
            match result {
                Ok(session) if keep_owner && role.name == desired.owner.name => {
                    probes.owner = Some(session)
                }
                Ok(_) => {}
                Err(e) if e.sqlstate() == Some(INVALID_PASSWORD) => {
                    tracing::warn!(role = %role.name, server = %server.spec.name,
                        "the role no longer has its Secret's password; setting it again");
                    probes.rejected.insert(role.name.as_str().to_string());
                }
                Err(e) => {
                    tracing::debug!(role = %role.name, error = %e, "login probe inconclusive")
                }
            }
        }
    }
    probes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::password::Password;
    use crate::pg::Ident;
    use crate::provision::desired::{Claimant, RolePurpose};
    use crate::provision::observed::{ObservedRole, RoleClaim};

    fn role(name: &str, purpose: RolePurpose) -> DesiredRole {
        DesiredRole {
            name: Ident::new(name).unwrap(),
            purpose,
            connection_limit: -1,
            password: Password::from_existing(format!("pw-{name}")),
        }
    }

    fn desired() -> DesiredDatabase {
        DesiredDatabase {
            installation: "test".into(),
            claimant: Claimant {
                kind: "ServiceDatabase".into(),
                namespace: "ns".into(),
                name: "s".into(),
            },
            service: "s".into(),
            tenant: None,
            database: Ident::new("ns_s").unwrap(),
            owner: role("ns_s_owner", RolePurpose::Owner),
            app: Some(role("ns_s_app", RolePurpose::App)),
            extra: vec![],
            schemas: vec![],
            extensions: vec![],
        }
    }

    /// Only roles that can log in with the password the catalog believes they have are
    /// probed; a role about to get a new password, or without login, is not.
    #[test]
    fn probes_only_roles_whose_password_is_believed_current() {
        let d = desired();
        let mut o = ObservedServer {
            database_exists: true,
            ..Default::default()
        };
        let claim = |r: &DesiredRole, current: bool| RoleClaim {
            database: "ns_s".into(),
            fingerprint: Some(if current {
                r.password.fingerprint(r.name.as_str())
            } else {
                "old".into()
            }),
        };
        o.roles.insert(
            "ns_s_owner".into(),
            ObservedRole {
                can_login: true,
                ..Default::default()
            },
        );
        o.roles.insert(
            "ns_s_app".into(),
            ObservedRole {
                can_login: true,
                ..Default::default()
            },
        );
        o.role_claims
            .insert("ns_s_owner".into(), claim(&d.owner, true));
        o.role_claims
            .insert("ns_s_app".into(), claim(d.app.as_ref().unwrap(), false));
        let names = |o: &ObservedServer| -> Vec<String> {
            roles_to_probe(&d, o)
                .iter()
                .map(|r| r.name.as_str().to_string())
                .collect()
        };
        assert_eq!(names(&o), ["ns_s_owner"]);
        o.roles.get_mut("ns_s_owner").unwrap().can_login = false;
        assert!(names(&o).is_empty());
        o.roles.get_mut("ns_s_owner").unwrap().can_login = true;
        o.database_exists = false;
        assert!(names(&o).is_empty(), "no database, nothing to log in to");
    }
}
