//! The runner on a real Docker engine, with the local busybox image `.ci/run` builds
//! (`GANTRY_TEST_IMAGE`).

mod build;
mod cli;
mod executor;
mod image;
mod tls_engine;

/// The image every test stage runs in.
pub fn image() -> String {
    std::env::var("GANTRY_TEST_IMAGE").expect(
        "GANTRY_TEST_IMAGE must name a local busybox image (scripts/test-services.sh builds it)",
    )
}

/// Writes `.gantry/<name>.yml` files into a fresh checkout folder.
pub fn checkout(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(".gantry")).unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text.replace("IMAGE", &image())).unwrap();
    }
    dir
}

/// The context of run `run_id` of `acme/app` at `sha` on `main` (a pull request's base),
/// for `trigger`.
pub fn context<'a>(
    run_id: i64,
    trigger: gantry::domain::Trigger,
    sha: &'a str,
    secrets: &'a std::collections::BTreeMap<String, gantry::domain::Secret>,
) -> gantry::pipeline::RunContext<'a> {
    gantry::pipeline::RunContext {
        run_id,
        trigger,
        repo: "acme/app",
        commit_sha: sha,
        branch: Some("main"),
        tag: None,
        base_branch: (trigger == gantry::domain::Trigger::PullRequest).then_some("main"),
        pr_number: None,
        from_fork: false,
        workspace: gantry::runner::WORKSPACE_DIR,
        changed_paths: gantry::domain::ChangedPaths::Unknown,
        secrets,
        variables: &[],
        scheduled: None,
    }
}
