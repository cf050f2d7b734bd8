//! The GitOps hand-off: a new image written into a config repo, as one commit pushed to its
//! branch or as a pull request.
//!
//! Git work is plumbing on a bare, shallow clone (`config_clone.rs`): the file is read from
//! the fetched head, edited in memory, and the new tree and commit are written without a
//! checkout.
//!
//! Correctness under concurrency rests on three things. Bumps to one repo and branch go
//! through one lane inside the process (several waiting ones become one commit, at most one
//! per file and image, so every bump is its own line of history). Across replicas sharing
//! PostgreSQL, a lane also holds an advisory lock. And whoever else pushes, a rejected push
//! is fetched, re-applied on the new head and pushed again; a value already in place makes
//! no commit, so a bump repeated after a crash is never applied twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use tokio::sync::oneshot;

use super::config_clone::ConfigClone;
use super::edit::{self, EditError, NewImage, ReferenceError};
use crate::domain::{BumpedFile, Forge, ValueChange};
use crate::forge::{ForgeError, Forges, PullRequest};
use crate::git::{GitAuth, GitError};
use crate::metrics::Metrics;
use crate::pipeline::BumpMode;
use crate::store::Store;

/// Pushes tried before a bump gives up: each rejected one means another writer won a race,
/// and each retry starts from the newer head.
pub const MAX_PUSH_ATTEMPTS: u32 = 12;
/// First wait after a rejected push; doubled each time (with jitter), up to the cap.
const PUSH_BACKOFF: Duration = Duration::from_millis(40);
const PUSH_BACKOFF_CAP: Duration = Duration::from_secs(2);
/// Bumps folded into one commit at most.
const MAX_BATCH: usize = 64;

/// A config repo branch: where bumps land, and the unit they are serialised by.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct ConfigRepo {
    /// An `https://`, `ssh://`, `git@host:path`, `file://` URL or a local path.
    pub url: String,
    pub branch: String,
}

/// Where the image came from, for the commit message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BumpSource {
    pub repo: String,
    pub commit: String,
    pub run_url: Option<String>,
    /// The pushed image's digest, named in the message even when only the tag is written.
    pub digest: Option<String>,
}

#[derive(Debug, Clone)]
pub struct BumpRequest {
    pub repo: ConfigRepo,
    pub file: String,
    pub new: NewImage,
    pub mode: BumpMode,
    /// The forge hosting the config repo: whose API opens pull requests.
    pub forge: Option<Forge>,
    pub source: Option<BumpSource>,
}

/// What a bump did: the file it changed, and the pushes that took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BumpOutcome {
    #[serde(flatten)]
    pub bumped: BumpedFile,
    /// Pushes it took (more than one when another writer won a race).
    pub attempts: u32,
}

