//! A 202 means the delivery and its run are on disk: kill the server right after a batch of
//! them, start it again, and find every one.

use crate::intake::helpers::{TestApp, config, fixture, github};
use crate::support::process::spawn_gantry;

fn start_gantry(config: &std::path::Path) -> (std::process::Child, String) {
    spawn_gantry(&["--role", "intake"], config)
}

#[tokio::test]
async fn accepted_deliveries_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let store_url = format!("sqlite://{}", dir.path().join("gantry.db").display());
    let config = config(&store_url).write(dir.path());

    let (mut child, address) = start_gantry(&config);
    gantry::forge::install_crypto_provider();
    let client = reqwest::Client::new();
    let body = fixture("github/push/goscm__push.json");
    let sends = (0..100).map(|_| {
        let request = github("push", &body);
        let (client, address) = (&client, &address);
        async move {
            let response = request.post(client, address).await;
            assert_eq!(response.status().as_u16(), 202);
            response.json::<serde_json::Value>().await.unwrap()["run_id"]
                .as_i64()
                .unwrap()
        }
    });
    let mut accepted = futures_util::future::join_all(sends).await;
    // SIGKILL: no shutdown hook, no flush; only what was committed survives.
    child.kill().unwrap();
    child.wait().unwrap();

    let (mut child, address) = start_gantry(&config);
    let app = TestApp::attach(address);
    let (status, list) = app.get_json("/api/runs?limit=500").await;
    assert_eq!(status, 200);
    let mut stored: Vec<i64> = list["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run["id"].as_i64().unwrap())
        .collect();
    accepted.sort();
    stored.sort();
    assert_eq!(stored, accepted);
    child.kill().unwrap();
    child.wait().unwrap();
}
