//! A matrix on the real engine: its stages run with their values, at most `max_parallel`
//! at once, and a stage that needs the matrix waits for all of it.

use super::{Server, app_repo, config_dir, finished, push_payload};

const PIPELINE: &str = "stages:
  - name: test
    image: IMAGE
    matrix:
      n: [1, 2, 3]
      kind: [a, b]
      exclude: [{ n: 3, kind: b }]
      include: [{ n: 9, kind: c }]
    max_parallel: 2
    env: { LABEL: \"${matrix.kind}-${matrix.n}\" }
    run: |
      echo \"n=$MATRIX_N kind=${matrix.kind} label=$LABEL\"
      sleep 1
  - name: report
    image: IMAGE
    needs: [test]
    run: echo reported
";

/// The most intervals `[start, end)` that overlap at one moment.
fn most_at_once(intervals: &[(String, String)]) -> usize {
    intervals
        .iter()
        .map(|(start, _)| {
            intervals
                .iter()
                .filter(|(s, e)| s <= start && start < e)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test]
async fn a_matrix_runs_each_combination_at_most_max_parallel_at_once() {
    let forge = app_repo(PIPELINE);
    let sha = forge.push("main");
    let (_dir, config) = config_dir(&forge, |config| {
        config.set("runner", "max_parallel_runs", "1")
    });
    let server = Server::start(&config);
    let id = server.push(push_payload("main", &sha, "matrix")).await;
    let run = server.wait_for(id, "an end", finished).await;
    assert_eq!(run["state"], "success", "{run:#}");
    let stages = run["pipelines"][0]["stages"].as_array().unwrap();
    let names: Vec<&str> = stages
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "test (n=1, kind=a)",
            "test (n=1, kind=b)",
            "test (n=2, kind=a)",
            "test (n=2, kind=b)",
            "test (n=3, kind=a)",
            "test (n=9, kind=c)",
            "report"
        ]
    );
    let intervals: Vec<(String, String)> = stages[..6]
        .iter()
        .map(|s| {
            (
                s["started_at"].as_str().unwrap().to_owned(),
                s["finished_at"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(most_at_once(&intervals), 2, "{intervals:?}");
    let last_end = intervals.iter().map(|(_, end)| end).max().unwrap();
    assert!(
        stages[6]["started_at"].as_str().unwrap() >= last_end.as_str(),
        "report waits for the whole matrix: {stages:#?}"
    );
    let log = server.log(id).await;
    assert!(
        log.contains("[ci/test (n=9, kind=c)] n=9 kind=c label=c-9"),
        "{log}"
    );
    assert!(log.contains("[ci/test (n=2, kind=b)] n=2 kind=b label=b-2"));
    let page = server.text(&format!("/runs/{id}")).await;
    assert!(
        page.contains("href=\"#log-ci-6\">test (n=9, kind=c)</a>"),
        "{page}"
    );
}
