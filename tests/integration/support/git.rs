//! Running `git` in the repos tests build: a fixed identity, `main` as the first branch, and
//! git's own message when it fails. Shared by the test crates and the bump bench (`#[path]`
//! modules).

use std::path::Path;
use std::process::Command;

/// Runs `git args` in `dir` and returns its standard output as it is (file contents keep
/// their last newline; trim ids yourself).
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args([
            "-c",
            "user.name=Test Writer",
            "-c",
            "user.email=writer@example.com",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("git prints UTF-8")
}

/// Makes `bare` a new bare repo whose `main` is one commit of what `work` (a plain folder)
/// holds, and returns its `file://` URL: a config repo or forge repo in one call.
pub fn bare_repo_of(work: &Path, bare: &Path) -> String {
    let bare_path = bare.display().to_string();
    git(work, &["init", "-q", "--bare", &bare_path]);
    git(work, &["init", "-q"]);
    git(work, &["add", "."]);
    git(work, &["commit", "-qm", "config"]);
    git(work, &["push", "-q", &bare_path, "HEAD:refs/heads/main"]);
    format!("file://{bare_path}")
}
