//! Talking to PostgreSQL: connection options (URL, libpq environment, TLS) and quoting.
pub mod class;
pub mod connect;
pub mod ident;

pub use class::{ErrorClass, classify};
pub use connect::{ConnectError, ConnectOptions, SslMode};
pub use ident::{Ident, IdentError, quote_literal};

/// The message of a PostgreSQL error with its detail and hint, without the "db error:" noise.
pub fn describe_pg(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{}: {}", db.severity(), db.message());
            if let Some(d) = db.detail() {
                s.push_str(&format!(" (DETAIL: {d})"));
            }
            if let Some(h) = db.hint() {
                s.push_str(&format!(" (HINT: {h})"));
            }
            s
        }
        None => {
            let mut s = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(inner) = source {
                s.push_str(&format!(": {inner}"));
                source = inner.source();
            }
            s
        }
    }
}

/// Quotes an identifier for SQL text: always quoted, inner quotes doubled, so no name can end
/// the identifier early.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    #[test]
    fn quote_ident_doubles_quotes() {
        assert_eq!(super::quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(super::quote_ident("public"), "\"public\"");
    }
}
