//! Which events start a pipeline (`on`), which stages run (`when`), and `[skip ci]`.

use super::{Pattern, Pipeline, When};
use crate::domain::{ChangedPaths, GitRef, Trigger};
use crate::webhook::{Event, EventKind};

/// What matching needs to know about an event.
#[derive(Debug, Clone)]
pub struct EventFacts<'a> {
    pub trigger: Trigger,
    /// The pushed branch, or a pull request's head branch.
    pub branch: Option<&'a str>,
    pub tag: Option<&'a str>,
    /// The branch a pull request targets.
    pub base_branch: Option<&'a str>,
    pub changed_paths: &'a ChangedPaths,
    /// The one pipeline a scheduled run is for.
    pub scheduled: Option<&'a str>,
}

impl<'a> EventFacts<'a> {
    /// The facts of an event that asks for a run; `None` for one that does not.
    pub fn from_event(event: &'a Event, changed_paths: &'a ChangedPaths) -> Option<Self> {
        let run = event.run_request().ok()?;
        let (branch, tag, base_branch) = match (&event.kind, &run.git_ref) {
            (EventKind::PullRequest(pr), _) => {
                (Some(pr.head_ref.as_str()), None, Some(pr.base_ref.as_str()))
            }
            (EventKind::Push(push), GitRef::Branch(_)) => (Some(push.git_ref.name()), None, None),
            (EventKind::Push(push), GitRef::Tag(_)) => (None, Some(push.git_ref.name()), None),
            (EventKind::Manual(manual), GitRef::Branch(_)) => {
                (Some(manual.git_ref.name()), None, None)
            }
            (EventKind::Manual(manual), GitRef::Tag(_)) => {
                (None, Some(manual.git_ref.name()), None)
            }
            (EventKind::Scheduled(scheduled), _) => (Some(scheduled.git_ref.name()), None, None),
            _ => return None,
        };
        let scheduled = match &event.kind {
            EventKind::Scheduled(scheduled) => Some(scheduled.pipeline.as_str()),
            _ => None,
        };
        Some(Self {
            trigger: run.trigger,
            branch,
            tag,
            base_branch,
            changed_paths,
            scheduled,
        })
    }

    /// The branch `branches` filters look at: the target for pull requests, as in
    /// GitHub Actions' `pull_request.branches`.
    fn filtered_branch(&self) -> Option<&str> {
        match self.trigger {
            Trigger::PullRequest => self.base_branch,
            Trigger::Push | Trigger::Tag | Trigger::Manual | Trigger::Schedule => self.branch,
        }
    }
}

fn any_match(patterns: &[Pattern], candidate: Option<&str>) -> bool {
    candidate.is_some_and(|candidate| patterns.iter().any(|p| p.matches(candidate)))
}

fn paths_match(patterns: Option<&Vec<Pattern>>, changed: &ChangedPaths) -> bool {
    match (patterns, changed) {
        (None, _) | (Some(_), ChangedPaths::Unknown) => true,
        (Some(patterns), ChangedPaths::Known(paths)) => paths
            .iter()
            .any(|path| patterns.iter().any(|pattern| pattern.matches(path))),
    }
}

impl Pipeline {
    /// True when the pipeline's `on` asks for this event.
    pub fn triggered_by(&self, facts: &EventFacts<'_>) -> bool {
        match facts.trigger {
            Trigger::Push | Trigger::Tag => {
                let Some(push) = &self.triggers.push else {
                    return false;
                };
                let ref_matches = match facts.trigger {
                    Trigger::Tag => push
                        .tags
                        .as_ref()
                        .is_none_or(|tags| any_match(tags, facts.tag)),
                    _ => push
                        .branches
                        .as_ref()
                        .is_none_or(|branches| any_match(branches, facts.branch)),
                };
                // Paths say nothing about a tag, which points at a whole tree.
                let paths_ok = facts.trigger == Trigger::Tag
                    || paths_match(push.paths.as_ref(), facts.changed_paths);
                ref_matches && paths_ok
            }
            Trigger::Manual => self.triggers.manual,
            Trigger::Schedule => {
                !self.triggers.schedules.is_empty() && facts.scheduled == Some(self.name.as_str())
            }
            Trigger::PullRequest => {
                let Some(pr) = &self.triggers.pull_request else {
                    return false;
                };
                pr.branches
                    .as_ref()
                    .is_none_or(|branches| any_match(branches, facts.base_branch))
                    && paths_match(pr.paths.as_ref(), facts.changed_paths)
            }
        }
    }
}

impl When {
    /// `None` when the stage runs; otherwise why it is skipped.
    pub fn skip_reason(&self, facts: &EventFacts<'_>) -> Option<String> {
        if let Some(events) = &self.events
            && !events.contains(&facts.trigger)
        {
            return Some(format!("`when.event` excludes {}", facts.trigger.as_str()));
        }
        if let Some(branches) = &self.branches
            && !any_match(branches, facts.filtered_branch())
        {
            return Some(format!(
                "`when.branch` excludes {}",
                facts.filtered_branch().unwrap_or("a run without a branch")
            ));
        }
        if let Some(tags) = &self.tags
            && !any_match(tags, facts.tag)
        {
            return Some(format!(
                "`when.tag` excludes {}",
                facts.tag.unwrap_or("a run without a tag")
            ));
        }
        None
    }
}

/// `[skip ci]` or `[ci skip]` anywhere in the head commit's message skips the run.
pub fn skip_ci_requested(message: Option<&str>) -> bool {
    message.is_some_and(|message| {
        let lower = message.to_ascii_lowercase();
        lower.contains("[skip ci]") || lower.contains("[ci skip]")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_markers_are_found_in_any_case() {
        assert!(skip_ci_requested(Some("docs: typo [skip ci]")));
        assert!(skip_ci_requested(Some("[CI SKIP] wip")));
        assert!(!skip_ci_requested(Some("skip ci")));
        assert!(!skip_ci_requested(None));
    }
}
