//! Badges: the latest finished state of a branch, or of one pipeline on it, as SVG, with
//! headers that let an image proxy refresh it; 404 for a repo Gantry does not know.

use super::{REPO, Server, app_repo_with, config_dir, finished, push_payload};

async fn badge(server: &Server, path: &str) -> (u16, Option<String>, String) {
    let response = reqwest::get(format!("{}{path}", server.address))
        .await
        .unwrap();
    let status = response.status().as_u16();
    let cache = response
        .headers()
        .get("cache-control")
        .map(|value| value.to_str().unwrap().to_owned());
    (status, cache, response.text().await.unwrap())
}

#[tokio::test]
async fn badges_show_the_latest_finished_state_of_a_branch_and_pipeline() {
    let forge = app_repo_with(
        "stages:\n  - name: check\n    image: IMAGE\n    run: echo fine\n",
        &[(
            ".gantry/bad.yml",
            "stages:\n  - name: boom\n    image: IMAGE\n    run: exit 3\n",
        )],
    );
    let sha = forge.push("main");
    let (_dir, config) = config_dir(&forge, |config| config);
    let server = Server::start(&config);

    let (status, _, body) = badge(&server, &format!("/badges/{REPO}.svg")).await;
    assert_eq!(status, 200);
    assert!(body.contains(">unknown<"), "no finished run yet: {body}");

    let id = server.push(push_payload("main", &sha, "badges")).await;
    let run = server.wait_for(id, "an end", finished).await;
    assert_eq!(run["state"], "failure", "{run:#}");
    let (status, cache, body) = badge(&server, &format!("/badges/{REPO}.svg")).await;
    assert_eq!(status, 200);
    assert_eq!(
        cache.as_deref(),
        Some("no-cache, max-age=0, must-revalidate")
    );
    assert!(
        body.starts_with("<svg") && body.contains(">failing<"),
        "{body}"
    );
    let (_, _, ci) = badge(
        &server,
        &format!("/badges/{REPO}.svg?branch=main&pipeline=ci"),
    )
    .await;
    assert!(ci.contains(">ci<") && ci.contains(">passing<"), "{ci}");
    let (_, _, bad) = badge(&server, &format!("/badges/{REPO}.svg?pipeline=bad")).await;
    assert!(bad.contains(">failing<"), "{bad}");
    let (_, _, other) = badge(&server, &format!("/badges/{REPO}.svg?branch=other")).await;
    assert!(other.contains(">unknown<"), "{other}");
    let (status, _, _) = badge(&server, "/badges/acme/nope.svg").await;
    assert_eq!(status, 404);
    let (status, _, _) = badge(&server, &format!("/badges/{REPO}.svg?colour=red")).await;
    assert_eq!(status, 400, "unknown query keys are refused");
    let size = server
        .metric("gantry_store_bytes")
        .await
        .unwrap_or_default();
    assert!(size > 0.0, "the store's size is in /metrics");
    assert_eq!(server.metric("gantry_pruned_runs_total").await, Some(0.0));
}
