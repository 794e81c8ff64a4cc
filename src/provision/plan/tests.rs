//! Table tests of the planner: given this spec and this catalog, exactly these statements.
use super::*;
use crate::password::Password;
use crate::provision::desired::{Claimant, RolePurpose};
use crate::provision::observed::{
    Claim, Excess, Missing, MissingRoutine, ObservedRole, RoleClaim, SchemaGrants,
};

fn id(s: &str) -> Ident {
    Ident::new(s).unwrap()
}

fn role(name: &str, purpose: RolePurpose) -> DesiredRole {
    DesiredRole {
        name: id(name),
        purpose,
        connection_limit: 5,
        password: Password::from_existing(format!("pw-{name}")),
    }
}

fn claimant(ns: &str) -> Claimant {
    Claimant {
        kind: "ServiceDatabase".into(),
        namespace: ns.into(),
        name: "orders".into(),
    }
}

fn claim(ns: &str) -> Claim {
    Claim {
        claimant: claimant(ns),
        service: "orders".into(),
        installation: Some("here".into()),
        oid: Some(4242),
    }
}

fn desired() -> DesiredDatabase {
    DesiredDatabase {
        installation: "here".into(),
        claimant: claimant("shop"),
        service: "orders".into(),
        tenant: None,
        database: id("shop_orders"),
        owner: role("shop_orders_owner", RolePurpose::Owner),
        app: Some(role("shop_orders_app", RolePurpose::App)),
        extra: vec![role(
            "shop_orders_reporting",
            RolePurpose::Extra {
                name: "reporting".into(),
                access: Access::Read,
            },
        )],
        schemas: vec![id("orders")],
        extensions: vec![id("pgcrypto")],
    }
}

/// The server state right after `plan_server` of `desired()` ran.
fn provisioned(d: &DesiredDatabase) -> ObservedServer {
    let mut o = ObservedServer {
        claim: Some(claim("shop")),
        database_exists: true,
        database_oid: Some(4242),
        database_owner: Some(d.owner.name.as_str().into()),
        public_connect: false,
        ..Default::default()
    };
    for r in d.roles() {
        o.roles.insert(
            r.name.as_str().into(),
            ObservedRole {
                can_login: true,
                connection_limit: r.connection_limit,
                admin_is_member: true,
                member_of: Default::default(),
                default_role: None,
            },
        );
        o.role_claims.insert(
            r.name.as_str().into(),
            RoleClaim {
                database: d.database.as_str().into(),
                fingerprint: Some(r.password.fingerprint(r.name.as_str())),
            },
        );
        if r.name != d.owner.name {
            o.connect_grantees.insert(r.name.as_str().into());
        }
    }
    o
}

fn shown(actions: &[Action]) -> Vec<String> {
    actions.iter().map(ToString::to_string).collect()
}

/// Locks the order and content of a first provisioning: claims, roles with redacted
/// passwords, admin membership, the database, then CONNECT for exactly our roles.
#[test]
fn fresh_server_gets_everything_in_order() {
    let d = desired();
    let plan = plan_server(&d, &ObservedServer::default()).unwrap();
    assert_eq!(plan.claims.len(), 4);
    let s = shown(&plan.actions);
    assert_eq!(
        s[0],
        "CREATE ROLE \"shop_orders_owner\" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION INHERIT CONNECTION LIMIT 5 PASSWORD '<redacted>' VALID UNTIL 'infinity'"
    );
    assert!(s[1].starts_with("UPDATE servicedb.roles SET password_fingerprint"));
    assert_eq!(s[2], "GRANT \"shop_orders_owner\" TO CURRENT_USER");
    let create_db = s
        .iter()
        .position(|x| x == "CREATE DATABASE \"shop_orders\" OWNER \"shop_orders_owner\"")
        .unwrap();
    let last_role = s
        .iter()
        .rposition(|x| x.starts_with("GRANT \"shop_orders_reporting\" TO CURRENT_USER"))
        .unwrap();
    assert!(create_db > last_role, "roles come before the database");
    assert_eq!(
        &s[create_db + 1..],
        [
            "UPDATE servicedb.databases SET database_oid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = 'shop_orders') WHERE database_name = 'shop_orders'",
            "REVOKE CONNECT, TEMPORARY ON DATABASE \"shop_orders\" FROM PUBLIC",
            "GRANT CONNECT, TEMPORARY ON DATABASE \"shop_orders\" TO \"shop_orders_app\"",
            "GRANT CONNECT, TEMPORARY ON DATABASE \"shop_orders\" TO \"shop_orders_reporting\"",
        ]
    );
}

