//! A run's timeline: the whole hand-off on one time axis, from the webhook's arrival through
//! the wait for approval and for a runner, the checkout, each stage on a lane of its own
//! (stages that ran side by side overlap), to the image push and the bump commit.
//!
//! Time runs left to right from the webhook's arrival to the run's end (or now, while it
//! runs), so a bar's width is its duration at one scale for the whole picture. Each piece
//! carries a `<title>` (shown on hover), and the picture's `<desc>` says all of it as text
//! for screen readers.

use std::fmt::Write;

use super::{STATE_STYLE, escape, shorten, span_text};
use crate::domain::DeployState;
use crate::domain::StageState;
use crate::runner::execute::PUSHED;
use crate::store::{BumpReport, DeployReport, PipelineResult, Run};

/// The picture's width in user units (it scales down with the page).
pub const WIDTH: f64 = 960.0;
/// Where time starts: left of it are the lanes' names.
pub const PLOT_LEFT: f64 = 210.0;
/// Room right of the plot for a note after a bar that ends last ("×3").
const RIGHT_MARGIN: f64 = 40.0;
/// The width the whole span of the run is drawn on.
pub const PLOT_WIDTH: f64 = WIDTH - PLOT_LEFT - RIGHT_MARGIN;
const LANE_HEIGHT: f64 = 22.0;
const BAR_HEIGHT: f64 = 14.0;
const AXIS_HEIGHT: f64 = 24.0;
/// A stage too short to see still gets a sliver: at most this much wider than its time.
const MIN_BAR_WIDTH: f64 = 1.0;
/// Characters of a lane's name shown; the whole name is in its title.
const LABEL_CHARS: usize = 32;
/// The spans between axis ticks, in seconds: the first that gives at most `MAX_TICKS`.
const TICK_STEPS: &[i64] = &[
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21_600, 43_200, 86_400,
];
const MAX_TICKS: i64 = 8;

/// What the timeline is drawn from: the run as stored, read at `now` (Unix milliseconds).
pub struct Facts<'a> {
    pub run: &'a Run,
    pub pipelines: &'a [PipelineResult],
    pub bumps: &'a [BumpReport],
    /// Where the bumps went: marks when an environment applied them (or failed to).
    pub deployments: &'a [DeployReport],
    pub now: i64,
}

/// One drawn thing on a lane.
enum Piece {
    /// Something that took time: a stage (its state's class), the checkout.
    Bar {
        start: i64,
        end: i64,
        class: String,
        title: String,
        /// `pipeline/stage`, for a stage's bar.
        stage: Option<String>,
    },
    /// Time spent waiting: for approval, a runner, the stages a stage needs, a free slot.
    Wait { start: i64, end: i64, title: String },
    /// A moment: the webhook's arrival, a push, a bump commit.
    Mark {
        at: i64,
        kind: &'static str,
        title: String,
    },
}

struct Lane {
    name: String,
    pieces: Vec<Piece>,
    /// Text after the lane's last piece: attempts, "skipped".
    note: Option<String>,
}

