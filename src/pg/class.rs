//! Whether a PostgreSQL failure is worth retrying: the controller backs off on transient ones
//! and stalls with a condition on permanent ones; `servicedb wait` gives up at once on the
//! latter instead of retrying until its timeout.

use super::ConnectError;

/// How a failure should be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ErrorClass {
    /// May go away by itself: retry with backoff (connection refused or reset, server
    /// shutting down, too many connections, serialization failure, timeouts).
    Transient,
    /// Will not change until someone changes something (wrong password, missing database,
    /// permission denied, syntax): report it and wait for a change.
    Permanent,
}

/// The class of a SQLSTATE.
pub fn class_of_sqlstate(code: &str) -> ErrorClass {
    match code {
        // admin_shutdown, crash_shutdown, cannot_connect_now, query_canceled (timeouts),
        // serialization_failure, deadlock_detected, lock_not_available, idle-session timeout
        "57P01" | "57P02" | "57P03" | "57P05" | "57014" | "40001" | "40P01" | "55P03" | "25P03" => {
            ErrorClass::Transient
        }
        // connection_exception and insufficient_resources (53300 too_many_connections)
        c if c.starts_with("08") || c.starts_with("53") => ErrorClass::Transient,
        _ => ErrorClass::Permanent,
    }
}

/// The class of a tokio-postgres error: a server error by its SQLSTATE; anything without one
/// (refused, reset, closed, timed out) is transient.
pub fn classify(e: &tokio_postgres::Error) -> ErrorClass {
    match e.code() {
        Some(code) => class_of_sqlstate(code.code()),
        None => ErrorClass::Transient,
    }
}

/// The SQLSTATE, when the server sent one.
pub fn sqlstate(e: &tokio_postgres::Error) -> Option<&str> {
    e.code().map(|c| c.code())
}

impl ConnectError {
    pub fn class(&self) -> ErrorClass {
        match self {
            ConnectError::Connect { source, .. } => classify(source),
            ConnectError::Invalid(_) | ConnectError::Ca { .. } | ConnectError::Tls(_) => {
                ErrorClass::Permanent
            }
        }
    }

    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            ConnectError::Connect { source, .. } => sqlstate(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{ErrorClass::*, class_of_sqlstate};

    #[test]
    fn sqlstates_sort_into_classes() {
        for code in [
            "57P01", "53300", "40001", "08006", "08001", "57014", "40P01",
        ] {
            assert_eq!(class_of_sqlstate(code), Transient, "{code}");
        }
        for code in [
            "28P01", "28000", "3D000", "42501", "42P01", "42601", "0A000",
        ] {
            assert_eq!(class_of_sqlstate(code), Permanent, "{code}");
        }
    }
}
