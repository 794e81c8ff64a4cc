//! servicedb: a PostgreSQL database (and roles, Secrets, migrations) per service and per tenant.
#![forbid(unsafe_code)]

pub mod cli;
pub mod embedded;
pub mod migrate;
pub mod pg;