#[test]
fn provisioned_server_needs_nothing() {
    let d = desired();
    assert!(plan_server(&d, &provisioned(&d)).unwrap().is_empty());
}

#[test]
fn drift_is_repaired_one_thing_at_a_time() {
    let d = desired();
    let mut o = provisioned(&d);
    o.roles.remove("shop_orders_app");
    o.public_connect = true;
    o.roles
        .get_mut("shop_orders_owner")
        .unwrap()
        .connection_limit = 99;
    let s = shown(&plan_server(&d, &o).unwrap().actions);
    assert_eq!(
        s,
        [
            "ALTER ROLE \"shop_orders_owner\" CONNECTION LIMIT 5",
            "CREATE ROLE \"shop_orders_app\" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION INHERIT CONNECTION LIMIT 5 PASSWORD '<redacted>' VALID UNTIL 'infinity'",
            "UPDATE servicedb.roles SET password_fingerprint = '<redacted>', password_changed_at = now() WHERE role_name = 'shop_orders_app'",
            "GRANT \"shop_orders_app\" TO CURRENT_USER",
            "REVOKE CONNECT, TEMPORARY ON DATABASE \"shop_orders\" FROM PUBLIC",
        ]
    );
}

/// A role removed from the spec can no longer log in or connect, and is dropped only
/// with the database.
#[test]
fn roles_removed_from_the_spec_are_disabled_then_dropped_with_the_database() {
    let mut d = desired();
    let o = provisioned(&d);
    d.extra.clear();
    let s = shown(&plan_server(&d, &o).unwrap().actions);
    assert_eq!(
        s,
        [
            "ALTER ROLE \"shop_orders_reporting\" NOLOGIN",
            "REVOKE CONNECT, TEMPORARY ON DATABASE \"shop_orders\" FROM \"shop_orders_reporting\""
        ]
    );
    let drops = shown(&plan_delete(&d, &o).unwrap().actions);
    assert!(
        drops.contains(&"DROP ROLE IF EXISTS \"shop_orders_reporting\"".to_string()),
        "{drops:?}"
    );
}

#[test]
fn owner_access_roles_act_as_the_owner() {
    let mut d = desired();
    d.extra[0].purpose = RolePurpose::Extra {
        name: "dba".into(),
        access: Access::Owner,
    };
    let o = provisioned(&d);
    let s = shown(&plan_server(&d, &o).unwrap().actions);
    assert_eq!(
        s,
        [
            "GRANT \"shop_orders_owner\" TO \"shop_orders_reporting\"",
            "ALTER ROLE \"shop_orders_reporting\" IN DATABASE \"shop_orders\" SET role = 'shop_orders_owner'"
        ]
    );
}

#[test]
fn a_new_password_in_the_secret_is_set_on_the_role() {
    let mut d = desired();
    let o = provisioned(&d);
    d.app.as_mut().unwrap().password = Password::from_existing("rotated");
    let s = shown(&plan_server(&d, &o).unwrap().actions);
    assert_eq!(
        s[0],
        "ALTER ROLE \"shop_orders_app\" PASSWORD '<redacted>' VALID UNTIL 'infinity'"
    );
    assert_eq!(s.len(), 2);
}

#[test]
fn conflicts_change_nothing() {
    let d = desired();
    let mut o = ObservedServer {
        claim: Some(claim("other")),
        database_exists: true,
        ..Default::default()
    };
    let err = plan_server(&d, &o).unwrap_err();
    assert_eq!(
        err.to_string(),
        "database \"shop_orders\" belongs to ServiceDatabase other/orders; choose another spec.databaseName"
    );
    o.claim = None;
    assert!(matches!(
        plan_server(&d, &o),
        Err(Conflict::DatabaseUnmanaged { .. })
    ));
    o.database_exists = false;
    o.roles
        .insert("shop_orders_app".into(), ObservedRole::default());
    assert!(matches!(
        plan_server(&d, &o),
        Err(Conflict::RoleUnmanaged { .. })
    ));
    let other = ObservedServer {
        claim: Some(claim("other")),
        ..Default::default()
    };
    assert!(plan_delete(&d, &other).is_err());
}

