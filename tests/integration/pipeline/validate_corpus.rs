//! The `validate` stage on config repos as people really keep them: the copies under
//! `tests/corpus/` (sources and licences in its SOURCES.md) of Argo CD's, Flux's, Kustomize's,
//! Helm users', kpt's and Argo Workflows' published repos. Each must give no false alarm as
//! published (the few real mistakes upstream are expected by name), and each mistake seeded
//! into them must be found at its exact `file:line:col`, and nothing else with it.

use std::path::{Path, PathBuf};

use gantry::gitops::validate::check_tree;
use gantry::pipeline::{FileSelection, Pattern};

/// What a user points the stage at in a config repo: every YAML file Kustomize or kpt reads.
const PATHS: &[&str] = &["**/*.yaml", "**/*.yml", "**/Kustomization", "**/Kptfile"];

fn corpus(repo: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(repo)
}

fn findings_in(root: &Path, exclude: &[&str]) -> Vec<String> {
    let selection = FileSelection {
        paths: PATHS.iter().map(|g| Pattern::new(g).unwrap()).collect(),
        exclude: exclude.iter().map(|g| Pattern::new(g).unwrap()).collect(),
    };
    let report = check_tree(root, &selection).unwrap();
    assert!(report.files_checked > 10, "{}", root.display());
    report.findings.iter().map(ToString::to_string).collect()
}

fn findings(repo: &str, exclude: &[&str]) -> Vec<String> {
    findings_in(&corpus(repo), exclude)
}

const NONE: &[String] = &[];

#[test]
fn flux_monorepo_and_multi_tenancy_have_no_finding() {
    assert_eq!(findings("flux2-kustomize-helm-example", &[]), NONE);
    assert_eq!(findings("flux2-multi-tenancy", &[]), NONE);
}

#[test]
fn kustomize_kpt_and_kubeflow_overlays_have_no_finding() {
    assert_eq!(findings("kpt-package-examples", &[]), NONE);
    assert_eq!(findings("kubeflow-manifests", &[]), NONE);
}

#[test]
fn helm_charts_and_applicationset_monorepos_have_no_finding() {
    // Chart.yaml, Chart.lock, values, ci values, templates that do not parse as YAML, CI
    // configs (a kind cluster config among them).
    assert_eq!(findings("prometheus-chart", &[]), NONE);
    assert_eq!(findings("gitops-bridge-control-plane", &[]), NONE);
}

/// Argo CD's own apps. Its ApplicationSet examples keep each example twice side by side
/// (`x.yaml`, `x-fasttemplate.yaml`), and two e2e fixtures are broken on purpose: a user
/// keeping such folders excludes them, and each is asserted on its own below.
const ARGO_CD_EXCLUDE: &[&str] = &[
    "applicationset/examples/**",
    "test/e2e/testdata/declarative-apps/**",
    "test/e2e/testdata/invalid-kustomize/**",
];

#[test]
fn argo_cd_apps_have_no_finding() {
    assert_eq!(findings("argo-cd-testdata", ARGO_CD_EXCLUDE), NONE);
}

#[test]
fn the_folders_argo_cd_keeps_broken_on_purpose_are_reported() {
    let all = findings("argo-cd-testdata", &[]);
    let fixtures: Vec<&String> = all
        .iter()
        .filter(|f| !f.starts_with("applicationset/"))
        .collect();
    assert_eq!(
        fixtures,
        [
            // `name: {{.Name}}` unquoted: a flow mapping, not a name.
            "test/e2e/testdata/declarative-apps/app.yaml:4:10: expected a string",
            "test/e2e/testdata/declarative-apps/invalid-helm.yaml:4:10: expected a string",
            "test/e2e/testdata/invalid-kustomize/kustomization.yaml:2:5: `does-not-exist.yaml` does not exist (looked for test/e2e/testdata/invalid-kustomize/does-not-exist.yaml)",
        ]
    );
    // Two versions of one ApplicationSet in one plain folder: a directory app applies both.
    let examples: Vec<&String> = all
        .iter()
        .filter(|f| f.starts_with("applicationset/"))
        .collect();
    assert_eq!(examples.len(), 29, "{examples:#?}");
    assert!(
        examples
            .iter()
            .all(|f| f.contains(" is already defined at "))
    );
    assert_eq!(
        examples[0],
        "applicationset/examples/applications-sync-policies/create-update.yaml:4:9: \
         ApplicationSet `guestbook` is already defined at \
         applicationset/examples/applications-sync-policies/create-only.yaml:4:9"
    );
}

