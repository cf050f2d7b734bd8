//! `matrix:` on a stage: one written stage becomes one stage per combination of its axes'
//! values, named `test (rust=1.80, db=pg16)`, with `${matrix.AXIS}` replaced in its `image`,
//! `run` and `env`, and `MATRIX_<AXIS>` in its environment.

use std::collections::BTreeMap;

use serde_saphyr::Spanned;

use super::check::Findings;
use super::file::{MatrixFile, Scalar};
use super::nearest;

/// Most stages one matrix expands to.
pub const MAX_COMBINATIONS: usize = 256;
/// Longest axis name and value: they end up in stage names.
const MAX_TEXT_LEN: usize = 64;

/// One combination: each axis with its value, in the order the axes are written.
pub type Combination = Vec<(String, String)>;

/// The combinations `matrix` asks for, in order: the product of the axes (the first axis
/// varying slowest) without the excluded ones, then the included ones. Empty when the
/// matrix is broken (its findings say why).
pub(super) fn combinations(
    findings: &mut Findings,
    matrix: &Spanned<MatrixFile>,
) -> Vec<Combination> {
    let errors_before = findings.list.len();
    let written = &matrix.value;
    if written.axes.is_empty() {
        findings.at(matrix, "`matrix` names no axis");
        return Vec::new();
    }
    let mut axes: Vec<(&str, Vec<&str>)> = Vec::with_capacity(written.axes.len());
    for (axis, values) in &written.axes {
        if !is_axis_name(axis) {
            findings.at(
                values,
                format!(
                    "matrix axis `{axis}` must be 1 to {MAX_TEXT_LEN} lowercase letters, digits \
                     and `_`, starting with a letter"
                ),
            );
        }
        if values.value.is_empty() {
            findings.at(values, format!("matrix axis `{axis}` lists no value"));
        }
        let mut seen: Vec<&str> = Vec::with_capacity(values.value.len());
        for value in &values.value {
            check_value(findings, value);
            if seen.contains(&value.value.0.as_str()) {
                findings.at(
                    value,
                    format!("`{}` is listed twice in axis `{axis}`", value.value.0),
                );
            }
            seen.push(&value.value.0);
        }
        axes.push((axis, seen));
    }
    let product = axes.iter().fold(1usize, |count, (_, values)| {
        count.saturating_mul(values.len())
    });
    if product.saturating_add(written.include.len()) > MAX_COMBINATIONS {
        findings.at(
            matrix,
            format!(
                "the matrix expands to {} stages; a matrix is limited to {MAX_COMBINATIONS}",
                product.saturating_add(written.include.len())
            ),
        );
    }
    let names: Vec<&str> = axes.iter().map(|(axis, _)| *axis).collect();
    for entry in written.exclude.iter().chain(&written.include) {
        for (axis, value) in &entry.value {
            check_value(findings, value);
            if !names.contains(&axis.as_str()) {
                let hint = nearest(axis, names.iter().copied())
                    .map(|near| format!("; did you mean `{near}`?"))
                    .unwrap_or_default();
                findings.at(value, format!("the matrix has no axis `{axis}`{hint}"));
            }
        }
    }
    for entry in &written.include {
        let missing: Vec<&str> = names
            .iter()
            .copied()
            .filter(|axis| !entry.value.contains_key(*axis))
            .collect();
        if !missing.is_empty() {
            findings.at(
                entry,
                format!(
                    "an `include` entry names every axis; this one lacks {}",
                    missing
                        .iter()
                        .map(|axis| format!("`{axis}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
    }
    if findings.list.len() > errors_before {
        return Vec::new();
    }

    let mut all: Vec<Combination> = vec![Vec::new()];
    for (axis, values) in &axes {
        all = all
            .into_iter()
            .flat_map(|combination| {
                values.iter().map(move |value| {
                    let mut longer = combination.clone();
                    longer.push((axis.to_string(), value.to_string()));
                    longer
                })
            })
            .collect();
    }
    all.retain(|combination| {
        !written
            .exclude
            .iter()
            .any(|entry| agrees(combination, &entry.value))
    });
    for entry in &written.include {
        let combination: Combination = names
            .iter()
            .map(|axis| (axis.to_string(), entry.value[*axis].value.0.clone()))
            .collect();
        if !all.contains(&combination) {
            all.push(combination);
        }
    }
    if all.is_empty() {
        findings.at(matrix, "the matrix excludes every combination");
    }
    all
}

/// Whether `combination` has every value `partial` names.
fn agrees(combination: &Combination, partial: &BTreeMap<String, Spanned<Scalar>>) -> bool {
    partial.iter().all(|(axis, value)| {
        combination
            .iter()
            .any(|(name, have)| name == axis && *have == value.value.0)
    })
}

fn is_axis_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_TEXT_LEN
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Values end up in stage names, container names and scripts: a version, a platform or a
/// name, nothing a shell or a page would read as more.
fn check_value(findings: &mut Findings, value: &Spanned<Scalar>) {
    let text = &value.value.0;
    let valid = !text.is_empty()
        && text.len() <= MAX_TEXT_LEN
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':' | '+'));
    if !valid {
        findings.at(
            value,
            format!(
                "matrix value `{text}` must be 1 to {MAX_TEXT_LEN} letters, digits, `.`, `_`, \
                 `-`, `/`, `:` or `+`"
            ),
        );
    }
}

/// The name of `base`'s stage for `combination`: `test (rust=1.80, db=pg16)`.
pub fn stage_name(base: &str, combination: &Combination) -> String {
    if combination.is_empty() {
        return base.to_owned();
    }
    let values: Vec<String> = combination
        .iter()
        .map(|(axis, value)| format!("{axis}={value}"))
        .collect();
    format!("{base} ({})", values.join(", "))
}

/// `text` with each `${matrix.AXIS}` replaced by the combination's value; an axis the
/// combination lacks is an error (a stage without `matrix` has none).
pub fn substitute(text: &str, combination: &Combination) -> Result<String, String> {
    const OPEN: &str = "${matrix.";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(OPEN) {
        // `$${matrix.x}` is the literal text.
        if rest[..at].ends_with('$') {
            out.push_str(&rest[..at + OPEN.len()]);
            rest = &rest[at + OPEN.len()..];
            continue;
        }
        out.push_str(&rest[..at]);
        let after = &rest[at + OPEN.len()..];
        let Some(end) = after.find('}') else {
            return Err(format!("`{OPEN}` without a closing `}}`"));
        };
        let axis = &after[..end];
        match combination.iter().find(|(name, _)| name == axis) {
            Some((_, value)) => out.push_str(value),
            None if combination.is_empty() => {
                return Err(format!(
                    "`${{matrix.{axis}}}` is used, but the stage has no `matrix`"
                ));
            }
            None => {
                let hint = nearest(axis, combination.iter().map(|(name, _)| name.as_str()))
                    .map(|near| format!("; did you mean `${{matrix.{near}}}`?"))
                    .unwrap_or_default();
                return Err(format!("the matrix has no axis `{axis}`{hint}"));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `MATRIX_<AXIS>` for each axis of the combination.
pub fn environment(combination: &Combination) -> Vec<(String, String)> {
    combination
        .iter()
        .map(|(axis, value)| {
            (
                format!("MATRIX_{}", axis.to_ascii_uppercase()),
                value.clone(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn combination(pairs: &[(&str, &str)]) -> Combination {
        pairs
            .iter()
            .map(|(a, v)| (a.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn names_and_substitutions_follow_the_axes() {
        let c = combination(&[("rust", "1.80"), ("db", "pg16")]);
        assert_eq!(stage_name("test", &c), "test (rust=1.80, db=pg16)");
        assert_eq!(
            substitute("cargo +${matrix.rust} test # ${matrix.db}", &c).unwrap(),
            "cargo +1.80 test # pg16"
        );
        assert_eq!(
            substitute("$${matrix.rust}", &c).unwrap(),
            "$${matrix.rust}"
        );
        assert_eq!(
            substitute("${matrix.rsut}", &c).unwrap_err(),
            "the matrix has no axis `rsut`; did you mean `${matrix.rust}`?"
        );
        assert!(
            substitute("${matrix.rust}", &Vec::new())
                .unwrap_err()
                .contains("has no `matrix`")
        );
        assert_eq!(
            environment(&c),
            [
                ("MATRIX_RUST".to_owned(), "1.80".to_owned()),
                ("MATRIX_DB".to_owned(), "pg16".to_owned())
            ]
        );
    }
}
