//! Helpers shared by integration tests (`mod support;`).

pub mod kstatus;
pub mod kube;
pub mod migrate;
pub mod postgres;
pub mod provision;
