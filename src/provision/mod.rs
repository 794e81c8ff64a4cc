//! Making PostgreSQL match a service's database: observe the catalog, plan statements (pure),
//! execute them. Knows nothing of Kubernetes: the controller and `servicedb dev` both call it.
pub mod action;
pub mod catalog;
pub mod desired;
pub mod execute;
pub mod observe;
pub mod observed;
pub mod plan;
pub mod probe;
pub mod server;

pub use action::Action;
pub use desired::{Access, Claimant, DesiredDatabase, DesiredRole, RolePurpose};
pub use plan::Conflict;

/// Migration history tables (in `public`): apps may read them (`servicedb wait` does), never
/// change them, or leaked app credentials could make the next migration run re-apply data
/// migrations or block deploys.
pub const HISTORY_TABLES: [&str; 2] = ["flyway_schema_history", "servicedb_seed_history"];
