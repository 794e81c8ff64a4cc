//! Generated passwords: from a CSPRNG, never printed, and set on roles only as SCRAM verifiers.

use std::fmt;

use rand::RngExt;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};

/// Length of generated passwords: 40 alphanumerics is about 238 bits, and needs no escaping in
/// URIs, .pgpass files or shells.
pub const LENGTH: usize = 40;

/// A password. Debug and Display never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn generate() -> Password {
        Password(
            rand::rng()
                .sample_iter(Alphanumeric)
                .take(LENGTH)
                .map(char::from)
                .collect(),
        )
    }

    /// A password that already exists (read from its Secret).
    pub fn from_existing(value: impl Into<String>) -> Password {
        Password(value.into())
    }

    /// The plaintext, for the Secret and for logging in; nowhere else.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The SCRAM-SHA-256 verifier PostgreSQL stores, computed here with a fresh salt so the
    /// plaintext never reaches the server or its statement log.
    pub fn scram_verifier(&self) -> String {
        postgres_protocol::password::scram_sha_256(self.0.as_bytes())
    }

    /// A one-way fingerprint of (role, password), kept in the ownership catalog to tell whether
    /// a role still has the password its Secret holds without reading pg_authid (which a
    /// non-superuser admin cannot) and without logging in as every role on every pass.
    pub fn fingerprint(&self, role: &str) -> String {
        let mut h = Sha256::new();
        h.update(b"servicedb-password-v1\0");
        h.update(role.as_bytes());
        h.update(b"\0");
        h.update(self.0.as_bytes());
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_are_long_random_and_hidden() {
        let a = Password::generate();
        let b = Password::generate();
        assert_eq!(a.expose().len(), LENGTH);
        assert!(a.expose().chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
        assert!(!format!("{a:?}").contains(a.expose()));
    }

    #[test]
    fn verifier_is_scram_and_salted() {
        let p = Password::from_existing("secret");
        let v1 = p.scram_verifier();
        assert!(v1.starts_with("SCRAM-SHA-256$4096:"));
        assert!(!v1.contains("secret"));
        assert_ne!(v1, p.scram_verifier(), "a fresh salt each time");
    }

    #[test]
    fn fingerprint_depends_on_role_and_password() {
        let p = Password::from_existing("secret");
        assert_eq!(p.fingerprint("a"), p.fingerprint("a"));
        assert_ne!(p.fingerprint("a"), p.fingerprint("b"));
        assert_ne!(
            p.fingerprint("a"),
            Password::from_existing("other").fingerprint("a")
        );
        assert_eq!(p.fingerprint("a").len(), 64);
    }
}
