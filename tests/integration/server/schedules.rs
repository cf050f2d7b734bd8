//! A schedule in real time: the default branch's push records `* * * * *`, and within a
//! minute a run of that pipeline alone starts on its own, with the event `schedule`.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::{REPO, Server, app_repo_with, config_dir, finished, push_payload};

#[tokio::test]
async fn a_minutely_schedule_starts_its_pipeline_within_a_minute() {
    let forge = app_repo_with(
        "stages:\n  - name: check\n    image: IMAGE\n    run: echo pushed\n",
        &[(
            ".gantry/nightly.yml",
            "on:\n  schedule: [{ cron: \"* * * * *\" }]\nstages:\n  - name: sweep\n    image: IMAGE\n    run: echo \"swept by $GANTRY_EVENT\"\n",
        )],
    );
    let sha = forge.push("main");
    let (_dir, config) = config_dir(&forge, |config| config);
    let server = Server::start(&config);
    let pushed = server.push(push_payload("main", &sha, "push")).await;
    server.wait_for(pushed, "an end", finished).await;
    let page = server.text(&format!("/?repo={REPO}")).await;
    assert!(
        page.contains("nightly: `* * * * *` on main, next at "),
        "{page}"
    );

    let deadline = Instant::now() + Duration::from_secs(80);
    let scheduled = loop {
        let listed: Value = reqwest::get(format!("{}/api/runs", server.address))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(run) = listed["runs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|run| run["trigger"] == "schedule")
        {
            break run["id"].as_i64().unwrap();
        }
        assert!(Instant::now() < deadline, "no scheduled run: {listed:#}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let run = server.wait_for(scheduled, "an end", finished).await;
    assert_eq!(run["state"], "success", "{run:#}");
    assert_eq!(run["commit_sha"], sha.as_str());
    let ran: Vec<&str> = run["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["state"] != "skipped")
        .map(|p| p["pipeline"].as_str().unwrap())
        .collect();
    assert_eq!(ran, ["nightly"], "only the scheduled pipeline: {run:#}");
    assert!(
        server
            .log(scheduled)
            .await
            .contains("[nightly/sweep] swept by schedule")
    );
}

/// A start reads each known repo's schedules from its default branch: a repo whose
/// schedules the store lost (or never had) gets them back without a new push.
#[tokio::test]
async fn a_start_reads_the_schedules_of_known_repos() {
    let forge = app_repo_with(
        "stages:\n  - name: check\n    image: IMAGE\n    run: echo pushed\n",
        &[(
            ".gantry/nightly.yml",
            "on:\n  schedule: [{ cron: \"0 3 * * *\" }]\nstages:\n  - name: sweep\n    image: IMAGE\n    run: 'true'\n",
        )],
    );
    let sha = forge.push("main");
    let (dir, config) = config_dir(&forge, |config| config);
    let mut server = Server::start(&config);
    let pushed = server.push(push_payload("main", &sha, "push")).await;
    server.wait_for(pushed, "an end", finished).await;
    server.kill();
    {
        use sqlx::Connection;
        let url = format!("sqlite://{}", dir.path().join("gantry.db").display());
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("DELETE FROM schedules")
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let server = Server::start(&config);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let page = server.text(&format!("/?repo={REPO}")).await;
        if page.contains("nightly: `0 3 * * *` on main, next at ") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no schedule after the start: {page}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
