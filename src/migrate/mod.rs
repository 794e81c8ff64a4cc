//! The Flyway-compatible migration engine.
pub mod batch_report;
pub mod checksum;
pub mod effective;
pub mod engine;
pub mod history;
pub mod lock;
pub mod outcome;
pub mod placeholders;
pub mod plan;
pub mod source;
pub mod sql_split;
pub mod version;
