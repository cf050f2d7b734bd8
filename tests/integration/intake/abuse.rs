//! Intake under abuse: slow webhook uploads and idle keep-alive connections are closed by
//! their deadlines, and meanwhile a real delivery is taken at once and kept.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::intake::helpers::{TestApp, config, fixture, github};
use crate::support::config::TestConfig;
use crate::support::process::{spawn_gantry, spawn_gantry_logged};

const SLOW_UPLOADS: usize = 300;
const IDLE: usize = 100;

/// The test config for a store in `dir`, with bodies due within `request_timeout`.
fn timed_config(dir: &std::path::Path, request_timeout: &str) -> TestConfig {
    let store_url = format!("sqlite://{}", dir.join("gantry.db").display());
    config(&store_url).text("server", "request_timeout", request_timeout)
}

async fn metrics_of(base: &str) -> String {
    reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// How a connection the test held ended.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// The server answered 408 (and closed).
    TimedOut,
    /// The server closed it without an answer.
    Closed,
    /// Still open when the test gave up on it.
    Open,
}

/// A webhook upload that promises 200 KB (under the test config's body cap) and sends a byte
/// every half second.
async fn slow_upload(address: &str) -> Ended {
    slow_post(
        address,
        "/hooks/github",
        "X-GitHub-Event: push\r\nContent-Type: application/json\r\nContent-Length: 200000",
    )
    .await
}

/// A POST to `path` with `headers` whose body comes a byte every half second.
async fn slow_post(address: &str, path: &str, headers: &str) -> Ended {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream
        .write_all(
            format!("POST {path} HTTP/1.1\r\nHost: gantry\r\n{headers}\r\n\r\n{{").as_bytes(),
        )
        .await
        .unwrap();
    let give_up = Instant::now() + Duration::from_secs(12);
    let mut answer = Vec::new();
    let mut buffer = [0u8; 1024];
    while Instant::now() < give_up {
        tokio::select! {
            read = stream.read(&mut buffer) => match read {
                Ok(0) | Err(_) => {
                    return if String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 408") {
                        Ended::TimedOut
                    } else {
                        Ended::Closed
                    };
                }
                Ok(n) => answer.extend_from_slice(&buffer[..n]),
            },
            () = tokio::time::sleep(Duration::from_millis(500)) => {
                let _ = stream.write_all(b" ").await;
            }
        }
    }
    Ended::Open
}

