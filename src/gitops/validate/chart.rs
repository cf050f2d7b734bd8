//! Helm charts, checked as charts. A chart's `templates/` are Go templates, not YAML: they
//! are not parsed (Helm renders them; a chart's own CI lints them). Its `Chart.yaml` must
//! carry what Helm refuses to load a chart without, and its values files must parse.

use super::document::Node;
use crate::pipeline::Diagnostic;

/// Where a file sits in a chart, for a path relative to the chart's root.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ChartFile {
    Manifest,
    Template,
    /// Plain manifests Helm installs before the templates, never templated themselves.
    Crd,
    /// Values, `values.schema.json`-adjacent YAML, chart-testing values under `ci/`.
    Values,
}

pub(super) fn chart_file(inside: &str) -> ChartFile {
    match inside {
        "Chart.yaml" => ChartFile::Manifest,
        _ if inside.starts_with("templates/") => ChartFile::Template,
        _ if inside.starts_with("crds/") => ChartFile::Crd,
        _ => ChartFile::Values,
    }
}

/// Checks a parsed `Chart.yaml` as Helm loads it: `apiVersion` v2 or v1 (none is read as v1,
/// as Helm 2 charts were written), a `name`, a SemVer `version`.
pub(super) fn check_chart_yaml(relative: &str, documents: &[Node]) -> Vec<Diagnostic> {
    let mut findings = Vec::new();
    let Some(chart) = documents.iter().find(|d| d.is_mapping()) else {
        findings.push(Diagnostic::new(
            relative,
            1,
            1,
            "`Chart.yaml` must be a mapping with `apiVersion`, `name` and `version`",
        ));
        return findings;
    };
    let at =
        |node: &Node, message: String| Diagnostic::new(relative, node.line, node.column, message);
    match chart.get("apiVersion") {
        None => {}
        Some(v) if matches!(v.as_str(), Some("v1" | "v2")) => {}
        Some(v) => findings.push(at(v, "chart `apiVersion` must be v2 or v1".into())),
    }
    match chart.get("name") {
        Some(name) if name.as_str().is_some_and(|n| !n.is_empty()) => {}
        Some(name) => findings.push(at(name, "chart `name` must be a non-empty string".into())),
        None => findings.push(at(chart, "chart has no `name`".into())),
    }
    match chart.get("version") {
        None => findings.push(at(chart, "chart has no `version`".into())),
        Some(version) => match version.as_str() {
            Some(text) if is_semver(text) => {}
            Some(text) => findings.push(at(
                version,
                format!("chart version `{text}` is not a SemVer version"),
            )),
            None => findings.push(at(
                version,
                "chart `version` must be a SemVer string such as \"1.2.3\"".into(),
            )),
        },
    }
    findings
}

/// SemVer as Helm reads it: `1.2.3`, with an optional `v`, missing minor or patch parts,
/// a pre-release and build metadata.
fn is_semver(text: &str) -> bool {
    let text = text.strip_prefix('v').unwrap_or(text);
    let (rest, build) = match text.split_once('+') {
        Some((rest, build)) => (rest, Some(build)),
        None => (text, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (rest, None),
    };
    let identifiers_ok = |part: Option<&str>| {
        part.is_none_or(|part| {
            part.split('.').all(|id| {
                !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
        })
    };
    let numbers: Vec<&str> = core.split('.').collect();
    (1..=3).contains(&numbers.len())
        && numbers
            .iter()
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        && identifiers_ok(pre)
        && identifiers_ok(build)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semver_as_helm_reads_it() {
        for good in [
            "1.2.3",
            "v1.2.3",
            "0.1.0-rc.1",
            "1.2",
            "2",
            "1.0.0+build.5",
            "1.0.0-a-b+c",
            "1.0.0+build-1",
        ] {
            assert!(is_semver(good), "{good}");
        }
        for bad in [
            "",
            "latest",
            "1.2.3.4",
            "1..2",
            "1.2.3-",
            "1.2.3+",
            "x1.2",
            "1.2.3-a..b",
        ] {
            assert!(!is_semver(bad), "{bad}");
        }
    }
}
