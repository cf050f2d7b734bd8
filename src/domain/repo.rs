//! What names a repository, a commit and a ref, and the kind of event a run is for.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::UnknownName;

/// A repository's full name on its forge: `owner/repo` or `group/subgroup/repo`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoName(String);

impl RepoName {
    pub fn new(name: impl Into<String>) -> Self {
        Self(name.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for RepoName {
    fn from(name: &str) -> Self {
        Self::new(name)
    }
}

impl FromStr for RepoName {
    type Err = std::convert::Infallible;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(name))
    }
}

text_form!(RepoName);
text_schema!(RepoName);

/// A full commit id (40 hex digits for SHA-1 repos, 64 for SHA-256), in lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CommitSha(String);

impl CommitSha {
    /// Accepts only a full hex object id, so a value from a payload can never smuggle anything
    /// else into a `git` command line.
    pub fn parse(value: &str) -> Option<Self> {
        let full_length = value.len() == 40 || value.len() == 64;
        (full_length && value.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Self(value.to_ascii_lowercase()))
    }

    /// The all-zero id forges send for the missing side of a ref creation or deletion.
    pub fn is_zero(&self) -> bool {
        self.0.bytes().all(|b| b == b'0')
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CommitSha {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for CommitSha {
    type Err = UnknownName;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Self::parse(value).ok_or_else(|| UnknownName::new("commit id", value))
    }
}

text_form!(CommitSha);
text_schema!(CommitSha);

/// A branch or a tag. Stored events keep the tagged form (`{"kind": "branch", "name": …}`);
/// everywhere else a ref is written in full (`refs/heads/main`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum GitRef {
    Branch(String),
    Tag(String),
}

impl GitRef {
    /// Reads a full ref such as `refs/heads/main` or `refs/tags/v1`. Other refs (notes,
    /// merge-request refs) are not something pipelines run on.
    pub fn parse(full: &str) -> Option<Self> {
        if let Some(branch) = full.strip_prefix("refs/heads/") {
            Some(GitRef::Branch(branch.to_owned()))
        } else {
            full.strip_prefix("refs/tags/")
                .map(|tag| GitRef::Tag(tag.to_owned()))
        }
    }

    pub fn name(&self) -> &str {
        match self {
            GitRef::Branch(name) | GitRef::Tag(name) => name,
        }
    }

    pub fn full(&self) -> String {
        match self {
            GitRef::Branch(name) => format!("refs/heads/{name}"),
            GitRef::Tag(name) => format!("refs/tags/{name}"),
        }
    }
}

named_enum! {
    /// What kind of event a run is for: what `on:` and `when: { event }` match, and
    /// `GANTRY_EVENT`.
    pub enum Trigger as "event" {
        Push = "push",
        Tag = "tag",
        PullRequest = "pull_request",
        /// Started by someone from the page or the API, on a ref's newest known commit.
        Manual = "manual",
        /// Started by a pipeline's `on.schedule`, on its branch's newest known commit.
        Schedule = "schedule",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_sha_takes_only_full_hex_ids() {
        assert!(CommitSha::parse("0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c").is_some());
        assert!(CommitSha::parse("0d1a26e").is_none());
        assert!(CommitSha::parse("$(rm -rf /)0d1a26e67d8f5eaf1f6ba5c57fc3c7d9").is_none());
        assert!(
            CommitSha::parse("0000000000000000000000000000000000000000")
                .unwrap()
                .is_zero()
        );
        assert!("0d1a26e".parse::<CommitSha>().is_err());
    }

    #[test]
    fn refs_are_read_by_prefix() {
        assert_eq!(
            GitRef::parse("refs/heads/feature/x"),
            Some(GitRef::Branch("feature/x".into()))
        );
        assert_eq!(
            GitRef::parse("refs/tags/v1"),
            Some(GitRef::Tag("v1".into()))
        );
        assert_eq!(GitRef::parse("refs/notes/commits"), None);
    }

    #[test]
    fn names_round_trip_through_their_string_form() {
        for trigger in Trigger::ALL {
            assert_eq!(trigger.as_str().parse::<Trigger>(), Ok(*trigger));
        }
        assert_eq!(
            serde_json::to_string(&Trigger::PullRequest).unwrap(),
            "\"pull_request\""
        );
        assert_eq!(
            "merge".parse::<Trigger>().unwrap_err().to_string(),
            "unknown event `merge`"
        );
    }
}
