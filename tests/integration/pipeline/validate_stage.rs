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
    let report = report(root, globs);
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

fn report(root: &Path, globs: &[&str]) -> gantry::gitops::validate::Report {
    let patterns: Vec<Pattern> = globs.iter().map(|g| Pattern::new(g).unwrap()).collect();
    check_tree(root, &patterns.into()).unwrap()
}

#[test]
fn a_helm_chart_is_checked_as_a_chart() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            ("charts/web/Chart.yaml", "apiVersion: v3\nversion: latest\n"),
            ("charts/web/values.yaml", "image:\n  tag: a\n  tag: b\n"),
            // Go templates: not YAML, not parsed.
            (
                "charts/web/templates/deployment.yaml",
                "{{- if .Values.on }}\nmetadata:\n  name: {{ .Release.Name }}\n{{- end }}\n",
            ),
            ("charts/web/templates/tests/pod.yaml", "kind: [\n"),
            // Chart-testing values may look like objects: they are values.
            (
                "charts/web/ci/daemonset-values.yaml",
                "kind: DaemonSet\nmetadata: {}\n",
            ),
            // A chart's CRDs are installed as written: they are objects.
            (
                "charts/web/crds/widgets.yaml",
                "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  labels: {}\n",
            ),
            // No apiVersion: Helm reads a v1 chart, as Helm 2 wrote them.
            ("charts/old/Chart.yaml", "name: old\nversion: 0.1.0\n"),
        ],
    );
    let report = report(dir.path(), &["**/*.yaml"]);
    let found: Vec<String> = report.findings.iter().map(ToString::to_string).collect();
    assert_eq!(
        found,
        [
            "charts/web/Chart.yaml:1:1: chart has no `name`",
            "charts/web/Chart.yaml:1:13: chart `apiVersion` must be v2 or v1",
            "charts/web/Chart.yaml:2:10: chart version `latest` is not a SemVer version",
            "charts/web/crds/widgets.yaml:4:3: CustomResourceDefinition has no `metadata.name`",
            "charts/web/values.yaml:3:3: duplicate key `tag`",
        ]
    );
    assert_eq!((report.charts, report.templates_skipped), (2, 2));
}

#[test]
fn generated_names_and_client_side_configs_are_not_nameless_objects() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            (
                "hooks/migrate.yaml",
                "apiVersion: batch/v1\nkind: Job\nmetadata:\n  generateName: migrate-\n  annotations: {argocd.argoproj.io/hook: PreSync}\nspec: {}\n",
            ),
            (
                "ci/kind.yaml",
                "apiVersion: kind.x-k8s.io/v1alpha4\nkind: Cluster\nnodes: [{role: control-plane}]\n",
            ),
            (
                "ci/istio.yaml",
                "apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\nspec: {profile: minimal}\n",
            ),
            (
                "ci/kubeconfig.yaml",
                "apiVersion: v1\nkind: Config\nclusters: []\n",
            ),
            (
                "ci/skaffold.yaml",
                "apiVersion: skaffold/v4beta6\nkind: Config\nmetadata: {}\nbuild: {}\n",
            ),
            (
                "ci/audit.yaml",
                "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Metadata}]\n",
            ),
            (
                "ci/kubelet.yaml",
                "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n",
            ),
            (
                "ci/flux-plugin.yml",
                "apiVersion: schema.plugin.fluxcd.io/v1beta1\nkind: Config\n",
            ),
            (
                "ci/package.yaml",
                "apiVersion: kpt.dev/v1\nkind: Kptfile\nmetadata: {annotations: {}}\n",
            ),
            (
                "ci/prefix.yaml",
                "apiVersion: builtin\nkind: PrefixSuffixTransformer\nmetadata: {}\nprefix: a-\n",
            ),
            ("ci/workflow.yml", "name: ci\non: [push]\njobs: {}\n"),
            ("ci/values.yaml", "kind: DaemonSet\nreplicas: 2\n"),
            // A Flux Kustomization is a cluster object, unlike Kustomize's own.
            (
                "clusters/apps.yaml",
                "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  namespace: flux-system\nspec: {}\n",
            ),
            (
                "clusters/cm.yaml",
                "apiVersion: v1\nkind: ConfigMap\ndata: {a: b}\n",
            ),
            (
                "clusters/widget.yaml",
                "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  labels: {}\nspec: {}\n",
            ),
        ],
    );
    let report = report(dir.path(), &["**/*.yaml", "**/*.yml"]);
    let found: Vec<String> = report.findings.iter().map(ToString::to_string).collect();
    assert_eq!(
        found,
        [
            "clusters/apps.yaml:4:3: Kustomization has no `metadata.name`",
            "clusters/cm.yaml:1:1: ConfigMap has no `metadata.name`",
            "clusters/widget.yaml:4:3: Widget has no `metadata.name`",
        ]
    );
    assert_eq!(report.client_configs, 9);
}

