//! Secret values: how they are written in the config, and how they are kept from leaking.

use std::fmt;

use serde::{Deserialize, Deserializer};
use subtle::ConstantTimeEq;

/// A value that must never reach a log line, an API answer or a page.
///
/// `Debug` and `Display` print `[redacted]`; the only way to the bytes is [`Secret::expose`],
/// so every use of the real value is a visible, greppable call.
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

/// Where a secret's value comes from, as written in the config file.
///
/// `env:NAME` and `file:/path` keep the value itself out of the file, so the file can be
/// committed or mounted from a ConfigMap while the values come from a Secret.
#[derive(Debug, PartialEq, Eq)]
enum SecretSource<'a> {
    Literal(&'a str),
    Env(&'a str),
    File(&'a str),
}

impl<'a> SecretSource<'a> {
    fn parse(written: &'a str) -> Self {
        if let Some(name) = written.strip_prefix("env:") {
            Self::Env(name)
        } else if let Some(path) = written.strip_prefix("file:") {
            Self::File(path)
        } else {
            Self::Literal(written)
        }
    }

    fn resolve(self) -> Result<String, String> {
        match self {
            Self::Literal(value) => Ok(value.to_owned()),
            Self::Env(name) => {
                std::env::var(name).map_err(|_| format!("environment variable `{name}` is not set"))
            }
            Self::File(path) => std::fs::read_to_string(path)
                // Files written by editors and `kubectl create secret` end in a newline that is
                // not part of the secret.
                .map(|text| text.trim_end_matches(['\r', '\n']).to_owned())
                .map_err(|err| format!("cannot read secret file `{path}`: {err}")),
        }
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let written = String::deserialize(deserializer)?;
        SecretSource::parse(&written)
            .resolve()
            .map(Secret)
            .map_err(serde::de::Error::custom)
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
    fn written_forms_are_told_apart() {
        assert_eq!(SecretSource::parse("env:TOKEN"), SecretSource::Env("TOKEN"));
        assert_eq!(
            SecretSource::parse("file:/run/s"),
            SecretSource::File("/run/s")
        );
        assert_eq!(SecretSource::parse("plain"), SecretSource::Literal("plain"));
    }

    #[test]
    fn file_secret_drops_the_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cret\n").unwrap();
        let written = format!("file:{}", path.display());
        assert_eq!(SecretSource::parse(&written).resolve().unwrap(), "s3cret");
    }

    #[test]
    fn missing_env_var_is_named() {
        let err = SecretSource::parse("env:GANTRY_TEST_SURELY_UNSET").resolve();
        assert_eq!(
            err.unwrap_err(),
            "environment variable `GANTRY_TEST_SURELY_UNSET` is not set"
        );
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
