//! A database's migration Jobs as listed at one moment, before its history is read.
//!
//! The order matters: a Job seen ended has committed everything it wrote, so a history
//! read after the listing shows all of it. Read the other way round, a Job that ended in
//! between would look complete with its migrations still pending.

use std::collections::BTreeSet;

use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, ListParams};

use super::MigrationTarget;
use super::observe::finished;

#[derive(Debug, Clone, Default)]
pub struct ListedJobs {
    /// The database's own Jobs (by label) and the named ones found.
    jobs: Vec<Job>,
    /// Names looked up by name (found or not).
    named: BTreeSet<String>,
}

impl ListedJobs {
    /// Every Job of the database (its label selector), and each of `named` (batch Jobs,
    /// which carry no tenant label) not among them, listed by name: the chart grants Jobs
    /// list, watch and create only.
    pub async fn list(
        client: &kube::Client,
        target: &MigrationTarget,
        named: &[String],
    ) -> Result<ListedJobs, kube::Error> {
        let api: Api<Job> = Api::namespaced(client.clone(), &target.namespace);
        let lp = ListParams::default().labels(&super::job::selector(target));
        let mut listed = ListedJobs {
            jobs: api.list(&lp).await?.items,
            named: BTreeSet::new(),
        };
        for name in named {
            listed.look_up(&api, name).await?;
        }
        Ok(listed)
    }

    async fn look_up(&mut self, api: &Api<Job>, name: &str) -> Result<(), kube::Error> {
        if !self.covers(name) {
            let lp = ListParams::default().fields(&format!("metadata.name={name}"));
            self.jobs.extend(api.list(&lp).await?.items);
            self.named.insert(name.to_string());
        }
        Ok(())
    }

    /// Whether this listing says whether `name` exists.
    pub fn covers(&self, name: &str) -> bool {
        self.named.contains(name) || self.find(name).is_some()
    }

    pub fn find(&self, name: &str) -> Option<&Job> {
        self.jobs
            .iter()
            .find(|j| j.metadata.name.as_deref() == Some(name))
    }

    pub fn jobs(&self) -> &[Job] {
        &self.jobs
    }

    /// Whether `name` is listed as running (not ended, not being deleted).
    pub fn running(&self, name: &str) -> bool {
        self.find(name)
            .is_some_and(|j| j.metadata.deletion_timestamp.is_none() && finished(j).is_none())
    }

    /// The Jobs listed as ended, by identity (uid, else name: a Job deleted and created
    /// again under its name is another Job).
    pub fn ended(&self) -> BTreeSet<String> {
        self.jobs
            .iter()
            .filter(|j| finished(j).is_some())
            .filter_map(identity)
            .collect()
    }

    /// Whether every Job listed has ended (none may still write to the history).
    pub fn all_ended(&self) -> bool {
        self.jobs.iter().all(|j| finished(j).is_some())
    }

    /// Whether every Job listed has ended and `job` (the one a status records running, if
    /// any) is among them: a check made after this listing saw all these Jobs created.
    pub fn settled(&self, job: Option<&str>) -> bool {
        self.all_ended() && job.is_none_or(|j| self.find(j).is_some())
    }

    /// Whether every Job listed now was already listed ended in `before` (the listing of a
    /// moment when [`Self::all_ended`] held): then no Job of this database has run since.
    /// Pure.
    pub fn none_since(&self, before: &BTreeSet<String>) -> bool {
        self.jobs
            .iter()
            .all(|j| finished(j).is_some() && identity(j).is_some_and(|id| before.contains(&id)))
    }

    /// Adds `name` to the listing (now, so later than the rest).
    pub async fn also(
        &mut self,
        client: &kube::Client,
        namespace: &str,
        name: &str,
    ) -> Result<(), kube::Error> {
        let api: Api<Job> = Api::namespaced(client.clone(), namespace);
        self.look_up(&api, name).await
    }
}

fn identity(job: &Job) -> Option<String> {
    job.metadata
        .uid
        .clone()
        .or_else(|| job.metadata.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};

    fn job(name: &str, ended: bool) -> Job {
        let mut j = Job::default();
        j.metadata.name = Some(name.into());
        j.metadata.uid = Some(format!("uid-{name}"));
        if ended {
            j.status = Some(JobStatus {
                conditions: Some(vec![JobCondition {
                    type_: "Complete".into(),
                    status: "True".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            });
        }
        j
    }

    /// Locks when rows read after an earlier listing still hold: only if every Job listed
    /// now was listed ended then, as the same Job (a Job new since, or deleted and created
    /// again under its name, may have migrated); and rows are kept only from a listing in
    /// which every Job had ended.
    #[test]
    fn rows_hold_only_while_no_job_ran_since_their_listing() {
        let listing = |jobs: Vec<Job>| ListedJobs {
            jobs,
            named: BTreeSet::new(),
        };
        let busy = listing(vec![job("a", true), job("b", false)]);
        assert!(!busy.all_ended(), "a running Job may still write");
        assert!(busy.running("b") && !busy.running("a") && !busy.running("c"));
        assert!(busy.covers("a") && !busy.covers("c"));

        let then = listing(vec![job("a", true), job("b", true)]);
        assert!(then.all_ended());
        let before = then.ended();
        assert!(listing(vec![job("a", true), job("b", true)]).none_since(&before));
        assert!(
            listing(vec![job("a", true)]).none_since(&before),
            "b deleted by its TTL"
        );
        assert!(listing(vec![]).none_since(&before));
        assert!(!listing(vec![job("a", true), job("c", false)]).none_since(&before));
        assert!(!listing(vec![job("c", true)]).none_since(&before));
        assert!(
            !listing(vec![job("a", false)]).none_since(&before),
            "a running again"
        );
        let mut again = job("a", true);
        again.metadata.uid = Some("uid-a-2".into());
        assert!(!listing(vec![again]).none_since(&before), "a created again");
    }

    /// Locks when a check may be kept for later passes: only after a listing in which every
    /// Job had ended, the one the status records running among them.
    #[test]
    fn a_check_is_settled_only_after_every_job_ended() {
        let listing = |jobs: Vec<Job>| ListedJobs {
            jobs,
            named: BTreeSet::new(),
        };
        let ended = listing(vec![job("a", true), job("b", true)]);
        assert!(ended.settled(None));
        assert!(ended.settled(Some("b")), "the recorded Job has ended");
        assert!(
            !ended.settled(Some("c")),
            "the recorded Job is not listed (deleted while it may still run)"
        );
        let busy = listing(vec![job("a", true), job("b", false)]);
        assert!(!busy.settled(None), "a Job still runs");
        assert!(!busy.settled(Some("a")));
        assert!(listing(vec![]).settled(None));
    }
}
