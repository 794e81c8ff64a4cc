//! What a migration Job runs with, and the Job name that follows from it. Pure.
//!
//! The name is `<name, cut to 40>-mig-<hash10>`, the hash covering the database, every file
//! of the referenced ConfigMaps (name and content), the target version and the
//! `servicedb.io/retry` annotation: a change makes a new Job, a repeat makes none (and
//! creating it again is an AlreadyExists that changes nothing).

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// Hex digits of the hash in a Job's name.
pub const HASH_LEN: usize = 10;
/// How much of the ServiceDatabase's (and tenant's) name a Job name keeps.
pub const NAME_HEAD: usize = 40;
/// Between the head and the hash.
const INFIX: &str = "-mig-";

/// Everything a migration Job's result depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inputs {
    pub database: String,
    /// Each referenced ConfigMap (in spec order) with its data: file name -> content.
    pub config_maps: Vec<(String, BTreeMap<String, String>)>,
    pub target: Option<String>,
    pub retry: Option<String>,
}

/// A SHA-256 over tagged, length-prefixed fields, so no two different field lists hash the
/// same by concatenation; [`HASH_LEN`] hex digits of it name Jobs.
#[derive(Default)]
pub struct TaggedHash(Sha256);

impl TaggedHash {
    pub fn field(&mut self, tag: &str, value: &str) {
        self.0.update(tag.as_bytes());
        self.0.update((value.len() as u64).to_be_bytes());
        self.0.update(value.as_bytes());
    }

    /// The first [`HASH_LEN`] hex digits.
    pub fn short(self) -> String {
        self.0
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()[..HASH_LEN]
            .to_string()
    }
}

impl Inputs {
    /// [`HASH_LEN`] hex digits of a [`TaggedHash`] over every input.
    pub fn hash(&self) -> String {
        let mut h = TaggedHash::default();
        let mut field = |tag: &str, value: &str| h.field(tag, value);
        field("database", &self.database);
        for (name, data) in &self.config_maps {
            field("configmap", name);
            for (key, content) in data {
                field("file", key);
                field("content", content);
            }
        }
        if let Some(t) = &self.target {
            field("target", t);
        }
        if let Some(r) = &self.retry {
            field("retry", r);
        }
        h.short()
    }
}

/// The fleet's inputs hash (`status.rollout.inputsHash`): the migration files and the
/// target, the same for every tenant database of a service (no database, no retry).
pub fn fleet_hash(
    config_maps: &[(String, BTreeMap<String, String>)],
    target: Option<&str>,
) -> String {
    Inputs {
        database: String::new(),
        config_maps: config_maps.to_vec(),
        target: target.map(str::to_string),
        retry: None,
    }
    .hash()
}

/// The Job's name: `<base[-tenant], cut to 40>-mig-<hash>`, at most 55 characters (a Job
/// name must fit in a 63-character label value, `batch.kubernetes.io/job-name`). The head
/// never ends in `-` or `.`, so the name stays a valid DNS subdomain.
pub fn job_name(base: &str, tenant: Option<&str>, hash: &str) -> String {
    let full = match tenant {
        Some(t) => format!("{base}-{t}"),
        None => base.to_string(),
    };
    let mut head: String = full.chars().take(NAME_HEAD).collect();
    while head.ends_with(|c: char| !c.is_ascii_alphanumeric()) {
        head.pop();
    }
    if head.is_empty() {
        head.push_str("db");
    }
    format!("{head}{INFIX}{hash}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> Inputs {
        Inputs {
            database: "shop_orders".into(),
            config_maps: vec![(
                "orders-migrations".into(),
                BTreeMap::from([
                    ("V1__init.sql".into(), "CREATE TABLE a (x int);".into()),
                    ("V2__more.sql".into(), "CREATE TABLE b (x int);".into()),
                ]),
            )],
            target: None,
            retry: None,
        }
    }

    /// Locks "a change makes a new Job, a repeat makes none": the hash is stable for equal
    /// inputs and moves with each input.
    #[test]
    fn hash_is_stable_and_moves_with_every_input() {
        let base = inputs();
        // Pinned (computed independently of this code): a change of the encoding would give
        // every database a new Job name on upgrade, and run its migrations' Job again.
        assert_eq!(base.hash(), "97c5b0f7bc");
        assert_eq!(base.hash(), inputs().hash());
        assert_eq!(base.hash().len(), HASH_LEN);
        assert!(base.hash().chars().all(|c| c.is_ascii_hexdigit()));
        let mut changes = vec![];
        let mut i = inputs();
        i.database = "shop_orders2".into();
        changes.push(i);
        let mut i = inputs();
        i.config_maps[0]
            .1
            .insert("V2__more.sql".into(), "CREATE TABLE c (x int);".into());
        changes.push(i);
        let mut i = inputs();
        let content = i.config_maps[0].1.remove("V2__more.sql").unwrap();
        i.config_maps[0].1.insert("V2__renamed.sql".into(), content);
        changes.push(i);
        let mut i = inputs();
        i.target = Some("1".into());
        changes.push(i);
        let mut i = inputs();
        i.retry = Some("1".into());
        changes.push(i);
        let mut i = inputs();
        i.config_maps[0].0 = "other".into();
        changes.push(i);
        let mut hashes: Vec<String> = changes.iter().map(Inputs::hash).collect();
        hashes.push(base.hash());
        let distinct: std::collections::BTreeSet<_> = hashes.iter().collect();
        assert_eq!(distinct.len(), hashes.len(), "{hashes:?}");
        // Moving text between a file's name and its content is a different input.
        let a = Inputs {
            config_maps: vec![("c".into(), BTreeMap::from([("ab".into(), "c".into())]))],
            ..inputs()
        };
        let b = Inputs {
            config_maps: vec![("c".into(), BTreeMap::from([("a".into(), "bc".into())]))],
            ..inputs()
        };
        assert_ne!(a.hash(), b.hash());
    }

    #[test]
    fn job_names_keep_the_head_and_fit_a_label() {
        assert_eq!(
            job_name("orders", None, "0123456789"),
            "orders-mig-0123456789"
        );
        assert_eq!(
            job_name("app", Some("gym-42"), "0123456789"),
            "app-gym-42-mig-0123456789"
        );
        let long = "a".repeat(39) + "-" + &"b".repeat(200);
        let name = job_name(&long, None, "0123456789");
        assert_eq!(name, format!("{}-mig-0123456789", "a".repeat(39)));
        assert!(name.len() <= 63);
        let dotted = "x".repeat(39) + ".y";
        assert_eq!(
            job_name(&dotted, None, "0123456789"),
            format!("{}-mig-0123456789", "x".repeat(39))
        );
        let max = job_name(&"z".repeat(253), Some(&"t".repeat(63)), "0123456789");
        assert_eq!(max.len(), NAME_HEAD + INFIX.len() + HASH_LEN);
    }
}