/// A keep-alive connection that asks once, then idles.
async fn idle_keep_alive(address: &str) -> Ended {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: gantry\r\n\r\n")
        .await
        .unwrap();
    let mut buffer = [0u8; 4096];
    let first = stream.read(&mut buffer).await.unwrap();
    assert!(String::from_utf8_lossy(&buffer[..first]).starts_with("HTTP/1.1 200"));
    match tokio::time::timeout(Duration::from_secs(12), async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    {
        Ok(()) => Ended::Closed,
        Err(_) => Ended::Open,
    }
}

#[tokio::test]
async fn slow_and_idle_connections_are_closed_and_real_deliveries_still_land() {
    let dir = tempfile::tempdir().unwrap();
    let config = timed_config(dir.path(), "2s")
        .text("server", "keep_alive", "2s")
        .write(dir.path());
    let (mut child, base) = spawn_gantry(&["--role", "intake"], &config);
    let address = base.trim_start_matches("http://").to_owned();

    let slow: Vec<_> = (0..SLOW_UPLOADS)
        .map(|_| {
            let address = address.clone();
            tokio::spawn(async move { slow_upload(&address).await })
        })
        .collect();
    let idle: Vec<_> = (0..IDLE)
        .map(|_| {
            let address = address.clone();
            tokio::spawn(async move { idle_keep_alive(&address).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // During the attack, a real delivery is taken at once and kept.
    let app = TestApp::attach(base.clone());
    let sent = Instant::now();
    let response = github("push", &fixture("github/push/goscm__push.json"))
        .post(&app.client, &base)
        .await;
    let took = sent.elapsed();
    assert_eq!(response.status().as_u16(), 202);
    assert!(took < Duration::from_secs(1), "the delivery took {took:?}");
    let run_id = response.json::<serde_json::Value>().await.unwrap()["run_id"]
        .as_i64()
        .unwrap();

    let mut slow_ends = Vec::new();
    for task in slow {
        slow_ends.push(task.await.unwrap());
    }
    let mut idle_ends = Vec::new();
    for task in idle {
        idle_ends.push(task.await.unwrap());
    }
    let timed_out = slow_ends.iter().filter(|e| **e == Ended::TimedOut).count();
    assert!(
        slow_ends.iter().all(|e| *e != Ended::Open),
        "slow uploads left open: {}",
        slow_ends.iter().filter(|e| **e == Ended::Open).count()
    );
    assert_eq!(timed_out, SLOW_UPLOADS, "{slow_ends:?}");
    assert!(
        idle_ends.iter().all(|e| *e == Ended::Closed),
        "{idle_ends:?}"
    );

    let metrics = metrics_of(&base).await;
    let sample = |name: &str| {
        metrics
            .lines()
            .find_map(|line| {
                line.strip_prefix(name)?
                    .strip_prefix(' ')?
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or_else(|| panic!("{name} in {metrics}"))
    };
    assert_eq!(
        sample("gantry_http_requests_timed_out_total"),
        SLOW_UPLOADS as f64
    );
    assert!(sample("gantry_http_connections_total") >= (SLOW_UPLOADS + IDLE) as f64);
    assert!(sample("gantry_http_connections_open") < 10.0, "{metrics}");

    // Kept: the run is in the store after a kill and a restart.
    child.kill().unwrap();
    child.wait().unwrap();
    let (mut child, base) = spawn_gantry(&["--role", "intake"], &config);
    let (status, run) = TestApp::attach(base)
        .get_json(&format!("/api/runs/{run_id}"))
        .await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["state"], "queued");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// More deliveries at once than there are turns (`DELIVERIES_AT_ONCE`): the rest wait for a
/// turn, none is lost, and the turns come back.
#[tokio::test]
async fn a_burst_wider_than_the_turns_is_stored_whole() {
    let app = TestApp::spawn().await;
    let body = fixture("github/push/goscm__push.json");
    let burst = gantry::http::DELIVERIES_AT_ONCE + 100;
    let deliveries: Vec<_> = (0..burst).map(|_| github("push", &body)).collect();
    let answering = deliveries.iter().map(|delivery| async {
        let response = app.post_hook("github", delivery).await;
        let status = response.status().as_u16();
        let answer = response.json::<serde_json::Value>().await.unwrap();
        (status, answer["run_id"].as_i64())
    });
    let answers = tokio::time::timeout(
        Duration::from_secs(120),
        futures_util::future::join_all(answering),
    )
    .await
    .expect("every delivery of the burst is answered");
    let mut run_ids = Vec::new();
    for (status, run_id) in answers {
        assert_eq!(status, 202);
        run_ids.push(run_id.expect("a run id"));
    }
    run_ids.sort_unstable();
    run_ids.dedup();
    assert_eq!(run_ids.len(), burst, "one run per delivery");
    // The turns came back: one more delivery is taken at once.
    let sent = Instant::now();
    let response = app.post_hook("github", &github("push", &body)).await;
    assert_eq!(response.status().as_u16(), 202);
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "took {:?}",
        sent.elapsed()
    );
}

/// A slow upload holds no span (the log subscriber keeps a slot for every span open at once,
/// for good), while a delivery's events still carry its request's fields.
#[tokio::test]
async fn a_delivery_is_logged_in_its_request_span_once_its_body_is_in() {
    let dir = tempfile::tempdir().unwrap();
    let config = timed_config(dir.path(), "1s").write(dir.path());
    let (mut child, base, log) = spawn_gantry_logged(&["--role", "intake"], &config);
    let address = base.trim_start_matches("http://").to_owned();

    assert_eq!(slow_upload(&address).await, Ended::TimedOut);
    let app = TestApp::attach(base.clone());
    let response = github("push", &fixture("github/push/goscm__push.json"))
        .post(&app.client, &base)
        .await;
    assert_eq!(response.status().as_u16(), 202);

    let event = |message: &str| {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let found = log.lock().unwrap().iter().find_map(|line| {
                let entry = serde_json::from_str::<serde_json::Value>(line).ok()?;
                (entry["fields"]["message"] == message).then_some(entry)
            });
            if let Some(entry) = found {
                return entry;
            }
            assert!(Instant::now() < deadline, "no `{message}` in the log");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let refused = event("delivery refused");
    assert!(
        refused.get("span").is_none(),
        "a body that never arrived was logged in a span: {refused}"
    );
    assert_eq!(refused["fields"]["forge"], "github");
    let queued = event("run queued");
    let span = &queued["span"];
    assert_eq!(span["name"], "HTTP request", "{queued}");
    assert_eq!(span["http.route"], "/hooks/{forge}", "{queued}");
    assert_eq!(span["http.method"], "POST", "{queued}");
    assert!(
        span["request_id"].as_str().is_some_and(|id| id.len() == 36),
        "{queued}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

/// The API's and the pages' bodies have the same deadline, and a cap of their own.
#[tokio::test]
async fn a_slow_or_huge_body_to_the_api_or_a_page_is_refused_too() {
    let dir = tempfile::tempdir().unwrap();
    let config = timed_config(dir.path(), "1s").write(dir.path());
    let (mut child, base) = spawn_gantry(&["--role", "intake"], &config);
    let address = base.trim_start_matches("http://").to_owned();

    let form = "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000";
    let json = "Content-Type: application/json\r\nContent-Length: 1000";
    let started = Instant::now();
    let (login, manual) = tokio::join!(
        slow_post(&address, "/login", form),
        slow_post(&address, "/api/repos/acme/widgets/runs", json),
    );
    assert_eq!((login, manual), (Ended::TimedOut, Ended::TimedOut));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // Only the headers are sent: a body over the cap is refused before a byte of it is read
    // (sending it too would race the server closing the connection).
    let mut stream = TcpStream::connect(&address).await.unwrap();
    stream
        .write_all(
            b"POST /api/repos/acme/widgets/runs HTTP/1.1\r\nHost: gantry\r\n\
              Content-Type: application/json\r\nContent-Length: 307200\r\n\r\n",
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("larger than the API's limit"), "{answer}");

    let client = reqwest::Client::new();
    // A body that arrives is still the handler's: the login form reads the token in it.
    let login = client
        .post(format!("{base}/login"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("token=not-the-token")
        .send()
        .await
        .unwrap();
    assert_eq!(login.status().as_u16(), 401);
    assert!(
        login
            .text()
            .await
            .unwrap()
            .contains("That is not the API token.")
    );

    let metrics = metrics_of(&base).await;
    assert!(
        metrics.contains("gantry_http_requests_timed_out_total 2"),
        "{metrics}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