/// Why a bump did not happen. Messages say only what their cause does not: show one with
/// [`crate::domain::describe`].
#[derive(Debug, thiserror::Error)]
pub enum BumpError {
    #[error("{file}")]
    Edit {
        file: String,
        #[source]
        source: EditError,
    },
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error("`{0}` is not a file path inside the repo")]
    Path(String),
    #[error("{file} is not on branch {branch} of the config repo")]
    MissingFile { file: String, branch: String },
    #[error(
        "{attempts} pushes to {branch} were rejected by newer commits; gave up (nothing lost: \
         the bump can be run again)"
    )]
    Contended { branch: String, attempts: u32 },
    #[error("config repo")]
    Git(#[from] GitError),
    #[error("config repo: branch {branch} does not exist in {url}")]
    MissingBranch { branch: String, url: String },
    #[error("config repo: {file} is not a regular file")]
    NotAFile { file: String },
    #[error("config repo: {file} could not be read (is it UTF-8 text?)")]
    Unreadable {
        file: String,
        #[source]
        source: GitError,
    },
    #[error("config repo: `{0}` is not a branch name")]
    BadBranch(String),
    #[error("config repo: `{0}` is not a repo URL")]
    BadUrl(String),
    #[error("config repo: the push to {0} was refused")]
    PushRefused(String),
    #[error("config repo: creating a work folder")]
    WorkFolder(#[source] std::io::Error),
    #[error("config repo: waiting for its lock")]
    Lock(#[source] anyhow::Error),
    #[error("pull request")]
    PullRequest(#[source] ForgeError),
    #[error("pull request: no forge API is configured for pull requests to this repo")]
    NoForge,
    #[error("pull request: cannot tell the repo's name on the forge from `{0}`")]
    RepoPath(String),
    /// One failure of a batch, given to each bump in it.
    #[error(transparent)]
    Shared(Arc<BumpError>),
    #[error("the bump was dropped before it finished")]
    Dropped,
}

impl BumpError {
    /// The error itself, seen through [`BumpError::Shared`].
    pub fn root(&self) -> &BumpError {
        match self {
            BumpError::Shared(shared) => shared.root(),
            other => other,
        }
    }
}

/// Who commits.
#[derive(Debug, Clone)]
pub struct Author {
    pub name: String,
    pub email: String,
}

impl Author {
    /// Reads `Name <email>`.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let (name, rest) = text
            .split_once('<')
            .context("the author must read `Name <email>`")?;
        let email = rest
            .strip_suffix('>')
            .context("the author must read `Name <email>`")?;
        anyhow::ensure!(
            !name.trim().is_empty() && email.contains('@'),
            "the author must read `Name <email>`"
        );
        Ok(Self {
            name: name.trim().to_owned(),
            email: email.trim().to_owned(),
        })
    }
}

/// Runs bumps. Cheap to clone; clones share the lanes.
#[derive(Clone)]
pub struct Bumper {
    author: Author,
    auth: GitAuth,
    store: Option<Store>,
    forges: Option<Forges>,
    metrics: Option<Metrics>,
    lanes: Arc<Mutex<HashMap<ConfigRepo, Lane>>>,
    /// One bare clone per lane, kept between bumps so the next fetch brings only what is
    /// new. A lane's clone is only ever used by that lane's one drain task.
    clones: Arc<Mutex<HashMap<ConfigRepo, Arc<ConfigClone>>>>,
}

#[derive(Default)]
struct Lane {
    pending: Vec<Pending>,
    busy: bool,
}

struct Pending {
    request: BumpRequest,
    reply: oneshot::Sender<Result<BumpOutcome, BumpError>>,
}

impl Bumper {
    pub fn new(author: Author, auth: GitAuth) -> Self {
        Self {
            author,
            auth,
            store: None,
            forges: None,
            metrics: None,
            lanes: Arc::default(),
            clones: Arc::default(),
        }
    }

    /// Holds a PostgreSQL advisory lock per lane, so replicas take turns too.
    pub fn with_store(mut self, store: Store) -> Self {
        self.store = Some(store);
        self
    }

    /// Counts bumps by outcome and lost push races.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The forge APIs that open pull requests in `pull_request` mode.
    pub fn with_forges(mut self, forges: Forges) -> Self {
        self.forges = Some(forges);
        self
    }

    /// Applies one bump, waiting for its turn on the repo's branch.
    pub async fn bump(&self, request: BumpRequest) -> Result<BumpOutcome, BumpError> {
        check(&request)?;
        let lane = match request.mode {
            BumpMode::Commit => request.repo.clone(),
            // Pull requests get a lane per bump branch: they never race each other's pushes.
            BumpMode::PullRequest => ConfigRepo {
                url: request.repo.url.clone(),
                branch: pull_request_branch(&request),
            },
        };
        let (reply, answer) = oneshot::channel();
        let lead = {
            let mut lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
            let entry = lanes.entry(lane.clone()).or_default();
            entry.pending.push(Pending { request, reply });
            !std::mem::replace(&mut entry.busy, true)
        };
        if lead {
            // Its own task: a caller that gives up (a canceled run) must not stall the lane.
            tokio::spawn(self.clone().drain(lane));
        }
        let result = answer.await.unwrap_or(Err(BumpError::Dropped));
        if let Some(metrics) = &self.metrics {
            let outcome = match &result {
                Ok(outcome) if outcome.bumped.changes.is_empty() => "unchanged",
                Ok(_) => "applied",
                Err(err) if matches!(err.root(), BumpError::Contended { .. }) => "contended",
                Err(_) => "failed",
            };
            metrics.observe_bump(outcome);
        }
        result
    }

    async fn drain(self, lane: ConfigRepo) {
        // However this task ends (a panic included), the lane is freed: its waiting bumps
        // are answered `Dropped` instead of waiting for a drain that will never come.
        let mut guard = LaneGuard {
            lanes: self.lanes.clone(),
            lane: lane.clone(),
            ended: false,
        };
        loop {
            let batch = {
                let mut lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
                let Some(entry) = lanes.get_mut(&lane) else {
                    guard.ended = true;
                    return;
                };
                let batch = take_batch(&mut entry.pending);
                if batch.is_empty() {
                    // Removed under the lock: a bump arriving next starts a new lane.
                    lanes.remove(&lane);
                    guard.ended = true;
                    return;
                }
                batch
            };
            let requests: Vec<&BumpRequest> = batch.iter().map(|p| &p.request).collect();
            let results = match requests[0].mode {
                BumpMode::Commit => self.commit_batch(&lane, &requests).await,
                BumpMode::PullRequest => vec![self.pull_request(requests[0]).await],
            };
            for (pending, result) in batch.into_iter().zip(results) {
                let _ = pending.reply.send(result);
            }
        }
    }

    /// Applies several bumps to one branch in one commit, retrying lost push races.
    async fn commit_batch(
        &self,
        lane: &ConfigRepo,
        requests: &[&BumpRequest],
    ) -> Vec<Result<BumpOutcome, BumpError>> {
        let all = |err: BumpError| {
            let shared = Arc::new(err);
            requests
                .iter()
                .map(|_| Err(BumpError::Shared(shared.clone())))
                .collect()
        };
        let _lock = match self.lane_lock(lane).await {
            Ok(lock) => lock,
            Err(err) => return all(BumpError::Lock(err)),
        };
        let clone = match self.clone_for(lane).await {
            Ok(clone) => clone,
            Err(err) => return all(err),
        };
        for attempt in 1..=MAX_PUSH_ATTEMPTS {
            let result = async {
                let head = clone.fetch(&lane.branch).await?;
                let edits = clone.edit(&head, requests, &lane.branch).await?;
                let Some(message) = self.message(requests, &edits) else {
                    return Ok(Pushed::Nothing(edits));
                };
                let commit = clone.commit(&head, &message, &self.author).await?;
                if let Some(metrics) = &self.metrics {
                    metrics.bump_pushes.inc();
                }
                match clone.push(&commit, &lane.branch, false).await? {
                    true => Ok(Pushed::Commit(commit, edits)),
                    false => Ok(Pushed::Rejected),
                }
            }
            .await;
            let (commit, edits) = match result {
                Ok(Pushed::Rejected) => {
                    if let Some(metrics) = &self.metrics {
                        metrics.bump_conflicts.inc();
                    }
                    tokio::time::sleep(backoff(attempt)).await;
                    continue;
                }
                Ok(Pushed::Nothing(edits)) => (None, edits),
                Ok(Pushed::Commit(commit, edits)) => (Some(commit), edits),
                Err(err) => return all(err),
            };
            return requests
                .iter()
                .zip(edits)
                .map(|(request, edit)| {
                    let changes = edit?;
                    Ok(BumpOutcome {
                        bumped: BumpedFile {
                            repo: lane.url.clone(),
                            branch: lane.branch.clone(),
                            file: request.file.clone(),
                            image: request.new.image.clone(),
                            commit: (!changes.is_empty()).then(|| commit.clone()).flatten(),
                            changes,
                            pull_request: None,
                        },
                        attempts: attempt,
                    })
                })
                .collect();
        }
        all(BumpError::Contended {
            branch: lane.branch.clone(),
            attempts: MAX_PUSH_ATTEMPTS,
        })
    }

    /// Pushes the bump to its own branch, based on the newest base, and opens or updates
    /// the pull request from it.
    async fn pull_request(&self, request: &BumpRequest) -> Result<BumpOutcome, BumpError> {
        let (Some(forges), Some(forge)) = (&self.forges, request.forge) else {
            return Err(BumpError::NoForge);
        };
        let Some(repo_path) = forge_repo_path(&request.repo.url) else {
            return Err(BumpError::RepoPath(request.repo.url.clone()));
        };
        let head_branch = pull_request_branch(request);
        let lane = ConfigRepo {
            url: request.repo.url.clone(),
            branch: head_branch.clone(),
        };
        let _lock = self.lane_lock(&lane).await.map_err(BumpError::Lock)?;
        let clone = self.clone_for(&lane).await?;
        let base = clone.fetch(&request.repo.branch).await?;
        let mut edits = clone.edit(&base, &[request], &request.repo.branch).await?;
        let changes = edits.remove(0)?;
        let outcome = |commit: Option<String>, pull_request: Option<String>, changes| BumpOutcome {
            bumped: BumpedFile {
                repo: request.repo.url.clone(),
                branch: request.repo.branch.clone(),
                file: request.file.clone(),
                image: request.new.image.clone(),
                changes,
                commit,
                pull_request,
            },
            attempts: 1,
        };
        if changes.is_empty() {
            return Ok(outcome(None, None, changes));
        }
        let message = self
            .message(&[request], &[Ok(changes.clone())])
            .unwrap_or_default();
        let commit = clone.commit(&base, &message, &self.author).await?;
        // The bump branch is Gantry's own: it is rewritten onto the newest base each time.
        if !clone.push(&commit, &head_branch, true).await? {
            return Err(BumpError::PushRefused(head_branch));
        }
        let (title, body) = message.split_once("\n\n").unwrap_or((&message, ""));
        let pull_request = PullRequest {
            repo: repo_path,
            base: request.repo.branch.clone(),
            head: head_branch,
            title: title.to_owned(),
            body: body.to_owned(),
        };
        let url = forges
            .open_pull_request(forge, &pull_request)
            .await
            .map_err(BumpError::PullRequest)?;
        Ok(outcome(Some(commit), Some(url), changes))
    }

    async fn clone_for(&self, lane: &ConfigRepo) -> Result<Arc<ConfigClone>, BumpError> {
        if let Some(clone) = self
            .clones
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(lane)
        {
            return Ok(clone.clone());
        }
        let clone = Arc::new(ConfigClone::open(&self.auth, &lane.url).await?);
        self.clones
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(lane.clone(), clone.clone());
        Ok(clone)
    }

    async fn lane_lock(&self, lane: &ConfigRepo) -> anyhow::Result<Option<crate::store::LaneLock>> {
        match &self.store {
            Some(store) => {
                store
                    .lock_lane(&format!("bump {} {}", lane.url, lane.branch))
                    .await
            }
            None => Ok(None),
        }
    }

    /// The commit message, naming every bump the commit carries; `None` when none changes
    /// anything.
    fn message(
        &self,
        requests: &[&BumpRequest],
        edits: &[Result<Vec<ValueChange>, BumpError>],
    ) -> Option<String> {
        let applied: Vec<(&BumpRequest, &Vec<ValueChange>)> = requests
            .iter()
            .zip(edits)
            .filter_map(|(request, edit)| match edit {
                Ok(changes) if !changes.is_empty() => Some((*request, changes)),
                _ => None,
            })
            .collect();
        let subject = match applied.as_slice() {
            [] => return None,
            [(request, _)] => format!(
                "Bump {} to {}",
                request.new.image,
                shown_version(&request.new)
            ),
            several => format!("Bump {} images", several.len()),
        };
        let mut message = subject;
        for (request, changes) in applied {
            message.push_str("\n\n");
            message.push_str(&format!("Image: {}\n", reference(&request.new)));
            let digest = request.source.as_ref().and_then(|s| s.digest.as_ref());
            if request.new.digest.is_none()
                && let Some(digest) = digest
            {
                message.push_str(&format!("Digest: {digest}\n"));
            }
            for change in changes {
                message.push_str(&format!(
                    "File: {} {}: {} -> {}\n",
                    request.file,
                    change.place,
                    change.old.as_deref().unwrap_or("(new)"),
                    change.new
                ));
            }
            if let Some(source) = &request.source {
                message.push_str(&format!("Source: {}@{}\n", source.repo, source.commit));
                if let Some(url) = &source.run_url {
                    message.push_str(&format!("Run: {url}\n"));
                }
            }
        }
        Some(message.trim_end().to_owned() + "\n")
    }
}

/// Frees a lane whose drain task ended without emptying it (a panic).
struct LaneGuard {
    lanes: Arc<Mutex<HashMap<ConfigRepo, Lane>>>,
    lane: ConfigRepo,
    /// Set when the task removed the lane itself, under the lock.
    ended: bool,
}

impl Drop for LaneGuard {
    fn drop(&mut self) {
        if !self.ended {
            self.lanes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&self.lane);
        }
    }
}

enum Pushed {
    Commit(String, Vec<Result<Vec<ValueChange>, BumpError>>),
    Nothing(Vec<Result<Vec<ValueChange>, BumpError>>),
    Rejected,
}

/// The next bumps of a lane: in arrival order, at most one per file and image (a later
/// tag for the same image waits for the next commit, so each has its own).
fn take_batch(pending: &mut Vec<Pending>) -> Vec<Pending> {
    let mut batch: Vec<Pending> = Vec::new();
    let mut rest = Vec::new();
    for item in pending.drain(..) {
        let clash = batch.iter().any(|taken| {
            taken.request.file == item.request.file
                && taken.request.new.image == item.request.new.image
        });
        let single = item.request.mode == BumpMode::PullRequest && !batch.is_empty();
        if clash || single || batch.len() == MAX_BATCH {
            rest.push(item);
        } else {
            batch.push(item);
        }
    }
    *pending = rest;
    batch
}

fn check(request: &BumpRequest) -> Result<(), BumpError> {
    edit::reference::check_name(&request.new.image)?;
    if let Some(tag) = &request.new.tag {
        edit::reference::check_tag(tag)?;
    }
    if let Some(digest) = &request.new.digest {
        edit::reference::check_digest(digest)?;
    }
    let file = &request.file;
    let inside = !file.is_empty()
        && !file.starts_with('/')
        && !file.contains('\\')
        && file
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
        && !file.chars().any(char::is_control);
    if !inside {
        return Err(BumpError::Path(file.clone()));
    }
    if request.repo.branch.is_empty()
        || request.repo.branch.starts_with('-')
        || request.repo.branch.contains("..")
        || request
            .repo
            .branch
            .chars()
            .any(|c| c.is_control() || " ~^:?*[\\".contains(c))
    {
        return Err(BumpError::BadBranch(request.repo.branch.clone()));
    }
    if request.repo.url.starts_with('-') {
        return Err(BumpError::BadUrl(request.repo.url.clone()));
    }
    Ok(())
}

/// The branch a pull-request bump pushes to: one per base, file and image, so a later bump
/// of the same image updates the open pull request instead of opening another.
pub fn pull_request_branch(request: &BumpRequest) -> String {
    let slug = |text: &str| -> String {
        let mut slug: String = text
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        slug.truncate(40);
        slug.trim_matches('-').to_owned()
    };
    let image = request.new.image.rsplit('/').next().unwrap_or_default();
    let digest = {
        use sha2::Digest as _;
        let hash = sha2::Sha256::digest(
            format!(
                "{}\n{}\n{}",
                request.repo.branch, request.file, request.new.image
            )
            .as_bytes(),
        );
        hex::encode(&hash[..4])
    };
    format!(
        "gantry/bump/{}-{}-{digest}",
        slug(&request.repo.branch),
        slug(image)
    )
}

/// The repo's path on its forge (`owner/name`, or GitLab's `group/sub/name`) from its clone
/// URL: HTTPS, `ssh://` or scp-like `git@host:path`. For a local path or `file://` URL
/// (tests, mirrors) the last two folders.
pub fn forge_repo_path(url: &str) -> Option<String> {
    let path = if let Some(rest) = url.strip_prefix("file://") {
        let parts: Vec<&str> = rest.trim_end_matches('/').rsplitn(3, '/').collect();
        format!("{}/{}", parts.get(1)?, parts.first()?)
    } else if let Ok(parsed) = url::Url::parse(url)
        && parsed.has_host()
    {
        parsed.path().trim_matches('/').to_owned()
    } else if let Some((_, path)) = url.split_once(':').filter(|(host, _)| host.contains('@')) {
        path.trim_matches('/').to_owned()
    } else {
        return None;
    };
    let path = path.strip_suffix(".git").unwrap_or(&path).to_owned();
    (path.contains('/') && !path.split('/').any(str::is_empty)).then_some(path)
}

fn reference(new: &NewImage) -> String {
    let mut text = new.image.clone();
    if let Some(tag) = &new.tag {
        text.push(':');
        text.push_str(tag);
    }
    if let Some(digest) = &new.digest {
        text.push('@');
        text.push_str(digest);
    }
    text
}

fn shown_version(new: &NewImage) -> String {
    match (&new.tag, &new.digest) {
        (Some(tag), _) => tag.clone(),
        (None, Some(digest)) => digest.chars().take(19).collect(),
        (None, None) => String::new(),
    }
}

/// Exponential with jitter, so racing writers spread out.
fn backoff(attempt: u32) -> Duration {
    let base = PUSH_BACKOFF
        .saturating_mul(1 << attempt.min(10))
        .min(PUSH_BACKOFF_CAP);
    let jitter = (uuid::Uuid::new_v4().as_u128() % 1000) as u32;
    base.mul_f64(0.5 + f64::from(jitter) / 2000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forge_paths_come_from_every_kind_of_url() {
        let path = |url| forge_repo_path(url);
        assert_eq!(
            path("https://github.com/acme/config.git").as_deref(),
            Some("acme/config")
        );
        assert_eq!(
            path("https://gitlab.example.com/platform/team/config").as_deref(),
            Some("platform/team/config")
        );
        assert_eq!(
            path("git@github.com:acme/config.git").as_deref(),
            Some("acme/config")
        );
        assert_eq!(
            path("ssh://git@host:22/acme/config.git").as_deref(),
            Some("acme/config")
        );
        assert_eq!(
            path("file:///srv/git/acme/config.git").as_deref(),
            Some("acme/config")
        );
        assert_eq!(path("https://github.com/config.git"), None);
    }

    #[test]
    fn authors_read_name_and_email() {
        let author = Author::parse("Gantry Bot <bot@example.com>").unwrap();
        assert_eq!(
            (author.name.as_str(), author.email.as_str()),
            ("Gantry Bot", "bot@example.com")
        );
        assert!(Author::parse("no email").is_err());
        assert!(Author::parse("<bot@example.com>").is_err());
    }
}