const WEB: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n";
const SHOP: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n";

#[test]
fn overlays_are_judged_as_kustomize_renders_them() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            ("base/web.yaml", WEB),
            ("base/kustomization.yaml", "resources: [web.yaml]\n"),
            (
                "dev/kustomization.yaml",
                "resources: [../base]\nnamePrefix: dev-\n",
            ),
            (
                "prod/kustomization.yaml",
                "resources: [../base]\nnamePrefix: prod-\n",
            ),
            // Prefixes keep one base's objects apart.
            ("both/kustomization.yaml", "resources: [../dev, ../prod]\n"),
            // A file repeating its base's object.
            (
                "again/kustomization.yaml",
                "resources:\n  - ../base\n  - web.yaml\n",
            ),
            ("again/web.yaml", WEB),
            // Two bases sharing a third: Kustomize refuses the object the second time.
            ("plain/kustomization.yaml", "resources: [../base]\n"),
            (
                "diamond/kustomization.yaml",
                "resources:\n  - ../base\n  - ../plain\n",
            ),
            // One app's Namespace deleted by its overlay; the other's kept.
            ("cart/ns.yaml", SHOP),
            (
                "cart/kustomization.yaml",
                "resources: [ns.yaml]\npatches:\n  - patch: |-\n      apiVersion: v1\n      kind: Namespace\n      metadata:\n        name: shop\n      $patch: delete\n",
            ),
            ("shop/ns.yaml", SHOP),
            ("shop/kustomization.yaml", "resources: [ns.yaml]\n"),
            (
                "store/kustomization.yaml",
                "resources: [../cart, ../shop]\n",
            ),
            // A Namespace has no namespace, whatever the patch says; none means `default`.
            (
                "gone/kustomization.yaml",
                "resources: [../shop, ../base]\npatches:\n  - patch: |-\n      apiVersion: v1\n      kind: Namespace\n      metadata:\n        name: shop\n        namespace: elsewhere\n      $patch: delete\n  - patch: |-\n      apiVersion: apps/v1\n      kind: Deployment\n      metadata:\n        name: web\n        namespace: default\n      $patch: delete\n",
            ),
            (
                "regone/kustomization.yaml",
                "resources: [../gone, ../shop, ../plain]\n",
            ),
            // A transformer plugin may rename anything: what passes through it is not judged.
            (
                "renamed/kustomization.yaml",
                "resources: [../base]\ntransformers: [suffix.yaml]\n",
            ),
            (
                "renamed/suffix.yaml",
                "apiVersion: builtin\nkind: PrefixSuffixTransformer\nmetadata: {name: s}\nsuffix: -x\nfieldSpecs: [{path: metadata/name}]\n",
            ),
            (
                "mixed/kustomization.yaml",
                "resources: [../base, ../renamed]\n",
            ),
        ],
    );
    let (_, found) = findings(dir.path(), &["**/*.yaml"]);
    assert_eq!(
        found,
        [
            "again/web.yaml:4:9: Deployment `web` is already defined at base/web.yaml:4:9 \
             (both rendered by again/kustomization.yaml)",
            "diamond/kustomization.yaml:3:5: `../plain` brings Deployment `web` \
             (base/web.yaml:4:9) again, after `../base`; Kustomize refuses an object it \
             already has",
        ]
    );
}

#[test]
fn files_a_kustomization_leaves_out_are_not_judged_for_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            // The variant to use instead, kept beside the one in use.
            ("auth/kustomization.yaml", "resources: [policy.yaml]\n"),
            ("auth/policy.yaml", WEB),
            ("auth/policy.cloudflare.yaml", WEB),
            // Scaffolding patches not enabled yet, below a kustomization.
            ("auth/patches/a.yaml", WEB),
            ("auth/patches/b.yaml", WEB),
            // A plain folder is applied whole: both copies are.
            ("plain/a.yaml", WEB),
            ("plain/b.yaml", WEB),
            // A chart post-rendered by Kustomize names the chart's output.
            (
                "chart/Chart.yaml",
                "apiVersion: v2\nname: c\nversion: 1.0.0\n",
            ),
            ("chart/kustomization.yaml", "resources: [all.yaml]\n"),
        ],
    );
    let (_, found) = findings(dir.path(), &["**/*.yaml"]);
    assert_eq!(
        found,
        ["plain/b.yaml:4:9: Deployment `web` is already defined at plain/a.yaml:4:9"]
    );
}

