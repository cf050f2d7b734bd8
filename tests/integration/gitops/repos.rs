//! Config repos for the tests: bare repos on disk (reached over `file://`), filled from a
//! scratch work tree, and read back with the git CLI.

use std::path::PathBuf;
use std::process::Command;

pub use crate::support::git::git;

/// A Kustomization pinning every image of `images` at tag `v0`.
pub fn kustomization(images: &[String]) -> String {
    let mut text = "kind: Kustomization\nimages:\n".to_owned();
    for image in images {
        text.push_str(&format!("  - name: {image}\n    newTag: v0\n"));
    }
    text
}

pub struct ConfigRepo {
    _dir: tempfile::TempDir,
    pub bare: PathBuf,
    work: PathBuf,
}

impl ConfigRepo {
    /// A bare repo whose `main` holds `files`.
    pub fn new(files: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bare = dir.path().join("config.git");
        let work = dir.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        git(
            dir.path(),
            &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()],
        );
        git(&work, &["init", "-q", "-b", "main"]);
        git(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
        let repo = Self {
            _dir: dir,
            bare,
            work,
        };
        repo.commit(files, "initial config");
        repo
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.bare.display())
    }

    /// Commits `files` on top of the newest `main` and pushes, retrying lost races: the
    /// "other writer" of the race tests.
    pub fn commit(&self, files: &[(&str, &str)], message: &str) {
        for _ in 0..50 {
            // Before the first commit there is nothing to fetch; that failure is expected.
            let _ = Command::new("git")
                .args(["fetch", "-q", "origin", "main"])
                .current_dir(&self.work)
                .output();
            let _ = Command::new("git")
                .args(["reset", "-q", "--hard", "origin/main"])
                .current_dir(&self.work)
                .output();
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
            let pushed = Command::new("git")
                .args(["push", "-q", "origin", "HEAD:main"])
                .current_dir(&self.work)
                .output()
                .unwrap();
            if pushed.status.success() {
                return;
            }
        }
        panic!("the other writer could not push");
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
