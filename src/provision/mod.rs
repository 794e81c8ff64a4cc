//! Making PostgreSQL match a service's database: observe the catalog, plan statements (pure),
//! execute them. Knows nothing of Kubernetes: the controller and `servicedb dev` both call it.
pub mod action;
pub mod catalog;
pub mod desired;
pub mod execute;
pub mod observe;
pub mod observed;
pub mod plan;
pub mod server;

pub use action::Action;
pub use desired::{Access, Claimant, DesiredDatabase, DesiredRole, RolePurpose};
pub use plan::Conflict;
