//! Changes: the files a push changed, and the values a bump changed in a config file.

use serde::{Deserialize, Serialize};

/// Files a push or pull request changed, where known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangedPaths {
    Known(Vec<String>),
    /// Neither the payload nor the checkout could tell (a new branch, a cut commit list):
    /// `paths` filters then let the pipeline run rather than silently skip it.
    Unknown,
}

/// One value a bump changed (or added) in a config file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ValueChange {
    pub line: usize,
    /// Where in the document, e.g. `images[0].newTag`.
    pub place: String,
    /// `None` for a key the edit added.
    pub old: Option<String>,
    pub new: String,
}

/// What one bump did to one file of a config repo: `gantry bump`'s answer, and a bump
/// stage's record on its run. `changes` is empty when every value was already in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BumpedFile {
    /// The config repo's URL.
    pub repo: String,
    pub branch: String,
    pub file: String,
    pub image: String,
    pub changes: Vec<ValueChange>,
    /// The commit that carries the bump; `None` when the values were already in place.
    pub commit: Option<String>,
    pub pull_request: Option<String>,
}

impl BumpedFile {
    /// One line per changed value, `file:line place: old -> new`: the stage's log and the
    /// CLI's output.
    pub fn change_lines(&self) -> impl Iterator<Item = String> + '_ {
        self.changes.iter().map(|change| {
            format!(
                "{}:{} {}: {} -> {}",
                self.file,
                change.line,
                change.place,
                change.old.as_deref().unwrap_or("(new)"),
                change.new
            )
        })
    }

    /// One line for people: the stage message and the CLI's answer.
    pub fn summary(&self) -> String {
        let values = self
            .changes
            .iter()
            .map(|c| {
                format!(
                    "{} {} → {}",
                    c.place,
                    c.old.as_deref().unwrap_or("(new)"),
                    c.new
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        match (&self.pull_request, &self.commit) {
            (Some(url), _) => format!("{}: {values} (pull request {url})", self.file),
            (None, Some(commit)) => format!(
                "{}@{}: {values} (commit {})",
                self.file,
                self.branch,
                &commit[..commit.len().min(12)]
            ),
            (None, None) => format!("{}@{}: already up to date", self.file, self.branch),
        }
    }
}
