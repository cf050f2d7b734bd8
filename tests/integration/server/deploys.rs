//! Deploy feedback: Flux's and Argo CD's reports through `/hooks/flux` and `/hooks/argocd`
//! (real bodies, right and wrong signatures), and the whole loop on real parts: a push builds
//! and bumps a real config repo, a Flux report for a later revision tells the app commit it
//! is deployed, a failed reconciliation tells it why.

use std::time::{Duration, Instant};

use gantry::domain::Forge;
use serde_json::Value;

use super::bumps::{OVERLAY, config_repo, gitops_loop};
use crate::server::{REPO, SECRET, Server, config_dir, finished, push_payload};
use crate::support::config::{TestConfig, quoted};
use crate::support::deliveries::fixture_dir;
use crate::support::fake_forge::{FakeForge, TOKEN};

const FLUX_KEY: &str = "flux-hmac-key";
/// The key of notification-controller's own signature test.
const FLUX_TEST_KEY: &str = "7152fed34dd6149a7c75a276c510da27cb6f82b0";
const ARGOCD_TOKEN: &str = "argocd-notify-token";
const CONTEXT: &str = "gantry/deploy/dev";

fn deploy_fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture_dir().join("../deploy").join(name)).unwrap()
}

/// `[deploy]` with both controllers' secrets: `dev` is Flux's `flux-system/web-dev` from
/// `config_url`'s overlay folder, `staging` Argo CD's `web-dev`.
fn with_deploy(config: TestConfig, config_url: &str) -> TestConfig {
    config
        .set(
            "deploy",
            "flux_secrets",
            &format!("[{}, {}]", quoted(FLUX_KEY), quoted(FLUX_TEST_KEY)),
        )
        .set("deploy", "argocd_tokens", &format!("[{}]", quoted(ARGOCD_TOKEN)))
        .table(&format!(
            "[[deploy.environments]]\nname = \"dev\"\nconfig_repo = {}\npath = \"apps/app/overlays/dev\"\nflux = \"flux-system/web-dev\"\n\
             [[deploy.environments]]\nname = \"staging\"\nconfig_repo = {}\npath = \"apps/app/overlays/staging\"\nargocd = \"web-dev\"\n",
            quoted(config_url),
            quoted(config_url)
        ))
}

fn sign(key: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes());
    format!(
        "sha256={}",
        hex::encode(ring::hmac::sign(&key, body).as_ref())
    )
}

/// A Flux event for `object` at `revision`.
fn flux_event(object: &str, revision: &str, failed: bool) -> Vec<u8> {
    let (namespace, name) = object.split_once('/').unwrap();
    let (severity, reason, message) = if failed {
        (
            "error",
            "HealthCheckFailed",
            "health check failed after 2m0s: timeout waiting for: [Deployment/apps/web status: 'InProgress']",
        )
    } else {
        (
            "info",
            "ReconciliationSucceeded",
            "Reconciliation finished in 1.2s, next run in 10m0s",
        )
    };
    serde_json::to_vec(&serde_json::json!({
        "involvedObject": {
            "kind": "Kustomization", "namespace": namespace, "name": name,
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1"
        },
        "severity": severity,
        "timestamp": "2026-11-30T10:00:00Z",
        "message": message,
        "reason": reason,
        "metadata": { "revision": format!("main@sha1:{revision}") },
        "reportingController": "kustomize-controller",
        "reportingInstance": "kustomize-controller-7bcf986f97-mn7gg"
    }))
    .unwrap()
}

