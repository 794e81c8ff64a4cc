//! Talking to PostgreSQL: connection options (URL, libpq environment, TLS) and quoting.
pub mod connect;

pub use connect::{ConnectError, ConnectOptions, SslMode};

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
