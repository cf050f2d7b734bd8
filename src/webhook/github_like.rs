//! GitHub-shaped payloads: GitHub's own, and Gitea's and Forgejo's, which follow them. Each
//! delivery is read in two steps: its event and action first, then, only for an event Gantry
//! acts on, the fields a run needs; everything else is optional.

use serde::Deserialize;

use super::payload::{self, Head, PushedCommit, commit_sha, from_json};
use super::{Event, EventKind, PullRequest, PullRequestAction, Repo, Sender, WebhookError};
use crate::domain::{CommitSha, Forge, RepoName, Visibility};

/// Where GitHub and Gitea differ in what they send.
pub(super) struct Dialect {
    pub forge: Forge,
    /// The action of a pull request that received new commits.
    pub synchronize: &'static str,
    /// Event names of pull request deliveries.
    pub pull_request_events: &'static [&'static str],
    pub parse_push: fn(PushPayload) -> Result<(Repo, EventKind), WebhookError>,
}

impl Dialect {
    /// The event a delivery named `event_name` carries.
    pub fn parse(&self, event_name: &str, body: &[u8]) -> Result<Event, WebhookError> {
        let head = Head::read(body)?;
        let ignored = |kind: EventKind| (repository_of(body), kind);
        let (repo, kind) = if event_name == "push" {
            let (repo, kind) = (self.parse_push)(from_json(body)?)?;
            (Some(repo), kind)
        } else if self.pull_request_events.contains(&event_name) {
            self.pull_request(head.action(), body)?
        } else {
            match event_name {
                "ping" => ignored(EventKind::Ping),
                // A deletion needs no run: one Gantry cannot read is ignored all the same.
                "delete" => match deleted_ref(body) {
                    Some((repo, kind)) => (Some(repo), kind),
                    None => ignored(payload::ignored(
                        "delete",
                        "a branch or tag was deleted".into(),
                    )),
                },
                other => ignored(payload::ignored(other, payload::not_acted_on(other))),
            }
        };
        Ok(Event {
            forge: self.forge,
            repo,
            kind,
        })
    }

    /// A pull request delivery: read whole only for an action that asks for a run.
    fn pull_request(
        &self,
        action: Option<&str>,
        body: &[u8],
    ) -> Result<(Option<Repo>, EventKind), WebhookError> {
        let ignored = |reason: String| {
            Ok((
                repository_of(body),
                payload::ignored("pull_request", reason),
            ))
        };
        let action = match action {
            Some("opened") => PullRequestAction::Opened,
            Some(action) if action == self.synchronize => PullRequestAction::Synchronized,
            Some("reopened") => PullRequestAction::Reopened,
            Some("closed") => {
                return match closed_pull_request(body) {
                    Ok((repo, kind)) => Ok((Some(repo), kind)),
                    Err(_) => ignored("pull request closed".into()),
                };
            }
            other => {
                return ignored(format!(
                    "pull_request action `{}` is not acted on",
                    other.unwrap_or("(none)")
                ));
            }
        };
        let (repo, kind) = from_json::<PullRequestPayload>(body)?.into_parts(action)?;
        Ok((Some(repo), kind))
    }
}

/// A closed (or merged) pull request needs no run; it is described when the payload allows.
fn closed_pull_request(body: &[u8]) -> Result<(Repo, EventKind), WebhookError> {
    let payload: PullRequestPayload = from_json(body)?;
    let action = if payload.pull_request.merged.unwrap_or(false) {
        PullRequestAction::Merged
    } else {
        PullRequestAction::Closed
    };
    payload.into_parts(action)
}

/// A `delete` delivery's repository and ref, when it names them readably.
fn deleted_ref(body: &[u8]) -> Option<(Repo, EventKind)> {
    let delete: RefPayload = from_json(body).ok()?;
    let git_ref = payload::ref_of_kind(&delete.ref_type, &delete.git_ref).ok()?;
    Some((
        delete.repository.into_repo(),
        EventKind::RefDeleted { git_ref },
    ))
}

/// A repository as GitHub and Gitea describe it. Only its name is needed: the clone URL can
/// come from `[[repos]] clone_url` instead.
#[derive(Deserialize)]
pub(super) struct RepositoryJson {
    pub full_name: String,
    #[serde(default)]
    pub clone_url: Option<String>,
    #[serde(default)]
    pub html_url: Option<String>,
    /// GitHub's `public`, `internal` or `private`; preferred to the flags below.
    #[serde(default)]
    pub visibility: Option<serde_json::Value>,
    #[serde(default)]
    pub private: Option<serde_json::Value>,
    /// Gitea's flag for repos every signed-in user sees.
    #[serde(default)]
    pub internal: Option<serde_json::Value>,
    #[serde(default)]
    pub default_branch: Option<serde_json::Value>,
}