/// The timeline as an SVG element, to inline in a page or serve alone.
pub fn render(facts: &Facts<'_>) -> String {
    let lanes = lanes(facts);
    let (origin, end) = span(facts, &lanes);
    let scale = PLOT_WIDTH / (end - origin).max(1) as f64;
    let x = |at: i64| PLOT_LEFT + (at - origin) as f64 * scale;
    let height = lanes.len() as f64 * LANE_HEIGHT + AXIS_HEIGHT;
    let mut svg = String::new();
    let run = facts.run;
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="timeline" id="timeline-svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" aria-labelledby="timeline-title timeline-desc" data-origin="{origin}" data-end="{end}" data-scale="{scale}"><title id="timeline-title">Timeline of run #{id}</title><desc id="timeline-desc">{desc}</desc><style>{STATE_STYLE}.lane{{font:12px system-ui,sans-serif;fill:#1d2330}}.note{{font:11px system-ui,sans-serif;fill:#5b6475}}.tick{{stroke:#e4e7ec}}.tick-label{{font:10px system-ui,sans-serif;fill:#5b6475}}.wait{{stroke:#8c959f;stroke-width:2;stroke-dasharray:3 3}}.checkout{{fill:#8fa3bf}}.mark-received,.mark-decided,.mark-finished{{fill:#57606a}}.mark-push{{fill:#8250df}}.mark-bump{{fill:#1a7f37}}.mark-bump-failed,.mark-deploy-failed{{fill:#cf222e}}.mark-deployed{{fill:#0550ae}}</style>"#,
        id = run.id,
        desc = escape(&describe(facts, &lanes, origin)),
    );
    axis(&mut svg, origin, end, &x, height);
    for (index, lane) in lanes.iter().enumerate() {
        let top = index as f64 * LANE_HEIGHT;
        let middle = top + LANE_HEIGHT / 2.0;
        let _ = write!(
            svg,
            r#"<g class="lane-row" data-lane="{name}"><text class="lane" x="4" y="{y:.1}"><title>{name}</title>{short}</text>"#,
            name = escape(&lane.name),
            short = escape(&shorten(&lane.name, LABEL_CHARS)),
            y = middle + 4.0,
        );
        let mut right = PLOT_LEFT;
        for piece in &lane.pieces {
            match piece {
                Piece::Bar {
                    start,
                    end,
                    class,
                    title,
                    stage,
                } => {
                    let width = ((end - start) as f64 * scale).max(MIN_BAR_WIDTH);
                    right = right.max(x(*start) + width);
                    let stage = stage
                        .as_ref()
                        .map(|stage| format!(r#" data-stage="{}""#, escape(stage)))
                        .unwrap_or_default();
                    let _ = write!(
                        svg,
                        r#"<g class="bar"><title>{title}</title><rect class="{class}"{stage} x="{left:.2}" y="{y:.1}" width="{width:.2}" height="{BAR_HEIGHT}" rx="2"/></g>"#,
                        title = escape(title),
                        left = x(*start),
                        y = middle - BAR_HEIGHT / 2.0,
                    );
                }
                Piece::Wait { start, end, title } => {
                    right = right.max(x(*end));
                    let _ = write!(
                        svg,
                        r#"<g class="waiting"><title>{title}</title><line class="wait" x1="{x1:.2}" x2="{x2:.2}" y1="{middle:.1}" y2="{middle:.1}"/></g>"#,
                        title = escape(title),
                        x1 = x(*start),
                        x2 = x(*end),
                    );
                }
                Piece::Mark { at, kind, title } => {
                    let centre = x(*at);
                    right = right.max(centre + 5.0);
                    let _ = write!(
                        svg,
                        r#"<g class="mark" data-mark="{kind}"><title>{title}</title><path class="mark-{kind}" d="M{centre:.2} {top:.1}l5 5l-5 5l-5 -5z"/></g>"#,
                        title = escape(title),
                        top = middle - 5.0,
                    );
                }
            }
        }
        if let Some(note) = &lane.note {
            let _ = write!(
                svg,
                r#"<text class="note" x="{left:.1}" y="{y:.1}">{note}</text>"#,
                left = right + 4.0,
                y = middle + 4.0,
                note = escape(note),
            );
        }
        svg.push_str("</g>");
    }
    svg.push_str("</svg>");
    svg
}

/// The lanes: the run's own (arrival, waiting, checkout), then one per stage in pipeline
/// and stage order.
fn lanes(facts: &Facts<'_>) -> Vec<Lane> {
    let run = facts.run;
    let now = facts.now;
    let received = millis(&run.received_at);
    let created = millis(&run.created_at).unwrap_or(now);
    let started = run.started_at.as_deref().and_then(millis);
    let finished = run.finished_at.as_deref().and_then(millis);
    let run_end = finished.unwrap_or(now);
    let first_stage = facts
        .pipelines
        .iter()
        .flat_map(|pipeline| &pipeline.stages)
        .filter_map(|stage| stage.started_at.as_deref().and_then(millis))
        .min();

    let mut pieces = Vec::new();
    let arrival = received.unwrap_or(created).min(created);
    pieces.push(Piece::Mark {
        at: arrival,
        kind: "received",
        title: format!("{} received", arrival_name(run)),
    });
    // Waiting for approval, then for a runner.
    let mut waiting_from = created;
    if let Some(approval) = &run.approval {
        let decided = approval.at.as_deref().and_then(millis);
        let until = decided.or(started).unwrap_or(run_end);
        pieces.push(Piece::Wait {
            start: created,
            end: until,
            title: format!(
                "waited {} for approval: {}",
                span_text(until - created),
                approval.reason
            ),
        });
        if let (Some(at), Some(decision)) = (decided, approval.decision) {
            pieces.push(Piece::Mark {
                at,
                kind: "decided",
                title: format!(
                    "{decision} by {}",
                    approval.by.as_deref().unwrap_or("someone")
                ),
            });
        }
        waiting_from = until;
    }
    let taken = started.unwrap_or(run_end);
    if taken > waiting_from || started.is_none() {
        pieces.push(Piece::Wait {
            start: waiting_from,
            end: taken.max(waiting_from),
            title: format!(
                "queued {} for a runner",
                span_text(taken.max(waiting_from) - waiting_from)
            ),
        });
    }
    if let Some(started) = started {
        let checked_out = first_stage.unwrap_or(run_end);
        pieces.push(Piece::Bar {
            start: started,
            end: checked_out.max(started),
            class: "checkout".into(),
            title: format!(
                "checkout and planning: {}",
                span_text(checked_out - started)
            ),
            stage: None,
        });
    }
    if let Some(finished) = finished {
        pieces.push(Piece::Mark {
            at: finished,
            kind: "finished",
            title: format!("run ended {}", run.state),
        });
    }
    let mut lanes = vec![Lane {
        name: "run".into(),
        pieces,
        note: (run.attempts > 1).then(|| format!("taken {} times", run.attempts)),
    }];

    let ready = first_stage.or(started);
    for pipeline in facts.pipelines {
        for stage in &pipeline.stages {
            lanes.push(stage_lane(facts, pipeline, stage, ready, run_end));
        }
    }
    lanes
}

fn stage_lane(
    facts: &Facts<'_>,
    pipeline: &PipelineResult,
    stage: &crate::store::StageResult,
    ready: Option<i64>,
    run_end: i64,
) -> Lane {
    let name = format!("{} / {}", pipeline.pipeline, stage.stage);
    let start = stage.started_at.as_deref().and_then(millis);
    let end = stage.finished_at.as_deref().and_then(millis);
    let mut pieces = Vec::new();
    // Waiting: from when stages began to run until this one started (or still).
    let still_waiting = start.is_none() && stage.state == StageState::Pending;
    if let Some(ready) = ready {
        let until = start.or(still_waiting.then_some(run_end));
        if let Some(until) = until.filter(|until| *until > ready) {
            pieces.push(Piece::Wait {
                start: ready,
                end: until,
                title: format!(
                    "{name} waited {} for the stages it needs or a free slot",
                    span_text(until - ready)
                ),
            });
        }
    }
    if let Some(start) = start {
        let end = end.unwrap_or(run_end).max(start);
        let mut title = format!("{name}: {}, {}", stage.state, span_text(end - start));
        if stage.attempts > 1 {
            let _ = write!(title, " in {} attempts", stage.attempts);
        }
        if let Some(message) = stage.message.as_deref().filter(|m| !m.is_empty()) {
            let _ = write!(title, " ({message})");
        }
        pieces.push(Piece::Bar {
            start,
            end,
            class: format!("s-{}", stage.state),
            title,
            stage: Some(format!("{}/{}", pipeline.pipeline, stage.stage)),
        });
        if let (Some(message), Some(at)) = (
            stage
                .message
                .as_deref()
                .filter(|message| message.starts_with(PUSHED)),
            stage.finished_at.as_deref().and_then(millis),
        ) {
            pieces.push(Piece::Mark {
                at,
                kind: "push",
                title: message.to_owned(),
            });
        }
    }
    for bump in facts
        .bumps
        .iter()
        .filter(|bump| bump.pipeline == pipeline.pipeline && bump.stage == stage.stage)
    {
        let Some(at) = bump.at.as_deref().and_then(millis) else {
            continue;
        };
        let bumped = &bump.bumped;
        let (kind, title) = match (&bump.error, &bumped.pull_request, &bumped.commit) {
            (Some(error), _, _) => ("bump-failed", format!("bump failed: {error}")),
            (None, Some(url), _) => ("bump", format!("bump pull request {url}")),
            (None, None, Some(commit)) => (
                "bump",
                format!(
                    "bump commit {} in {} ({}): {}",
                    &commit[..commit.len().min(12)],
                    bumped.repo,
                    bumped.branch,
                    bumped.file
                ),
            ),
            (None, None, None) => (
                "bump",
                format!("{} in {} already up to date", bumped.file, bumped.repo),
            ),
        };
        pieces.push(Piece::Mark { at, kind, title });
    }
    for deployment in facts.deployments.iter().filter(|deployment| {
        deployment.pipeline == pipeline.pipeline && deployment.stage == stage.stage
    }) {
        let Some(at) = deployment.settled_at.as_deref().and_then(millis) else {
            continue;
        };
        let revision = deployment.revision.as_deref().unwrap_or_default();
        let revision = &revision[..revision.len().min(12)];
        let (kind, title) = match deployment.state {
            DeployState::Success => (
                "deployed",
                format!(
                    "deployed to {} (revision {revision})",
                    deployment.environment
                ),
            ),
            _ => (
                "deploy-failed",
                format!(
                    "{} failed at revision {revision}: {}",
                    deployment.environment,
                    deployment.message.as_deref().unwrap_or_default()
                ),
            ),
        };
        pieces.push(Piece::Mark { at, kind, title });
    }
    let note = if stage.attempts > 1 {
        Some(format!("×{}", stage.attempts))
    } else if start.is_none() && !still_waiting {
        Some(stage.state.to_string())
    } else {
        None
    };
    Lane { name, pieces, note }
}

/// From the earliest to the latest moment drawn; at least a second.
fn span(facts: &Facts<'_>, lanes: &[Lane]) -> (i64, i64) {
    let mut origin = i64::MAX;
    let mut end = i64::MIN;
    for piece in lanes.iter().flat_map(|lane| &lane.pieces) {
        let (from, to) = match piece {
            Piece::Bar { start, end, .. } | Piece::Wait { start, end, .. } => (*start, *end),
            Piece::Mark { at, .. } => (*at, *at),
        };
        origin = origin.min(from);
        end = end.max(to);
    }
    if origin == i64::MAX {
        origin = facts.now;
        end = facts.now;
    }
    (origin, end.max(origin + 1000))
}

/// Vertical lines with the time since the origin under them.
fn axis(svg: &mut String, origin: i64, end: i64, x: &impl Fn(i64) -> f64, height: f64) {
    let seconds = (end - origin) / 1000;
    let step = TICK_STEPS
        .iter()
        .copied()
        .find(|step| seconds / step <= MAX_TICKS)
        .unwrap_or(86_400);
    let lanes_bottom = height - AXIS_HEIGHT;
    let mut tick = 0;
    while tick * 1000 <= end - origin {
        let left = x(origin + tick * 1000);
        let _ = write!(
            svg,
            r#"<line class="tick" x1="{left:.2}" x2="{left:.2}" y1="0" y2="{lanes_bottom:.1}"/><text class="tick-label" x="{left:.2}" y="{y:.1}" text-anchor="middle">{label}</text>"#,
            y = lanes_bottom + 14.0,
            label = if tick < 60 {
                format!("{tick}s")
            } else {
                span_text(tick * 1000)
            },
        );
        tick += step;
    }
}

/// The whole timeline as sentences, for the picture's `<desc>`.
fn describe(facts: &Facts<'_>, lanes: &[Lane], origin: i64) -> String {
    let mut text = format!(
        "Run #{} is {}. Times are from when the {} arrived.",
        facts.run.id,
        facts.run.state,
        arrival_name(facts.run)
    );
    for lane in lanes {
        for piece in &lane.pieces {
            let _ = match piece {
                Piece::Bar {
                    start, end, title, ..
                } => write!(
                    text,
                    " {title}, from {} to {}.",
                    span_text(start - origin),
                    span_text(end - origin)
                ),
                Piece::Wait { start, title, .. } => {
                    write!(text, " {title}, from {}.", span_text(start - origin))
                }
                Piece::Mark { at, title, .. } => {
                    write!(text, " {title} at {}.", span_text(at - origin))
                }
            };
        }
        if let Some(note) = &lane.note {
            let _ = write!(text, " {}: {note}.", lane.name);
        }
    }
    text
}

/// What asked for the run: a webhook, or a person or the clock.
fn arrival_name(run: &Run) -> &'static str {
    match run.trigger {
        crate::domain::Trigger::Manual => "request",
        crate::domain::Trigger::Schedule => "schedule",
        _ => "webhook",
    }
}

