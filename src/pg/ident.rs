//! Identifiers and literals that quote themselves, so no SQL is built by pasting raw values.

use std::fmt;

/// A PostgreSQL identifier (database, role, schema, extension name). It is always written
/// double-quoted, so any character is safe; the names themselves are validated where they enter
/// (the API validation), and this type only guards what PostgreSQL itself would reject.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ident(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a usable PostgreSQL name: 1 to 63 bytes, no NUL")]
pub struct IdentError(pub String);

impl Ident {
    pub fn new(name: impl Into<String>) -> Result<Ident, IdentError> {
        let name = name.into();
        if name.is_empty() || name.len() > 63 || name.contains('\0') {
            return Err(IdentError(name));
        }
        Ok(Ident(name))
    }

    /// The bare name, for bind parameters and catalog comparisons.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Ident {
    /// The quoted form, for SQL text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&super::quote_ident(&self.0))
    }
}

/// A string literal for SQL text where a bind parameter cannot be used (utility statements such
/// as `ALTER ROLE ... PASSWORD`), quoted like PostgreSQL's `quote_literal`: the `E''` form when
/// there is a backslash, so the result means the same whatever `standard_conforming_strings` is.
pub fn quote_literal(value: &str) -> String {
    let doubled = value.replace('\'', "''");
    if value.contains('\\') {
        format!("E'{}'", doubled.replace('\\', "\\\\"))
    } else {
        format!("'{doubled}'")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_always_quoted() {
        assert_eq!(Ident::new("orders").unwrap().to_string(), "\"orders\"");
        let hostile = Ident::new("x\"; DROP DATABASE y; --").unwrap();
        assert_eq!(hostile.to_string(), "\"x\"\"; DROP DATABASE y; --\"");
        assert!(Ident::new("").is_err());
        assert!(Ident::new("a".repeat(64)).is_err());
        assert!(Ident::new("a".repeat(63)).is_ok());
        assert!(Ident::new("a\0b").is_err());
    }

    #[test]
    fn literals_escape_quotes_and_backslashes() {
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("a\\'b"), "E'a\\\\''b'");
        assert_eq!(quote_literal(""), "''");
    }
}
