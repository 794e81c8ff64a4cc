//! What the spec does not grant, granted by hand: planned away on every pass.

use super::super::action::{Action, Objects};
use super::super::desired::{Access, DesiredDatabase};
use super::super::observed::{ObservedDatabase, ObservedServer};
use crate::pg::Ident;

/// Memberships the spec does not grant (`GRANT owner TO app` by hand would give the app
/// DDL): only owner-access roles are members, of the owner, and nobody else of anything.
pub(super) fn revoke_extra_memberships(
    a: &mut Vec<Action>,
    desired: &DesiredDatabase,
    observed: &ObservedServer,
) {
    for role in desired.roles() {
        let Some(existing) = observed.roles.get(role.name.as_str()) else {
            continue;
        };
        let allowed = (role.purpose.access() == Access::Owner && role.name != desired.owner.name)
            .then_some(desired.owner.name.as_str());
        for group in &existing.member_of {
            if Some(group.as_str()) != allowed
                && let Ok(group) = Ident::new(group.clone())
            {
                a.push(Action::RevokeRole {
                    role: group,
                    member: role.name.clone(),
                });
            }
        }
    }
}

/// Privilege names as `aclexplode` gives them; anything else is never put into SQL.
const PRIVILEGES: [&str; 9] = [
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "TRUNCATE",
    "REFERENCES",
    "TRIGGER",
    "MAINTAIN",
    "USAGE",
];

/// What the spec does not grant, granted by hand: CREATE on managed schemas (for PUBLIC or
/// our roles) and table or sequence privileges beyond a role's access.
pub(super) fn revoke_extra_privileges(a: &mut Vec<Action>, observed: &ObservedDatabase) {
    for (schema, grantee) in &observed.schema_creators {
        let role = match grantee.as_str() {
            "PUBLIC" => None,
            name => match Ident::new(name.to_string()) {
                Ok(role) => Some(role),
                Err(_) => continue,
            },
        };
        if let Ok(schema) = Ident::new(schema.clone()) {
            a.push(Action::RevokeCreateOnSchema { schema, role });
        }
    }
    let mut grouped: std::collections::BTreeMap<(&str, &str, char), Vec<String>> =
        Default::default();
    for (role, schema, objtype, privilege) in &observed.excess_privileges {
        if PRIVILEGES.contains(&privilege.as_str()) {
            grouped
                .entry((role, schema, *objtype))
                .or_default()
                .push(privilege.clone());
        }
    }
    for ((role, schema, objtype), privileges) in grouped {
        let objects = if objtype == 'S' {
            Objects::Sequences
        } else {
            Objects::Tables
        };
        if let (Ok(role), Ok(schema)) = (Ident::new(role), Ident::new(schema)) {
            a.push(Action::RevokeOnAll {
                objects,
                privileges,
                schema,
                role,
            });
        }
    }
}
