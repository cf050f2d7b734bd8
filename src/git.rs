//! The `git` CLI, run the one way Gantry runs it: never prompting, never asking a credential
//! helper, a token only ever in an `http.extraHeader` passed through the environment (not
//! the command line, which other local users can read), and killed if its future is dropped.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use tokio::process::Command;

use crate::config::GitopsSettings;
use crate::domain::{ChangedPaths, CommitSha, Secret};

/// Why a `git` command did not give its output. `command` is the command line after `git`,
/// which never holds a credential.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("starting `git {command}`")]
    Start {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("writing to `git {command}`")]
    Input {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("running `git {command}`")]
    Wait {
        command: String,
        #[source]
        source: std::io::Error,
    },
    /// Git's own message, with any credential removed.
    #[error("`git {command}` failed: {stderr}")]
    Failed { command: String, stderr: String },
    #[error("`git {command}` printed something that is not UTF-8")]
    NotText { command: String },
}

/// How git authenticates to a remote.
#[derive(Clone, Default)]
pub enum GitAuth {
    #[default]
    None,
    /// HTTPS basic auth with a token (user `x-access-token`, `oauth2`, …).
    Token { user: String, token: Secret },
    SshKey {
        key: PathBuf,
        known_hosts: Option<PathBuf>,
    },
}

impl GitAuth {
    /// How git reaches config repos: an SSH key if one is set, else the token.
    pub fn for_config_repos(settings: &GitopsSettings) -> Self {
        match (&settings.ssh_key_file, &settings.token) {
            (Some(key), _) => GitAuth::SshKey {
                key: key.clone(),
                known_hosts: settings.known_hosts_file.clone(),
            },
            (None, Some(token)) => GitAuth::Token {
                user: settings.username.clone(),
                token: token.clone(),
            },
            (None, None) => GitAuth::None,
        }
    }
}

/// A `git` working directory, with the credentials to use for remotes.
#[derive(Clone)]
pub struct Git {
    dir: PathBuf,
    auth_header: Option<Secret>,
    env: Vec<(String, String)>,
}