/// Posts to `path` with `headers`; the status and the JSON answer.
async fn post(server: &Server, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{}{path}", server.address))
        .header("Content-Type", "application/json")
        .body(body.to_vec());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn flux(server: &Server, key: &str, body: &[u8]) -> (u16, Value) {
    post(
        server,
        "/hooks/flux",
        &[("X-Signature", &sign(key, body))],
        body,
    )
    .await
}

#[tokio::test]
async fn controller_reports_are_verified_stored_once_and_ignored_when_they_name_nothing() {
    let configs = config_repo("registry.example.com");
    let forge =
        crate::server::app_repo("stages:\n  - name: check\n    image: IMAGE\n    run: true\n");
    let (_dir, config_path) = config_dir(&forge, |config| with_deploy(config, &configs.url()));
    let server = Server::start(&config_path);

    // Flux's own documented failure event names an object no environment deploys with.
    let docs = deploy_fixture("flux/fluxcd-docs__providers-generic-failure.json");
    let (status, answer) = flux(&server, FLUX_KEY, &docs).await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer["ignored"].as_str().unwrap().contains("apps/webapp"),
        "{answer}"
    );
    // notification-controller's signature test vector, signed as Flux signs.
    let vector = deploy_fixture("flux/fluxcd-test__forwarder-hmac-vector.json");
    let upstream = "sha256=65b018549b1254e7226d1c08f9567ee45bc9de0fc4e7b1a40253f9a018b08be7";
    let (status, _) = post(
        &server,
        "/hooks/flux",
        &[("X-Signature", upstream)],
        &vector,
    )
    .await;
    assert_eq!(status, 200, "Flux's own signature verifies");

    let succeeded = deploy_fixture("flux/gantry__kustomization-succeeded.json");
    let (status, answer) = flux(&server, FLUX_KEY, &succeeded).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["environment"], "dev");
    assert_eq!(answer["outcome"], "applied");
    assert_eq!(
        answer["revision"],
        "d11dc3159634606cafccb94cb9c2a22d3fbe90e7"
    );
    // Flux repeats a success every interval: stored once.
    let (status, answer) = flux(&server, FLUX_KEY, &succeeded).await;
    assert_eq!((status, &answer["duplicate"]), (200, &Value::Bool(true)));

    for (headers, why) in [
        (
            vec![("X-Signature", sign("wrong-key", &succeeded))],
            "does not match",
        ),
        (vec![], "missing X-Signature"),
        (
            vec![(
                "X-Signature",
                sign(FLUX_KEY, &succeeded).replace("sha256", "sha1"),
            )],
            "unsupported",
        ),
        (vec![("X-Signature", "garbage".to_owned())], "sha256=<hex>"),
    ] {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let (status, answer) = post(&server, "/hooks/flux", &headers, &succeeded).await;
        assert_eq!(status, 401, "{why}: {answer}");
        assert!(answer["error"].as_str().unwrap().contains(why), "{answer}");
    }
    let (status, answer) = flux(&server, FLUX_KEY, b"{\"involvedObject\": 3}").await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("involvedObject"),
        "{answer}"
    );

    let bearer = format!("Bearer {ARGOCD_TOKEN}");
    let deployed = deploy_fixture("argocd/gantry-template__deployed.json");
    let (status, answer) = post(
        &server,
        "/hooks/argocd",
        &[("Authorization", &bearer)],
        &deployed,
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(
        (answer["environment"].as_str(), answer["outcome"].as_str()),
        (Some("staging"), Some("applied"))
    );
    let failed = deploy_fixture("argocd/gantry-template__sync-failed.json");
    let (status, answer) = post(
        &server,
        "/hooks/argocd",
        &[("Authorization", &bearer)],
        &failed,
    )
    .await;
    assert_eq!((status, answer["outcome"].as_str()), (202, Some("failed")));
    // Degraded after a failed sync of the same revision says nothing new.
    let degraded = deploy_fixture("argocd/gantry-template__health-degraded.json");
    let (status, _) = post(
        &server,
        "/hooks/argocd",
        &[("Authorization", &bearer)],
        &degraded,
    )
    .await;
    assert_eq!(status, 200);
    for headers in [vec![("Authorization", "Bearer nope")], vec![]] {
        let (status, _) = post(&server, "/hooks/argocd", &headers, &deployed).await;
        assert_eq!(status, 401);
    }
    let deliveries = server
        .metric("gantry_webhook_deliveries_total{forge=\"flux\",outcome=\"unauthorized\"}")
        .await;
    assert_eq!(deliveries, Some(4.0));
}

