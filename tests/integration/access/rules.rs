//! The reading and acting rules, for each kind of person, on each kind of repo.

use gantry::domain::{Forge, Permission};

use super::{API_TOKEN, INTERNAL, METRICS_TOKEN, PRIVATE, PUBLIC, Site};
use crate::support::fake_identity::person;

/// What each read path answers for run `id`: the JSON, the log, the event stream and the
/// page.
async fn reads(browser: &mut super::Browser, id: i64) -> [u16; 4] {
    [
        browser.get(&format!("/api/runs/{id}")).await.status,
        browser.get(&format!("/api/runs/{id}/log")).await.status,
        browser.status(&format!("/api/runs/{id}/events")).await,
        browser.get(&format!("/runs/{id}")).await.status,
    ]
}

#[tokio::test]
async fn visitors_read_public_runs_and_are_sent_to_sign_in_for_the_rest() {
    let site = Site::start(Forge::Github, |config| config).await;
    let mut visitor = site.visitor();
    assert_eq!(visitor.listed().await, vec![site.run(PUBLIC)]);
    assert_eq!(reads(&mut visitor, site.run(PUBLIC)).await, [200; 4]);
    for repo in [INTERNAL, PRIVATE] {
        let id = site.run(repo);
        let json = visitor.get(&format!("/api/runs/{id}")).await;
        assert_eq!(json.status, 401, "{repo}");
        assert_eq!(json.json()["error"], "sign in to see this run");
        assert_eq!(reads(&mut visitor, id).await[..3], [401; 3], "{repo}");
        let page = visitor.get(&format!("/runs/{id}")).await;
        assert_eq!(page.status, 303);
        assert_eq!(
            page.location.as_deref(),
            Some(format!("/login?next=%2Fruns%2F{id}").as_str())
        );
    }
    let front = visitor.get("/").await;
    assert!(front.body.contains(PUBLIC), "{}", front.body);
    assert!(
        !front.body.contains(PRIVATE),
        "the front page names no private repo"
    );
    let cancel = visitor
        .post(&format!("/api/runs/{}/cancel", site.run(PUBLIC)), None)
        .await;
    assert_eq!(cancel.status, 401);
    assert!(
        site.fake.unexpected().is_empty(),
        "{:?}",
        site.fake.unexpected()
    );
}

#[tokio::test]
async fn anonymous_none_hides_even_public_runs_and_all_shows_everything() {
    let site = Site::start(Forge::Github, |config| {
        config.text("auth", "anonymous", "none")
    })
    .await;
    let mut visitor = site.visitor();
    assert_eq!(visitor.listed().await, Vec::<i64>::new());
    assert_eq!(
        visitor
            .get(&format!("/api/runs/{}", site.run(PUBLIC)))
            .await
            .status,
        401
    );
    assert_eq!(visitor.get("/api/runners").await.status, 401);
    let site = Site::start(Forge::Github, |config| {
        config.text("auth", "anonymous", "all")
    })
    .await;
    let mut visitor = site.visitor();
    assert_eq!(visitor.listed().await.len(), 3);
    assert_eq!(reads(&mut visitor, site.run(PRIVATE)).await, [200; 4]);
}

