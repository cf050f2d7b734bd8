//! Bad deliveries through HTTP: each gets a clear 4xx, none queues a run, none answers 500,
//! and the server keeps serving.

use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::intake::helpers::{TestApp, fixture, gitea, github, gitlab, gitlab_signed};

const PUSH: &str = "github/push/goscm__push.json";
const GITLAB_PUSH: &str = "gitlab/push/goscm__push.json";
const GITEA_PUSH: &str = "gitea/push/goscm__push.json";

/// Posts `request`, checks the status and that the error message contains `message`, and
/// that nothing was queued and the server is fine.
async fn refused(
    app: &TestApp,
    forge: &str,
    request: &crate::intake::helpers::Delivery,
    status: u16,
    message: &str,
) {
    let response = app.post_hook(forge, request).await;
    assert_eq!(response.status().as_u16(), status);
    let body: serde_json::Value = response.json().await.unwrap();
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(message),
        "`{error}` should contain `{message}`"
    );
    assert_eq!(app.run_count().await, 0, "a refused delivery queued a run");
    app.assert_healthy().await;
}

#[tokio::test]
async fn delivery_without_signature_is_unauthorized() {
    let app = TestApp::spawn().await;
    let request = github("push", &fixture(PUSH)).without_header("X-Hub-Signature-256");
    refused(
        &app,
        "github",
        &request,
        401,
        "missing `X-Hub-Signature-256`",
    )
    .await;
    let request = gitea("push", &fixture(GITEA_PUSH)).without_header("X-Gitea-Signature");
    refused(&app, "gitea", &request, 401, "missing `X-Gitea-Signature`").await;
    let request = gitlab("Push Hook", &fixture(GITLAB_PUSH)).without_header("X-Gitlab-Token");
    refused(&app, "gitlab", &request, 401, "missing `X-Gitlab-Token`").await;
}

#[tokio::test]
async fn wrong_signature_is_unauthorized() {
    let app = TestApp::spawn().await;
    let wrong = format!("sha256={}", "ab".repeat(32));
    let request = github("push", &fixture(PUSH)).with_header("X-Hub-Signature-256", &wrong);
    refused(&app, "github", &request, 401, "does not match").await;
    let request = gitea("push", &fixture(GITEA_PUSH)).with_header("X-Gitea-Signature", "00ff");
    refused(&app, "gitea", &request, 401, "does not match").await;
}

#[tokio::test]
async fn signature_over_a_different_body_is_unauthorized() {
    let app = TestApp::spawn().await;
    let mut request = github("push", &fixture(PUSH));
    request.body = fixture("github/push/goscm__push_tag.json");
    refused(&app, "github", &request, 401, "does not match").await;
    let mut request = gitea("push", &fixture(GITEA_PUSH));
    request.body.push(b' ');
    refused(&app, "gitea", &request, 401, "does not match").await;
}

#[tokio::test]
async fn sha1_signature_alone_is_refused() {
    let app = TestApp::spawn().await;
    let body = fixture(PUSH);
    let sha1 = "sha1=cf93f9ba3c8d3a789e61f91e1e5c6a360d036e98";
    let request = github("push", &body)
        .without_header("X-Hub-Signature-256")
        .with_header("X-Hub-Signature", sha1);
    refused(&app, "github", &request, 401, "only a SHA-1").await;
}

#[tokio::test]
async fn empty_signature_header_is_unauthorized() {
    let app = TestApp::spawn().await;
    let request = github("push", &fixture(PUSH)).with_header("X-Hub-Signature-256", "");
    refused(&app, "github", &request, 401, "not of the form").await;
    let request = gitea("push", &fixture(GITEA_PUSH)).with_header("X-Gitea-Signature", "");
    refused(&app, "gitea", &request, 401, "does not match").await;
    let request = gitlab("Push Hook", &fixture(GITLAB_PUSH)).with_header("X-Gitlab-Token", "");
    refused(&app, "gitlab", &request, 401, "matches no configured token").await;
}

