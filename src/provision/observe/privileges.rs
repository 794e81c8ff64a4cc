//! What grantees have and lack, judged from the ACL entries the database query returns
//! (`aclexplode` of each schema and object): pure, so the rules are unit-tested here and the
//! query a fresh session must parse and plan stays small.
//!
//! Only an ACL's own entries for a grantee count, not PUBLIC's or a membership's: those are
//! revoked in the same pass.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use crate::provision::observed::{Excess, Missing, SchemaGrants};

/// Grantee oid (0 for PUBLIC), privilege as `aclexplode` names it, with grant option.
pub type AclEntry = (u32, String, bool);

/// One of the spec's grantees that exists: oid, name, whether it writes.
#[derive(Debug, Clone, Deserialize)]
pub struct Grantee(pub u32, pub String, pub bool);

/// A managed schema: name, owner, owner oid, whether the admin acts for the owner, ACL.
#[derive(Debug, Clone, Deserialize)]
pub struct Schema(pub String, pub String, pub u32, pub bool, pub Vec<AclEntry>);

/// A table (or view...) or sequence of a managed schema: schema, name, kind (`r`/`S`),
/// owner, whether the admin acts for the owner, whether it is a history table, ACL.
#[derive(Debug, Clone, Deserialize)]
pub struct Object(
    pub String,
    pub String,
    pub String,
    pub String,
    pub bool,
    pub bool,
    pub Vec<AclEntry>,
);

fn kind(object: &Object) -> char {
    object.2.chars().next().unwrap_or(' ')
}

const PUBLIC: &str = "PUBLIC";

/// Whether each grantee's own entry in each schema's ACL gives it USAGE.
pub fn schema_grants(
    grantees: &[Grantee],
    schemas: &[Schema],
) -> BTreeMap<(String, String), SchemaGrants> {
    let mut grants = BTreeMap::new();
    for g in grantees {
        for s in schemas {
            let usage = s.4.iter().any(|(oid, p, _)| *oid == g.0 && p == "USAGE");
            grants.insert((g.1.clone(), s.0.clone()), SchemaGrants { usage });
        }
    }
    grants
}

/// What a grantee needs on an object the admin may grant on.
fn needed(object: &Object, write: bool) -> &'static [&'static str] {
    let sequence = kind(object) == 'S';
    if sequence && write {
        &["USAGE", "SELECT"]
    } else if sequence || !write || object.5 {
        &["SELECT"]
    } else {
        &["SELECT", "INSERT", "UPDATE", "DELETE"]
    }
}

/// What a grantee may hold on an object without it being excess (history tables included:
/// writes there are seen through `history_writers`).
fn allowed(object: &Object, write: bool) -> &'static [&'static str] {
    match (kind(object) == 'S', write) {
        (true, true) => &["USAGE", "SELECT"],
        (true, false) | (false, false) => &["SELECT"],
        (false, true) => &["SELECT", "INSERT", "UPDATE", "DELETE"],
    }
}

/// Objects the admin may grant on (it acts for their owner) where a grantee's own entry
/// lacks part of what its access gives.
pub fn missing(grantees: &[Grantee], objects: &[Object]) -> BTreeSet<Missing> {
    let mut found = BTreeSet::new();
    for g in grantees {
        for o in objects.iter().filter(|o| o.4) {
            let needed = needed(o, g.2);
            let held: BTreeSet<&str> =
                o.6.iter()
                    .filter(|(oid, p, _)| *oid == g.0 && needed.contains(&p.as_str()))
                    .map(|(_, p, _)| p.as_str())
                    .collect();
            if held.len() < needed.len() {
                found.insert(Missing {
                    role: g.1.clone(),
                    schema: o.0.clone(),
                    object: o.1.clone(),
                    kind: kind(o),
                    history: o.5,
                });
            }
        }
    }
    found
}

/// The grantees an ACL entry names: ours with that oid, or PUBLIC (`None`); empty for
/// anyone else, whose privileges are not servicedb's business.
fn named(grantees: &[Grantee], oid: u32) -> Vec<Option<&Grantee>> {
    if oid == 0 {
        return vec![None];
    }
    grantees.iter().filter(|g| g.0 == oid).map(Some).collect()
}

