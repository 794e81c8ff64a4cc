//! Provisioning checks a tenant database's next pass may reuse.
//!
//! A full provisioning check costs two logins and three statements. The passes a rollout
//! brings each tenant (the inputs change, its admission, its Job's end) come seconds apart,
//! and each only needs its migration step: the check the pass before made still holds
//! unless something it depends on changed. So a pass reuses a check that succeeded less
//! than half a resync ago when its fingerprint is the same: the Tenant (generation,
//! annotations), the ServiceDatabase's spec outside the migrations' files, version, Job and
//! rollout, the DatabaseServer (and when it last became Ready), and the Secrets as read now
//! (a Secret deleted or edited by hand is a new fingerprint). The routine resync comes at
//! least 0.9 resync after the last pass, so it always checks in full: drift is repaired
//! within about one and a half resyncs of the last full check. No check is reused by a pass
//! that rotates a password or follows a migration Job (which may have created objects the
//! check must see), nor recorded by one a Job may have run during or started: a check is
//! recorded only after a listing in which every Job of the database had ended
//! (`ListedJobs::settled`), so the pass that records a Job's end leaves the check the
//! passes a promotion brings reuse. A failure forgets it; the memory goes with the
//! operator (a restart checks all).

use std::collections::{BTreeSet, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::Duration;

use kube::ResourceExt;
use tokio::time::Instant;

use crate::api::conditions::{find_condition, types};
use crate::api::{DatabaseServer, ServiceDatabase, Tenant};
use crate::migrate::effective::ReadRows;

/// (namespace, tenant, service).
pub type Key = (String, String, String);

#[derive(Clone, Debug, PartialEq, Eq)]
struct Check {
    at: Instant,
    fingerprint: u64,
    history_seen: bool,
    history: Option<History>,
}

/// The schema history as the checking pass read it, and the database's Jobs that were
/// listed ended before it was read: it still holds while no other Job is listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct History {
    pub rows: ReadRows,
    pub ended: BTreeSet<String>,
}

/// The most history rows kept for one database: a long history is read again instead
/// (a row is about 200 bytes: 5,000 tenant databases of 32 rows are about 30 MB).
const MAX_ROWS_KEPT: usize = 32;

/// What the last successful checks found, by tenant database.
#[derive(Default)]
pub struct Verified {
    checks: Mutex<HashMap<Key, Check>>,
}

/// A check that may stand in for a new one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reused {
    /// The check saw the migration history table (see `provisioning::Provisioned`).
    pub history_seen: bool,
    /// The history it read, if kept.
    pub history: Option<History>,
}

impl Verified {
    /// The check of `key` to reuse now, if one with the same `fingerprint` succeeded less
    /// than `window` ago.
    pub fn reuse(&self, key: &Key, fingerprint: u64, window: Duration) -> Option<Reused> {
        self.reuse_at(key, fingerprint, window, Instant::now())
    }

    fn reuse_at(
        &self,
        key: &Key,
        fingerprint: u64,
        window: Duration,
        now: Instant,
    ) -> Option<Reused> {
        let checks = self.lock();
        let check = checks.get(key)?;
        let fresh = now.saturating_duration_since(check.at) < window;
        (check.fingerprint == fingerprint && fresh).then(|| Reused {
            history_seen: check.history_seen,
            history: check.history.clone(),
        })
    }

    /// A full check of `key`, begun at `at`, succeeded; `history` is what its pass read
    /// of the schema history (kept when short).
    pub fn record(
        &self,
        key: Key,
        at: Instant,
        fingerprint: u64,
        history_seen: bool,
        history: Option<History>,
    ) {
        let check = Check {
            at,
            fingerprint,
            history_seen,
            history: history.filter(|h| h.rows.rows.len() <= MAX_ROWS_KEPT),
        };
        self.lock().insert(key, check);
    }

    /// The next pass of `key` checks in full (this one failed somewhere).
    pub fn forget(&self, key: &Key) {
        self.lock().remove(key);
    }

