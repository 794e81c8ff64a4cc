//! Flyway migration versions: `1`, `1.1`, `2_3` (underscore means dot), compared part by part
//! as integers with trailing zeros ignored.

use std::cmp::Ordering;
use std::fmt;

/// A migration version. Equality and ordering are numeric (`1 == 1.0 == 001`); `text` keeps what
/// the file said (with `_` turned into `.`), which is what goes into the history table.
#[derive(Debug, Clone)]
pub struct Version {
    text: String,
    /// Numeric parts as decimal digit strings without leading zeros, trailing zero parts removed;
    /// digit strings compare numerically without overflow for any length.
    parts: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid version {text:?}: a version is dot- or underscore-separated whole numbers, such as 1, 1.2 or 2_0_1"
)]
pub struct VersionError {
    pub text: String,
}

impl Version {
    pub fn parse(raw: &str) -> Result<Version, VersionError> {
        let text = raw.replace('_', ".");
        let err = || VersionError {
            text: raw.to_string(),
        };
        if text.is_empty() {
            return Err(err());
        }
        let mut parts = Vec::new();
        for part in text.split('.') {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err());
            }
            let trimmed = part.trim_start_matches('0');
            parts.push(if trimmed.is_empty() { "0" } else { trimmed }.to_string());
        }
        while parts.len() > 1 && parts.last().is_some_and(|p| p == "0") {
            parts.pop();
        }
        Ok(Version { text, parts })
    }

    /// The version as written (underscores as dots), as stored in the history table.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

fn cmp_digits(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let n = self.parts.len().max(other.parts.len());
        for i in 0..n {
            let a = self.parts.get(i).map_or("0", String::as_str);
            let b = other.parts.get(i).map_or("0", String::as_str);
            match cmp_digits(a, b) {
                Ordering::Equal => continue,
                o => return o,
            }
        }
        Ordering::Equal
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn compares_numerically_not_lexically() {
        assert!(v("1.1") < v("1.10"));
        assert!(v("2") < v("10"));
        assert!(v("1.9") < v("1.10"));
        assert!(v("1") < v("1.0.1"));
        assert!(v("99999999999999999999999") < v("100000000000000000000000"));
    }

    #[test]
    fn trailing_and_leading_zeros_do_not_matter_but_text_is_kept() {
        assert_eq!(v("1"), v("1.0"));
        assert_eq!(v("1"), v("001"));
        assert_eq!(v("1.0.0"), v("1"));
        assert_eq!(v("001").as_str(), "001");
        assert_eq!(v("2_1").as_str(), "2.1");
        assert_eq!(v("0"), v("0.0"));
    }

    #[test]
    fn rejects_malformed_versions() {
        for bad in ["", "1.", ".1", "1a", "1..2", "a", "1__2", "1.-2", " 1"] {
            assert!(Version::parse(bad).is_err(), "{bad:?} must be rejected");
        }
    }
}
