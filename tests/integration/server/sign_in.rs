//! Sign-in as a person does it, in headless Chromium: a private run's page sends them to
//! `/login`, "Sign in with GitHub" goes through the forge and back to the run, whose log they
//! then watch live; signing out sends the next visit back to `/login`.

use std::time::Duration;

use fantoccini::Locator;
use gantry::domain::{Forge, Permission};
use serde_json::json;

use crate::access::free_port;
use crate::server::{REPO, Server, app_repo, config_dir, push_payload};
use crate::support::chromium::Browser;
use crate::support::fake_identity::{CLIENT_ID, CLIENT_SECRET, FakeIdentity, person};

const TALKING_PIPELINE: &str = "stages:
  - name: talk
    image: IMAGE
    run: |
      echo first line
      sleep 6
      echo last line
";

#[tokio::test]
async fn a_person_signs_in_with_github_to_watch_a_private_run_and_signs_out() {
    let identity = FakeIdentity::start(Forge::Github).await;
    let reader = person(31, "octo-reader");
    identity.grant(&reader, REPO, Permission::Read);
    identity.sign_in_as(&reader);
    let port = free_port();
    let address = format!("http://127.0.0.1:{port}");
    identity.register_callback(&format!("{address}/login/github/callback"));
    let forge = app_repo(TALKING_PIPELINE);
    let sha = forge.push("main");
    let (_dir, config_path) = config_dir(&forge, |config| {
        config
            .unset("auth", "anonymous")
            .text("server", "listen", &format!("127.0.0.1:{port}"))
            .text("server", "public_url", &address)
            .text("github", "api_url", &identity.api_url())
            .text("auth.github", "client_id", CLIENT_ID)
            .text("auth.github", "client_secret", CLIENT_SECRET)
            .text("auth.github", "web_url", &identity.web_url())
    });
    let server = Server::start(&config_path);
    let browser = Browser::start().await;
    // The push payload says nothing of visibility: the repo counts as private.
    let id = server
        .push(push_payload("main", &sha, "private work"))
        .await;

    browser
        .client
        .goto(&format!("{address}/runs/{id}"))
        .await
        .unwrap();
    let url = browser.client.current_url().await.unwrap();
    assert_eq!(url.path(), "/login", "a visitor is sent to sign in");
    browser
        .client
        .find(Locator::LinkText("Sign in with GitHub"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let state = browser
        .wait_text("#run-state", Duration::from_secs(10), |t| !t.is_empty())
        .await;
    let url = browser.client.current_url().await.unwrap();
    assert_eq!(
        url.path(),
        format!("/runs/{id}"),
        "back on the run after signing in"
    );
    assert!(
        state == "queued" || state == "running",
        "the run is still under way: {state}"
    );
    let who = browser
        .wait_text(".signed-in", Duration::from_secs(2), |_| true)
        .await;
    assert_eq!(who, "github:octo-reader");
    browser
        .eval("window.sameDocument = 'yes'; return null;")
        .await;
    let log = browser
        .wait_text("pre[data-stage=talk]", Duration::from_secs(40), |t| {
            t.contains("last line")
        })
        .await;
    assert!(log.contains("first line"), "{log}");
    assert_eq!(
        browser.eval("return window.sameDocument || null;").await,
        json!("yes"),
        "the log arrived live, without a reload"
    );

    browser
        .client
        .find(Locator::Css("header form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait_text("header .who", Duration::from_secs(5), |t| {
            t.contains("Sign in")
        })
        .await;
    browser
        .client
        .goto(&format!("{address}/runs/{id}"))
        .await
        .unwrap();
    let url = browser.client.current_url().await.unwrap();
    assert_eq!(url.path(), "/login", "signed out, the run is private again");
    assert!(
        identity.unexpected().is_empty(),
        "{:?}",
        identity.unexpected()
    );
    browser.client.clone().close().await.unwrap();
}
