//! The fleet rollout of a PerTenant ServiceDatabase: one decision-maker (the ServiceDatabase
//! controller) says which tenant databases may run their migration now, and records it in
//! `status.rollout`; the Tenant controller starts only what that decision admits. Pure:
//! [`decide`] turns the tenants' migration states into the decision, [`fleet`] counts the
//! tenants' statuses into `status.tenants`; [`fanout`] says which Tenants a change of the
//! decision concerns.
//!
//! Semantics (CONTROLLER-NOTES "Fleet rollout"): canaries (`servicedb.io/canary=true`) first,
//! all of which must succeed before any other tenant starts; then the rest in name order; at
//! most `maxParallel` Jobs at once, each migrating up to `batchSize` tenants; more than
//! `maxFailures` failures (or any failed canary) pause the rollout until the inputs or the
//! `servicedb.io/resume` annotation change. Fresh tenant databases (never migrated) go
//! straight to the target, outside the rollout's gates. With `batchSize` above 1 the
//! ServiceDatabase itself starts batch Jobs ([`batch_jobs`]), holding their tenants until
//! each has recorded its outcome ([`batches`]); the Tenant controller then reports its own
//! line of the batch and never starts a Job of its own for a rollout.
pub mod batch_jobs;
pub mod batches;
pub mod cache;
pub mod decide;
pub mod fanout;
pub mod fleet;
pub mod watch;
pub mod write;

pub use decide::{
    Attempt, Decision, Outcome, Settings, TenantMigration, TenantRecord, TenantState, classify,
    decide,
};
pub use fleet::{summarize, tenant_migrations};
pub use watch::{fleet_trigger, services_of};
pub use write::{Fleet, FleetState, ROLLOUT_PAUSED, assess, newly_paused, status_patch};
