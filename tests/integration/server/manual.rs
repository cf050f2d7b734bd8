//! Manual runs through the API on the real engine: the pipelines that take them run on the
//! ref's newest pushed commit with the variables in their environment, recording who
//! started them; a commit whose pipelines take none ends skipped, saying why.

use serde_json::{Value, json};

use super::{API_TOKEN, REPO, Server, app_repo_with, config_dir, finished, git, push_payload};

async fn start(server: &Server, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{}/api/repos/{REPO}/runs", server.address))
        .json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_manual_run_takes_its_variables_and_names_who_started_it() {
    let forge = app_repo_with(
        "stages:\n  - name: check\n    image: IMAGE\n    run: echo pushed\n",
        &[(
            ".gantry/deploy.yml",
            "on: { manual: {} }\nstages:\n  - name: deploy\n    image: IMAGE\n    run: echo \"target=$TARGET event=$GANTRY_EVENT\"\n",
        )],
    );
    let sha = forge.push("main");
    let (_dir, config) = config_dir(&forge, |config| config);
    let server = Server::start(&config);
    let pushed = server.push(push_payload("main", &sha, "push")).await;
    let run = server.wait_for(pushed, "an end", finished).await;
    let names: Vec<&str> = run["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["state"] != "skipped")
        .map(|p| p["pipeline"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["ci"],
        "a push does not run the manual pipeline: {run:#}"
    );

    let (status, body) = start(&server, None, json!({ "ref": "main" })).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = start(
        &server,
        Some(API_TOKEN),
        json!({ "ref": "refs/heads/nowhere" }),
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("Gantry has seen no push to `refs/heads/nowhere`"),
        "{body}"
    );
    for (variables, message) in [
        (
            json!({ "GANTRY_BRANCH": "x" }),
            "`GANTRY_BRANCH` is one of Gantry's own variables",
        ),
        (
            json!({ "bad name": "x" }),
            "`bad name` is not a variable name (letters, digits and `_`)",
        ),
    ] {
        let (status, body) = start(
            &server,
            Some(API_TOKEN),
            json!({ "ref": "main", "variables": variables }),
        )
        .await;
        assert_eq!((status, body["error"].as_str()), (400, Some(message)));
    }
    let unknown = reqwest::Client::new()
        .post(format!("{}/api/repos/acme/nope/runs", server.address))
        .bearer_auth(API_TOKEN)
        .json(&json!({ "ref": "main" }))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 404);

    let (status, body) = start(
        &server,
        Some(API_TOKEN),
        json!({ "ref": "main", "variables": { "TARGET": "staging" } }),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let id = body["run_id"].as_i64().unwrap();
    let run = server.wait_for(id, "an end", finished).await;
    assert_eq!(
        (
            run["state"].as_str(),
            run["trigger"].as_str(),
            run["commit_sha"].as_str()
        ),
        (Some("success"), Some("manual"), Some(sha.as_str())),
        "{run:#}"
    );
    let manual = &run["event"]["kind"];
    assert_eq!(manual["type"], "manual");
    assert_eq!(manual["by"], "api-token");
    assert_eq!(manual["variables"], json!([["TARGET", "staging"]]));
    let log = server.log(id).await;
    assert!(
        log.contains("[deploy/deploy] target=staging event=manual"),
        "{log}"
    );
    assert!(
        !log.contains("pushed"),
        "only the manual pipeline ran: {log}"
    );
    let page = server.text(&format!("/runs/{id}")).await;
    assert!(page.contains("by api-token with TARGET=staging"), "{page}");

    // A branch whose commit has no pipeline taking manual runs.
    git(forge.work(), &["rm", "-q", ".gantry/deploy.yml"]);
    git(forge.work(), &["commit", "-qm", "no manual pipeline"]);
    let other = forge.push("other");
    let pushed = server.push(push_payload("other", &other, "push")).await;
    server.wait_for(pushed, "an end", finished).await;
    let (status, body) = start(&server, Some(API_TOKEN), json!({ "ref": "other" })).await;
    assert_eq!(status, 202, "{body}");
    let run = server
        .wait_for(body["run_id"].as_i64().unwrap(), "an end", finished)
        .await;
    assert_eq!(run["state"], "skipped", "{run:#}");
    assert_eq!(
        run["description"],
        "no pipeline of this commit takes manual runs: add `manual: {}` under `on:` in a file of `.gantry`"
    );
}