/// Readers, writers, strangers and admins on one forge.
async fn people_on(forge: Forge) {
    let site = Site::start(forge, |config| config).await;
    let (reader, writer, stranger, boss) = (
        person(101, "reader"),
        person(102, "writer"),
        person(103, "stranger"),
        person(104, "boss"),
    );
    site.fake.grant(&reader, PRIVATE, Permission::Read);
    site.fake.grant(&writer, PRIVATE, Permission::Write);
    let (public, internal, private) = (site.run(PUBLIC), site.run(INTERNAL), site.run(PRIVATE));

    let mut browser = site.signed_in(&reader).await;
    assert_eq!(
        browser.listed().await,
        vec![public, internal, private],
        "{forge} reader"
    );
    assert_eq!(
        reads(&mut browser, private).await,
        [200; 4],
        "{forge} reader"
    );
    let page = browser.get(&format!("/runs/{private}")).await;
    assert!(
        page.body.contains(&format!("{forge}:reader")),
        "the header names who is signed in"
    );
    assert!(page.body.contains("Sign out"));
    let csrf = browser.csrf().await;
    let cancel = browser
        .post(&format!("/api/runs/{private}/cancel"), Some(&csrf))
        .await;
    assert_eq!(
        cancel.status, 403,
        "{forge}: a reader may not act: {}",
        cancel.body
    );

    let mut browser = site.signed_in(&stranger).await;
    assert_eq!(
        browser.listed().await,
        vec![public, internal],
        "{forge} stranger"
    );
    assert_eq!(
        reads(&mut browser, private).await,
        [404; 4],
        "{forge} stranger"
    );
    assert_eq!(
        reads(&mut browser, internal).await,
        [200; 4],
        "{forge}: internal is for everyone signed in"
    );
    let csrf = browser.csrf().await;
    let cancel = browser
        .post(&format!("/api/runs/{private}/cancel"), Some(&csrf))
        .await;
    assert_eq!(
        cancel.status, 404,
        "{forge}: a stranger learns nothing of a private repo"
    );

    let mut browser = site.signed_in(&writer).await;
    let without = browser
        .post(&format!("/api/runs/{private}/cancel"), None)
        .await;
    assert_eq!(
        without.status, 403,
        "{forge}: a session's POST needs its CSRF token"
    );
    assert!(without.body.contains("CSRF"), "{}", without.body);
    let forged = browser
        .post(&format!("/api/runs/{private}/cancel"), Some("forged"))
        .await;
    assert_eq!(forged.status, 403);
    let csrf = browser.csrf().await;
    let cancel = browser
        .post(&format!("/api/runs/{private}/cancel"), Some(&csrf))
        .await;
    assert_eq!(cancel.status, 202, "{forge} writer: {}", cancel.body);

    // The admin was granted nothing at the forge.
    let mut browser = site.signed_in(&boss).await;
    assert_eq!(
        reads(&mut browser, private).await,
        [200; 4],
        "{forge} admin"
    );
    let csrf = browser.csrf().await;
    let rerun = browser
        .post(&format!("/api/runs/{private}/rerun"), Some(&csrf))
        .await;
    assert_eq!(rerun.status, 202, "{forge} admin: {}", rerun.body);
    assert!(
        site.fake.unexpected().is_empty(),
        "{:?}",
        site.fake.unexpected()
    );
    no_secret_in(&site, &browser.seen);
}

/// Nothing the server logged, nor any answer `seen`, holds a forge token, the session key
/// or the OAuth client secret.
fn no_secret_in(site: &Site, seen: &[String]) {
    let logged = site.logged();
    assert!(logged.contains("signed in"), "the sign-ins were logged");
    assert!(seen.len() > 5, "the admin's answers were kept");
    let answers = seen.join("\n");
    let tokens = site.fake.issued_tokens();
    assert!(!tokens.is_empty());
    let secrets = [
        super::SESSION_KEY,
        crate::support::fake_identity::CLIENT_SECRET,
    ];
    for secret in tokens.iter().map(String::as_str).chain(secrets) {
        assert!(!logged.contains(secret), "a secret was logged");
        assert!(!answers.contains(secret), "a secret reached an answer");
    }
}

#[tokio::test]
async fn github_people_see_and_do_what_their_permission_allows() {
    people_on(Forge::Github).await;
}

#[tokio::test]
async fn gitlab_people_see_and_do_what_their_access_level_allows() {
    people_on(Forge::Gitlab).await;
}

#[tokio::test]
async fn gitea_people_see_and_do_what_their_permission_allows() {
    people_on(Forge::Gitea).await;
}