/// Two PerTenant services of one tenant that name the same databaseName must not share
/// the tenant's database: the claim names the service too.
#[test]
fn a_tenant_database_of_another_service_is_a_conflict() {
    let mut d = desired();
    d.claimant.kind = "Tenant".into();
    let mut o = provisioned(&d);
    o.claim.as_mut().unwrap().claimant = d.claimant.clone();
    o.claim.as_mut().unwrap().service = "billing".into();
    let err = plan_server(&d, &o).unwrap_err();
    assert!(matches!(err, Conflict::DatabaseClaimed { .. }), "{err}");
    assert!(
        err.to_string().contains("(ServiceDatabase billing)"),
        "{err}"
    );
    assert!(
        plan_delete(&d, &o).is_err(),
        "and Delete drops nothing of it"
    );
}

/// A claim made by another installation (another cluster sharing the server) is never
/// taken over; a claim from before installations were recorded becomes ours.
#[test]
fn claims_of_other_installations_conflict_and_old_claims_are_adopted() {
    let d = desired();
    let mut o = provisioned(&d);
    o.claim.as_mut().unwrap().installation = Some("elsewhere".into());
    let err = plan_server(&d, &o).unwrap_err();
    assert!(
        matches!(err, Conflict::DatabaseOfOtherInstallation { ref installation, .. } if installation == "elsewhere"),
        "{err}"
    );
    assert!(plan_delete(&d, &o).is_err());
    o.claim.as_mut().unwrap().installation = None;
    let plan = plan_server(&d, &o).unwrap();
    assert_eq!(
        shown(&plan.claims),
        [
            "UPDATE servicedb.databases SET installation_id = 'here' WHERE database_name = 'shop_orders' AND installation_id IS NULL"
        ]
    );
}

/// A database dropped and created again by someone else (another oid) is neither adopted
/// nor dropped; one dropped by hand is created again and its new oid recorded.
#[test]
fn a_replaced_database_is_not_adopted_and_a_dropped_one_comes_back() {
    let d = desired();
    let mut o = provisioned(&d);
    o.database_oid = Some(9999);
    assert!(matches!(
        plan_server(&d, &o),
        Err(Conflict::DatabaseReplaced { .. })
    ));
    let plan = plan_delete(&d, &o).unwrap();
    assert!(
        matches!(
            plan.database,
            DatabaseFate::LeftAlone(Conflict::DatabaseReplaced { .. })
        ),
        "the plan says the database is left alone, and why: {:?}",
        plan.database
    );
    let delete = shown(&plan.actions);
    assert!(
        !delete.iter().any(|x| x.contains("DROP DATABASE")),
        "{delete:?}"
    );
    assert!(
        delete.iter().any(|x| x.starts_with("DROP ROLE")),
        "{delete:?}"
    );
    o.database_exists = false;
    o.database_oid = None;
    let plan = plan_server(&d, &o).unwrap();
    assert_eq!(
        shown(&plan.claims),
        ["UPDATE servicedb.databases SET database_oid = NULL WHERE database_name = 'shop_orders'"],
        "the old oid is forgotten first, so a pass stopped after CREATE DATABASE still knows it"
    );
    let s = shown(&plan.actions);
    let create = s
        .iter()
        .position(|x| x.starts_with("CREATE DATABASE"))
        .unwrap();
    assert!(s[create + 1].starts_with("UPDATE servicedb.databases SET database_oid"));
}

/// Claimed but the oid never recorded (a crash right after CREATE DATABASE): ours when our
/// owner role owns it, someone else's otherwise.
#[test]
fn an_unrecorded_oid_is_recorded_only_for_a_database_our_owner_owns() {
    let d = desired();
    let mut o = provisioned(&d);
    o.claim.as_mut().unwrap().oid = None;
    let s = shown(&plan_server(&d, &o).unwrap().actions);
    assert_eq!(s.len(), 1, "{s:?}");
    assert!(s[0].starts_with("UPDATE servicedb.databases SET database_oid"));
    o.database_owner = Some("mallory".into());
    assert!(matches!(
        plan_server(&d, &o),
        Err(Conflict::DatabaseUnmanaged { .. })
    ));
}

