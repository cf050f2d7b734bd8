//! `${VAR}` references in `env`, build `tags` and `bump` values. Scripts in `run` are left
//! alone: the shell expands them there, from the same variables.

/// Variables every stage sees.
pub const BUILTIN_VARS: &[&str] = &[
    "CI",
    "GANTRY_EVENT",
    "GANTRY_REPO",
    "GANTRY_COMMIT_SHA",
    "GANTRY_BRANCH",
    "GANTRY_TAG",
    "GANTRY_PR_NUMBER",
    "GANTRY_RUN_ID",
    "GANTRY_WORKSPACE",
];

/// What a `build` stage hands to the stages after it: the image's name, its tag, and the
/// pushed manifest's digest (empty when the build did not push).
pub const IMAGE: &str = "GANTRY_IMAGE";
pub const IMAGE_TAG: &str = "GANTRY_IMAGE_TAG";
pub const IMAGE_DIGEST: &str = "GANTRY_IMAGE_DIGEST";
pub const IMAGE_VARS: &[&str] = &[IMAGE, IMAGE_TAG, IMAGE_DIGEST];

/// One piece of a string with references.
#[derive(Debug, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Var(&'a str),
}

/// Splits `text` into literal text and `${NAME}` references; `$${` is a literal `${`.
fn pieces(text: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        if rest[..at].ends_with('$') {
            // The escaping `$` stands for the literal one.
            pieces.push(Piece::Text(&rest[..at]));
            pieces.push(Piece::Text("{"));
            rest = &rest[at + 2..];
            continue;
        }
        pieces.push(Piece::Text(&rest[..at]));
        let after = &rest[at + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("`${{` without a closing `}}` in `{text}`"));
        };
        let name = &after[..end];
        let valid = name
            .chars()
            .enumerate()
            .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
        if name.is_empty() || !valid {
            return Err(format!(
                "`${{{name}}}` is not a variable reference; names are letters, digits and `_`"
            ));
        }
        pieces.push(Piece::Var(name));
        rest = &after[end + 1..];
    }
    pieces.push(Piece::Text(rest));
    Ok(pieces)
}

/// The variable names `text` refers to.
pub fn references(text: &str) -> Result<Vec<&str>, String> {
    Ok(pieces(text)?
        .into_iter()
        .filter_map(|piece| match piece {
            Piece::Var(name) => Some(name),
            Piece::Text(_) => None,
        })
        .collect())
}

/// Replaces every reference with its value; an unknown name is an error.
pub fn expand<'v>(text: &str, lookup: impl Fn(&str) -> Option<&'v str>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    for piece in pieces(text)? {
        match piece {
            Piece::Text(literal) => out.push_str(literal),
            Piece::Var(name) => match lookup(name) {
                Some(value) => out.push_str(value),
                None => return Err(format!("unknown variable `${{{name}}}`")),
            },
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(name: &str) -> Option<&'static str> {
        match name {
            "A" => Some("1"),
            "GANTRY_COMMIT_SHA" => Some("abc"),
            _ => None,
        }
    }

    #[test]
    fn references_are_expanded() {
        assert_eq!(
            expand("v${A}-${GANTRY_COMMIT_SHA}", lookup).unwrap(),
            "v1-abc"
        );
        assert_eq!(expand("plain", lookup).unwrap(), "plain");
        assert_eq!(expand("cost $5", lookup).unwrap(), "cost $5");
    }

    #[test]
    fn escaped_reference_stays_literal() {
        assert_eq!(expand("$${A}", lookup).unwrap(), "${A}");
        assert!(references("$${NOPE}").unwrap().is_empty());
    }

    #[test]
    fn malformed_and_unknown_references_are_errors() {
        assert_eq!(
            expand("${B}", lookup).unwrap_err(),
            "unknown variable `${B}`"
        );
        assert!(references("${A").unwrap_err().contains("without a closing"));
        assert!(
            references("${1X}")
                .unwrap_err()
                .contains("not a variable reference")
        );
        assert!(references("${A B}").is_err());
    }
}