#[tokio::test]
async fn the_api_token_reads_and_does_everything_and_signs_in_on_the_login_page() {
    let site = Site::start(Forge::Github, |config| config).await;
    let private = site.run(PRIVATE);
    let client = reqwest::Client::new();
    let get = client
        .get(format!("{}/api/runs/{private}", site.address))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status().as_u16(), 200);
    let listed: serde_json::Value = client
        .get(format!("{}/api/runs", site.address))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["runs"].as_array().unwrap().len(), 3);
    let wrong = client
        .get(format!("{}/api/runs/{private}", site.address))
        .bearer_auth("guess")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    assert_eq!(wrong.headers()["www-authenticate"], "Bearer");

    let mut browser = site.visitor();
    let refused = browser
        .post_form("/login", &[("token", "guess"), ("next", "/")])
        .await;
    assert_eq!(refused.status, 401);
    assert!(refused.body.contains("That is not the API token."));
    assert!(browser.cookies.is_empty(), "no session for a wrong token");
    let signed = browser
        .post_form(
            "/login",
            &[("token", API_TOKEN), ("next", &format!("/runs/{private}"))],
        )
        .await;
    assert_eq!(signed.status, 303);
    assert_eq!(signed.location, Some(format!("/runs/{private}")));
    assert_eq!(reads(&mut browser, private).await, [200; 4]);
    let csrf = browser.csrf().await;
    let cancel = browser
        .post(&format!("/api/runs/{private}/cancel"), Some(&csrf))
        .await;
    assert_eq!(cancel.status, 202, "{}", cancel.body);
    assert!(
        !site.logged().contains(API_TOKEN),
        "the API token was logged"
    );
}

#[tokio::test]
async fn a_permission_revoked_at_the_forge_holds_until_permission_ttl() {
    let site = Site::start(Forge::Github, |config| {
        config.text("auth", "permission_ttl", "2s")
    })
    .await;
    let reader = person(201, "reader");
    site.fake.grant(&reader, PRIVATE, Permission::Read);
    let mut browser = site.signed_in(&reader).await;
    let private = site.run(PRIVATE);
    assert_eq!(
        browser.get(&format!("/api/runs/{private}")).await.status,
        200
    );
    let asked = site.fake.permission_calls(PRIVATE);
    site.fake.grant(&reader, PRIVATE, Permission::None);
    assert_eq!(
        browser.get(&format!("/api/runs/{private}")).await.status,
        200
    );
    assert_eq!(
        site.fake.permission_calls(PRIVATE),
        asked,
        "within permission_ttl the cached permission is used"
    );
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    assert_eq!(
        browser.get(&format!("/api/runs/{private}")).await.status,
        404
    );
    assert_eq!(site.fake.permission_calls(PRIVATE), asked + 1);
}

#[tokio::test]
async fn a_repo_made_private_hides_its_runs_from_visitors() {
    let site = Site::start(Forge::Github, |config| config).await;
    let mut visitor = site.visitor();
    let public = site.run(PUBLIC);
    assert_eq!(
        visitor.get(&format!("/api/runs/{public}")).await.status,
        200
    );
    site.push(PUBLIC, "private").await;
    assert_eq!(
        visitor.get(&format!("/api/runs/{public}")).await.status,
        401
    );
    assert_eq!(visitor.listed().await, Vec::<i64>::new());
}

#[tokio::test]
async fn configured_visibility_overrides_deliveries() {
    let site = Site::start(Forge::Gitea, |config| {
        config.table(
            "[[repos]]\nname = \"acme/declared\"\nforge = \"gitea\"\nvisibility = \"public\"\n",
        )
    })
    .await;
    let id = site.push("acme/declared", "private").await;
    let mut visitor = site.visitor();
    assert_eq!(visitor.get(&format!("/api/runs/{id}")).await.status, 200);
}

