//! Image references (`registry/name:tag@digest`): reading them, checking what Gantry is asked
//! to write, and deciding when two names are the same repository.

/// An image reference split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub name: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("`{0}` is not an image name (lowercase letters, digits, `.`, `_`, `-`, `/`, `:port`)")]
    Name(String),
    #[error("`{0}` is not an image tag (letters, digits, `_`, `.`, `-`; at most 128)")]
    Tag(String),
    #[error("`{0}` is not an image digest (`algorithm:hex`, e.g. `sha256:…`)")]
    Digest(String),
}

/// Longest tag the OCI distribution spec allows.
const MAX_TAG_CHARS: usize = 128;

impl ImageRef {
    pub fn parse(text: &str) -> Result<Self, ReferenceError> {
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest)),
            None => (text, None),
        };
        // A colon after the last slash starts the tag; before it, it is a registry's port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(colon) => (
                &rest[..last_slash + colon],
                Some(&rest[last_slash + colon + 1..]),
            ),
            None => (rest, None),
        };
        check_name(name)?;
        if let Some(tag) = tag {
            check_tag(tag)?;
        }
        if let Some(digest) = digest {
            check_digest(digest)?;
        }
        Ok(Self {
            name: name.to_owned(),
            tag: tag.map(str::to_owned),
            digest: digest.map(str::to_owned),
        })
    }
}

pub fn check_name(name: &str) -> Result<(), ReferenceError> {
    let valid = !name.is_empty()
        && name.len() <= 255
        && name.split('/').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-:".contains(c))
                && part
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphanumeric())
        });
    // Upper case is only allowed in a registry host (the first part, with a dot or port).
    let repository = match name.split_once('/') {
        Some((host, rest)) if host.contains(['.', ':']) || host == "localhost" => rest,
        _ => name,
    };
    if valid && !repository.contains(':') && !repository.chars().any(|c| c.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(ReferenceError::Name(name.to_owned()))
    }
}

pub fn check_tag(tag: &str) -> Result<(), ReferenceError> {
    let valid = tag.len() <= MAX_TAG_CHARS
        && tag
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if valid {
        Ok(())
    } else {
        Err(ReferenceError::Tag(tag.to_owned()))
    }
}

pub fn check_digest(digest: &str) -> Result<(), ReferenceError> {
    let valid = digest.split_once(':').is_some_and(|(algorithm, hex)| {
        !algorithm.is_empty()
            && algorithm
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+._-".contains(c))
            && hex.len() >= 32
            && hex.chars().all(|c| c.is_ascii_hexdigit())
    });
    if valid {
        Ok(())
    } else {
        Err(ReferenceError::Digest(digest.to_owned()))
    }
}

/// Whether two names are one repository: `nginx`, `library/nginx` and
/// `docker.io/library/nginx` are.
pub fn same_repository(a: &str, b: &str) -> bool {
    normalise(a) == normalise(b)
}

fn normalise(name: &str) -> String {
    let name = name
        .strip_prefix("docker.io/")
        .or_else(|| name.strip_prefix("index.docker.io/"))
        .unwrap_or(name);
    match name.strip_prefix("library/") {
        Some(rest) if !rest.contains('/') => rest.to_owned(),
        _ => name.to_owned(),
    }
}

/// Whether YAML reads `value`, written plain, as that string (and not as a number, a
/// boolean, null, or something else). Conservative: when unsure, the caller quotes.
pub fn plain_is_string(value: &str) -> bool {
    let Some(first) = value.chars().next() else {
        return false;
    };
    let lower = value.to_ascii_lowercase();
    let special = [
        "true", "false", "yes", "no", "on", "off", "y", "n", "null", "~", ".inf", ".nan",
    ];
    let numeric = looks_numeric(value);
    (first.is_ascii_alphanumeric() || first == '/')
        && !special.contains(&lower.as_str())
        && !numeric
        && !value.contains(": ")
        && !value.contains(" #")
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:@+".contains(c))
}

/// YAML 1.1 and 1.2 numbers, as go-yaml (Helm, Kustomize) and PyYAML resolve them: ints
/// (decimal, `0x`, `0o`, `0b`, leading-zero octal, `_` separators, `1:30` sexagesimal)
/// and floats with one dot and an optional exponent.
fn looks_numeric(value: &str) -> bool {
    let unsigned = value.strip_prefix(['-', '+']).unwrap_or(value);
    let digits = |text: &str, radix: u32| {
        !text.is_empty() && text.chars().all(|c| c == '_' || c.is_digit(radix))
    };
    if let Some(rest) = unsigned
        .strip_prefix("0x")
        .or_else(|| unsigned.strip_prefix("0X"))
    {
        return digits(rest, 16);
    }
    if let Some(rest) = unsigned
        .strip_prefix("0o")
        .or_else(|| unsigned.strip_prefix("0b"))
    {
        return digits(rest, 8);
    }
    if unsigned.contains(':') {
        return unsigned.split(':').all(|part| digits(part, 10));
    }
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
        None => (unsigned, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some((whole, fraction)) => {
            (whole.is_empty() || digits(whole, 10))
                && (fraction.is_empty() || digits(fraction, 10))
                && !(whole.is_empty() && fraction.is_empty())
        }
        None => digits(mantissa, 10),
    };
    let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['-', '+']).unwrap_or(e), 10));
    mantissa_ok && exponent_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_at_the_right_colon() {
        let parsed = ImageRef::parse(
            "registry.example.com:5000/acme/web:1.2@sha256:0123456789abcdef0123456789abcdef",
        )
        .unwrap();
        assert_eq!(parsed.name, "registry.example.com:5000/acme/web");
        assert_eq!(parsed.tag.as_deref(), Some("1.2"));
        assert_eq!(
            parsed.digest.as_deref(),
            Some("sha256:0123456789abcdef0123456789abcdef")
        );
        let bare = ImageRef::parse("localhost:5000/web").unwrap();
        assert_eq!((bare.name.as_str(), bare.tag), ("localhost:5000/web", None));
    }

    #[test]
    fn shell_characters_are_not_names_tags_or_digests() {
        assert!(check_name("acme/web;rm -rf").is_err());
        assert!(check_name("acme/$(id)").is_err());
        assert!(check_name("Acme/web").is_err());
        assert!(check_tag("v1`id`").is_err());
        assert!(check_tag("-v1").is_err());
        assert!(check_tag(&"a".repeat(129)).is_err());
        assert!(check_digest("sha256:xyz").is_err());
        assert!(check_name("Registry.Example.com/acme/web").is_ok());
    }

    #[test]
    fn plain_values_that_yaml_would_retype_are_quoted() {
        for retyped in [
            "1.10", "1e3", "0x1F", "yes", "NO", "null", "12:30", "~", "-1", "1_000", "007", ".5",
        ] {
            assert!(!plain_is_string(retyped), "{retyped}");
        }
        for kept in [
            "v1.10",
            "1.10-alpine",
            "1.0.0",
            "2024.12.1",
            "sha256:abc",
            "main-3f2a1b",
            "a@sha256:00",
            "3f2a1b9",
        ] {
            assert!(plain_is_string(kept), "{kept}");
        }
    }

    #[test]
    fn docker_hub_names_are_one_repository() {
        assert!(same_repository("nginx", "docker.io/library/nginx"));
        assert!(same_repository("acme/web", "docker.io/acme/web"));
        assert!(!same_repository("acme/web", "acme/web2"));
    }
}
