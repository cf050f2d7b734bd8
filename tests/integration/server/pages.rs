//! The web pages and the live event stream: a real run watched in headless Chromium (through
//! ChromeDriver), and the SSE replay a reconnecting viewer gets.

use std::time::Duration;

use serde_json::{Value, json};

use crate::server::{Server, app_repo, config_dir, finished, push_payload};
use crate::support::chromium::Browser;

/// A stage that prints over a few seconds: a line first, then markup, colour, the last.
const SLOW_PIPELINE: &str = "stages:
  - name: talk
    image: IMAGE
    run: |
      echo first line
      sleep 4
      echo '<script>window.pwned = true</script><img src=x onerror=\"window.pwned=true\">'
      printf '\\033[1;31mred alert\\033[0m plain\\n'
      sleep 1
      echo last line
";

#[tokio::test]
async fn a_running_run_is_watched_live_in_a_browser_and_markup_in_its_log_stays_text() {
    let forge = app_repo(SLOW_PIPELINE);
    let sha = forge.push("main");
    let (_dir, config_path) = config_dir(&forge, |config| config);
    let server = Server::start(&config_path);
    // The browser is up before the run starts, so its page is open while the run goes on.
    let browser = Browser::start().await;
    let id = server
        .push(push_payload(
            "main",
            &sha,
            "<b>bold</b> <script>window.pwned=1</script>",
        ))
        .await;
    browser
        .client
        .goto(&format!("{}/runs/{id}", server.address))
        .await
        .unwrap();
    // A marker on this document: it survives only if the page is never reloaded.
    browser
        .eval("window.sameDocument = 'yes'; return null;")
        .await;
    let at_load = browser
        .wait_text("#run-state", Duration::from_secs(5), |_| true)
        .await;
    assert!(
        at_load == "queued" || at_load == "running",
        "the page opened on a run still under way, not {at_load}"
    );
    let log = browser
        .wait_text("pre[data-stage=talk]", Duration::from_secs(30), |t| {
            t.contains("last line")
        })
        .await;
    assert!(log.contains("first line"), "{log}");
    assert!(
        log.contains(
            "<script>window.pwned = true</script><img src=x onerror=\"window.pwned=true\">"
        ),
        "markup shows as text: {log}"
    );
    assert_eq!(
        browser.eval("return window.sameDocument || null;").await,
        json!("yes")
    );
    assert_eq!(
        browser
            .wait_text("#run-state", Duration::from_secs(30), |t| t == "success")
            .await,
        "success"
    );
    let stage_state = browser
        .wait_text(
            "tr[data-stage=talk] [data-role=state]",
            Duration::from_secs(10),
            |t| t == "success",
        )
        .await;
    assert_eq!(stage_state, "success");
    let red = browser
        .eval(
            "var s = document.querySelector('pre[data-stage=talk] span.ansi-fg-31'); \
             return s ? s.textContent + '|' + s.className : null;",
        )
        .await;
    assert_eq!(red, json!("red alert|ansi-bold ansi-fg-31"));
    assert_eq!(
        browser.eval("return window.pwned === undefined;").await,
        json!(true)
    );
    let message = browser
        .wait_text(".message", Duration::from_secs(5), |_| true)
        .await;
    assert_eq!(message, "<b>bold</b> <script>window.pwned=1</script>");
    // The list shows the run, with its state.
    browser.client.goto(&server.address).await.unwrap();
    let row = browser
        .wait_text("table.runs tbody tr", Duration::from_secs(5), |t| {
            t.contains("success")
        })
        .await;
    assert!(
        row.contains(&format!("#{id}")) && row.contains("acme/app"),
        "{row}"
    );
    assert_eq!(
        browser.eval("return window.pwned === undefined;").await,
        json!(true)
    );
    browser.client.clone().close().await.unwrap();
}