/// The statuses the fake forge took for `sha` under the deploy context, once its last one
/// is `state`.
async fn wait_for_status(fake: &FakeForge, sha: &str, state: &str) -> Vec<(String, String)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seen: Vec<(String, String)> = fake
            .statuses(sha, CONTEXT)
            .into_iter()
            .map(|accepted| (accepted.state, accepted.description))
            .collect();
        if seen.last().is_some_and(|(last, _)| last == state) {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "{sha} never got {state}: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

const PIPELINE: &str = "stages:
  - name: image
    build:
      image: REGISTRY/acme/app
      tags: ['${GANTRY_COMMIT_SHA}']
  - name: deploy-dev
    bump:
      repo: CONFIG_URL
      file: apps/app/overlays/dev/kustomization.yaml
      pin: tag
";

#[tokio::test]
async fn a_flux_report_of_a_later_revision_tells_the_app_commit_it_is_deployed() {
    let fake = FakeForge::start(Forge::Github, REPO).await;
    let api = fake.api_url();
    let gitops = gitops_loop(PIPELINE, |config, config_url| {
        with_deploy(config, config_url).forge(Forge::Github, SECRET, Some((TOKEN, &api)))
    });
    let (configs, forge, first, server) =
        (&gitops.configs, &gitops.forge, &gitops.sha, &gitops.server);
    let id = server.push(push_payload("main", first, "ship it")).await;
    let run = server.wait_for(id, "an end", finished).await;
    assert_eq!(run["state"], "success", "{run:#}");
    let bump = run["bumps"][0]["commit"].as_str().unwrap().to_owned();
    assert_eq!(run["deployments"][0]["environment"], "dev", "{run:#}");
    assert_eq!(run["deployments"][0]["state"], "pending");
    let pending = wait_for_status(&fake, first, "pending").await;
    assert_eq!(
        pending,
        vec![(
            "pending".to_owned(),
            "waiting for dev to reconcile".to_owned()
        )]
    );

    // An unrelated object changes nothing.
    let (status, _) = flux(
        server,
        FLUX_KEY,
        &flux_event("flux-system/other", &bump, false),
    )
    .await;
    assert_eq!(status, 200);
    // A second change is bumped before Flux gets to the first.
    std::fs::write(forge.work().join("README"), "the app, again\n").unwrap();
    crate::server::git(forge.work(), &["commit", "-qam", "again"]);
    let next = forge.push("main");
    let next_id = server.push(push_payload("main", &next, "again")).await;
    let next_run = server.wait_for(next_id, "an end", finished).await;
    assert_eq!(next_run["state"], "success", "{next_run:#}");
    wait_for_status(&fake, &next, "pending").await;
    // Someone else commits on top of both bumps; Flux applies that later revision, which
    // settles both.
    configs.commit(
        &[("apps/other/kustomization.yaml", "kind: Kustomization\n")],
        "other app",
    );
    let later = configs.head();
    let (status, answer) = flux(
        server,
        FLUX_KEY,
        &flux_event("flux-system/web-dev", &later, false),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    for sha in [first, &next] {
        let seen = wait_for_status(&fake, sha, "success").await;
        assert_eq!(seen.last().unwrap().1, "deployed to dev");
    }
    let run = server.run(id).await;
    let deployment = &run["deployments"][0];
    assert_eq!(deployment["state"], "success", "{run:#}");
    assert_eq!(deployment["revision"], later.as_str());
    let page = server.text(&format!("/runs/{id}")).await;
    assert!(page.contains(r#"<tr data-environment="dev"><td>dev</td><td><span class="state state-success">success</span>"#), "{page}");
    assert!(
        page.contains(r#"data-mark="deployed""#),
        "the timeline marks it: {page}"
    );
    assert_eq!(
        server
            .metric("gantry_deploy_seconds_count{environment=\"dev\"}")
            .await,
        Some(2.0)
    );

    // A second change: a report of a revision before its bump leaves it pending, a failed
    // reconciliation of its own bump fails it with the controller's message.
    std::fs::write(forge.work().join("README"), "the app, changed once more\n").unwrap();
    crate::server::git(forge.work(), &["commit", "-qam", "change"]);
    let second = forge.push("main");
    let id = server.push(push_payload("main", &second, "change")).await;
    let run = server.wait_for(id, "an end", finished).await;
    assert_eq!(run["state"], "success", "{run:#}");
    let bump = run["bumps"][0]["commit"].as_str().unwrap().to_owned();
    wait_for_status(&fake, &second, "pending").await;
    let (status, _) = flux(
        server,
        FLUX_KEY,
        &flux_event("flux-system/web-dev", &later, true),
    )
    .await;
    assert_eq!(status, 202);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        server.run(id).await["deployments"][0]["state"],
        "pending",
        "a revision without the bump settles nothing"
    );
    let (status, _) = flux(
        server,
        FLUX_KEY,
        &flux_event("flux-system/web-dev", &bump, true),
    )
    .await;
    assert_eq!(status, 202);
    let seen = wait_for_status(&fake, &second, "failure").await;
    let description = &seen.last().unwrap().1;
    assert!(
        description.starts_with("dev failed: HealthCheckFailed: health check failed"),
        "{description}"
    );
    let run = server.run(id).await;
    assert_eq!(run["deployments"][0]["state"], "failure");
    assert!(
        run["deployments"][0]["message"]
            .as_str()
            .unwrap()
            .contains("timeout waiting for")
    );
    // The first change stays deployed: what ran before still runs.
    assert_eq!(fake.statuses(first, CONTEXT).len(), 2);
    assert!(fake.unexpected().is_empty(), "{:?}", fake.unexpected());
    let overlay = configs.file(OVERLAY);
    assert!(overlay.contains(&second), "{overlay}");
}
