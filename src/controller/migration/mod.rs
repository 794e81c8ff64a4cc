//! Migration Jobs: one database's schema moved to its target version by a Kubernetes Job
//! that runs `servicedb migrate apply` with the owner's credentials, never two at once per
//! database, never again on inputs that failed.
//!
//! Pure decisions, separate from the calls that carry them out:
//! - [`inputs`]: what a Job runs with (database, migration files, target, retry annotation),
//!   its hash and the Job name that follows;
//! - [`job`]: the Job object (image, mounts, env from the migrator Secret, restricted Pod
//!   Security);
//! - [`failure`]: a failed Job's termination message as a sentence a person can act on;
//! - [`decide`]: from `status.schema`, the history table and the Job (if it still exists) to
//!   what happens next;
//! - [`observe`]: reading ConfigMaps, Jobs, Pods and the history table;
//! - [`outcome`]: what the step reports, for the status and the Events;
//! - [`step`]: the step a controller runs, for a [`MigrationTarget`].
//!
//! A [`MigrationTarget`] names one database, so the same step serves a Shared
//! ServiceDatabase and each tenant database of a PerTenant one.
pub mod batch_job;
pub mod decide;
pub mod failure;
pub mod inputs;
pub mod job;
pub mod listed;
pub mod observe;
pub mod outcome;
pub mod step;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use crate::api::MigrationsSpec;

pub use outcome::{Announcement, Outcome};
pub use step::{
    Admit, BatchOf, Gates, MigrationError, Prior, Seen, WAITING_FOR_ROLLOUT, reconcile,
    reconcile_admitted,
};

/// One database whose schema a migration Job moves.
#[derive(Debug, Clone, PartialEq)]
pub struct MigrationTarget {
    /// Where the Job, the ConfigMaps and the migrator Secret are.
    pub namespace: String,
    /// The Job's one (controller) owner: the ServiceDatabase, or the Tenant for a tenant
    /// database, so the Job goes with it.
    pub owner: OwnerReference,
    /// The ServiceDatabase's name: the head of the Job's name and its
    /// `servicedb.io/service-database` label.
    pub base_name: String,
    /// The tenant, for a tenant database of a PerTenant ServiceDatabase.
    pub tenant: Option<String>,
    /// The PostgreSQL database.
    pub database: String,
    /// The Secret with the owner role's credentials (`<name>-migrator[-<tenant>]`): the
    /// Job's only environment, and how the controller reads the history table.
    pub migrator_secret: String,
    pub migrations: MigrationsSpec,
    /// The `servicedb.io/retry` annotation's value: a new value runs failed inputs again.
    pub retry: Option<String>,
    /// This reconcile's provisioning pass has just seen the history table: reading it is
    /// then one statement (not an input: it says nothing of what to run).
    pub history_seen: bool,
}