/// Starting a manual run is acting on the repo: visitor 401, stranger 404, reader 403; a
/// writer's run page form starts one, recorded as theirs, and only they see the form.
#[tokio::test]
async fn manual_runs_need_write_permission() {
    let site = Site::start(Forge::Github, |config| config).await;
    let (reader, writer, stranger) = (
        person(401, "reader"),
        person(402, "writer"),
        person(403, "stranger"),
    );
    site.fake.grant(&reader, PRIVATE, Permission::Read);
    site.fake.grant(&writer, PRIVATE, Permission::Write);
    let anonymous = reqwest::Client::new()
        .post(format!("{}/api/repos/{PRIVATE}/runs", site.address))
        .json(&serde_json::json!({ "ref": "main" }))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);

    for (who, status) in [(&stranger, 404), (&reader, 403)] {
        let mut browser = site.signed_in(who).await;
        let list = browser.get(&format!("/?repo={PRIVATE}")).await;
        assert!(
            !list.body.contains("Variables"),
            "{}: no Run form",
            who.login
        );
        let csrf = browser.csrf().await;
        let answer = browser
            .post_form(
                &format!("/repos/{PRIVATE}/runs"),
                &[("csrf", &csrf), ("ref", "main")],
            )
            .await;
        assert_eq!(answer.status, status, "{}: {}", who.login, answer.body);
    }

    let mut browser = site.signed_in(&writer).await;
    let list = browser.get(&format!("/?repo={PRIVATE}")).await;
    assert!(
        list.body
            .contains(&format!("action=\"/repos/{PRIVATE}/runs\""))
            && list.body.contains("<option value=\"refs/heads/main\">"),
        "{}",
        list.body
    );
    let csrf = browser.csrf().await;
    let started = browser
        .post_form(
            &format!("/repos/{PRIVATE}/runs"),
            &[
                ("csrf", &csrf),
                ("ref", "refs/heads/main"),
                ("variables", "TARGET=prod\nLEVEL=2"),
            ],
        )
        .await;
    assert_eq!(started.status, 303, "{}", started.body);
    let page = started.location.unwrap();
    let run = browser.get(&format!("/api{page}")).await.json();
    assert_eq!(run["trigger"], "manual", "{run}");
    assert_eq!(run["event"]["kind"]["by"], "writer");
    assert_eq!(
        run["event"]["kind"]["variables"],
        serde_json::json!([["TARGET", "prod"], ["LEVEL", "2"]])
    );
    let forged = browser
        .post_form(
            &format!("/repos/{PRIVATE}/runs"),
            &[("csrf", "forged"), ("ref", "main")],
        )
        .await;
    assert_eq!(forged.status, 403);
}

/// A badge follows the repo's read rule: a visitor sees the public repo's, and gets the same
/// 404 for a private repo's as for one Gantry does not know.
#[tokio::test]
async fn badges_of_private_repos_are_hidden_from_visitors() {
    let site = Site::start(Forge::Github, |config| config).await;
    let mut visitor = site.visitor();
    let public = visitor.get(&format!("/badges/{PUBLIC}.svg")).await;
    assert_eq!(public.status, 200);
    assert!(public.body.contains(">unknown<"), "{}", public.body);
    let private = visitor.get(&format!("/badges/{PRIVATE}.svg")).await;
    let unknown = visitor.get("/badges/acme/unknown.svg").await;
    assert_eq!((private.status, unknown.status), (404, 404));
    assert_eq!(private.body, unknown.body);
    let reader = person(301, "reader");
    site.fake.grant(&reader, PRIVATE, Permission::Read);
    let mut browser = site.signed_in(&reader).await;
    assert_eq!(
        browser.get(&format!("/badges/{PRIVATE}.svg")).await.status,
        200
    );
}

