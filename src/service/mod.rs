//! One service database (or one tenant's) from its resources to a provisioned database with
//! its Secrets: the flow shared by `servicedb dev` and the controller.
pub mod credentials;
pub mod layout;
pub mod migrations;
pub mod placement;
pub mod reconcile;
pub mod rotation;
pub mod server_spec;

pub use credentials::SecretStore;
pub use layout::{Layout, SecretKind, SecretLayout};
