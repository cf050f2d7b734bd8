//! The `validate` stage on small config repos: each kind of finding at its location, and a
//! clean repo with none.

use std::path::Path;

use gantry::gitops::validate::check_tree;
use gantry::pipeline::Pattern;

fn write(root: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

fn findings(root: &Path, globs: &[&str]) -> (usize, Vec<String>) {
    let patterns: Vec<Pattern> = globs.iter().map(|g| Pattern::new(g).unwrap()).collect();
    let report = check_tree(root, &patterns.into()).unwrap();
    (
        report.files_checked,
        report.findings.iter().map(ToString::to_string).collect(),
    )
}

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  replicas: 2
";

#[test]
fn a_clean_config_repo_has_no_findings() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            ("apps/web/base/deployment.yaml", DEPLOYMENT),
            (
                "apps/web/base/service.yaml",
                "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: shop\n",
            ),
            (
                "apps/web/base/kustomization.yaml",
                "resources:\n  - deployment.yaml\n  - service.yaml\n",
            ),
            // The overlay patches the same Deployment: another folder, so no clash.
            ("apps/web/overlays/dev/patch.yaml", DEPLOYMENT),
            (
                "apps/web/overlays/dev/kustomization.yaml",
                "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../../base\n  - https://github.com/acme/shared//base?ref=v1\npatches:\n  - path: patch.yaml\nimages:\n  - name: web\n    newTag: abc\n",
            ),
            (
                "apps/web/values.yaml",
                "# Helm values are plain YAML\nimage:\n  tag: \"1.0\"\n",
            ),
            (
                "apps/web/all.yaml",
                "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n",
            ),
            ("README.md", "not checked"),
        ],
    );
    let (checked, found) = findings(dir.path(), &["apps/**/*.yaml"]);
    assert_eq!(checked, 7);
    assert_eq!(found, Vec::<String>::new());
}

#[test]
fn each_kind_of_finding_is_reported_at_its_location() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            ("deploy/broken.yaml", "apiVersion: v1\nkind: [\n"),
            (
                "deploy/dupkey.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  name: b\n",
            ),
            (
                "deploy/noapi.yaml",
                "kind: Service\nmetadata:\n  name: web\n",
            ),
            (
                "deploy/nokind.yaml",
                "apiVersion: v1\nmetadata:\n  name: web\n",
            ),
            (
                "deploy/noname.yaml",
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  labels: {app: web}\n",
            ),
            ("deploy/web.yaml", DEPLOYMENT),
            (
                "deploy/web-again.yaml",
                &format!("# same object\n{DEPLOYMENT}"),
            ),
            (
                "deploy/kustomization.yaml",
                "resources:\n  - web.yaml\n  - missing.yaml\n  - ../../../etc\n",
            ),
        ],
    );
    let (checked, found) = findings(dir.path(), &["deploy/*.yaml"]);
    assert_eq!(checked, 8);
    assert_eq!(
        found,
        [
            "deploy/broken.yaml:2:7: unclosed bracket '['",
            "deploy/dupkey.yaml:5:3: duplicate key `name`",
            "deploy/kustomization.yaml:3:5: `missing.yaml` does not exist (looked for deploy/missing.yaml)",
            "deploy/kustomization.yaml:4:5: `../../../etc` points outside the repository",
            "deploy/noapi.yaml:1:1: Kubernetes document has no `apiVersion`",
            "deploy/nokind.yaml:1:1: Kubernetes document has no `kind`",
            "deploy/noname.yaml:4:3: Deployment has no `metadata.name`",
            "deploy/web.yaml:4:9: Deployment `web` in namespace `shop` is already defined at deploy/web-again.yaml:5:9",
        ]
    );
}

#[test]
fn an_alias_bomb_is_refused_fast() {
    let dir = tempfile::tempdir().unwrap();
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for level in 1..9u8 {
        let prev = (b'a' + level - 1) as char;
        let name = (b'a' + level) as char;
        bomb.push_str(&format!(
            "{name}: &{name} [{}]\n",
            vec![format!("*{prev}"); 10].join(", ")
        ));
    }
    write(dir.path(), &[("bomb.yaml", &bomb)]);
    let started = std::time::Instant::now();
    let (_, found) = findings(dir.path(), &["*.yaml"]);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("bomb.yaml:") && found[0].contains("refused"),
        "{found:?}"
    );
}