#[test]
fn every_path_a_kustomization_names_must_be_there() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            ("base/web.yaml", WEB),
            ("base/kustomization.yaml", "resources: [web.yaml]\n"),
            ("empty/README.yaml", "a: b\n"),
            (
                "app/kustomization.yaml",
                "resources:\n  - ../base\n  - ../empty\ncomponents:\n  - ../base\npatches:\n  - path: replicas.yaml\nconfigMapGenerator:\n  - name: c\n    files: [app.conf=conf/app.conf]\n    envs: [.env]\n",
            ),
        ],
    );
    let (_, found) = findings(dir.path(), &["**/*.yaml"]);
    assert_eq!(
        found,
        [
            "app/kustomization.yaml:3:5: `../empty` is a directory without a kustomization.yaml",
            "app/kustomization.yaml:5:5: `../base` is not a Component: list it under `resources:`",
            "app/kustomization.yaml:7:11: `replicas.yaml` does not exist (looked for app/replicas.yaml)",
            "app/kustomization.yaml:10:13: `conf/app.conf` does not exist (looked for app/conf/app.conf)",
            "app/kustomization.yaml:11:12: `.env` does not exist (looked for app/.env)",
        ]
    );
}

/// A hostile repo's symbolic links lead nowhere: not to the runner's files (whose content a
/// finding could quote), not to an endless device.
#[test]
fn symbolic_links_out_of_the_checkout_are_not_followed() {
    let outside = tempfile::tempdir().unwrap();
    write(
        outside.path(),
        &[(
            "leak.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: s3cret\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: s3cret\n",
        )],
    );
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[(
            "app/kustomization.yaml",
            "resources:\n  - leak.yaml\n  - zero.yaml\n  - away/leak.yaml\npatches:\n  - path: zero.yaml\n",
        )],
    );
    let app = dir.path().join("app");
    std::os::unix::fs::symlink(outside.path().join("leak.yaml"), app.join("leak.yaml")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", app.join("zero.yaml")).unwrap();
    std::os::unix::fs::symlink(outside.path(), app.join("away")).unwrap();
    let started = std::time::Instant::now();
    let report = report(dir.path(), &["**/*.yaml"]);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let found: Vec<String> = report.findings.iter().map(ToString::to_string).collect();
    let outside = "points outside the repository (through a symbolic link)";
    assert_eq!(
        found,
        [
            format!("app/kustomization.yaml:2:5: `leak.yaml` {outside}"),
            format!("app/kustomization.yaml:3:5: `zero.yaml` {outside}"),
            format!("app/kustomization.yaml:4:5: `away/leak.yaml` {outside}"),
            format!("app/kustomization.yaml:6:11: `zero.yaml` {outside}"),
        ]
    );
    assert_eq!(report.files_checked, 1, "links are not walked");
}

/// Bases that each use the next one twice would render 2^30 objects; the check stays bounded.
#[test]
fn bases_repeating_bases_do_not_blow_up_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = vec![(
        "k30/cm.yaml".to_owned(),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n".to_owned(),
    )];
    files.push((
        "k30/kustomization.yaml".into(),
        "resources: [cm.yaml]\n".into(),
    ));
    for level in 0..30 {
        files.push((
            format!("k{level}/kustomization.yaml"),
            format!(
                "resources:\n  - ../k{next}\n  - ../k{next}\n",
                next = level + 1
            ),
        ));
    }
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(path, text)| (path.as_str(), text.as_str()))
        .collect();
    write(dir.path(), &files);
    let started = std::time::Instant::now();
    let (_, found) = findings(dir.path(), &["**/*.yaml"]);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(
        found.contains(
            &"k29/kustomization.yaml:3:5: `../k30` brings ConfigMap `c` (k30/cm.yaml:4:9) \
              again, after `../k30`; Kustomize refuses an object it already has"
                .to_owned()
        ),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|f| f.contains("renders more than 50000 objects")),
        "{found:#?}"
    );
}
