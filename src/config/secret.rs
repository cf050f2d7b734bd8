//! How secret values are written in the config: literally, `env:NAME` or `file:/path`.

use serde::{Deserialize, Deserializer};

use crate::domain::Secret;

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
            .map(Secret::new)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