    /// Every database of a Tenant that is gone.
    pub fn forget_tenant(&self, namespace: &str, tenant: &str) {
        self.lock()
            .retain(|(ns, name, _), _| !(ns == namespace && name == tenant));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Check>> {
        self.checks.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a provisioning check of one tenant database depends on. Pure.
pub fn fingerprint(
    tenant: &Tenant,
    sdb: &ServiceDatabase,
    server: Option<&DatabaseServer>,
    server_name: &str,
    secrets: &[(String, Option<String>)],
) -> u64 {
    let mut h = DefaultHasher::new();
    (
        tenant.uid(),
        tenant.metadata.generation,
        tenant.annotations(),
    )
        .hash(&mut h);
    // Which migrations, which version, how they roll out and in what pod decide Jobs, not
    // roles or grants: a promotion is no reason to check again. (Seed data is checked.)
    let mut spec = serde_json::to_value(&sdb.spec).unwrap_or_default();
    if let Some(spec) = spec.as_object_mut() {
        let seed = spec
            .remove("migrations")
            .and_then(|mut m| m.get_mut("seed").map(serde_json::Value::take))
            .filter(|seed| !seed.is_null());
        if let Some(seed) = seed {
            spec.insert("seed".into(), seed);
        }
    }
    (sdb.uid(), spec.to_string(), sdb.annotations()).hash(&mut h);
    // A server that was not Ready meanwhile (restarted, restored) is checked again.
    let ready_since = server
        .and_then(|s| s.status.as_ref())
        .and_then(|s| find_condition(&s.conditions, types::READY))
        .map(|c| c.last_transition_time.0.to_string());
    (
        server_name,
        server.and_then(|s| s.uid()),
        server.and_then(|s| s.metadata.generation),
        ready_since,
    )
        .hash(&mut h);
    secrets.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{MigrationsSpec, ServiceDatabaseSpec, TenantSpec};

    fn key() -> Key {
        ("fit".into(), "gym".into(), "app".into())
    }

    fn row() -> crate::migrate::history::AppliedRow {
        crate::migrate::history::AppliedRow {
            installed_rank: 1,
            version: Some("1".into()),
            description: "init".into(),
            kind: "SQL".into(),
            script: "V1__init.sql".into(),
            checksum: Some(1),
            installed_by: "o".into(),
            installed_on: String::new(),
            execution_time: 1,
            success: true,
        }
    }

    #[test]
    fn a_check_is_reused_only_within_the_window_and_with_the_same_fingerprint() {
        let v = Verified::default();
        let window = Duration::from_secs(30);
        assert_eq!(v.reuse(&key(), 1, window), None, "nothing checked yet");
        let history = |n: usize| History {
            rows: ReadRows {
                user: "o".into(),
                database: "d".into(),
                rows: vec![row(); n],
            },
            ended: BTreeSet::from(["j1".to_string()]),
        };
        v.record(key(), Instant::now(), 1, true, Some(history(2)));
        assert_eq!(
            v.reuse(&key(), 1, window),
            Some(Reused {
                history_seen: true,
                history: Some(history(2))
            })
        );
        v.record(key(), Instant::now(), 1, true, Some(history(33)));
        let long = v.reuse(&key(), 1, window).unwrap();
        assert_eq!(long.history, None, "a long history is read again");
        assert_eq!(v.reuse(&key(), 2, window), None, "something changed");
        let later = Instant::now() + Duration::from_secs(30);
        assert_eq!(v.reuse_at(&key(), 1, window, later), None, "too old");
        v.record(key(), Instant::now(), 1, false, None);
        v.forget(&key());
        assert_eq!(v.reuse(&key(), 1, window), None, "a failure forgets");
        v.record(key(), Instant::now(), 1, false, None);
        v.forget_tenant("fit", "gym");
        assert_eq!(v.reuse(&key(), 1, window), None, "the Tenant is gone");
    }

    #[test]
    fn the_fingerprint_follows_what_provisioning_reads_and_not_the_migrations() {
        let mut tenant = Tenant::new("gym", TenantSpec::default());
        tenant.metadata.generation = Some(1);
        let mut sdb = ServiceDatabase::new("app", ServiceDatabaseSpec::default());
        let secrets = vec![("app-gym".to_string(), Some("7".to_string()))];
        let base = fingerprint(&tenant, &sdb, None, "a", &secrets);
        assert_eq!(fingerprint(&tenant, &sdb, None, "a", &secrets), base);

        let mut promoted = sdb.clone();
        promoted.spec.migrations = Some(MigrationsSpec {
            config_maps: vec!["m".into()],
            target_version: Some("2".into()),
            ..Default::default()
        });
        assert_eq!(
            fingerprint(&tenant, &promoted, None, "a", &secrets),
            base,
            "a promotion is no reason to check the roles again"
        );

        let mut seeded = promoted.clone();
        seeded.spec.migrations.as_mut().unwrap().seed = Some(Default::default());
        assert_ne!(
            fingerprint(&tenant, &seeded, None, "a", &secrets),
            base,
            "seed data is provisioning's to refuse"
        );

        let mut server = DatabaseServer::new("a", Default::default());
        let ready_at = |server: &mut DatabaseServer, second: i64| {
            let mut conditions = Vec::new();
            crate::api::conditions::set_ready(
                &mut conditions,
                crate::api::conditions::Readiness::ready("Connected", "ok"),
                Some(1),
                &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::from_second(second).unwrap(),
                ),
            );
            server.status = Some(crate::api::DatabaseServerStatus {
                conditions,
                ..Default::default()
            });
        };
        ready_at(&mut server, 1);
        let up = fingerprint(&tenant, &sdb, Some(&server), "a", &secrets);
        ready_at(&mut server, 2);
        assert_ne!(
            fingerprint(&tenant, &sdb, Some(&server), "a", &secrets),
            up,
            "a server Ready again (restarted, restored) is checked again"
        );

        let edited = vec![("app-gym".to_string(), Some("8".to_string()))];
        let deleted = vec![("app-gym".to_string(), None)];
        assert_ne!(fingerprint(&tenant, &sdb, None, "a", &edited), base);
        assert_ne!(fingerprint(&tenant, &sdb, None, "a", &deleted), base);
        assert_ne!(fingerprint(&tenant, &sdb, None, "b", &secrets), base);
        sdb.spec.schemas = vec!["sales".into()];
        assert_ne!(fingerprint(&tenant, &sdb, None, "a", &secrets), base);
        sdb.spec.schemas.clear();
        tenant
            .annotations_mut()
            .insert("reconcile.fluxcd.io/requestedAt".into(), "now".into());
        assert_ne!(
            fingerprint(&tenant, &sdb, None, "a", &secrets),
            base,
            "annotating the Tenant asks for a full check"
        );
    }
}
