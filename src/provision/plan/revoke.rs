//! What the spec does not grant, granted by hand: planned away on every pass.

use super::super::action::{Action, Objects};
use super::super::desired::{Access, DesiredDatabase};
use std::collections::BTreeMap;

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
const PRIVILEGES: [&str; 10] = [
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "TRUNCATE",
    "REFERENCES",
    "TRIGGER",
    "MAINTAIN",
    "USAGE",
    "CREATE",
];

fn grantee(name: &str) -> Option<Option<Ident>> {
    match name {
        "PUBLIC" => Some(None),
        name => Ident::new(name.to_string()).ok().map(Some),
    }
}

/// What the spec does not grant, granted by hand, on the managed schemas and their tables and
/// sequences: anything for PUBLIC, CREATE or privileges beyond their access for our roles,
/// and grant options (a role that may grant on could hand its access to anyone). Only where
/// the admin acts for the owner; the rest is [`unrevocable`].
pub(super) fn revoke_extra_privileges(a: &mut Vec<Action>, observed: &ObservedDatabase) {
    // (schema, grantee, grant option only) -> privileges; (kind, grantee, grant option only)
    // -> object -> privileges.
    type ByObject<'a> = BTreeMap<(&'a str, &'a str), Vec<String>>;
    let mut schemas: BTreeMap<(&str, &str, bool), Vec<String>> = BTreeMap::new();
    let mut objects: BTreeMap<(char, &str, bool), ByObject> = BTreeMap::new();
    for e in observed.excess.iter().filter(|e| e.revocable) {
        if !PRIVILEGES.contains(&e.privilege.as_str()) {
            continue;
        }
        match &e.object {
            None => schemas
                .entry((&e.schema, &e.grantee, e.grant_option_only))
                .or_default()
                .push(e.privilege.clone()),
            Some(object) => objects
                .entry((e.kind, &e.grantee, e.grant_option_only))
                .or_default()
                .entry((&e.schema, object))
                .or_default()
                .push(e.privilege.clone()),
        }
    }
    for ((schema, who, grant_option), privileges) in schemas {
        if let (Ok(schema), Some(role)) = (Ident::new(schema.to_string()), grantee(who)) {
            a.push(Action::RevokeOnSchema {
                schema,
                privileges,
                grant_option,
                role,
            });
        }
    }
    for ((kind, who, grant_option), by_object) in objects {
        let Some(role) = grantee(who) else { continue };
        let kind = if kind == 'S' {
            Objects::Sequences
        } else {
            Objects::Tables
        };
        // Objects with the same excess share one statement.
        let mut by_privileges: BTreeMap<Vec<String>, Vec<(Ident, Ident)>> = BTreeMap::new();
        for ((schema, object), privileges) in by_object {
            if let (Ok(schema), Ok(object)) = (
                Ident::new(schema.to_string()),
                Ident::new(object.to_string()),
            ) {
                by_privileges
                    .entry(privileges)
                    .or_default()
                    .push((schema, object));
            }
        }
        for (privileges, targets) in by_privileges {
            a.push(Action::RevokeOnObjects {
                objects: kind,
                privileges,
                grant_option,
                targets,
                role: role.clone(),
            });
        }
    }
}

/// A privilege the spec does not grant, on a schema or object whose owner the admin cannot
/// act for (created by a superuser, say): servicedb cannot revoke it, and says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unrevocable {
    /// `schema` or `schema.object`.
    pub object: String,
    /// `schema`, `table` or `sequence`.
    pub kind: &'static str,
    pub owner: String,
    pub grantee: String,
    pub privileges: Vec<String>,
    pub grant_option_only: bool,
}

impl std::fmt::Display for Unrevocable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} (owned by {}) gives {} {}{}",
            self.kind,
            self.object,
            self.owner,
            self.grantee,
            self.privileges.join(", "),
            if self.grant_option_only {
                " with grant option"
            } else {
                ""
            }
        )
    }
}

/// The excess privileges [`revoke_extra_privileges`] leaves, because the admin cannot act for
/// their owner. Pure.
pub fn unrevocable(observed: &ObservedDatabase) -> Vec<Unrevocable> {
    // (schema, object, kind, owner, grantee, grant option only) -> privileges.
    type Key<'a> = (&'a str, Option<&'a str>, char, &'a str, &'a str, bool);
    let mut grouped: BTreeMap<Key, Vec<String>> = BTreeMap::new();
    for e in observed.excess.iter().filter(|e| !e.revocable) {
        grouped
            .entry((
                &e.schema,
                e.object.as_deref(),
                e.kind,
                &e.owner,
                &e.grantee,
                e.grant_option_only,
            ))
            .or_default()
            .push(e.privilege.clone());
    }
    grouped
        .into_iter()
        .map(
            |((schema, object, kind, owner, grantee, grant_option_only), privileges)| Unrevocable {
                object: object.map_or(schema.to_string(), |o| format!("{schema}.{o}")),
                kind: match kind {
                    'n' => "schema",
                    'S' => "sequence",
                    _ => "table",
                },
                owner: owner.to_string(),
                grantee: grantee.to_string(),
                privileges,
                grant_option_only,
            },
        )
        .collect()
}