#[tokio::test]
async fn metrics_need_the_metrics_token_when_it_is_set() {
    let site = Site::start(Forge::Github, |config| config).await;
    let client = reqwest::Client::new();
    let url = format!("{}/metrics", site.address);
    let without = client.get(&url).send().await.unwrap();
    assert_eq!(without.status().as_u16(), 401);
    assert_eq!(without.headers()["www-authenticate"], "Bearer");
    let wrong = client
        .get(&url)
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let right = client
        .get(&url)
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(right.status().as_u16(), 200);
    assert!(
        right
            .text()
            .await
            .unwrap()
            .contains("gantry_webhook_deliveries_total")
    );
}

/// Approving and declining a blocked run is acting on it: a visitor is asked to sign in, a
/// stranger learns nothing, a reader is refused, a writer's session must carry its CSRF
/// token; the page offers the buttons only to those who may press them.
#[tokio::test]
async fn approving_and_declining_need_write_permission() {
    let site = Site::start_with(Forge::Github, &["approval = \"all\""], |config| config).await;
    let (reader, writer, stranger) = (
        person(201, "reader"),
        person(202, "writer"),
        person(203, "stranger"),
    );
    site.fake.grant(&reader, PRIVATE, Permission::Read);
    site.fake.grant(&writer, PRIVATE, Permission::Write);
    site.fake.grant(&writer, PUBLIC, Permission::Write);
    let (public, private) = (site.run(PUBLIC), site.run(PRIVATE));
    let mut visitor = site.visitor();
    assert_eq!(
        visitor.get(&format!("/api/runs/{private}")).await.status,
        401
    );
    let run = visitor.get(&format!("/api/runs/{public}")).await.json();
    assert_eq!(
        run["state"], "blocked",
        "`approval = all` blocks pushes: {run}"
    );
    assert!(
        run["approval"]["reason"]
            .as_str()
            .unwrap()
            .contains("sent by dev"),
        "{run}"
    );
    for action in ["approve", "decline"] {
        let answer = visitor
            .post(&format!("/api/runs/{private}/{action}"), None)
            .await;
        assert_eq!(answer.status, 401, "visitor {action}: {}", answer.body);
    }
    let form = visitor
        .post_form(&format!("/runs/{public}/approve"), &[])
        .await;
    assert_eq!(
        (form.status, form.location.as_deref()),
        (
            303,
            Some(format!("/login?next=%2Fruns%2F{public}").as_str())
        )
    );

    let mut browser = site.signed_in(&stranger).await;
    let csrf = browser.csrf().await;
    let answer = browser
        .post(&format!("/api/runs/{private}/approve"), Some(&csrf))
        .await;
    assert_eq!(answer.status, 404, "a stranger: {}", answer.body);

    let mut browser = site.signed_in(&reader).await;
    let page = browser.get(&format!("/runs/{private}")).await;
    assert!(
        page.body
            .contains("Had to wait: a run of this repo, sent by dev")
    );
    assert!(
        !page.body.contains("Approve and run"),
        "a reader gets no buttons"
    );
    let csrf = browser.csrf().await;
    let answer = browser
        .post(&format!("/api/runs/{private}/approve"), Some(&csrf))
        .await;
    assert_eq!(answer.status, 403, "a reader: {}", answer.body);

    let mut browser = site.signed_in(&writer).await;
    let page = browser.get(&format!("/runs/{private}")).await;
    assert!(
        page.body.contains("Approve and run"),
        "a writer gets the buttons"
    );
    let forged = browser
        .post_form(&format!("/runs/{private}/decline"), &[("csrf", "forged")])
        .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    let csrf = browser.csrf().await;
    let declined = browser
        .post_form(&format!("/runs/{private}/decline"), &[("csrf", &csrf)])
        .await;
    assert_eq!(
        (declined.status, declined.location.as_deref()),
        (303, Some(format!("/runs/{private}").as_str())),
        "{}",
        declined.body
    );
    let run = browser.get(&format!("/api/runs/{private}")).await.json();
    assert_eq!(
        (
            run["state"].as_str(),
            run["description"].as_str(),
            run["approval"]["decision"].as_str(),
            run["approval"]["by"].as_str()
        ),
        (
            Some("declined"),
            Some("declined by writer"),
            Some("declined"),
            Some("writer")
        ),
        "{run}"
    );
    let page = browser.get(&format!("/runs/{private}")).await;
    assert!(
        page.body.contains("Declined by writer at "),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains("Approve and run"),
        "a decided run has no buttons"
    );

    let approved = browser
        .post(&format!("/api/runs/{public}/approve"), Some(&csrf))
        .await;
    assert_eq!(approved.status, 202, "{}", approved.body);
    assert_eq!(
        browser.get(&format!("/api/runs/{public}")).await.json()["state"],
        "queued",
        "approved: it waits for a runner now"
    );
    let again = browser
        .post(&format!("/api/runs/{public}/approve"), Some(&csrf))
        .await;
    assert_eq!(again.status, 409);
    assert_eq!(
        again.json()["error"],
        format!("run {public} is not waiting for approval: it is queued")
    );
    let late = reqwest::Client::new()
        .post(format!("{}/api/runs/{private}/approve", site.address))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(late.status().as_u16(), 409, "a declined run stays declined");

    let metrics = reqwest::Client::new()
        .get(format!("{}/metrics", site.address))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for sample in [
        "gantry_run_approvals_total{outcome=\"blocked\"} 3",
        "gantry_run_approvals_total{outcome=\"approved\"} 1",
        "gantry_run_approvals_total{outcome=\"declined\"} 1",
        "gantry_runs_blocked 1",
    ] {
        assert!(
            metrics.lines().any(|line| line == sample),
            "{sample}\n{metrics}"
        );
    }
}