/// Privileges the spec does not grant: PUBLIC's anything on managed schemas and their
/// objects; on schemas, a grantee's anything but USAGE, and USAGE's grant option; on
/// objects, a grantee's privileges beyond its access, and grant options on the rest.
pub fn excess(grantees: &[Grantee], schemas: &[Schema], objects: &[Object]) -> BTreeSet<Excess> {
    let mut found = BTreeSet::new();
    for s in schemas {
        for (oid, privilege, grantable) in &s.4 {
            if *oid == s.2 || !(*oid == 0 || privilege != "USAGE" || *grantable) {
                continue;
            }
            for g in named(grantees, *oid) {
                found.insert(Excess {
                    schema: s.0.clone(),
                    object: None,
                    kind: 'n',
                    grantee: g.map_or(PUBLIC, |g| g.1.as_str()).to_string(),
                    privilege: privilege.clone(),
                    grant_option_only: *oid != 0 && privilege == "USAGE",
                    owner: s.1.clone(),
                    revocable: s.3,
                });
            }
        }
    }
    for o in objects {
        for (oid, privilege, grantable) in &o.6 {
            for g in named(grantees, *oid) {
                let allowed = g.is_some_and(|g| allowed(o, g.2).contains(&privilege.as_str()));
                if allowed && !grantable {
                    continue;
                }
                found.insert(Excess {
                    schema: o.0.clone(),
                    object: Some(o.1.clone()),
                    kind: kind(o),
                    grantee: g.map_or(PUBLIC, |g| g.1.as_str()).to_string(),
                    privilege: privilege.clone(),
                    grant_option_only: allowed,
                    owner: o.3.clone(),
                    revocable: o.4,
                });
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWNER: u32 = 10;
    const APP: u32 = 20;
    const READER: u32 = 30;
    const STRANGER: u32 = 40;

    fn entry(oid: u32, privilege: &str, grantable: bool) -> AclEntry {
        (oid, privilege.to_string(), grantable)
    }

    fn grantees() -> Vec<Grantee> {
        vec![
            Grantee(APP, "app".into(), true),
            Grantee(READER, "reader".into(), false),
        ]
    }

    fn schema(acl: Vec<AclEntry>) -> Schema {
        Schema("public".into(), "owner".into(), OWNER, true, acl)
    }

    fn object(name: &str, kind: &str, ours: bool, history: bool, acl: Vec<AclEntry>) -> Object {
        let owner = if ours { "owner" } else { "stranger" };
        Object(
            "public".into(),
            name.into(),
            kind.into(),
            owner.into(),
            ours,
            history,
            acl,
        )
    }

    fn all(oid: u32, privileges: &[&str]) -> Vec<AclEntry> {
        privileges.iter().map(|p| entry(oid, p, false)).collect()
    }

    #[test]
    fn usage_counts_only_from_the_grantees_own_entry() {
        let s = schema(vec![entry(0, "USAGE", false), entry(APP, "USAGE", false)]);
        let grants = schema_grants(&grantees(), &[s]);
        assert!(grants[&("app".into(), "public".into())].usage);
        assert!(
            !grants[&("reader".into(), "public".into())].usage,
            "PUBLIC's is not its own"
        );
    }

    #[test]
    fn missing_follows_access_kind_and_history() {
        let mut app_table = all(APP, &["SELECT", "INSERT", "UPDATE"]);
        app_table.extend(all(READER, &["SELECT"]));
        let objects = [
            // The app lacks DELETE; the reader has all it needs.
            object("t", "r", true, false, app_table),
            // A sequence: the app needs USAGE and SELECT, the reader SELECT.
            object("s", "S", true, false, all(APP, &["SELECT"])),
            // History tables: SELECT only, for writers too.
            object(
                "flyway_schema_history",
                "r",
                true,
                true,
                all(APP, &["SELECT"]),
            ),
            // Not ours: never granted on, so never missing.
            object("foreign", "r", false, false, vec![]),
        ];
        let got: Vec<(String, String)> = missing(&grantees(), &objects)
            .into_iter()
            .map(|m| (m.role, m.object))
            .collect();
        assert_eq!(
            got,
            [
                ("app".into(), "s".into()),
                ("app".into(), "t".into()),
                ("reader".into(), "flyway_schema_history".into()),
                ("reader".into(), "s".into()),
            ]
        );
    }

    #[test]
    fn excess_on_schemas() {
        let s = schema(vec![
            entry(OWNER, "CREATE", true),
            entry(0, "USAGE", false),
            entry(APP, "USAGE", false),
            entry(APP, "CREATE", false),
            entry(READER, "USAGE", true),
            entry(STRANGER, "CREATE", false),
        ]);
        let got: Vec<(String, String, bool)> = excess(&grantees(), &[s], &[])
            .into_iter()
            .map(|e| (e.grantee, e.privilege, e.grant_option_only))
            .collect();
        assert_eq!(
            got,
            [
                ("PUBLIC".into(), "USAGE".into(), false),
                ("app".into(), "CREATE".into(), false),
                ("reader".into(), "USAGE".into(), true),
            ]
        );
    }

    #[test]
    fn excess_on_objects() {
        let mut acl = all(APP, &["SELECT", "INSERT", "TRUNCATE"]);
        acl.push(entry(READER, "SELECT", true));
        acl.push(entry(READER, "UPDATE", false));
        acl.push(entry(0, "SELECT", false));
        acl.push(entry(STRANGER, "DELETE", false));
        acl.push(entry(OWNER, "TRUNCATE", false));
        let objects = [
            object("t", "r", false, false, acl),
            object("s", "S", true, false, all(APP, &["USAGE", "UPDATE"])),
        ];
        let got: Vec<(String, String, String, bool, bool)> = excess(&grantees(), &[], &objects)
            .into_iter()
            .map(|e| {
                assert_eq!(e.owner, if e.revocable { "owner" } else { "stranger" });
                (
                    e.object.unwrap(),
                    e.grantee,
                    e.privilege,
                    e.grant_option_only,
                    e.revocable,
                )
            })
            .collect();
        let row = |o: &str, g: &str, p: &str, option: bool, revocable: bool| {
            (o.into(), g.into(), p.into(), option, revocable)
        };
        assert_eq!(
            got,
            [
                row("s", "app", "UPDATE", false, true),
                row("t", "PUBLIC", "SELECT", false, false),
                row("t", "app", "TRUNCATE", false, false),
                row("t", "reader", "SELECT", true, false),
                row("t", "reader", "UPDATE", false, false),
            ]
        );
    }
}