#[tokio::test]
async fn wrong_gitlab_token_is_unauthorized() {
    let app = TestApp::spawn().await;
    let request = gitlab("Push Hook", &fixture(GITLAB_PUSH)).with_header("X-Gitlab-Token", "guess");
    refused(&app, "gitlab", &request, 401, "matches no configured token").await;
}

#[tokio::test]
async fn gitlab_signed_delivery_is_accepted_fresh_and_refused_stale() {
    let app = TestApp::spawn().await;
    let body = fixture(GITLAB_PUSH);
    let stale = gitlab_signed(
        "Push Hook",
        &body,
        SystemTime::now() - Duration::from_secs(600),
    );
    refused(&app, "gitlab", &stale, 401, "away from now").await;
    let future = gitlab_signed(
        "Push Hook",
        &body,
        SystemTime::now() + Duration::from_secs(600),
    );
    refused(&app, "gitlab", &future, 401, "away from now").await;
    let mut tampered = gitlab_signed("Push Hook", &body, SystemTime::now());
    tampered.body.push(b'\n');
    refused(&app, "gitlab", &tampered, 401, "does not match").await;

    let fresh = gitlab_signed("Push Hook", &body, SystemTime::now());
    let response = app.post_hook("gitlab", &fresh).await;
    assert_eq!(response.status().as_u16(), 202);
}

#[tokio::test]
async fn missing_event_header_is_a_bad_request() {
    let app = TestApp::spawn().await;
    let request = github("push", &fixture(PUSH)).without_header("X-GitHub-Event");
    refused(
        &app,
        "github",
        &request,
        400,
        "missing `X-GitHub-Event` header",
    )
    .await;
    let request = gitlab("Push Hook", &fixture(GITLAB_PUSH)).without_header("X-Gitlab-Event");
    refused(
        &app,
        "gitlab",
        &request,
        400,
        "missing `X-Gitlab-Event` header",
    )
    .await;
    let request = gitea("push", &fixture(GITEA_PUSH)).without_header("X-Gitea-Event");
    refused(
        &app,
        "gitea",
        &request,
        400,
        "missing `X-Gitea-Event` header",
    )
    .await;
}