#[test]
fn database_plan_creates_schemas_extensions_and_grants() {
    let d = desired();
    let mut o = ObservedDatabase::default();
    o.schemas
        .insert("public".into(), "pg_database_owner".into());
    let s = shown(&plan_database(&d, &o));
    assert_eq!(
        s[0],
        "CREATE SCHEMA IF NOT EXISTS \"orders\" AUTHORIZATION \"shop_orders_owner\""
    );
    assert_eq!(
        s[1],
        "SET ROLE \"shop_orders_owner\"; CREATE EXTENSION IF NOT EXISTS \"pgcrypto\" SCHEMA public; RESET ROLE"
    );
    assert!(s.contains(&"ALTER DEFAULT PRIVILEGES FOR ROLE \"shop_orders_owner\" IN SCHEMA \"orders\" GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO \"shop_orders_app\"".to_string()));
    assert!(s.contains(&"ALTER DEFAULT PRIVILEGES FOR ROLE \"shop_orders_owner\" IN SCHEMA \"public\" GRANT SELECT ON TABLES TO \"shop_orders_reporting\"".to_string()));
    assert!(
        !s.iter()
            .any(|x| x.contains("shop_orders_reporting") && x.contains("INSERT")),
        "read roles never get writes"
    );
    assert!(s.contains(&"GRANT USAGE ON SCHEMA \"orders\" TO \"shop_orders_app\"".to_string()));
}

#[test]
fn database_plan_is_empty_when_everything_is_there_and_regrants_revoked_privileges() {
    let d = desired();
    let mut o = ObservedDatabase::default();
    o.schemas
        .insert("public".into(), "pg_database_owner".into());
    o.schemas
        .insert("orders".into(), "shop_orders_owner".into());
    o.extensions.insert("pgcrypto".into());
    for r in d.grantees() {
        for schema in ["public", "orders"] {
            o.grants.insert(
                (r.name.as_str().into(), schema.into()),
                SchemaGrants { usage: true },
            );
            for &(objects, _, names) in required(r.purpose.access()) {
                for p in names {
                    o.default_privileges.insert((
                        schema.into(),
                        objects.code(),
                        p.to_string(),
                        r.name.as_str().into(),
                    ));
                }
            }
        }
    }
    assert!(plan_database(&d, &o).is_empty());
    let missing = |schema: &str, object: &str, history| Missing {
        role: "shop_orders_app".into(),
        schema: schema.into(),
        object: object.into(),
        kind: 'r',
        history,
    };
    o.missing.insert(missing("orders", "items", false));
    o.missing.insert(missing("orders", "lines", false));
    o.missing
        .insert(missing("public", "flyway_schema_history", true));
    assert_eq!(
        shown(&plan_database(&d, &o)),
        [
            "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE \"orders\".\"items\", \"orders\".\"lines\" TO \"shop_orders_app\"",
            "GRANT SELECT ON TABLE \"public\".\"flyway_schema_history\" TO \"shop_orders_app\"",
        ],
        "named one by one, history tables read-only"
    );
}

fn excess(object: Option<&str>, kind: char, grantee: &str, privilege: &str) -> Excess {
    Excess {
        schema: "public".into(),
        object: object.map(Into::into),
        kind,
        grantee: grantee.into(),
        privilege: privilege.into(),
        grant_option_only: false,
        owner: "shop_orders_owner".into(),
        revocable: true,
    }
}

