//! Which Tenants a ServiceDatabase event concerns. Every change of the rollout's
//! `admitted` list (a Job finished, the next tenant admitted) used to reconcile every
//! Tenant of the service: over a rollout of N tenants, about N x N reconciles, each a
//! provisioning pass on its database. Only the tenants that entered `admitted` have anything
//! new to act on (and the members of a batch that came or went); a change of the
//! spec, the inputs, the resume value, the rotate annotation or the deletion still concerns
//! them all.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use kube::ResourceExt;

use crate::api::ServiceDatabase;

/// The Tenants (by name) of the service that an event concerns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Concerned {
    All,
    Only(BTreeSet<String>),
}

impl Concerned {
    pub fn includes(&self, tenant: &str) -> bool {
        match self {
            Concerned::All => true,
            Concerned::Only(names) => names.contains(tenant),
        }
    }
}

/// What of a ServiceDatabase its Tenants act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    generation: Option<i64>,
    deleting: bool,
    inputs_hash: Option<String>,
    resume: Option<String>,
    rotate: Option<String>,
    admitted: BTreeSet<String>,
    /// Batch Job name and its members.
    batches: BTreeSet<(String, Vec<String>)>,
}

impl Seen {
    pub fn of(sdb: &ServiceDatabase) -> Seen {
        let rollout = sdb.status.as_ref().and_then(|s| s.rollout.as_ref());
        Seen {
            generation: sdb.metadata.generation,
            deleting: sdb.metadata.deletion_timestamp.is_some(),
            inputs_hash: rollout.and_then(|r| r.inputs_hash.clone()),
            resume: rollout.and_then(|r| r.resume.clone()),
            rotate: sdb
                .annotations()
                .get(crate::api::ROTATE_ANNOTATION)
                .cloned(),
            admitted: rollout
                .map(|r| r.admitted.iter().cloned().collect())
                .unwrap_or_default(),
            batches: rollout
                .map(|r| {
                    r.batches
                        .iter()
                        .map(|b| (b.job.clone(), b.tenants.clone()))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// Who `after` concerns, given what was seen `before`. Pure. Nothing seen before, or
/// nothing changed (the event is then a deletion: the trigger passes nothing else
/// unchanged), concerns all.
pub fn concerned(before: Option<&Seen>, after: &Seen) -> Concerned {
    let Some(before) = before else {
        return Concerned::All;
    };
    let same_but_admitted = before.generation == after.generation
        && before.deleting == after.deleting
        && before.inputs_hash == after.inputs_hash
        && before.resume == after.resume
        && before.rotate == after.rotate;
    if before == after || !same_but_admitted {
        return Concerned::All;
    }
    // Only the newly admitted: a tenant leaves `admitted` once its Job has ended (the
    // ServiceDatabase sees the end; the tenant's own reconcile, brought by the same end,
    // records it), so it has nothing to start; a reconcile of it would be one more
    // provisioning pass, in the rollout's way.
    let mut names: BTreeSet<String> = after
        .admitted
        .difference(&before.admitted)
        .cloned()
        .collect();
    for (_, members) in before.batches.symmetric_difference(&after.batches) {
        names.extend(members.iter().cloned());
    }
    Concerned::Only(names)
}

/// [`concerned`] with the memory of what each ServiceDatabase looked like last.
#[derive(Default)]
pub struct Fanout {
    seen: Mutex<HashMap<(String, String), Seen>>,
}

impl Fanout {
    pub fn concerned(&self, sdb: &ServiceDatabase) -> Concerned {
        let key = (sdb.namespace().unwrap_or_default(), sdb.name_any());
        let after = Seen::of(sdb);
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let result = concerned(seen.get(&key), &after);
        seen.insert(key, after);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{RolloutStatus, ServiceDatabaseStatus};

    fn sdb(generation: i64, hash: &str, admitted: &[&str]) -> ServiceDatabase {
        let mut s = ServiceDatabase::new("app", Default::default());
        s.metadata.namespace = Some("fit".into());
        s.metadata.generation = Some(generation);
        s.status = Some(ServiceDatabaseStatus {
            rollout: Some(RolloutStatus {
                inputs_hash: Some(hash.into()),
                admitted: admitted.iter().map(|a| a.to_string()).collect(),
                ..Default::default()
            }),
            ..Default::default()
        });
        s
    }

    fn only(names: &[&str]) -> Concerned {
        Concerned::Only(names.iter().map(|n| n.to_string()).collect())
    }

    #[test]
    fn an_admission_change_concerns_only_the_tenants_it_moves() {
        let f = Fanout::default();
        assert_eq!(f.concerned(&sdb(1, "h", &["a", "b"])), Concerned::All);
        assert_eq!(
            f.concerned(&sdb(1, "h", &["b", "c"])),
            only(&["c"]),
            "a, done or paused, has nothing to start"
        );
        assert_eq!(f.concerned(&sdb(1, "h", &["b", "c", "d"])), only(&["d"]));
        assert!(!only(&["d"]).includes("b"));
    }

    #[test]
    fn new_inputs_a_spec_change_or_a_deletion_concern_all() {
        let f = Fanout::default();
        f.concerned(&sdb(1, "h", &["a"]));
        assert_eq!(f.concerned(&sdb(1, "h2", &["a"])), Concerned::All);
        assert_eq!(f.concerned(&sdb(2, "h2", &["b"])), Concerned::All);
        // The deleted object, as the watch last saw it.
        assert_eq!(f.concerned(&sdb(2, "h2", &["b"])), Concerned::All);
        let mut deleting = sdb(2, "h2", &["b"]);
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::from_second(1).unwrap(),
            ));
        assert_eq!(f.concerned(&deleting), Concerned::All);
    }

    #[test]
    fn a_resume_concerns_all() {
        let before = Seen::of(&sdb(1, "h", &[]));
        let mut resumed = sdb(1, "h", &[]);
        resumed
            .status
            .as_mut()
            .unwrap()
            .rollout
            .as_mut()
            .unwrap()
            .resume = Some("1".into());
        assert_eq!(
            concerned(Some(&before), &Seen::of(&resumed)),
            Concerned::All
        );
    }

    /// Locks: a batch that comes or goes in the same event as an admission change concerns
    /// its members too, and a rotate annotation concerns all.
    #[test]
    fn batch_members_and_a_rotation_are_not_lost_in_an_admission_change() {
        let before = Seen::of(&sdb(1, "h", &["a"]));
        let mut batched = sdb(1, "h", &["b"]);
        batched
            .status
            .as_mut()
            .unwrap()
            .rollout
            .as_mut()
            .unwrap()
            .batches = vec![crate::api::RolloutBatch {
            job: "app-batch-mig-1".into(),
            tenants: vec!["c".into(), "d".into()],
        }];
        assert_eq!(
            concerned(Some(&before), &Seen::of(&batched)),
            only(&["b", "c", "d"])
        );
        let mut rotated = sdb(1, "h", &["b"]);
        rotated.annotations_mut().insert(
            crate::api::ROTATE_ANNOTATION.to_string(),
            "2026-12-01".into(),
        );
        assert_eq!(
            concerned(Some(&before), &Seen::of(&rotated)),
            Concerned::All
        );
    }
}
