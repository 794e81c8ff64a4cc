//! servicedb: a PostgreSQL database (and roles, Secrets, migrations) per service and per tenant.
#![forbid(unsafe_code)]

pub mod api;
pub mod budget;
pub mod cli;
pub mod controller;
pub mod dev;
pub mod embedded;
pub mod migrate;
pub mod naming;
pub mod password;
pub mod pg;
pub mod provision;
pub mod secret;
pub mod service;