#[tokio::test]
async fn unknown_event_is_answered_200_and_queues_nothing() {
    let app = TestApp::spawn().await;
    let response = app
        .post_hook("github", &github("star", &fixture(PUSH)))
        .await;
    assert_eq!(response.status().as_u16(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["ignored"], "event `star` is not acted on");
    let response = app
        .post_hook("gitlab", &gitlab("Pipeline Hook", &fixture(GITLAB_PUSH)))
        .await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(app.run_count().await, 0);
}

#[tokio::test]
async fn body_that_is_not_json_is_a_bad_request() {
    let app = TestApp::spawn().await;
    refused(
        &app,
        "github",
        &github("push", b"<xml/>"),
        400,
        "body is not valid JSON",
    )
    .await;
    refused(
        &app,
        "gitea",
        &gitea("push", b""),
        400,
        "body is not valid JSON",
    )
    .await;
    let trailing = [fixture(PUSH), b"garbage".to_vec()].concat();
    refused(
        &app,
        "github",
        &github("push", &trailing),
        400,
        "body is not valid JSON",
    )
    .await;
}

#[tokio::test]
async fn json_of_the_wrong_shape_names_the_field() {
    let app = TestApp::spawn().await;
    let no_after = br#"{"ref":"refs/heads/main","before":"x","repository":{"full_name":"a/b","clone_url":"u"}}"#;
    refused(
        &app,
        "github",
        &github("push", no_after),
        400,
        "missing field `after`",
    )
    .await;

    let mut pr: serde_json::Value =
        serde_json::from_slice(&fixture("github/pull_request/octokit__opened.payload.json"))
            .unwrap();
    pr["pull_request"]["head"]["sha"] = serde_json::json!(42);
    let body = serde_json::to_vec(&pr).unwrap();
    refused(
        &app,
        "github",
        &github("pull_request", &body),
        400,
        "payload field `pull_request.head.sha`: invalid type",
    )
    .await;

    let not_a_sha = String::from_utf8(fixture(GITLAB_PUSH))
        .unwrap()
        .replace("\"after\": \"", "\"after\": \"$(reboot)");
    refused(
        &app,
        "gitlab",
        &gitlab("Push Hook", not_a_sha.as_bytes()),
        400,
        "payload field `after`",
    )
    .await;
    refused(
        &app,
        "github",
        &github("push", b"[1,2]"),
        400,
        "payload: expected a JSON object",
    )
    .await;
}

/// An action Gantry ignores is answered 200 whatever the rest of the body lacks; only a
/// body that is not a JSON object is refused.
#[tokio::test]
async fn ignored_actions_never_fail_on_fields_gantry_would_not_use() {
    let app = TestApp::spawn().await;
    for (forge, event, body) in [
        ("github", "pull_request", &br#"{"action":"labeled"}"#[..]),
        (
            "github",
            "pull_request",
            br#"{"action":"closed","number":"x"}"#,
        ),
        ("github", "delete", br#"{"ref_type":"branch"}"#),
        ("gitea", "pull_request", br#"{"action":"label_updated"}"#),
        ("gitea", "pull_request_approved", br#"{}"#),
        (
            "gitlab",
            "Merge Request Hook",
            br#"{"object_attributes":{"action":"approved"}}"#,
        ),
        ("gitlab", "Note Hook", br#"{"object_kind":"note"}"#),
    ] {
        let request = crate::intake::helpers::signed(forge, event, body);
        let response = app.post_hook(forge, &request).await;
        let status = response.status().as_u16();
        let answer: serde_json::Value = response.json().await.unwrap();
        assert_eq!(status, 200, "{forge} {event}: {answer}");
        assert!(answer["ignored"].is_string(), "{forge} {event}: {answer}");
    }
    refused(
        &app,
        "github",
        &github("pull_request", br#"["labeled"]"#),
        400,
        "payload: expected a JSON object",
    )
    .await;
}

/// A run needs a clone URL: from the payload, or from `[[repos]] clone_url`.
#[tokio::test]
async fn an_acted_on_delivery_without_a_clone_url_names_what_is_missing() {
    let app = TestApp::spawn().await;
    let mut pr: serde_json::Value =
        serde_json::from_slice(&fixture("github/pull_request/octokit__opened.payload.json"))
            .unwrap();
    pr["repository"]
        .as_object_mut()
        .unwrap()
        .remove("clone_url");
    let body = serde_json::to_vec(&pr).unwrap();
    refused(
        &app,
        "github",
        &github("pull_request", &body),
        400,
        "gives no clone URL for `Codertocat/Hello-World`",
    )
    .await;
}

#[tokio::test]
async fn form_encoded_github_delivery_is_accepted() {
    let app = TestApp::spawn().await;
    let json = fixture(PUSH);
    let form: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", std::str::from_utf8(&json).unwrap())
        .finish();
    let request = github("push", form.as_bytes())
        .with_header("Content-Type", "application/x-www-form-urlencoded");
    let response = app.post_hook("github", &request).await;
    assert_eq!(response.status().as_u16(), 202);
}

#[tokio::test]
async fn body_over_the_limit_is_refused_by_its_declared_length_without_reading_it() {
    let app = TestApp::spawn().await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    // Declares a 1 GiB body and sends none of it: the answer must come anyway.
    let head = format!(
        "POST /hooks/github HTTP/1.1\r\nHost: {address}\r\nX-GitHub-Event: push\r\n\
         Content-Type: application/json\r\nContent-Length: 1073741824\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0; 1024];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("answered without waiting for the body")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_eq!(app.run_count().await, 0);
    app.assert_healthy().await;
}

#[tokio::test]
async fn chunked_body_over_the_limit_is_cut_off() {
    let app = TestApp::spawn().await;
    let chunk = vec![b' '; 64 * 1024];
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..64).map(|_| Ok(chunk.clone())).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let response = app
        .client
        .post(format!("{}/hooks/github", app.address))
        .header("X-GitHub-Event", "push")
        .body(body)
        .send()
        .await;
    // The server may close the connection after answering; either way, nothing is queued.
    if let Ok(response) = response {
        assert_eq!(response.status().as_u16(), 413);
    }
    assert_eq!(app.run_count().await, 0);
    app.assert_healthy().await;
}

#[tokio::test]
async fn unknown_repo_is_not_found() {
    let app = TestApp::spawn().await;
    let body = String::from_utf8(fixture(PUSH))
        .unwrap()
        .replace("Codertocat/Hello-World", "someone/else");
    refused(
        &app,
        "github",
        &github("push", body.as_bytes()),
        404,
        "repo `someone/else` is not configured for github",
    )
    .await;
}

#[tokio::test]
async fn unknown_forge_is_not_found() {
    let app = TestApp::spawn().await;
    refused(
        &app,
        "bitbucket",
        &github("push", &fixture(PUSH)),
        404,
        "unknown forge",
    )
    .await;
}

/// Other methods and paths under /hooks/ are answered on one kept-alive connection: the
/// requests they leave are released like a delivery's (`http::release_headers`), which must
/// not cost the connection.
#[tokio::test]
async fn other_methods_and_paths_under_hooks_are_answered_on_a_kept_connection() {
    use reqwest::Method;
    let app = TestApp::spawn().await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    for (method, path, status) in [
        (Method::HEAD, "/hooks/github", 405),
        (Method::GET, "/hooks/github", 405),
        (Method::OPTIONS, "/hooks/flux", 405),
        (Method::POST, "/hooks/a/b", 404),
        (Method::POST, "/hooks/", 404),
        (Method::POST, "/hooks/github", 400),
    ] {
        let response = client
            .request(method.clone(), format!("{}{path}", app.address))
            .send()
            .await
            .unwrap_or_else(|err| panic!("{method} {path}: {err}"));
        assert_eq!(response.status().as_u16(), status, "{method} {path}");
    }
    app.assert_healthy().await;
}

#[tokio::test]
async fn replayed_delivery_is_answered_duplicate_and_queues_nothing() {
    let app = TestApp::spawn().await;
    let request = github("push", &fixture(PUSH));
    let first = app.post_hook("github", &request).await;
    assert_eq!(first.status().as_u16(), 202);
    for _ in 0..3 {
        let again = app.post_hook("github", &request).await;
        assert_eq!(again.status().as_u16(), 200);
        let body: serde_json::Value = again.json().await.unwrap();
        assert_eq!(body, serde_json::json!({ "duplicate": true }));
    }
    // The same delivery id from another hook is another delivery.
    let other_hook = request.clone().with_header("X-GitHub-Hook-ID", "999");
    assert_eq!(
        app.post_hook("github", &other_hook).await.status().as_u16(),
        202
    );
    assert_eq!(app.run_count().await, 2);
}

#[tokio::test]
async fn gitlab_idempotency_key_wins_over_the_event_uuid() {
    let app = TestApp::spawn().await;
    let body = fixture(GITLAB_PUSH);
    let first = gitlab("Push Hook", &body).with_header("Idempotency-Key", "retry-1");
    // A retry keeps the idempotency key but GitLab gives it a fresh event UUID.
    let retry = gitlab("Push Hook", &body).with_header("Idempotency-Key", "retry-1");
    assert_eq!(app.post_hook("gitlab", &first).await.status().as_u16(), 202);
    assert_eq!(app.post_hook("gitlab", &retry).await.status().as_u16(), 200);
    assert_eq!(app.run_count().await, 1);
}

#[tokio::test]
async fn concurrent_replays_of_one_delivery_queue_exactly_one_run() {
    let app = TestApp::spawn().await;
    let request = gitea("push", &fixture(GITEA_PUSH));
    let answers =
        futures_util::future::join_all((0..20).map(|_| app.post_hook("gitea", &request))).await;
    let mut statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    statuses.sort();
    assert_eq!(
        statuses.iter().filter(|s| **s == 202).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        19,
        "{statuses:?}"
    );
    assert_eq!(app.run_count().await, 1);
}
