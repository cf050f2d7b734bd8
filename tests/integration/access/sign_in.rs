//! Signing in and out, and every way a sign-in can go wrong: each ends on a clear page or a
//! 401, never a 500, never a session.

use gantry::domain::{Forge, Permission};

use super::{PRIVATE, Site};
use crate::support::fake_identity::person;

fn has_session(browser: &super::Browser) -> bool {
    browser.cookies.contains_key("gantry_session")
}

#[tokio::test]
async fn signing_in_returns_to_the_page_asked_for_and_signing_out_ends_the_session() {
    let site = Site::start(Forge::Gitlab, |config| config).await;
    let reader = person(7, "reader");
    site.fake.grant(&reader, PRIVATE, Permission::Read);
    site.fake.sign_in_as(&reader);
    let private = site.run(PRIVATE);
    let mut browser = site.visitor();
    let login = browser
        .get(&format!("/login?next=%2Fruns%2F{private}"))
        .await;
    assert_eq!(login.status, 200);
    assert!(login.body.contains("Sign in with GitLab"), "{}", login.body);
    let landed = browser
        .sign_in(Forge::Gitlab, &format!("/runs/{private}"))
        .await;
    assert_eq!(landed, (303, Some(format!("/runs/{private}"))));
    assert!(
        !browser.cookies.contains_key("gantry_sign_in"),
        "the sign-in cookie is spent"
    );
    let old_session = browser.cookies["gantry_session"].clone();
    assert_eq!(
        browser.get(&format!("/api/runs/{private}")).await.status,
        200
    );

    // A second sign-in gets a new session id.
    let again = browser.sign_in(Forge::Gitlab, "/").await;
    assert_eq!(again.0, 303);
    assert_ne!(browser.cookies["gantry_session"], old_session);

    // The replaced session ended with the new sign-in.
    let mut old = site.visitor();
    old.cookies.insert("gantry_session".into(), old_session);
    assert_eq!(old.get(&format!("/api/runs/{private}")).await.status, 401);

    let current = browser.cookies["gantry_session"].clone();
    let csrf = browser.csrf().await;
    let refused = browser.post_form("/logout", &[("csrf", "wrong")]).await;
    assert_eq!(refused.status, 403, "sign-out needs the CSRF token");
    let out = browser.post_form("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 303);
    assert!(!has_session(&browser));
    // The session is gone from the store, not only from this browser.
    let mut replay = site.visitor();
    replay.cookies.insert("gantry_session".into(), current);
    assert_eq!(
        replay.get(&format!("/api/runs/{private}")).await.status,
        401
    );
}

#[tokio::test]
async fn a_forged_or_replayed_state_or_a_missing_code_starts_no_session() {
    let site = Site::start(Forge::Github, |config| config).await;
    site.fake.sign_in_as(&person(8, "someone"));
    let mut browser = site.visitor();
    let to_forge = browser.get("/login/github").await;
    let at_forge = browser.get(&to_forge.location.unwrap()).await;
    let callback = at_forge.location.unwrap();

    // The same callback with another state.
    let forged = callback.replace("state=", "state=forged");
    let answer = browser.get(&forged).await;
    assert_eq!(answer.status, 400);
    assert!(
        answer.body.contains("not started in this browser"),
        "{}",
        answer.body
    );
    assert!(!has_session(&browser));

    // Another browser bringing this browser's callback (login CSRF): no binding cookie.
    let mut other = site.visitor();
    let answer = other.get(&callback).await;
    assert_eq!(answer.status, 400);
    assert!(!has_session(&other));

    // A fresh start, then a callback without its code.
    let to_forge = browser.get("/login/github").await;
    let at_forge = browser.get(&to_forge.location.unwrap()).await;
    let callback = at_forge.location.unwrap();
    let url = url::Url::parse(&callback).unwrap();
    let state: String = url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let codeless = format!("/login/github/callback?state={state}");
    let answer = browser.get(&codeless).await;
    assert_eq!(answer.status, 400);
    assert!(answer.body.contains("without a `code`"), "{}", answer.body);
    assert!(!has_session(&browser));

    // A good sign-in, then its callback replayed.
    let to_forge = browser.get("/login/github").await;
    let at_forge = browser.get(&to_forge.location.unwrap()).await;
    let callback = at_forge.location.unwrap();
    let binding = browser.cookies["gantry_sign_in"].clone();
    assert_eq!(browser.get(&callback).await.status, 303);
    assert!(has_session(&browser));
    let mut replay = site.visitor();
    replay.cookies.insert("gantry_sign_in".into(), binding);
    let answer = replay.get(&callback).await;
    assert_eq!(answer.status, 400);
    assert!(answer.body.contains("already used"), "{}", answer.body);
    assert!(!has_session(&replay));
}

#[tokio::test]
async fn a_declined_consent_and_a_failing_token_exchange_are_clear_pages() {
    let site = Site::start(Forge::Gitea, |config| config).await;
    let mut browser = site.visitor();
    site.fake.decline();
    let answer = browser.sign_in(Forge::Gitea, "/").await;
    assert_eq!(answer.0, 400);

    site.fake.sign_in_as(&person(9, "someone"));
    for (scripted, expected) in [
        (Some(401), "Gitea refused the sign-in"),
        (Some(500), "other than a token"),
        (None, "could not be reached"),
    ] {
        site.fake.script_exchanges(vec![scripted]);
        let to_forge = browser.get("/login/gitea").await;
        let at_forge = browser.get(&to_forge.location.unwrap()).await;
        let answer = browser.get(&at_forge.location.unwrap()).await;
        assert_eq!(answer.status, 502, "{scripted:?}: {}", answer.body);
        assert!(
            answer.body.contains(expected)
                || answer
                    .body
                    .to_lowercase()
                    .contains(&expected.to_lowercase()),
            "{scripted:?}: {}",
            answer.body
        );
        assert!(!has_session(&browser), "{scripted:?}");
    }
    // Unknown forges and forges without an app.
    assert_eq!(browser.get("/login/github").await.status, 404);
    assert_eq!(browser.get("/login/bitbucket").await.status, 404);
}

#[tokio::test]
async fn next_never_leaves_gantry() {
    let site = Site::start(Forge::Github, |config| config).await;
    site.fake.sign_in_as(&person(10, "someone"));
    for next in [
        "//evil.example/x",
        "https://evil.example/",
        "/\\evil.example",
        "evil",
    ] {
        let mut browser = site.visitor();
        let landed = browser.sign_in(Forge::Github, next).await;
        assert_eq!(landed, (303, Some("/".to_owned())), "next={next}");
        let signed = browser
            .post_form("/login", &[("token", super::API_TOKEN), ("next", next)])
            .await;
        assert_eq!(signed.location.as_deref(), Some("/"), "next={next}");
    }
}

#[tokio::test]
async fn an_expired_session_and_a_cookie_from_another_key_read_as_a_visitor() {
    let mut site = Site::start(Forge::Github, |config| {
        config.text("auth", "session_ttl", "2s")
    })
    .await;
    let reader = person(11, "reader");
    site.fake.grant(&reader, PRIVATE, Permission::Read);
    let private = site.run(PRIVATE);
    let mut browser = site.signed_in(&reader).await;
    assert_eq!(
        browser.get(&format!("/api/runs/{private}")).await.status,
        200
    );
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    let expired = browser.get(&format!("/api/runs/{private}")).await;
    assert_eq!(expired.status, 401, "{}", expired.body);
    let page = browser.get(&format!("/runs/{private}")).await;
    assert_eq!(
        page.status, 303,
        "an expired session's page goes to sign-in"
    );

    site.restart(|text| text.replace("session_ttl = \"2s\"", "session_ttl = \"1h\""));
    let mut browser = site.signed_in(&reader).await;
    assert_eq!(
        browser.get(&format!("/api/runs/{private}")).await.status,
        200
    );
    site.restart(|text| {
        text.replace(
            super::SESSION_KEY,
            "another session key, just as long as the first",
        )
    });
    assert_eq!(
        browser.get(&format!("/api/runs/{private}")).await.status,
        401,
        "a cookie signed with another key is no session"
    );
}