impl RepositoryJson {
    pub fn into_repo(self) -> Repo {
        let visibility = self.visibility();
        Repo {
            full_name: RepoName::new(self.full_name),
            clone_url: self.clone_url,
            web_url: self.html_url,
            visibility,
            default_branch: payload::text(self.default_branch.as_ref()),
        }
    }

    /// What the payload says of the repo's visibility, read leniently: a field of an
    /// unexpected type says nothing, and nothing said counts as private later.
    fn visibility(&self) -> Option<Visibility> {
        if let Some(named) = self.visibility.as_ref().and_then(serde_json::Value::as_str)
            && let Ok(visibility) = named.parse()
        {
            return Some(visibility);
        }
        match self.private.as_ref().and_then(serde_json::Value::as_bool)? {
            true => Some(Visibility::Private),
            false if self.internal.as_ref().and_then(serde_json::Value::as_bool) == Some(true) => {
                Some(Visibility::Internal)
            }
            false => Some(Visibility::Public),
        }
    }
}

/// The repository a GitHub-shaped payload names, if it names one readably.
pub(super) fn repository_of(body: &[u8]) -> Option<Repo> {
    #[derive(Deserialize)]
    struct Named {
        repository: Option<RepositoryJson>,
    }
    serde_json::from_slice::<Named>(body)
        .ok()?
        .repository
        .map(RepositoryJson::into_repo)
}

/// A user; GitHub's `pusher` has a name and no login, so the login is optional.
#[derive(Deserialize)]
pub(super) struct UserJson {
    #[serde(default)]
    pub login: Option<String>,
    /// Read leniently: a sender without a readable id is still named by its login.
    #[serde(default)]
    pub id: Option<serde_json::Value>,
}

impl UserJson {
    /// The sender this user is, when it has a login.
    pub fn into_sender(self) -> Option<Sender> {
        Some(Sender {
            id: self.id.as_ref().and_then(serde_json::Value::as_u64),
            login: self.login.filter(|login| !login.is_empty())?,
        })
    }
}

/// A `delete` delivery.
#[derive(Deserialize)]
pub(super) struct RefPayload {
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub ref_type: String,
    pub repository: RepositoryJson,
}

/// A push; GitHub sends the flags, Gitea `total_commits` and `pusher`.
#[derive(Deserialize)]
pub(super) struct PushPayload {
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub before: String,
    pub after: String,
    #[serde(default)]
    pub created: bool,
    #[serde(default)]
    pub deleted: bool,
    #[serde(default)]
    pub forced: bool,
    #[serde(default)]
    pub commits: Vec<PushedCommit>,
    pub total_commits: Option<usize>,
    pub head_commit: Option<PushedCommit>,
    pub repository: RepositoryJson,
    pub pusher: Option<UserJson>,
    pub sender: Option<UserJson>,
}

/// A pull request event, with what a run needs: the number, the head's branch and commit,
/// the base's branch, and enough to tell a fork.
#[derive(Deserialize)]
pub(super) struct PullRequestPayload {
    pub number: u64,
    pub pull_request: PullRequestJson,
    pub repository: RepositoryJson,
    pub sender: Option<UserJson>,
}

#[derive(Deserialize)]
pub(super) struct PullRequestJson {
    #[serde(default)]
    pub title: String,
    pub merged: Option<bool>,
    pub head: BranchJson,
    pub base: BranchJson,
}

#[derive(Deserialize)]
pub(super) struct BranchJson {
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub sha: String,
    /// `owner:branch` (older Gitea: the bare branch).
    pub label: Option<String>,
    /// Gitea's id of the branch's repository (read leniently, like every id here).
    #[serde(default)]
    pub repo_id: Option<serde_json::Value>,
    /// Absent in older and trimmed payloads; `null` for a fork since deleted.
    #[serde(default, deserialize_with = "present")]
    pub repo: Option<Option<BranchRepoJson>>,
}

#[derive(Deserialize)]
pub(super) struct BranchRepoJson {
    #[serde(default)]
    pub id: Option<serde_json::Value>,
    pub full_name: String,
    pub clone_url: Option<String>,
}

impl BranchJson {
    /// The id of the branch's repository: Gitea's `repo_id`, else `repo.id`.
    fn repo_id(&self) -> Option<u64> {
        let repo = match &self.repo {
            Some(Some(repo)) => repo.id.as_ref(),
            _ => None,
        };
        self.repo_id.as_ref().or(repo)?.as_u64()
    }
}

