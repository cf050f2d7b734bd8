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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValueChange {
    pub line: usize,
    /// Where in the document, e.g. `images[0].newTag`.
    pub place: String,
    /// `None` for a key the edit added.
    pub old: Option<String>,
    pub new: String,
}
