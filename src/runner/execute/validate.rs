//! The `validate` stage: the checkout's config files checked by Gantry itself (the rules
//! are `gitops::validate`'s), each finding a line of the stage's log.

use super::stage::{StageContext, StageEnd};
use crate::pipeline::FileSelection;

impl StageContext {
    pub(super) async fn validate(&self, stage: &str, selection: &FileSelection) -> StageEnd {
        let root = self.checkout.clone();
        let selected = selection.clone();
        let report = tokio::task::spawn_blocking(move || {
            crate::gitops::validate::check_tree(&root, &selected)
        })
        .await;
        let report = match report {
            Ok(Ok(report)) => report,
            Ok(Err(err)) => return StageEnd::error(format!("reading the checkout: {err}")),
            Err(err) => return StageEnd::error(format!("the check stopped: {err}")),
        };
        for finding in &report.findings {
            self.log(stage, &finding.to_string());
        }
        self.log(stage, &report.summary());
        if report.files_checked == 0 {
            let patterns: Vec<&str> = selection.paths.iter().map(|p| p.text.as_str()).collect();
            return StageEnd::failure(format!("no file matches {}", patterns.join(", ")));
        }
        match report.findings.first() {
            None => StageEnd::success(None),
            Some(first) => StageEnd::failure(format!(
                "{} finding(s), first at {first}",
                report.findings.len()
            )),
        }
    }
}