/// Grants to PUBLIC, grant options given to our roles and privileges beyond their access are
/// revoked per object, CASCADE (what was granted on with them goes too); those on objects
/// whose owner the admin cannot act for are left to a clear error instead.
#[test]
fn public_grants_and_grant_options_are_revoked_per_object() {
    let mut o = ObservedDatabase::default();
    o.excess.insert(excess(None, 'n', "PUBLIC", "USAGE"));
    o.excess.insert(excess(None, 'n', "PUBLIC", "CREATE"));
    o.excess.insert(excess(Some("t"), 'r', "PUBLIC", "SELECT"));
    o.excess
        .insert(excess(Some("t"), 'r', "PUBLIC", "TRUNCATE"));
    o.excess.insert(excess(Some("u"), 'r', "PUBLIC", "SELECT"));
    o.excess.insert(Excess {
        grant_option_only: true,
        ..excess(Some("t"), 'r', "shop_orders_app", "SELECT")
    });
    o.excess
        .insert(excess(Some("s"), 'S', "shop_orders_reporting", "UPDATE"));
    let foreign = Excess {
        owner: "postgres".into(),
        revocable: false,
        ..excess(Some("theirs"), 'r', "shop_orders_app", "TRUNCATE")
    };
    o.excess.insert(foreign);
    let mut a = Vec::new();
    revoke::revoke_extra_privileges(&mut a, &o);
    assert_eq!(
        shown(&a),
        [
            "REVOKE CREATE, USAGE ON SCHEMA \"public\" FROM PUBLIC CASCADE",
            "REVOKE UPDATE ON SEQUENCE \"public\".\"s\" FROM \"shop_orders_reporting\" CASCADE",
            "REVOKE SELECT ON TABLE \"public\".\"u\" FROM PUBLIC CASCADE",
            "REVOKE SELECT, TRUNCATE ON TABLE \"public\".\"t\" FROM PUBLIC CASCADE",
            "REVOKE GRANT OPTION FOR SELECT ON TABLE \"public\".\"t\" FROM \"shop_orders_app\" CASCADE",
        ]
    );
    let left = unrevocable(&o);
    assert_eq!(left.len(), 1);
    assert_eq!(
        left[0].to_string(),
        "table public.theirs (owned by postgres) gives shop_orders_app TRUNCATE"
    );
}

#[test]
fn delete_drops_only_what_is_ours_database_first_owner_last() {
    let d = desired();
    let plan = plan_delete(&d, &provisioned(&d)).unwrap();
    assert_eq!(plan.database, DatabaseFate::Dropped);
    let s = shown(&plan.actions);
    assert_eq!(
        s[0],
        "REVOKE CONNECT, TEMPORARY ON DATABASE \"shop_orders\" FROM \"shop_orders_app\""
    );
    assert!(s[2].starts_with("SELECT pg_terminate_backend(pid)"));
    assert_eq!(s[3], "DROP DATABASE IF EXISTS \"shop_orders\" WITH (FORCE)");
    assert_eq!(s[s.len() - 2], "DROP ROLE IF EXISTS \"shop_orders_owner\"");
    assert!(
        s.last()
            .unwrap()
            .starts_with("DELETE FROM servicedb.databases")
    );
    // An unclaimed database of the same name is never touched.
    let foreign = ObservedServer {
        database_exists: true,
        ..Default::default()
    };
    let untouched = plan_delete(&d, &foreign).unwrap();
    assert!(untouched.actions.is_empty());
    assert_eq!(untouched.database, DatabaseFate::Absent);
}

/// A grant option on the database (`GRANT CONNECT ... WITH GRANT OPTION` to the app) would
/// let the role let anyone connect: taken back; the owner's own is left.
#[test]
fn grant_options_on_the_database_are_revoked_from_our_roles() {
    let d = desired();
    let mut o = provisioned(&d);
    o.database_grant_options = ["shop_orders_app", "shop_orders_owner", "someone_else"]
        .map(String::from)
        .into();
    assert_eq!(
        shown(&plan_server(&d, &o).unwrap().actions),
        [
            "REVOKE GRANT OPTION FOR ALL PRIVILEGES ON DATABASE \"shop_orders\" FROM \"shop_orders_app\" CASCADE"
        ]
    );
}

/// Routines a write role cannot execute get EXECUTE each by name with its arguments (an
/// overload is another routine); read roles get none.
#[test]
fn routines_are_granted_one_by_one() {
    let d = desired();
    let mut o = ObservedDatabase::default();
    for args in ["", "a integer, b text"] {
        o.routines_missing.insert(MissingRoutine {
            role: "shop_orders_app".into(),
            schema: "orders".into(),
            name: "touch".into(),
            arguments: args.into(),
        });
    }
    let s = shown(&plan_database(&d, &o));
    assert!(
        s.contains(
            &"GRANT EXECUTE ON ROUTINE \"orders\".\"touch\"(), \"orders\".\"touch\"(a integer, b text) TO \"shop_orders_app\""
                .to_string()
        ),
        "{s:?}"
    );
}