impl Git {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            auth_header: None,
            env: Vec::new(),
        }
    }

    /// An environment variable for every command (an index file, an author).
    pub fn with_env(mut self, name: &str, value: impl Into<String>) -> Self {
        self.env.push((name.to_owned(), value.into()));
        self
    }

    /// SSH remotes use this private key and no other, and never prompt. Without a
    /// known-hosts file a host's key is trusted the first time it is seen.
    pub fn with_ssh_key(self, key: &Path, known_hosts: Option<&Path>) -> Self {
        let quote =
            |path: &Path| format!("'{}'", path.display().to_string().replace('\'', "'\\''"));
        let hosts = match known_hosts {
            Some(file) => format!(
                "-o UserKnownHostsFile={} -o StrictHostKeyChecking=yes",
                quote(file)
            ),
            None => "-o StrictHostKeyChecking=accept-new".to_owned(),
        };
        self.with_env(
            "GIT_SSH_COMMAND",
            format!(
                "ssh -i {} -o IdentitiesOnly=yes -o BatchMode=yes {hosts}",
                quote(key)
            ),
        )
    }

    /// HTTP basic auth for every remote: `user` is `x-access-token` on GitHub, `oauth2` on
    /// GitLab, any name on Gitea.
    pub fn with_basic_auth(mut self, user: &str, token: &Secret) -> Self {
        let credentials = BASE64.encode(format!("{user}:{}", token.expose()));
        self.auth_header = Some(Secret::new(format!("Authorization: Basic {credentials}")));
        self
    }

    /// Authenticates every remote as `auth` says.
    pub fn with_auth(self, auth: &GitAuth) -> Self {
        match auth {
            GitAuth::None => self,
            GitAuth::Token { user, token } => self.with_basic_auth(user, token),
            GitAuth::SshKey { key, known_hosts } => self.with_ssh_key(key, known_hosts.as_deref()),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs `git ARGS` in the directory and returns its standard output. A failure carries
    /// git's own message, with any credential removed.
    pub async fn run(&self, args: &[&str]) -> Result<String, GitError> {
        self.run_with_input(args, None).await
    }

    /// [`Git::run`] with `input` written to git's standard input.
    pub async fn run_with_input(
        &self,
        args: &[&str],
        input: Option<&[u8]>,
    ) -> Result<String, GitError> {
        let line = || args.join(" ");
        let mut command = Command::new("git");
        command
            .arg("-c")
            .arg("credential.helper=")
            .args(args)
            .current_dir(&self.dir)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ASKPASS", "true")
            .env("LC_ALL", "C")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(header) = &self.auth_header {
            command
                .env("GIT_CONFIG_COUNT", "1")
                .env("GIT_CONFIG_KEY_0", "http.extraHeader")
                .env("GIT_CONFIG_VALUE_0", header.expose());
        }
        let mut child = command.spawn().map_err(|source| GitError::Start {
            command: line(),
            source,
        })?;
        if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
            use tokio::io::AsyncWriteExt;
            stdin
                .write_all(input)
                .await
                .map_err(|source| GitError::Input {
                    command: line(),
                    source,
                })?;
        }
        let output = child
            .wait_with_output()
            .await
            .map_err(|source| GitError::Wait {
                command: line(),
                source,
            })?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let stderr = match &self.auth_header {
                Some(header) => stderr.replace(header.expose(), "[redacted]"),
                None => stderr.into_owned(),
            };
            return Err(GitError::Failed {
                command: line(),
                stderr: stderr.trim().to_owned(),
            });
        }
        String::from_utf8(output.stdout).map_err(|_| GitError::NotText { command: line() })
    }

    /// The files changed between two commits of the checkout, for `paths` filters when the
    /// payload did not list them. Unknown when either commit is missing (a shallow clone, a
    /// new branch).
    pub async fn changed_paths(
        &self,
        before: Option<&CommitSha>,
        after: &CommitSha,
    ) -> ChangedPaths {
        let Some(before) = before else {
            return ChangedPaths::Unknown;
        };
        let range = [before.as_str(), after.as_str()];
        match self
            .run(&["diff", "--name-only", "-z", range[0], range[1], "--"])
            .await
        {
            Ok(listing) => ChangedPaths::Known(
                listing
                    .split('\0')
                    .filter(|path| !path.is_empty())
                    .map(str::to_owned)
                    .collect(),
            ),
            Err(err) => {
                tracing::debug!(error = %err, "no diff for paths filters; treating paths as unknown");
                ChangedPaths::Unknown
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn commit(git: &Git, file: &str, text: &str) -> CommitSha {
        std::fs::write(git.dir().join(file), text).unwrap();
        git.run(&["add", "--", file]).await.unwrap();
        git.run(&[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qm",
            file,
        ])
        .await
        .unwrap();
        CommitSha::parse(git.run(&["rev-parse", "HEAD"]).await.unwrap().trim()).unwrap()
    }

    #[tokio::test]
    async fn changed_paths_come_from_the_diff() {
        let dir = tempfile::tempdir().unwrap();
        let git = Git::new(dir.path());
        git.run(&["init", "-q"]).await.unwrap();
        let first = commit(&git, "a.txt", "1").await;
        std::fs::create_dir(dir.path().join("src")).unwrap();
        commit(&git, "src/b.rs", "2").await;
        let last = commit(&git, "name with spaces.md", "3").await;
        assert_eq!(
            git.changed_paths(Some(&first), &last).await,
            ChangedPaths::Known(vec!["name with spaces.md".into(), "src/b.rs".into()])
        );
        assert_eq!(git.changed_paths(None, &last).await, ChangedPaths::Unknown);
        let missing = CommitSha::parse(&"1".repeat(40)).unwrap();
        assert_eq!(
            git.changed_paths(Some(&missing), &last).await,
            ChangedPaths::Unknown
        );
    }

    #[tokio::test]
    async fn failures_carry_gits_message_without_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let git = Git::new(dir.path()).with_basic_auth("x-access-token", &Secret::new("hunter2"));
        let err = git
            .run(&["ls-remote", "http://127.0.0.1:9/nothing.git"])
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("`git ls-remote http://127.0.0.1:9/nothing.git` failed:"),
            "{err}"
        );
        assert!(
            !err.contains("hunter2") && !err.contains(&BASE64.encode("x-access-token:hunter2"))
        );
    }
}