#[test]
fn the_real_mistakes_of_the_published_repos_are_found() {
    assert_eq!(
        findings("argo-workflows-examples", &[]),
        [
            // `generateName` indented under `labels`; `name:` swallowed by a `|` block.
            "examples/fun-with-gifs.yaml:13:3: Workflow has no `metadata.name`",
            "examples/k8s-jobs.yaml:9:3: Workflow has no `metadata.name`",
            "examples/k8s-patch-json-workflow.yaml:13:3: duplicate key `annotations`",
        ]
    );
    assert_eq!(
        findings(
            "kustomize-examples",
            // Two alternative inputs of one ConfigMap, side by side for a demo.
            &["examples/validationTransformer/**"]
        ),
        [
            "examples/transformerconfigs/images/kustomization.yaml:5:3: \
             `kustomizeconfig/mykind.yaml` does not exist \
             (looked for examples/transformerconfigs/images/kustomizeconfig/mykind.yaml)",
        ]
    );
}

/// A mistake put into a copy of a corpus repo: `old` in `file` becomes `new` (with `old`
/// empty, `new` is added at the end).
struct Seed {
    repo: &'static str,
    file: &'static str,
    old: &'static str,
    new: &'static str,
    /// The one finding it must add.
    expected: &'static str,
}

const SEEDS: &[Seed] = &[
    Seed {
        repo: "flux2-kustomize-helm-example",
        file: "apps/base/podinfo/release.yaml",
        old: "  releaseName: podinfo\n",
        new: "  releaseName: podinfo\n  interval: 5m\n",
        expected: "apps/base/podinfo/release.yaml:9:3: duplicate key `interval`",
    },
    Seed {
        repo: "prometheus-chart",
        file: "charts/prometheus/values.yaml",
        old: "forceNamespace: \"\"\n",
        new: "forceNamespace: \"\"\nforceNamespace: monitoring\n",
        expected: "charts/prometheus/values.yaml:1162:1: duplicate key `forceNamespace`",
    },
    Seed {
        repo: "prometheus-chart",
        file: "charts/prometheus/Chart.yaml",
        old: "version: 29.27.0\n",
        new: "version: latest\n",
        expected: "charts/prometheus/Chart.yaml:5:10: chart version `latest` is not a SemVer version",
    },
    Seed {
        repo: "kustomize-examples",
        file: "examples/wordpress/mysql/kustomization.yaml",
        old: "- secret.yaml",
        new: "- secrets.yaml",
        expected: "examples/wordpress/mysql/kustomization.yaml:4:3: `secrets.yaml` does not \
                   exist (looked for examples/wordpress/mysql/secrets.yaml)",
    },
    Seed {
        repo: "kubeflow-manifests",
        file: "common/oauth2-proxy/overlays/m2m-dex-only/kustomization.yaml",
        old: "- ../../components/istio-external-auth\n",
        new: "- ../../components/istio-external-authz\n",
        expected: "common/oauth2-proxy/overlays/m2m-dex-only/kustomization.yaml:8:3: \
                   `../../components/istio-external-authz` does not exist \
                   (looked for common/oauth2-proxy/components/istio-external-authz)",
    },
    Seed {
        repo: "flux2-multi-tenancy",
        file: "tenants/staging/kustomization.yaml",
        old: "  - path: dev-team-patch.yaml",
        new: "  - path: dev-team-patch.yml",
        expected: "tenants/staging/kustomization.yaml:7:11: `dev-team-patch.yml` does not \
                   exist (looked for tenants/staging/dev-team-patch.yml)",
    },
    Seed {
        repo: "flux2-kustomize-helm-example",
        file: "apps/staging/kustomization.yaml",
        old: "  - ../base/podinfo\n",
        new: "  - ../base\n",
        expected: "apps/staging/kustomization.yaml:4:5: `../base` is a directory without a \
                   kustomization.yaml",
    },
    Seed {
        repo: "kubeflow-manifests",
        file: "common/oauth2-proxy/base/service.yaml",
        old: "metadata:\n  name: oauth2-proxy\n",
        new: "metadata:\n  labels:\n    app.kubernetes.io/name: oauth2-proxy\n",
        expected: "common/oauth2-proxy/base/service.yaml:4:3: Service has no `metadata.name`",
    },
    Seed {
        // A Flux Kustomization is a cluster object, unlike Kustomize's.
        repo: "flux2-multi-tenancy",
        file: "clusters/staging/tenants.yaml",
        old: "  name: tenants\n",
        new: "",
        expected: "clusters/staging/tenants.yaml:4:3: Kustomization has no `metadata.name`",
    },
    Seed {
        repo: "argo-workflows-examples",
        file: "examples/hello-world.yaml",
        old: "  generateName: hello-world-\n",
        new: "",
        expected: "examples/hello-world.yaml:4:3: Workflow has no `metadata.name`",
    },
    Seed {
        // A plain folder (Flux makes a kustomization of it): both objects are applied.
        repo: "flux2-kustomize-helm-example",
        file: "clusters/staging/infrastructure.yaml",
        old: "  name: infra-configs\n",
        new: "  name: infra-controllers\n",
        expected: "clusters/staging/infrastructure.yaml:21:9: Kustomization `infra-controllers` \
                   in namespace `flux-system` is already defined at \
                   clusters/staging/infrastructure.yaml:5:9",
    },
    Seed {
        repo: "flux2-kustomize-helm-example",
        file: "infrastructure/controllers/envoy-gateway.yaml",
        old: "  name: envoy-gateway-system\n  labels:",
        new: "  name: cert-manager\n  labels:",
        expected: "infrastructure/controllers/envoy-gateway.yaml:5:9: Namespace `cert-manager` \
                   is already defined at infrastructure/controllers/cert-manager.yaml:5:9 \
                   (both rendered by infrastructure/controllers/kustomization.yaml)",
    },
    Seed {
        // A patch listed as a resource: the base's Deployment a second time.
        repo: "kustomize-examples",
        file: "examples/springboot/overlays/production/kustomization.yaml",
        old: "- ../../base\npatches:\n- path: patch.yaml\n- path: healthcheck_patch.yaml\n",
        new: "- ../../base\n- healthcheck_patch.yaml\npatches:\n- path: patch.yaml\n",
        expected: "examples/springboot/overlays/production/healthcheck_patch.yaml:4:9: \
                   Deployment `sbdemo` is already defined at \
                   examples/springboot/base/deployment.yaml:4:9 \
                   (both rendered by examples/springboot/overlays/production/kustomization.yaml)",
    },
    Seed {
        // Distinct as written; one object once the kustomization's `namespace: apps` applies.
        repo: "flux2-multi-tenancy",
        file: "tenants/base/dev-team/rbac.yaml",
        old: "",
        new: "---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: dev-team\n  namespace: tenants\n",
        expected: "tenants/base/dev-team/rbac.yaml:40:9: ServiceAccount `dev-team` in namespace \
                   `apps` is already defined at tenants/base/dev-team/rbac.yaml:15:9 \
                   (both rendered by tenants/base/dev-team/kustomization.yaml)",
    },
    Seed {
        // `namespace:` renames every Namespace of the overlay to itself.
        repo: "flux2-multi-tenancy",
        file: "tenants/base/dev-team/rbac.yaml",
        old: "",
        new: "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: dev-team-builds\n",
        expected: "tenants/base/dev-team/rbac.yaml:40:9: Namespace `dev-team-builds` (rendered \
                   as `apps`) is already defined at tenants/base/dev-team/rbac.yaml:7:9 \
                   (both rendered by tenants/base/dev-team/kustomization.yaml)",
    },
];

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn each_seeded_mistake_is_found_where_it_is_and_alone() {
    for seed in SEEDS {
        let before = findings(seed.repo, &[]);
        let dir = tempfile::tempdir().unwrap();
        copy_tree(&corpus(seed.repo), dir.path());
        let file = dir.path().join(seed.file);
        let text = std::fs::read_to_string(&file).unwrap();
        let seeded = if seed.old.is_empty() {
            format!("{text}{}", seed.new)
        } else {
            assert_eq!(
                text.matches(seed.old).count(),
                1,
                "{}: {}",
                seed.file,
                seed.old
            );
            text.replacen(seed.old, seed.new, 1)
        };
        std::fs::write(&file, seeded).unwrap();
        let added: Vec<String> = findings_in(dir.path(), &[])
            .into_iter()
            .filter(|finding| !before.contains(finding))
            .collect();
        assert_eq!(added, [seed.expected], "seeded into {}", seed.file);
    }
}