/// The events of a finished run's stream: (id, event name, data), until `end`.
async fn events(
    server: &Server,
    id: i64,
    last_event_id: Option<&str>,
) -> Vec<(Option<String>, String, Value)> {
    let mut request =
        reqwest::Client::new().get(format!("{}/api/runs/{id}/events", server.address));
    if let Some(last) = last_event_id {
        request = request.header("Last-Event-ID", last);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let body = tokio::time::timeout(Duration::from_secs(20), response.text())
        .await
        .expect("a finished run's stream ends")
        .unwrap();
    body.split("\n\n")
        .filter(|block| !block.trim().is_empty() && !block.starts_with(':'))
        .map(|block| {
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|line| line.strip_prefix(&format!("{name}: ")))
                    .map(str::to_owned)
            };
            (
                field("id"),
                field("event").unwrap(),
                serde_json::from_str(&field("data").unwrap()).unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_reconnecting_event_stream_replays_only_what_was_missed() {
    let forge = app_repo(
        "stages:\n  - name: count\n    image: IMAGE\n    run: |\n      echo one\n      sleep 1\n      echo two\n      sleep 1\n      echo three\n",
    );
    let sha = forge.push("main");
    let (_dir, config_path) = config_dir(&forge, |config| config);
    let server = Server::start(&config_path);
    let id = server.push(push_payload("main", &sha, "count")).await;
    server.wait_for(id, "an end", finished).await;

    let all = events(&server, id, None).await;
    let logs: Vec<(String, Vec<String>)> = all
        .iter()
        .filter(|(_, name, _)| name == "log")
        .map(|(id, _, data)| {
            let lines = data["lines"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l.as_str().unwrap().to_owned())
                .collect();
            (id.clone().expect("log events carry ids"), lines)
        })
        .collect();
    let lines: Vec<String> = logs.iter().flat_map(|(_, lines)| lines.clone()).collect();
    assert_eq!(lines, ["one", "two", "three"], "{all:?}");
    assert!(
        logs.len() >= 2,
        "output arrived in several chunks: {logs:?}"
    );
    let (_, last_name, last_data) = all.last().unwrap();
    assert_eq!(
        (last_name.as_str(), &last_data["state"]),
        ("end", &json!("success"))
    );
    let state = all.iter().find(|(_, name, _)| name == "state").unwrap();
    assert_eq!(state.2["pipelines"][0]["stages"][0]["state"], "success");

    // Reconnecting after the first chunk replays the rest, and nothing before it.
    let resumed = events(&server, id, Some(&logs[0].0)).await;
    let replayed: Vec<String> = resumed
        .iter()
        .filter(|(_, name, _)| name == "log")
        .flat_map(|(_, _, data)| data["lines"].as_array().unwrap().clone())
        .map(|l| l.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(replayed, lines[logs[0].1.len()..].to_vec());
    let caught_up = events(&server, id, Some(&logs.last().unwrap().0)).await;
    assert!(
        caught_up.iter().all(|(_, name, _)| name != "log"),
        "{caught_up:?}"
    );

    let missing = reqwest::get(format!("{}/api/runs/{}/events", server.address, id + 100))
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
}

#[tokio::test]
async fn pages_escape_what_came_from_the_payload_and_answer_404_for_a_missing_run() {
    let forge = app_repo(
        "stages:\n  - name: say\n    image: IMAGE\n    run: echo '<script>alert(1)</script>'\n",
    );
    let sha = forge.push("main");
    let (_dir, config_path) = config_dir(&forge, |config| config);
    let server = Server::start(&config_path);
    let id = server
        .push(push_payload(
            "main",
            &sha,
            "\"><script>alert('msg')</script>",
        ))
        .await;
    server.wait_for(id, "an end", finished).await;
    let page = reqwest::get(format!("{}/runs/{id}", server.address))
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
    assert!(
        html.contains("&#34;&#62;&#60;script&#62;alert(&#39;msg&#39;)&#60;/script&#62;"),
        "{html}"
    );
    assert!(!html.contains("<script>alert"), "{html}");
    let list = server.text("/?state=success&repo=acme%2Fapp").await;
    assert!(list.contains(&format!("href=\"/runs/{id}\"")), "{list}");
    let empty = server.text("/?state=failure").await;
    assert!(empty.contains("No runs yet."), "{empty}");
    let missing = reqwest::get(format!("{}/runs/{}", server.address, id + 1))
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
}
