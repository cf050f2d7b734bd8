//! The run API, health, readiness and metrics as a client sees them.

use crate::intake::helpers::{TestApp, fixture, github, gitlab};

#[tokio::test]
async fn queued_runs_are_visible_in_the_api() {
    let app = TestApp::spawn().await;
    let response = app
        .post_hook(
            "github",
            &github("push", &fixture("github/push/goscm__push.json")),
        )
        .await;
    assert_eq!(response.status().as_u16(), 202);
    let accepted: serde_json::Value = response.json().await.unwrap();
    let run_id = accepted["run_id"].as_i64().unwrap();

    let (status, list) = app.get_json("/api/runs").await;
    assert_eq!(status, 200);
    let runs = list["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["id"], run_id);
    assert_eq!(runs[0]["state"], "queued");
    assert_eq!(runs[0]["delivery_id"], accepted["delivery_id"]);
    assert!(runs[0].get("event").is_none(), "the list stays small");

    let (status, run) = app.get_json(&format!("/api/runs/{run_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(run["event"]["kind"]["type"], "push");
    assert_eq!(
        run["event"]["kind"]["git_ref"],
        serde_json::json!({"kind": "branch", "name": "master"})
    );
}

#[tokio::test]
async fn run_list_filters_by_repo_and_state() {
    let app = TestApp::spawn().await;
    app.post_hook(
        "github",
        &github("push", &fixture("github/push/goscm__push.json")),
    )
    .await;
    app.post_hook(
        "gitlab",
        &gitlab("Push Hook", &fixture("gitlab/push/goscm__push.json")),
    )
    .await;
    let (_, mine) = app.get_json("/api/runs?repo=gitlab-org/hello-world").await;
    assert_eq!(mine["runs"].as_array().unwrap().len(), 1);
    assert_eq!(mine["runs"][0]["forge"], "gitlab");
    let (_, queued) = app.get_json("/api/runs?state=queued&limit=1").await;
    assert_eq!(queued["runs"].as_array().unwrap().len(), 1);
    let (_, done) = app.get_json("/api/runs?state=success").await;
    assert_eq!(done["runs"].as_array().unwrap().len(), 0);
}

/// The run list page shows a hundred runs and links to the older ones, keeping the filter.
#[tokio::test]
async fn the_run_list_page_pages_by_a_hundred() {
    let app = TestApp::spawn().await;
    let body = fixture("github/push/goscm__push.json");
    for _ in 0..101 {
        app.post_hook("github", &github("push", &body)).await;
    }
    let page = |path: String| {
        let client = app.client.clone();
        let url = format!("{}{path}", app.address);
        async move { client.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let first = page("/?state=queued".into()).await;
    assert_eq!(first.matches("href=\"/runs/").count(), 100);
    let older = first
        .split("href=\"/?")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a link to older runs")
        .replace("&#38;", "&");
    assert_eq!(older, "repo=&state=queued&branch=&event=&before=2");
    let second = page(format!("/?{older}")).await;
    assert_eq!(second.matches("href=\"/runs/").count(), 1);
    assert!(second.contains("href=\"/runs/1\""));
    assert!(!second.contains("Older runs"));
}

#[tokio::test]
async fn bad_api_queries_get_clear_errors() {
    let app = TestApp::spawn().await;
    let (status, body) = app.get_json("/api/runs?state=green").await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("unknown state `green`"),
        "{body}"
    );
    let (status, body) = app.get_json("/api/runs/12345").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "run 12345 not found");
    let (status, _) = app.get_json("/api/runs/not-a-number").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn health_and_readiness_report_their_parts() {
    let app = TestApp::spawn_as(crate::intake::helpers::Role::All).await;
    let (status, body) = app.get_json("/healthz").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    // `.ci/run` starts a Docker engine, so both parts are up.
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(body["store"], "ok");
    assert_eq!(body["docker"], "ok", "{body}");
    assert_eq!(status, 200);
    // An intake-only process does not need the engine.
    let intake = TestApp::spawn().await;
    let (status, body) = intake.get_json("/readyz").await;
    assert_eq!((status, body["docker"].as_str()), (200, Some("not used")));
}

#[tokio::test]
async fn metrics_count_deliveries_by_forge_and_outcome() {
    let app = TestApp::spawn().await;
    let push = github("push", &fixture("github/push/goscm__push.json"));
    app.post_hook("github", &push).await;
    app.post_hook("github", &push).await;
    app.post_hook(
        "github",
        &push.clone().with_header("X-Hub-Signature-256", "sha256=00"),
    )
    .await;
    let text = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        r#"gantry_webhook_deliveries_total{forge="github",outcome="queued"} 1"#,
        r#"gantry_webhook_deliveries_total{forge="github",outcome="duplicate"} 1"#,
        r#"gantry_webhook_deliveries_total{forge="github",outcome="unauthorized"} 1"#,
        r#"gantry_webhook_intake_seconds_count{forge="github",outcome="queued"} 1"#,
        "gantry_runs_queued 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in:\n{text}"
        );
    }
}

async fn post(app: &TestApp, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    let mut request = app.client.post(format!("{}{path}", app.address));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (
        status,
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn cancel_and_rerun_need_the_api_token() {
    let app = TestApp::spawn().await;
    let accepted: serde_json::Value = app
        .post_hook(
            "github",
            &github("push", &fixture("github/push/goscm__push.json")),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = accepted["run_id"].as_i64().unwrap();
    for path in [
        format!("/api/runs/{id}/cancel"),
        format!("/api/runs/{id}/rerun"),
    ] {
        let (status, body) = post(&app, &path, None).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (
                401,
                Some("sign in with write permission, or send `Authorization: Bearer <api token>`")
            )
        );
        let (status, body) = post(&app, &path, Some("guess")).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("wrong API token"))
        );
    }
    assert_eq!(
        app.run_count().await,
        1,
        "nothing happened without the token"
    );
    let (_, run) = app.get_json(&format!("/api/runs/{id}")).await;
    assert_eq!(run["state"], "queued");

    let token = Some(crate::intake::helpers::API_TOKEN);
    let (status, _) = post(&app, &format!("/api/runs/{id}/cancel"), token).await;
    assert_eq!(status, 202);
    let (_, run) = app.get_json(&format!("/api/runs/{id}")).await;
    assert_eq!(run["state"], "canceled");
    let (status, body) = post(&app, &format!("/api/runs/{id}/cancel"), token).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some(format!("run {id} has already finished").as_str()))
    );

    let (status, body) = post(&app, &format!("/api/runs/{id}/rerun"), token).await;
    assert_eq!(status, 202);
    let new_id = body["run_id"].as_i64().unwrap();
    assert_ne!(new_id, id);
    let (_, rerun) = app.get_json(&format!("/api/runs/{new_id}")).await;
    assert_eq!(rerun["state"], "queued");
    assert_eq!(rerun["commit_sha"], run["commit_sha"]);
    assert_eq!(rerun["event"], run["event"]);
    let (status, _) = post(&app, "/api/runs/999999/rerun", token).await;
    assert_eq!(status, 404);
}

/// A stage name from the query names the downloaded file, reduced to safe characters: a
/// quote or a line break can never reach the header.
#[tokio::test]
async fn a_log_downloads_name_keeps_only_safe_characters() {
    let app = TestApp::spawn().await;
    let body = fixture("github/push/goscm__push.json");
    let accepted = app.post_hook("github", &github("push", &body)).await;
    let id = accepted.json::<serde_json::Value>().await.unwrap()["run_id"]
        .as_i64()
        .unwrap();
    let response = app
        .client
        .get(format!(
            "{}/api/runs/{id}/log?stage=ci%2Fa%22%0D%0Ab%3Bc",
            app.address
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let disposition = response.headers()["content-disposition"].to_str().unwrap();
    assert_eq!(
        disposition,
        format!("attachment; filename=\"run-{id}-ci-a___b_c.log\"")
    );
}