fn millis(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|at| at.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CommitSha, Decision, Forge, RepoName, RunState, Trigger};
    use crate::store::{Approval, StageResult};

    fn at(seconds: i64) -> String {
        chrono::DateTime::from_timestamp_millis(seconds * 1000)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }

    fn run() -> Run {
        Run {
            id: 7,
            forge: Forge::Github,
            repo: RepoName::new("acme/app"),
            trigger: Trigger::PullRequest,
            git_ref: "refs/heads/feature".into(),
            commit_sha: CommitSha::parse(&"a".repeat(40)).unwrap(),
            commit_message: None,
            pr_number: Some(3),
            state: RunState::Running,
            description: None,
            attempts: 1,
            delivery_id: "d".into(),
            received_at: at(0),
            created_at: at(0),
            started_at: Some(at(20)),
            finished_at: None,
            approval: Some(Approval {
                reason: "a pull request from a fork".into(),
                decision: Some(Decision::Approved),
                by: Some("maintainer".into()),
                at: Some(at(10)),
            }),
            event: None,
        }
    }

    fn stage(
        name: &str,
        state: StageState,
        times: Option<(i64, i64)>,
        attempts: i64,
    ) -> StageResult {
        StageResult {
            stage: name.into(),
            state,
            exit_code: None,
            message: None,
            attempts,
            started_at: times.map(|(start, _)| at(start)),
            finished_at: times.and_then(|(_, end)| (end > 0).then(|| at(end))),
            log_dropped: 0,
        }
    }

    #[test]
    fn approval_waits_retries_and_waiting_stages_show() {
        let pipelines = [PipelineResult {
            pipeline: "ci".into(),
            file: ".gantry/ci.yml".into(),
            state: StageState::Running,
            description: None,
            stages: vec![
                stage("flaky", StageState::Success, Some((22, 30)), 3),
                stage("test", StageState::Running, Some((30, 0)), 1),
                stage("deploy", StageState::Pending, None, 0),
            ],
        }];
        let facts = Facts {
            run: &run(),
            pipelines: &pipelines,
            bumps: &[],
            deployments: &[],
            now: 40_000,
        };
        let svg = render(&facts);
        // The wait for approval, its decision, the queue and the checkout, on the run's lane.
        assert!(
            svg.contains("waited 10s for approval: a pull request from a fork"),
            "{svg}"
        );
        assert!(svg.contains(r#"data-mark="decided""#));
        assert!(svg.contains("approved by maintainer"));
        assert!(svg.contains("queued 10s for a runner"));
        assert!(svg.contains("checkout and planning: 2.0s"));
        // Retries are counted on the bar and beside it.
        assert!(
            svg.contains("ci / flaky: success, 8.0s in 3 attempts"),
            "{svg}"
        );
        assert!(svg.contains(">×3</text>"));
        // A running stage's bar reaches now; a stage that waits shows its wait.
        let scale = PLOT_WIDTH / 40_000.0;
        let running = format!(
            r#"data-stage="ci/test" x="{:.2}" y="#,
            PLOT_LEFT + 30_000.0 * scale
        );
        assert!(svg.contains(&running), "{svg}");
        assert!(svg.contains(&format!(r#"width="{:.2}""#, 10_000.0 * scale)));
        assert!(svg.contains("ci / deploy waited 18s for the stages it needs or a free slot"));
        assert!(svg.contains("ci / test waited 8.0s"), "{svg}");
    }
}
