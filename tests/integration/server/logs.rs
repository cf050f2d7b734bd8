//! Logs that cannot sink the server: a stage's output is kept up to `runner.max_log_size`,
//! the run page shows each stage's last 512 KiB, and the whole log streams from the store
//! in constant memory however many read it.

use std::time::Duration;

use crate::server::{Server, app_repo, config_dir, finished, push_payload};

/// The memory the server process has used at most so far (VmHWM), in bytes.
fn peak_memory(server: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| {
            value
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .expect("VmHWM in /proc/PID/status")
        * 1024
}

async fn get(server: &Server, path: &str, gzip: bool) -> reqwest::Response {
    let client = reqwest::Client::builder().no_gzip().build().unwrap();
    let mut request = client.get(format!("{}{path}", server.address));
    if gzip {
        request = request.header("Accept-Encoding", "gzip");
    }
    request.send().await.unwrap()
}

/// A server whose one stage runs `script`, keeping `cap` of output; its run, ended.
async fn run_stage(
    stage: &str,
    script: &str,
    cap: &str,
) -> (Server, i64, serde_json::Value, tempfile::TempDir) {
    let forge = app_repo(&format!(
        "stages:\n  - name: {stage}\n    image: IMAGE\n    run: |\n      {script}\n"
    ));
    let sha = forge.push("main");
    let (dir, config) = config_dir(&forge, |config| config.text("runner", "max_log_size", cap));
    let server = Server::start(&config);
    let id = server.push(push_payload("main", &sha, stage)).await;
    let run = server.wait_for(id, "an end", finished).await;
    assert_eq!(run["state"], "success", "{run:#}");
    (server, id, run, dir)
}

/// A stage printing past the cap: its stored log is the cap's worth and a line saying what
/// was dropped, the run and its page say so, and the log downloads whole, gzipped when asked.
#[tokio::test]
async fn a_stage_past_the_cap_is_marked_and_its_log_downloads() {
    let (server, id, run, _dir) = run_stage(
        "loud",
        "for i in $(seq 1 20000); do echo \"line $i of a stage stuck in a loop\"; done",
        "64KiB",
    )
    .await;
    let stage = &run["pipelines"][0]["stages"][0];
    let dropped = stage["log_dropped"].as_i64().unwrap();
    assert!(dropped > 500_000, "{stage:#}");

    let response = get(&server, &format!("/api/runs/{id}/log?stage=ci/loud"), false).await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.headers()["content-disposition"],
        format!("attachment; filename=\"run-{id}-ci-loud.log\"").as_str()
    );
    let log = response.text().await.unwrap();
    assert!(log.len() <= 64 * 1024 + 200, "{} bytes", log.len());
    assert!(log.starts_with("line 1 of a stage stuck in a loop\n"));
    assert!(
        log.trim_end().ends_with(&format!(
            "gantry: the log was cut at 64 KiB (runner.max_log_size): {dropped} bytes of \
             output were dropped"
        )),
        "{}",
        &log[log.len() - 300..]
    );
    let gzipped = get(&server, &format!("/api/runs/{id}/log"), true).await;
    assert_eq!(gzipped.headers()["content-encoding"], "gzip");
    let compressed = gzipped.bytes().await.unwrap();
    assert!(
        compressed.len() < log.len() / 4,
        "{} bytes",
        compressed.len()
    );

    let page = server.text(&format!("/runs/{id}")).await;
    assert!(
        page.contains(&format!("data-log-dropped=\"{dropped}\"")),
        "the page marks the cut log"
    );
}

/// The run page of a stage with a large log shows its last 512 KiB and links to the rest.
#[tokio::test]
async fn the_run_page_shows_the_end_of_a_large_log() {
    let (server, id, _, _dir) = run_stage(
        "chatty",
        "for i in $(seq 1 60000); do echo \"line $i: some output a build prints\"; done",
        "16MiB",
    )
    .await;
    let page = server.text(&format!("/runs/{id}")).await;
    assert!(page.len() < 1024 * 1024, "the page is {} bytes", page.len());
    assert!(page.contains("line 60000: some output a build prints"));
    assert!(
        !page.contains("line 1: some output"),
        "the start is not shown"
    );
    assert!(page.contains(&format!("/api/runs/{id}/log?stage=ci%2Fchatty")));
    // The event stream of the finished run replays the same tail, then ends.
    let events = server.text(&format!("/api/runs/{id}/events")).await;
    assert!(
        events.len() < 1024 * 1024,
        "the replay is {} bytes",
        events.len()
    );
    assert!(events.contains("line 60000: some output a build prints"));
    assert!(!events.contains("\"line 1: some output"));
    let log = get(
        &server,
        &format!("/api/runs/{id}/log?stage=ci/chatty"),
        false,
    )
    .await
    .text()
    .await
    .unwrap();
    assert_eq!(log.lines().count(), 60000);
}

/// Eight clients downloading a 96 MB log at once: the server streams it page by page from
/// the store, and its peak memory stays far below the log's size.
#[tokio::test]
async fn concurrent_downloads_of_a_large_log_stay_in_constant_memory() {
    let line = "x".repeat(99);
    let forge = app_repo(&format!(
        "stages:\n  - name: big\n    image: IMAGE\n    run: |\n      \
         yes {line} | head -n 960000\n"
    ));
    let sha = forge.push("main");
    let (_dir, config) = config_dir(&forge, |config| {
        config.text("runner", "max_log_size", "128MiB")
    });
    let mut server = Server::start(&config);
    let id = server.push(push_payload("main", &sha, "big")).await;
    let run = server.wait_for(id, "an end", finished).await;
    assert_eq!(run["state"], "success", "{run:#}");
    // A fresh process on the same store: its peak memory is the reading's alone.
    server.kill();
    let server = Server::start(&config);
    let size = 960_000 * 100;
    let before = peak_memory(&server);
    let downloads = (0..8).map(|_| {
        let path = format!("/api/runs/{id}/log?stage=ci/big");
        let server = &server;
        async move {
            let mut response = get(server, &path, false).await;
            let mut total = 0;
            while let Some(piece) = response.chunk().await.unwrap() {
                total += piece.len();
                // A slow reader: the server must hold back, not buffer the log.
                tokio::time::sleep(Duration::from_micros(50)).await;
            }
            total
        }
    });
    let totals = futures_util::future::join_all(downloads).await;
    assert!(totals.iter().all(|&total| total == size), "{totals:?}");
    let after = peak_memory(&server);
    assert!(
        after - before < (size / 4) as u64,
        "peak memory {} MiB (before the downloads {} MiB) for a {} MiB log read 8 times",
        after >> 20,
        before >> 20,
        size >> 20
    );
}