/// A repo's overview and a run's timeline follow the repo's read rule: a visitor is sent to
/// sign in (the picture alone answers 401), a stranger gets the same 404 as for a repo Gantry
/// does not know, a reader sees them.
#[tokio::test]
async fn overviews_and_timelines_follow_the_read_rule() {
    let site = Site::start(Forge::Github, |config| config).await;
    let timeline = |repo| format!("/runs/{}/timeline.svg", site.run(repo));
    let mut visitor = site.visitor();
    assert_eq!(visitor.get(&format!("/repos/{PUBLIC}")).await.status, 200);
    assert_eq!(visitor.get(&timeline(PUBLIC)).await.status, 200);
    let private = visitor.get(&format!("/repos/{PRIVATE}")).await;
    assert_eq!(private.status, 303);
    assert_eq!(
        private.location.as_deref(),
        Some("/login?next=%2Frepos%2Facme%2Fprivate-app")
    );
    assert_eq!(visitor.get(&timeline(PRIVATE)).await.status, 401);
    let unknown = visitor.get("/repos/acme/unknown").await;
    assert_eq!(unknown.status, 404);

    let mut stranger = site.signed_in(&person(302, "stranger")).await;
    let hidden = stranger.get(&format!("/repos/{PRIVATE}")).await;
    assert_eq!(hidden.status, 404);
    assert!(!hidden.body.contains(&format!("#{}", site.run(PRIVATE))));
    assert_eq!(stranger.get(&timeline(PRIVATE)).await.status, 404);

    let reader = person(301, "reader");
    site.fake.grant(&reader, PRIVATE, Permission::Read);
    let mut reader = site.signed_in(&reader).await;
    let page = reader.get(&format!("/repos/{PRIVATE}")).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains(&format!(
            "<a href=\"/runs/{0}\">#{0}</a>",
            site.run(PRIVATE)
        )),
        "{}",
        page.body
    );
    let picture = reader.get(&timeline(PRIVATE)).await;
    assert_eq!(picture.status, 200);
    assert!(picture.body.starts_with("<svg"), "{}", picture.body);
}
