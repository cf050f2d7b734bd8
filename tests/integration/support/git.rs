//! Git for the tests: `git` with a fixed identity and `main` as the first branch, and
//! [`Repo`], a bare repo on disk (reached over `file://`, as a forge or a config repo) with a
//! work tree that writes to it. Also used by the bump bench (`#[path]`), so it needs nothing
//! else of `support`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `git args` in `dir` and returns its standard output as it is (file contents keep
/// their last newline; trim ids yourself).
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = git_command(dir, args).output().expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("git prints UTF-8")
}

/// Runs `git args` in `dir` and says whether it succeeded: for steps that may fail.
fn git_ok(dir: &Path, args: &[&str]) -> bool {
    git_command(dir, args)
        .output()
        .is_ok_and(|output| output.status.success())
}

fn git_command(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new("git");
    command
        .args([
            "-c",
            "user.name=Test Writer",
            "-c",
            "user.email=writer@example.com",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir);
    command
}

/// The bare repo's folder name: its URL ends `/repo.git`.
pub const BARE_NAME: &str = "repo.git";

/// A bare repo and a work tree whose `origin` it is.
pub struct Repo {
    _dir: tempfile::TempDir,
    pub bare: PathBuf,
    work: PathBuf,
}

impl Repo {
    /// A bare repo whose `main` is one commit holding `files` (paths may have folders).
    pub fn new(files: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bare = dir.path().join(BARE_NAME);
        let work = dir.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        git(
            dir.path(),
            &["init", "-q", "--bare", bare.to_str().unwrap()],
        );
        git(&work, &["init", "-q"]);
        git(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
        let repo = Self {
            _dir: dir,
            bare,
            work,
        };
        repo.commit(files, "initial commit");
        repo
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.bare.display())
    }

    /// The work tree, for tests that edit and commit by hand before a [`Repo::push`].
    pub fn work(&self) -> &Path {
        &self.work
    }

    /// Commits `files` on top of the newest `main` and pushes, retrying lost races: the
    /// "other writer" of the race tests.
    pub fn commit(&self, files: &[(&str, &str)], message: &str) {
        for _ in 0..50 {
            // Before the first commit there is nothing to fetch; that failure is expected.
            if git_ok(&self.work, &["fetch", "-q", "origin", "main"]) {
                git(&self.work, &["reset", "-q", "--hard", "origin/main"]);
            }
            for (path, text) in files {
                let path = self.work.join(path);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, text).unwrap();
            }
            git(&self.work, &["add", "-A"]);
            git(
                &self.work,
                &["commit", "-q", "--allow-empty", "-m", message],
            );
            if git_ok(&self.work, &["push", "-q", "origin", "HEAD:main"]) {
                return;
            }
        }
        panic!("the other writer could not push");
    }

    /// Pushes the work tree's HEAD to `branch` and returns the commit.
    pub fn push(&self, branch: &str) -> String {
        git(
            &self.work,
            &["push", "-q", "origin", &format!("HEAD:refs/heads/{branch}")],
        );
        git(&self.work, &["rev-parse", "HEAD"]).trim().to_owned()
    }

    /// A file as `main` has it now.
    pub fn file(&self, path: &str) -> String {
        git(&self.bare, &["show", &format!("main:{path}")])
    }

    pub fn head(&self) -> String {
        git(&self.bare, &["rev-parse", "main"]).trim().to_owned()
    }

    /// Every commit message on `main`, newest first.
    pub fn messages(&self) -> Vec<String> {
        git(&self.bare, &["log", "--format=%B%x00", "main"])
            .split('\0')
            .map(|m| m.trim().to_owned())
            .filter(|m| !m.is_empty())
            .collect()
    }

    pub fn show(&self, rev: &str, format: &str) -> String {
        git(
            &self.bare,
            &["show", "-s", &format!("--format={format}"), rev],
        )
    }

    /// The patch of one commit, only the changed lines.
    pub fn changed_lines(&self, rev: &str) -> Vec<String> {
        git(&self.bare, &["show", "--format=", "--unified=0", rev])
            .lines()
            .filter(|l| {
                (l.starts_with('+') || l.starts_with('-'))
                    && !l.starts_with("+++")
                    && !l.starts_with("---")
            })
            .map(str::to_owned)
            .collect()
    }
}
