//! Deterministic names for everything servicedb creates: databases and roles (PostgreSQL
//! identifiers, at most 63 bytes) and Secrets (DNS-1123 subdomains, at most 253 bytes).
//!
//! Every function here is pure and total: whatever it is given, it returns a valid name, and
//! the same input always gives the same name, on every machine and Rust version. A name that
//! would be too long is cut and given `_` (or `-`) plus 8 hex digits of a CRC-32 of the full,
//! unsanitized input, so two long inputs that share a prefix still get different names.
//!
//! Sanitizing is lossy (`shop-a` and `shop_a` both become `shop_a`), so two resources can still
//! ask for the same name; the ownership catalog turns that into a `Conflict`, never a takeover.

/// PostgreSQL's identifier limit (NAMEDATALEN - 1), in bytes.
pub const MAX_IDENTIFIER_BYTES: usize = 63;
/// The limit of a Kubernetes object name that is a DNS-1123 subdomain (Secrets, ConfigMaps).
pub const MAX_SUBDOMAIN_BYTES: usize = 253;
/// The limit of a Kubernetes label value.
pub const MAX_LABEL_VALUE_BYTES: usize = 63;
/// Length of the hash appended to shortened names.
const HASH_HEX_LEN: usize = 8;
/// A fixed suffix longer than this is not kept when a name is shortened: the name is cut as a
/// whole instead, so that some of the distinctive head survives.
const MAX_KEPT_SUFFIX: usize = 24;

/// 8 lower-case hex digits of the CRC-32 (IEEE) of `input`: stable across Rust versions and
/// platforms, unlike `std`'s `DefaultHasher`.
pub fn short_hash(input: &str) -> String {
    format!("{:08x}", crc32fast::hash(input.as_bytes()))
}

/// The database of a ServiceDatabase: `explicit` if given (sanitized, so an invalid value can
/// never reach SQL; validation rejects it earlier with a message), else `<namespace>_<name>`.
pub fn database_name(namespace: &str, name: &str, explicit: Option<&str>) -> String {
    match explicit {
        Some(explicit) => sanitize_identifier(explicit),
        // Kubernetes names never contain `_`, so `_` separates namespace and name unambiguously
        // in the hash input.
        None => sanitize_identifier(&format!("{namespace}_{name}")),
    }
}

/// The database of one tenant of a PerTenant service: `<base_db>_<tenant>`.
pub fn tenant_database_name(base_db: &str, tenant: &str) -> String {
    sanitize_identifier(&format!("{base_db}_{tenant}"))
}

/// The owner role of a database: `<db>_owner`. It owns the database and every object in it;
/// only the migration Job logs in as it.
pub fn owner_role(db: &str) -> String {
    fit_identifier(db, "_owner")
}

/// The runtime role of a database: `<db>_app` (read/write data, no DDL).
pub fn app_role(db: &str) -> String {
    fit_identifier(db, "_app")
}

/// An extra login role from `spec.roles`: `<db>_<role>`.
pub fn extra_role(db: &str, role: &str) -> String {
    fit_identifier(db, &format!("_{role}"))
}

/// The app Secret of a ServiceDatabase: `explicit` (`spec.secret.name`) if given, else
/// `<name>-db`.
pub fn app_secret_name(sdb_name: &str, explicit: Option<&str>) -> String {
    match explicit {
        Some(explicit) => sanitize_subdomain(explicit),
        None => fit_subdomain(sdb_name, "-db"),
    }
}

/// The owner's Secret, mounted only by the migration Job: `<name>-migrator`.
pub fn migrator_secret_name(sdb_name: &str) -> String {
    fit_subdomain(sdb_name, "-migrator")
}

/// The Secret of an extra role from `spec.roles` (unless the role names its own):
/// `<name>-db-<role>` with `_` turned into `-`, e.g. `orders-db-reporting`. The `-db-` keeps
/// it apart from the Secrets of a ServiceDatabase called `<name>-<role>` and sorts it next to
/// the app Secret `<name>-db`.
pub fn role_secret_name(sdb_name: &str, role: &str) -> String {
    fit_subdomain(sdb_name, &format!("-db-{role}"))
}

/// The Secret of one tenant's database: `<secret>-<tenant>`, where `secret` is the name the
/// Secret would have without tenants (app, migrator or extra role).
pub fn tenant_secret_name(secret: &str, tenant: &str) -> String {
    fit_subdomain(secret, &format!("-{tenant}"))
}

