//! Values that must never reach a log line, an API answer or a page.

use std::fmt;

use subtle::ConstantTimeEq;

/// A secret value: a token, a password, a webhook secret.
///
/// `Debug` and `Display` print `[redacted]`; the only way to the bytes is [`Secret::expose`],
/// so every use of the real value is a visible, greppable call. How a secret is written in
/// the config file (`env:NAME`, `file:/path`) is the config's business.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares with `candidate` in time that depends only on the lengths, so a caller probing
    /// a webhook token cannot learn it byte by byte from response times.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        self.0.as_bytes().ct_eq(candidate).into()
    }
}

/// Whether `candidate` is one of `secrets` (a rotation may configure several). Every one is
/// compared, so the time taken does not tell which matched.
pub fn matches_any(secrets: &[Secret], candidate: &[u8]) -> bool {
    secrets
        .iter()
        .fold(false, |matched, secret| matched | secret.matches(candidate))
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?} {secret}"), "[redacted] [redacted]");
    }

    #[test]
    fn comparison_is_exact() {
        let secret = Secret::new("abc");
        assert!(secret.matches(b"abc"));
        assert!(!secret.matches(b"abd"));
        assert!(!secret.matches(b"ab"));
        assert!(!secret.matches(b""));
    }
}
