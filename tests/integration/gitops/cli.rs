//! `gantry bump` on the command line: the same engine, one process per bump.

use std::process::Command;

use crate::support::git::Repo;

const FILE: &str = "deploy/web.yaml";
const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      containers:
        - name: web
          image: registry.example.com/acme/web:v1 # pinned by Gantry
";

fn gantry(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_gantry"))
        .arg("bump")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

#[test]
fn gantry_bump_commits_to_a_local_repo_and_prints_what_changed() {
    let repo = Repo::new(&[(FILE, DEPLOYMENT)]);
    let cwd = tempfile::tempdir().unwrap();
    let output = gantry(
        cwd.path(),
        &[
            "--repo",
            repo.bare.to_str().unwrap(),
            "--file",
            FILE,
            "--image",
            "registry.example.com/acme/web",
            "--tag",
            "v2",
            "--digest",
            "sha256:4444444444444444444444444444444444444444444444444444444444444444",
        ],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let head = repo.head();
    assert_eq!(
        stdout,
        format!(
            "deploy/web.yaml:10 spec.template.spec.containers[0].image: \
             registry.example.com/acme/web:v1 -> registry.example.com/acme/web:v2@sha256:4444444444444444444444444444444444444444444444444444444444444444\n\
             deploy/web.yaml@main: spec.template.spec.containers[0].image registry.example.com/acme/web:v1 → \
             registry.example.com/acme/web:v2@sha256:4444444444444444444444444444444444444444444444444444444444444444 (commit {})\n",
            &head[..12]
        )
    );
    assert!(repo.file(FILE).contains(
        "image: registry.example.com/acme/web:v2@sha256:4444444444444444444444444444444444444444444444444444444444444444 # pinned by Gantry"
    ));
}

#[test]
fn gantry_bump_refuses_bad_input_with_exit_code_1() {
    let repo = Repo::new(&[(FILE, DEPLOYMENT)]);
    let before = repo.head();
    let cwd = tempfile::tempdir().unwrap();
    let bare = repo.bare.to_str().unwrap().to_owned();
    let cases: [(&[&str], &str); 3] = [
        (
            &[
                "--file",
                FILE,
                "--image",
                "registry.example.com/acme/web",
                "--tag",
                "$(touch pwned)",
            ],
            "gantry: `$(touch pwned)` is not an image tag",
        ),
        (
            &[
                "--file",
                FILE,
                "--image",
                "registry.example.com/acme/api",
                "--tag",
                "v2",
            ],
            "gantry: deploy/web.yaml: no reference to `registry.example.com/acme/api` found",
        ),
        (
            &[
                "--file",
                "deploy/none.yaml",
                "--image",
                "registry.example.com/acme/web",
                "--tag",
                "v2",
            ],
            "gantry: deploy/none.yaml is not on branch main of the config repo",
        ),
    ];
    for (args, expected) in cases {
        let mut all = vec!["--repo", bare.as_str()];
        all.extend_from_slice(args);
        let output = gantry(cwd.path(), &all);
        assert_eq!(output.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.starts_with(expected), "{stderr}");
    }
    assert!(!cwd.path().join("pwned").exists());
    assert_eq!(repo.head(), before);
}

/// Separate processes share no lane: they race on the push, and each must still land once.
#[test]
fn concurrent_gantry_bump_processes_all_land() {
    let images: Vec<String> = (0..8)
        .map(|i| format!("registry.example.com/acme/svc{i}"))
        .collect();
    let overlay = crate::gitops::repos::kustomization(&images);
    let repo = Repo::new(&[("kustomization.yaml", &overlay)]);
    let cwd = tempfile::tempdir().unwrap();
    let children: Vec<_> = images
        .iter()
        .map(|image| {
            Command::new(env!("CARGO_BIN_EXE_gantry"))
                .args([
                    "bump",
                    "--repo",
                    &repo.url(),
                    "--file",
                    "kustomization.yaml",
                ])
                .args(["--image", image, "--tag", "v1"])
                .current_dir(cwd.path())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let file = repo.file("kustomization.yaml");
    assert_eq!(file.matches("newTag: v1").count(), 8, "{file}");
    assert_eq!(repo.messages().len(), 9);
}