/// A Kubernetes label value for a name (`servicedb.io/service-database: <name>`): label values
/// are limited to 63 bytes while object names may have 253, so a longer name is cut and given
/// `-<hash>`. Alphanumerics, `-`, `_` and `.`, starting and ending with an alphanumeric.
pub fn label_value(raw: &str) -> String {
    let mapped: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let not_alnum = |c: char| !c.is_ascii_alphanumeric();
    let trimmed = mapped.trim_matches(not_alnum);
    if trimmed.is_empty() {
        // Nothing usable: still a stable, valid value (empty only for an empty name).
        return if raw.is_empty() {
            String::new()
        } else {
            short_hash(raw)
        };
    }
    if trimmed.len() <= MAX_LABEL_VALUE_BYTES {
        return trimmed.to_string();
    }
    // ASCII only, so any index is a char boundary; it starts alphanumeric, so never empties.
    let cut = trimmed[..MAX_LABEL_VALUE_BYTES - 1 - HASH_HEX_LEN].trim_end_matches(not_alnum);
    format!("{cut}-{}", short_hash(raw))
}

/// Turns anything into a valid PostgreSQL identifier of our dialect: lower-case ASCII letters,
/// digits and `_`, starting with a letter, not starting with `pg_` (reserved for roles and
/// schemas), at most 63 bytes. Every other character (including each non-ASCII character)
/// becomes `_`; a name that does not start with a letter, or starts with `pg_`, gets `db_` in
/// front. Idempotent: a valid name comes back unchanged.
pub fn sanitize_identifier(raw: &str) -> String {
    fit_identifier(raw, "")
}

/// Turns anything into a valid DNS-1123 subdomain (a Kubernetes object name): lower-case
/// alphanumerics, `-` and `.`, each dot-separated part starting and ending with an
/// alphanumeric, at most 253 bytes. `_` and every other character become `-`. Idempotent.
pub fn sanitize_subdomain(raw: &str) -> String {
    fit_subdomain(raw, "")
}