impl PullRequestPayload {
    /// The repository and the pull request event, once the forge's action is known.
    pub fn into_parts(self, action: PullRequestAction) -> Result<(Repo, EventKind), WebhookError> {
        let pr = self.pull_request;
        let from_fork = head_is_fork(&pr.head, &pr.base, &self.repository.full_name);
        let head_clone_url = match pr.head.repo {
            Some(Some(repo)) => repo.clone_url,
            _ => None,
        };
        let kind = EventKind::PullRequest(PullRequest {
            action,
            number: self.number,
            title: pr.title,
            head_sha: commit_sha("pull_request.head.sha", &pr.head.sha)?,
            head_ref: pr.head.git_ref,
            base_sha: CommitSha::parse(&pr.base.sha),
            base_ref: pr.base.git_ref,
            from_fork,
            head_clone_url,
            head_commit_message: None,
            sender: self.sender.and_then(UserJson::into_sender),
        });
        Ok((self.repository.into_repo(), kind))
    }
}

/// Whether a pull request's head lives in another repository than its base (`base_repo`),
/// whose author must then not see secrets nor run without approval. The head is the base
/// repo's own only when nothing says otherwise: a head repository that was deleted
/// (`null`), different repository ids (Gitea's `repo_id`, else `repo.id`), or a head
/// repository of another name each make it a fork. Without ids or repository, the owner
/// in the head's label decides (`owner:branch`; a bare branch is the base repo's own).
fn head_is_fork(head: &BranchJson, base: &BranchJson, base_repo: &str) -> bool {
    let ids = (head.repo_id(), base.repo_id());
    if let (Some(head_id), Some(base_id)) = ids
        && head_id != base_id
    {
        return true;
    }
    match &head.repo {
        Some(None) => true,
        Some(Some(repo)) => !repo.full_name.eq_ignore_ascii_case(base_repo),
        None if ids.0.is_some() && ids.1.is_some() => false,
        None => {
            let base_owner = base_repo.split('/').next().unwrap_or_default();
            head.label
                .as_deref()
                .and_then(|label| label.split_once(':'))
                .is_some_and(|(owner, _)| !owner.eq_ignore_ascii_case(base_owner))
        }
    }
}

/// Reads a field that may be absent, `null`, or a value: `None`, `Some(None)`, `Some(Some)`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn branch(json: serde_json::Value) -> BranchJson {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn forks_are_told_by_ids_then_repo_then_label() {
        let base = branch(serde_json::json!({ "ref": "main", "sha": "a", "repo_id": 1 }));
        let same_id = branch(serde_json::json!({ "ref": "x", "sha": "b", "repo_id": 1 }));
        let other_id = branch(serde_json::json!({ "ref": "x", "sha": "b", "repo_id": 2 }));
        assert!(!head_is_fork(&same_id, &base, "acme/web"));
        assert!(head_is_fork(&other_id, &base, "acme/web"));

        let base = branch(serde_json::json!({ "ref": "main", "sha": "a" }));
        let own = branch(serde_json::json!({
            "ref": "x", "sha": "b", "repo": { "full_name": "Acme/Web" }
        }));
        let fork = branch(serde_json::json!({
            "ref": "x", "sha": "b", "repo": { "full_name": "someone/web" }
        }));
        let deleted = branch(serde_json::json!({ "ref": "x", "sha": "b", "repo": null }));
        assert!(!head_is_fork(&own, &base, "acme/web"));
        assert!(head_is_fork(&fork, &base, "acme/web"));
        assert!(head_is_fork(&deleted, &base, "acme/web"));

        // Ids decide first; a payload whose names disagree with equal ids is not trusted
        // to be the base repo's own.
        let base = branch(serde_json::json!({
            "ref": "main", "sha": "a", "repo": { "id": 10, "full_name": "acme/web" }
        }));
        let own = branch(serde_json::json!({
            "ref": "x", "sha": "b", "repo": { "id": 10, "full_name": "acme/web" }
        }));
        let other_id = branch(serde_json::json!({
            "ref": "x", "sha": "b", "repo": { "id": 11, "full_name": "acme/web" }
        }));
        let other_name = branch(serde_json::json!({
            "ref": "x", "sha": "b", "repo": { "id": 10, "full_name": "someone/web" }
        }));
        assert!(!head_is_fork(&own, &base, "acme/web"));
        assert!(head_is_fork(&other_id, &base, "acme/web"));
        assert!(head_is_fork(&other_name, &base, "acme/web"));
        assert!(head_is_fork(&deleted, &base, "acme/web"));
        let base = branch(serde_json::json!({ "ref": "main", "sha": "a" }));

        let labelled =
            |label: &str| branch(serde_json::json!({ "ref": "x", "sha": "b", "label": label }));
        assert!(!head_is_fork(&labelled("acme:x"), &base, "acme/web"));
        assert!(head_is_fork(&labelled("someone:x"), &base, "acme/web"));
        assert!(!head_is_fork(&labelled("x"), &base, "acme/web"));
        assert!(!head_is_fork(
            &branch(serde_json::json!({ "ref": "x", "sha": "b" })),
            &base,
            "acme/web"
        ));
    }
}
