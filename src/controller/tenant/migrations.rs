//! The tenant database's schema: the seam where migration Jobs plug in.
//!
//! Today no Job runs for a tenant database, so a service with migrations leaves its tenant
//! databases `NotMigrated` (MigrationsApplied=Unknown, never Ready). With Jobs, this step
//! becomes: build the service's `MigrationTarget` for this tenant's database (its layout,
//! its `<name>-migrator-<tenant>` Secret), start its Job when the database is fresh or the
//! ServiceDatabase's `status.rollout.admitted` names the tenant for the current inputs
//! hash, read `flyway_schema_history` when it ends, and report the applied version and the
//! attempt (`rollout::TenantRecord`) in the Tenant's status.

use super::services::has_migrations;
use super::status::DbState;
use crate::api::ServiceDatabase;

/// The state of a provisioned tenant database, as far as its schema goes.
pub fn schema_state(sdb: &ServiceDatabase) -> DbState {
    if has_migrations(sdb) {
        DbState::NotMigrated
    } else {
        DbState::Ready
    }
}