fn identifier_chars(raw: &str) -> String {
    raw.chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `head` + `suffix`, sanitized; when longer than 63 bytes, `head` is cut and `_<hash>` inserted
/// before `suffix` (so `_owner` and `_app` stay readable), the hash covering `head` + `suffix`
/// exactly as given.
fn fit_identifier(head: &str, suffix: &str) -> String {
    let raw = format!("{head}{suffix}");
    let mut head = identifier_chars(head);
    let mut suffix = identifier_chars(suffix);
    let joined = format!("{head}{suffix}");
    if !joined.starts_with(|c: char| c.is_ascii_lowercase()) || joined.starts_with("pg_") {
        head.insert_str(0, "db_");
    }
    if head.len() + suffix.len() <= MAX_IDENTIFIER_BYTES {
        return head + &suffix;
    }
    if suffix.len() > MAX_KEPT_SUFFIX {
        head.push_str(&suffix);
        suffix.clear();
    }
    let keep = MAX_IDENTIFIER_BYTES - 1 - HASH_HEX_LEN - suffix.len();
    // All ASCII, so any byte index is a char boundary; the head starts with a letter, so
    // trimming `_` never empties it.
    let cut = head[..keep].trim_end_matches('_');
    format!("{cut}_{}{suffix}", short_hash(&raw))
}

/// Lower-cases and replaces invalid characters with `-`; then trims every dot-separated label
/// to start and end with an alphanumeric, dropping empty labels.
fn subdomain_chars(raw: &str) -> String {
    let mapped: String = raw
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    trim_labels(&mapped)
}

fn trim_labels(s: &str) -> String {
    s.split('.')
        .map(|label| label.trim_matches('-'))
        .filter(|label| !label.is_empty())
        .collect::<Vec<_>>()
        .join(".")
}

/// Like [`fit_identifier`] for DNS-1123 subdomains, with `-<hash>`; a name left with nothing
/// usable (only symbols, or empty) becomes `x-<hash>`.
fn fit_subdomain(head: &str, suffix: &str) -> String {
    let raw = format!("{head}{suffix}");
    let joined = subdomain_chars(&raw);
    if !joined.is_empty() && joined.len() <= MAX_SUBDOMAIN_BYTES {
        return joined;
    }
    let kept_suffix = subdomain_chars(suffix);
    let (head, suffix) = if kept_suffix.len() <= MAX_KEPT_SUFFIX {
        (subdomain_chars(head), kept_suffix)
    } else {
        (joined, String::new())
    };
    let suffix_len = if suffix.is_empty() {
        0
    } else {
        1 + suffix.len()
    };
    let budget = MAX_SUBDOMAIN_BYTES - 1 - HASH_HEX_LEN - suffix_len;
    let cut = trim_labels(&head[..budget.min(head.len())]);
    let mut parts = vec![if cut.is_empty() { "x".to_string() } else { cut }];
    parts.push(short_hash(&raw));
    if !suffix.is_empty() {
        parts.push(suffix);
    }
    parts.join("-")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::validation::{is_identifier, is_subdomain};

    fn assert_identifier(name: &str) {
        assert!(is_identifier(name), "{name:?} is not a valid identifier");
        assert!(!name.starts_with("pg_"), "{name:?} starts with pg_");
    }

    #[test]
    fn database_name_joins_namespace_and_name_and_sanitizes() {
        assert_eq!(database_name("shop", "orders", None), "shop_orders");
        assert_eq!(
            database_name("my-shop", "order-api", None),
            "my_shop_order_api"
        );
        assert_eq!(database_name("Shop", "Orders", None), "shop_orders");
        assert_eq!(database_name("1shop", "orders", None), "db_1shop_orders");
        assert_eq!(database_name("pg", "orders", None), "db_pg_orders");
        assert_eq!(
            database_name("shop", "orders", Some("orders_db")),
            "orders_db"
        );
        // An explicit name is sanitized too; validation rejects it before this matters.
        assert_eq!(
            database_name("shop", "orders", Some("\"; DROP DATABASE x; --")),
            "db____drop_database_x____"
        );
    }

    #[test]
    fn non_ascii_becomes_underscores() {
        assert_eq!(database_name("café", "bücher", None), "caf__b_cher");
        assert_eq!(sanitize_identifier("日本"), "db___");
        assert_eq!(sanitize_subdomain("café-Ünïcode"), "caf---n-code");
        assert_identifier(&sanitize_identifier("日本"));
        assert!(is_subdomain(&sanitize_subdomain("日本")));
    }

    #[test]
    fn identifiers_are_cut_at_exactly_63_bytes() {
        let n63 = format!("a{}", "b".repeat(62));
        assert_eq!(sanitize_identifier(&n63), n63, "63 bytes fit as they are");
        let n64 = format!("a{}", "b".repeat(63));
        let short = sanitize_identifier(&n64);
        assert_eq!(short.len(), 63);
        assert_eq!(short, format!("a{}_{}", "b".repeat(53), short_hash(&n64)));
        assert_identifier(&short);
        // The sanitized form of 63 bytes plus a prefix is 66 bytes and is cut as well.
        let digits = format!("1{}", "b".repeat(62));
        let cut = sanitize_identifier(&digits);
        assert_eq!(cut.len(), 63);
        assert!(cut.starts_with("db_1b"));
    }

    #[test]
    fn long_names_with_a_common_prefix_stay_distinct() {
        let base = "fitbuddy_app";
        let a = format!("tenant-{}-a", "x".repeat(60));
        let b = format!("tenant-{}-b", "x".repeat(60));
        let (da, db) = (
            tenant_database_name(base, &a),
            tenant_database_name(base, &b),
        );
        assert_ne!(da, db);
        assert_eq!(da.len(), 63);
        assert_identifier(&da);
        assert_identifier(&db);
        // Same for namespace/name pairs that sanitize to the same long text.
        let long = "n".repeat(60);
        assert_ne!(
            database_name(&format!("{long}-a"), "b", None),
            database_name(&long, "a-b", None)
        );
        let (sa, sb) = (
            tenant_secret_name("app-db", &a),
            tenant_secret_name("app-db", &b),
        );
        assert_ne!(sa, sb);
        let huge_a = format!("{}-a", "s".repeat(260));
        let huge_b = format!("{}-b", "s".repeat(260));
        assert_ne!(
            tenant_secret_name("app-db", &huge_a),
            tenant_secret_name("app-db", &huge_b)
        );
    }

    #[test]
    fn tenant_database_follows_design_example() {
        assert_eq!(tenant_database_name("app", "gym-42"), "app_gym_42");
        assert_eq!(tenant_secret_name("app-db", "gym-42"), "app-db-gym-42");
    }

    #[test]
    fn sanitizing_is_idempotent() {
        let inputs = [
            "shop_orders",
            "Shop-Orders",
            "1abc",
            "pg_catalog",
            "",
            "_",
            "日本語",
            "\"; DROP DATABASE x; --",
            &"z".repeat(64),
            &"Q-".repeat(200),
        ];
        for input in inputs {
            let once = sanitize_identifier(input);
            assert_identifier(&once);
            assert_eq!(
                sanitize_identifier(&once),
                once,
                "identifier from {input:?}"
            );
            let once = sanitize_subdomain(input);
            assert!(is_subdomain(&once), "{once:?} from {input:?}");
            assert_eq!(sanitize_subdomain(&once), once, "subdomain from {input:?}");
        }
        let db = database_name("my-shop", &"o".repeat(80), None);
        assert_eq!(database_name("ignored", "ignored", Some(&db)), db);
    }

    #[test]
    fn role_names_keep_their_suffix_when_shortened() {
        assert_eq!(owner_role("shop_orders"), "shop_orders_owner");
        assert_eq!(app_role("shop_orders"), "shop_orders_app");
        assert_eq!(
            extra_role("shop_orders", "reporting"),
            "shop_orders_reporting"
        );
        let db = format!("d{}", "b".repeat(62));
        let (owner, app) = (owner_role(&db), app_role(&db));
        assert_eq!(owner.len(), 63);
        assert!(owner.ends_with("_owner"), "{owner}");
        assert!(app.ends_with("_app"), "{app}");
        assert_ne!(owner, app);
        assert_identifier(&owner);
        assert_identifier(&app);
        // An extra role called `owner` would be the owner role: validation forbids it.
        assert_eq!(extra_role(&db, "owner"), owner);
        // A long extra role name is not kept whole, but the result is still valid and distinct.
        let r1 = extra_role(&db, &format!("r{}", "1".repeat(40)));
        let r2 = extra_role(&db, &format!("r{}", "2".repeat(40)));
        assert_ne!(r1, r2);
        assert_identifier(&r1);
        // Exactly 63 bytes stays as it is.
        let db57 = format!("d{}", "b".repeat(56));
        assert_eq!(owner_role(&db57), format!("{db57}_owner"));
        assert_eq!(owner_role(&db57).len(), 63);
        assert_eq!(owner_role(&format!("{db57}x")).len(), 63);
        assert_ne!(owner_role(&format!("{db57}x")), format!("{db57}x_owner"));
    }

    #[test]
    fn secret_names() {
        assert_eq!(app_secret_name("orders", None), "orders-db");
        assert_eq!(
            app_secret_name("orders", Some("orders-creds")),
            "orders-creds"
        );
        assert_eq!(migrator_secret_name("orders"), "orders-migrator");
        assert_eq!(
            role_secret_name("orders", "reporting"),
            "orders-db-reporting"
        );
        assert_eq!(
            role_secret_name("orders", "read_only"),
            "orders-db-read-only"
        );
        assert_eq!(
            tenant_secret_name("orders-db", "gym.42"),
            "orders-db-gym.42"
        );
        assert_eq!(sanitize_subdomain("a._b"), "a.b");
        assert_eq!(sanitize_subdomain("-A_B-"), "a-b");
        assert_eq!(
            sanitize_subdomain("..."),
            format!("x-{}", short_hash("..."))
        );
    }

    #[test]
    fn secret_names_are_cut_at_253_bytes() {
        let n = "a".repeat(253);
        assert_eq!(sanitize_subdomain(&n), n);
        let name = "a".repeat(250);
        let migrator = migrator_secret_name(&name);
        assert_eq!(migrator.len(), 253);
        assert!(migrator.ends_with("-migrator"), "{migrator}");
        assert!(is_subdomain(&migrator));
        assert_ne!(migrator, migrator_secret_name(&"a".repeat(251)));
        let dotted = format!("{}.{}", "a".repeat(240), "b".repeat(20));
        let cut = app_secret_name(&dotted, None);
        assert!(cut.len() <= 253 && is_subdomain(&cut), "{cut}");
    }

    #[test]
    fn label_values_fit_63_bytes() {
        assert_eq!(label_value("orders"), "orders");
        assert_eq!(label_value("gym.42"), "gym.42");
        assert_eq!(label_value(""), "");
        let n63 = "a".repeat(63);
        assert_eq!(label_value(&n63), n63);
        let n64 = "a".repeat(64);
        let cut = label_value(&n64);
        assert_eq!(cut.len(), 63);
        assert_eq!(cut, format!("{}-{}", "a".repeat(54), short_hash(&n64)));
        assert_ne!(
            label_value(&format!("{n63}-x")),
            label_value(&format!("{n63}-y"))
        );
        let odd = label_value(&format!("{}.-{}", "a".repeat(53), "b".repeat(20)));
        assert!(
            odd.len() <= 63
                && odd.ends_with(&short_hash(&format!(
                    "{}.-{}",
                    "a".repeat(53),
                    "b".repeat(20)
                )))
        );
        assert!(!odd.contains(".-"), "{odd}");
        assert_eq!(label_value(&label_value(&n64)), label_value(&n64));
    }

    #[test]
    fn hash_is_stable() {
        // CRC-32 (IEEE) of "123456789" is the standard check value.
        assert_eq!(short_hash("123456789"), "cbf43926");
    }
}
