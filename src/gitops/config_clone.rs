//! The config repo as a bump works on it: a bare, shallow clone read and written with git
//! plumbing (no checkout), so a repo of thousands of files costs one fetch and a few object
//! writes.

use std::collections::BTreeMap;

use super::bump::{Author, BumpError, BumpRequest};
use super::edit;
use crate::domain::ValueChange;
use crate::git::{Git, GitAuth};

/// The local ref a fetched branch head is kept under.
const BASE_REF: &str = "refs/gantry/base";

/// A bare, shallow clone of the config repo in a temporary folder.
pub(super) struct ConfigClone {
    git: Git,
    url: String,
    _dir: tempfile::TempDir,
}

impl ConfigClone {
    pub(super) async fn open(auth: &GitAuth, url: &str) -> Result<Self, BumpError> {
        let dir = tempfile::Builder::new()
            .prefix("gantry-bump-")
            .tempdir()
            .map_err(BumpError::WorkFolder)?;
        let mut git = Git::new(dir.path()).with_env(
            "GIT_INDEX_FILE",
            dir.path().join("gantry-index").display().to_string(),
        );
        git = git.with_auth(auth);
        // No template: hook samples are not needed and cost a third of a small bump.
        git.run(&["init", "-q", "--bare", "--template="])
            .await
            .map_err(BumpError::Git)?;
        Ok(Self {
            git,
            url: url.to_owned(),
            _dir: dir,
        })
    }

    /// Fetches the branch's newest commit (only it) and returns its id.
    pub(super) async fn fetch(&self, branch: &str) -> Result<String, BumpError> {
        let refspec = format!("+refs/heads/{branch}:{BASE_REF}");
        self.git
            .run(&[
                "fetch",
                "-q",
                "--depth",
                "1",
                "--no-tags",
                "--",
                &self.url,
                &refspec,
            ])
            .await
            .map_err(|err| {
                if err.to_string().contains("couldn't find remote ref") {
                    BumpError::MissingBranch {
                        branch: branch.to_owned(),
                        url: self.url.clone(),
                    }
                } else {
                    BumpError::Git(err)
                }
            })?;
        Ok(self
            .git_out(&["rev-parse", BASE_REF])
            .await?
            .trim()
            .to_owned())
    }

    /// Each request's changes on top of `head`, in order (a later request sees the earlier
    /// ones' edits). The edited files are written as blobs and staged in the index.
    pub(super) async fn edit(
        &self,
        head: &str,
        requests: &[&BumpRequest],
        branch: &str,
    ) -> Result<Vec<Result<Vec<ValueChange>, BumpError>>, BumpError> {
        let mut files: BTreeMap<String, (String, String)> = BTreeMap::new();
        let mut results = Vec::with_capacity(requests.len());
        let mut changed: Vec<String> = Vec::new();
        for request in requests {
            let file = &request.file;
            if !files.contains_key(file) {
                match self.read(head, file).await? {
                    Some(entry) => {
                        files.insert(file.clone(), entry);
                    }
                    None => {
                        results.push(Err(BumpError::MissingFile {
                            file: file.clone(),
                            branch: branch.to_owned(),
                        }));
                        continue;
                    }
                }
            }
            let (_, text) = &files[file];
            match edit::apply(text, &request.new) {
                Ok(edited) => {
                    if !edited.changes.is_empty() {
                        if !changed.contains(file) {
                            changed.push(file.clone());
                        }
                        if let Some(entry) = files.get_mut(file) {
                            entry.1 = edited.text;
                        }
                    }
                    results.push(Ok(edited.changes));
                }
                Err(source) => results.push(Err(BumpError::Edit {
                    file: file.clone(),
                    source,
                })),
            }
        }
        if !changed.is_empty() {
            self.git_out(&["read-tree", head]).await?;
            for file in &changed {
                let (mode, text) = &files[file];
                let blob = self
                    .git
                    .run_with_input(&["hash-object", "-w", "--stdin"], Some(text.as_bytes()))
                    .await
                    .map_err(BumpError::Git)?;
                let cacheinfo = format!("{mode},{},{file}", blob.trim());
                self.git_out(&["update-index", "--cacheinfo", &cacheinfo])
                    .await?;
            }
        }
        Ok(results)
    }

    /// The file's mode and text at `head`; `None` when it is not there.
    async fn read(&self, head: &str, file: &str) -> Result<Option<(String, String)>, BumpError> {
        let listing = self.git_out(&["ls-tree", "-z", head, "--", file]).await?;
        let Some((meta, _)) = listing.split_once('\t') else {
            return Ok(None);
        };
        let mut fields = meta.split(' ');
        let (Some(mode), Some(kind), Some(blob)) = (fields.next(), fields.next(), fields.next())
        else {
            return Ok(None);
        };
        if kind != "blob" || !mode.starts_with("100") {
            return Err(BumpError::NotAFile {
                file: file.to_owned(),
            });
        }
        let text = self
            .git
            .run(&["cat-file", "blob", blob])
            .await
            .map_err(|source| BumpError::Unreadable {
                file: file.to_owned(),
                source,
            })?;
        Ok(Some((mode.to_owned(), text)))
    }

    pub(super) async fn commit(
        &self,
        head: &str,
        message: &str,
        author: &Author,
    ) -> Result<String, BumpError> {
        let tree = self.git_out(&["write-tree"]).await?;
        let commit = self
            .git
            .clone()
            .with_env("GIT_AUTHOR_NAME", author.name.clone())
            .with_env("GIT_AUTHOR_EMAIL", author.email.clone())
            .with_env("GIT_COMMITTER_NAME", author.name.clone())
            .with_env("GIT_COMMITTER_EMAIL", author.email.clone())
            .run_with_input(
                &["commit-tree", tree.trim(), "-p", head, "-F", "-"],
                Some(message.as_bytes()),
            )
            .await
            .map_err(BumpError::Git)?;
        Ok(commit.trim().to_owned())
    }

    /// Pushes `commit` to `branch`. `Ok(false)`: rejected because the branch moved on.
    pub(super) async fn push(
        &self,
        commit: &str,
        branch: &str,
        force: bool,
    ) -> Result<bool, BumpError> {
        let refspec = format!(
            "{}{commit}:refs/heads/{branch}",
            if force { "+" } else { "" }
        );
        match self.git.run(&["push", "--", &self.url, &refspec]).await {
            Ok(_) => Ok(true),
            Err(err) => {
                let text = err.to_string();
                let lost_race = [
                    "[rejected]",
                    "[remote rejected]",
                    "Updates were rejected",
                    "non-fast-forward",
                    "fetch first",
                    "cannot lock ref",
                    "failed to update ref",
                    "stale info",
                ]
                .iter()
                .any(|sign| text.contains(sign));
                if lost_race {
                    Ok(false)
                } else {
                    Err(BumpError::Git(err))
                }
            }
        }
    }

    async fn git_out(&self, args: &[&str]) -> Result<String, BumpError> {
        self.git.run(args).await.map_err(BumpError::Git)
    }
}
