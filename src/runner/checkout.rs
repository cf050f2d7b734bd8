//! Getting the exact commit of a run onto this machine: a shallow fetch of that one commit
//! with the `git` CLI, authenticated with the forge token through an HTTP header.

use anyhow::{Context, bail};

use crate::config::Settings;
use crate::domain::{ChangedPaths, CommitSha, Forge, Secret};
use crate::git::{Git, GitError};

/// URL schemes a checkout may use. Anything else (`ext::`, a leading `-`) could make git run
/// commands or read options.
const ALLOWED_SCHEMES: &[&str] = &["https://", "http://", "ssh://", "git://", "file://"];

/// The user name that goes with a token in HTTP basic auth, per forge.
fn token_user(forge: Forge) -> &'static str {
    match forge {
        Forge::Github => "x-access-token",
        Forge::Gitlab => "oauth2",
        Forge::Gitea => "gantry",
    }
}

/// The forge's API token, which also authenticates git over HTTPS.
pub fn forge_token(settings: &Settings, forge: Forge) -> Option<&Secret> {
    match forge {
        Forge::Github => settings.github.token.as_ref(),
        Forge::Gitlab => settings.gitlab.token.as_ref(),
        Forge::Gitea => settings.gitea.token.as_ref(),
    }
}

/// A fetched commit in a temporary folder, removed when dropped.
pub struct Checkout {
    pub dir: tempfile::TempDir,
    git: Git,
}

impl Checkout {
    /// Fetches `sha` from `url` (falling back to `fallback_ref`, for servers that refuse
    /// fetching a commit by id) and checks it out.
    pub async fn fetch(
        url: &str,
        sha: &CommitSha,
        fallback_ref: Option<&str>,
        auth: Option<(Forge, &Secret)>,
    ) -> anyhow::Result<Self> {
        if !ALLOWED_SCHEMES.iter().any(|scheme| url.starts_with(scheme)) && !is_scp_like(url) {
            bail!("clone URL `{url}` is not an https, http, ssh, git or file URL");
        }
        let dir = tempfile::Builder::new()
            .prefix("gantry-checkout-")
            .tempdir()
            .context("creating a checkout folder")?;
        let mut git = Git::new(dir.path());
        if let Some((forge, token)) = auth {
            git = git.with_basic_auth(token_user(forge), token);
        }
        git.run(&["init", "-q"]).await?;
        let by_id = shallow_fetch(&git, url, sha.as_str()).await;
        if let Err(err) = by_id {
            let Some(fallback) = fallback_ref else {
                return Err(anyhow::Error::new(err).context(format!("fetching commit {sha}")));
            };
            shallow_fetch(&git, url, fallback).await.with_context(|| {
                format!("fetching {fallback} after fetching {sha} by id failed")
            })?;
            let fetched = git.run(&["rev-parse", "FETCH_HEAD"]).await?;
            if fetched.trim() != sha.as_str() {
                bail!(
                    "{fallback} is now at {} and commit {sha} could not be fetched by id",
                    fetched.trim()
                );
            }
        }
        git.run(&["checkout", "-q", "--detach", sha.as_str()])
            .await
            .with_context(|| format!("checking out {sha}"))?;
        Ok(Self { dir, git })
    }

    /// The files changed since `before`, fetched on its own (shallow), for `paths` filters
    /// when the payload did not list them.
    pub async fn changed_since(
        &self,
        url: &str,
        before: Option<&CommitSha>,
        after: &CommitSha,
    ) -> ChangedPaths {
        let Some(before) = before else {
            return ChangedPaths::Unknown;
        };
        if shallow_fetch(&self.git, url, before.as_str())
            .await
            .is_err()
        {
            return ChangedPaths::Unknown;
        }
        self.git.changed_paths(Some(before), after).await
    }
}

/// Fetches `what` (a commit id or a ref) from `url` and nothing before it.
async fn shallow_fetch(git: &Git, url: &str, what: &str) -> Result<String, GitError> {
    git.run(&["fetch", "-q", "--no-tags", "--depth", "1", url, what])
        .await
}

/// `git@host:owner/repo.git`: the scp-like SSH form.
fn is_scp_like(url: &str) -> bool {
    !url.starts_with('-')
        && url.split_once(':').is_some_and(|(host, path)| {
            host.contains('@') && !host.contains('/') && !path.starts_with("//")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_transports_are_accepted() {
        assert!(is_scp_like("git@github.com:acme/web.git"));
        assert!(!is_scp_like("ext::sh -c touch% /tmp/pwned"));
        assert!(!is_scp_like("--upload-pack=touch /tmp/x"));
    }

    #[tokio::test]
    async fn dangerous_urls_are_refused_before_git_runs() {
        let sha = CommitSha::parse(&"a".repeat(40)).unwrap();
        for url in [
            "ext::sh -c touch% /tmp/pwned",
            "--upload-pack=evil",
            "/local/path",
        ] {
            let err = Checkout::fetch(url, &sha, None, None).await.err().unwrap();
            assert!(err.to_string().contains("is not an https"), "{err}");
        }
    }
}
