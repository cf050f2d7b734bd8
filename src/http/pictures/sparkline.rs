//! A pipeline's trend: its last runs as small bars, oldest on the left, each as tall as the
//! run was long and coloured by how it ended; each bar links to its run.

use std::fmt::Write;

use super::{STATE_STYLE, escape, span_text};
use crate::domain::StageState;
use crate::store::PipelineOutcome;

const BAR_WIDTH: f64 = 5.0;
const GAP: f64 = 1.0;
const HEIGHT: f64 = 28.0;
/// A run without a measured duration (it never started a stage) still shows.
const MIN_BAR_HEIGHT: f64 = 2.0;

/// `outcomes` newest first, as the store gives them.
pub fn render(pipeline: &str, outcomes: &[PipelineOutcome]) -> String {
    let longest = outcomes
        .iter()
        .filter_map(|outcome| outcome.millis)
        .max()
        .unwrap_or(0)
        .max(1);
    let width = (outcomes.len() as f64 * (BAR_WIDTH + GAP)).max(BAR_WIDTH);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="sparkline" viewBox="0 0 {width} {HEIGHT}" width="{width}" height="{HEIGHT}" role="img" aria-label="{label}"><style>{STATE_STYLE}</style>"#,
        label = escape(&summary(pipeline, outcomes)),
    );
    for (index, outcome) in outcomes.iter().rev().enumerate() {
        let height = outcome.millis.map_or(MIN_BAR_HEIGHT, |millis| {
            (millis as f64 / longest as f64 * HEIGHT).max(MIN_BAR_HEIGHT)
        });
        let duration = outcome.millis.map(span_text).unwrap_or_else(|| "—".into());
        let _ = write!(
            svg,
            r#"<a href="/runs/{id}"><title>run #{id}: {state}, {duration}</title><rect class="s-{state}" x="{x:.1}" y="{y:.2}" width="{BAR_WIDTH}" height="{height:.2}"/></a>"#,
            id = outcome.run_id,
            state = outcome.state,
            x = index as f64 * (BAR_WIDTH + GAP),
            y = HEIGHT - height,
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The share of ended runs that succeeded, in percent; canceled runs say nothing of the
/// pipeline and are left out. `None` when none count.
pub fn success_rate(outcomes: &[PipelineOutcome]) -> Option<u32> {
    let counted: Vec<_> = outcomes
        .iter()
        .filter(|outcome| outcome.state != StageState::Canceled)
        .collect();
    let succeeded = counted
        .iter()
        .filter(|outcome| outcome.state == StageState::Success)
        .count();
    (!counted.is_empty()).then(|| (succeeded * 100 / counted.len()) as u32)
}

/// The trend in words: how many runs, how many passed, the typical duration.
fn summary(pipeline: &str, outcomes: &[PipelineOutcome]) -> String {
    let mut durations: Vec<i64> = outcomes.iter().filter_map(|o| o.millis).collect();
    durations.sort_unstable();
    let median = durations.get(durations.len() / 2).copied();
    let mut text = format!("{pipeline}: last {} runs", outcomes.len());
    if let Some(rate) = success_rate(outcomes) {
        let _ = write!(text, ", {rate}% succeeded");
    }
    if let Some(median) = median {
        let _ = write!(text, ", median {}", span_text(median));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(run_id: i64, state: StageState, millis: Option<i64>) -> PipelineOutcome {
        PipelineOutcome {
            run_id,
            state,
            millis,
        }
    }

    #[test]
    fn success_rate_leaves_canceled_runs_out() {
        let outcomes = [
            outcome(4, StageState::Success, Some(1000)),
            outcome(3, StageState::Canceled, None),
            outcome(2, StageState::Failure, Some(3000)),
            outcome(1, StageState::Success, Some(2000)),
        ];
        assert_eq!(success_rate(&outcomes), Some(66));
        assert_eq!(
            success_rate(&[outcome(1, StageState::Canceled, None)]),
            None
        );
    }

    #[test]
    fn bars_run_oldest_to_newest_with_heights_by_duration() {
        let outcomes = [
            outcome(2, StageState::Failure, Some(1000)),
            outcome(1, StageState::Success, Some(4000)),
        ];
        let svg = render("web", &outcomes);
        let first = svg.find("/runs/1").unwrap();
        let second = svg.find("/runs/2").unwrap();
        assert!(first < second, "the oldest run is drawn first: {svg}");
        assert!(svg.contains(r#"class="s-success" x="0.0" y="0.00" width="5" height="28.00""#));
        assert!(svg.contains(r#"class="s-failure" x="6.0" y="21.00" width="5" height="7.00""#));
        assert!(svg.contains("web: last 2 runs, 50% succeeded"));
    }
}
