//! A config repo served over git's smart HTTP protocol (`git http-backend` as CGI behind a
//! small server that demands a token), so bumps exercise the real credential path.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine as _;
use gantry::gitops::bump::{Author, Bumper};
use tokio::io::AsyncWriteExt;

use crate::gitops::bumps::request;
use crate::support::git::{BARE_NAME, Repo};
use gantry::domain::{Secret, describe};
use gantry::git::GitAuth;

const TOKEN: &str = "ghs_0123456789abcdefSECRET";
const OVERLAY: &str = "overlays/prod/kustomization.yaml";

/// What the server saw of each request.
#[derive(Debug, Clone)]
struct Seen {
    target: String,
    authorized: bool,
}

struct GitHttp {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    _server: actix_web::dev::ServerHandle,
}

#[derive(Clone)]
struct State {
    root: PathBuf,
    expected: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl GitHttp {
    /// Serves every bare repo under `root`; only requests with the token's basic auth pass.
    async fn start(root: PathBuf) -> Self {
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{TOKEN}"))
        );
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state = State {
            root,
            expected,
            seen: seen.clone(),
        };
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(state.clone()))
                .app_data(web::PayloadConfig::new(64 * 1024 * 1024))
                .default_service(web::to(backend))
        })
        .workers(1)
        .bind("127.0.0.1:0")
        .unwrap();
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            url: format!("http://127.0.0.1:{port}/{BARE_NAME}"),
            seen,
            _server: handle,
        }
    }
}

/// One CGI call of `git http-backend`.
async fn backend(request: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    let authorized = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        == Some(state.expected.as_str());
    state.seen.lock().unwrap().push(Seen {
        target: request.uri().to_string(),
        authorized,
    });
    if !authorized {
        return HttpResponse::Unauthorized()
            .insert_header(("WWW-Authenticate", "Basic realm=\"config\""))
            .finish();
    }
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let mut child = tokio::process::Command::new("git")
        .arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", &state.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REMOTE_USER", "gantry")
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("REQUEST_METHOD", request.method().as_str())
        .env("PATH_INFO", request.path())
        .env("QUERY_STRING", request.query_string())
        .env("CONTENT_TYPE", header("content-type"))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
        .env("GIT_PROTOCOL", header("git-protocol"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&body).await.unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    let split = output
        .stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| {
            output
                .stdout
                .windows(2)
                .position(|w| w == b"\n\n")
                .map(|i| (i, 2))
        })
        .expect("CGI headers");
    let head = String::from_utf8_lossy(&output.stdout[..split.0]).into_owned();
    let mut response = HttpResponse::Ok();
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code: u16 = value[..3].parse().unwrap();
            response.status(actix_web::http::StatusCode::from_u16(code).unwrap());
        } else {
            response.insert_header((name.to_owned(), value.to_owned()));
        }
    }
    response.body(output.stdout[split.0 + split.1..].to_vec())
}

fn bumper_with(token: &str) -> Bumper {
    Bumper::new(
        Author::parse("Gantry <gantry@example.com>").unwrap(),
        GitAuth::Token {
            user: "x-access-token".into(),
            token: Secret::new(token),
        },
    )
}

#[tokio::test]
async fn bumps_over_smart_http_send_the_token_only_as_a_header() {
    let repo = Repo::new(&[(
        OVERLAY,
        "images:\n  - name: registry.example.com/acme/web\n    newTag: v1\n",
    )]);
    let server = GitHttp::start(repo.bare.parent().unwrap().to_owned()).await;
    let mut request = request(&repo, OVERLAY, "registry.example.com/acme/web", "v2");
    request.repo.url = server.url.clone();
    let outcome = bumper_with(TOKEN).bump(request).await.unwrap();
    assert_eq!(outcome.bumped.commit.as_deref(), Some(repo.head().as_str()));
    assert!(repo.file(OVERLAY).contains("newTag: v2"));
    let seen = server.seen.lock().unwrap().clone();
    assert!(
        seen.iter().any(|s| s.target.contains("git-receive-pack")),
        "{seen:?}"
    );
    assert!(seen.iter().all(|s| s.authorized), "{seen:?}");
    assert!(seen.iter().all(|s| !s.target.contains(TOKEN)));
}

#[tokio::test]
async fn a_refused_token_fails_the_bump_without_showing_the_token() {
    let repo = Repo::new(&[(
        OVERLAY,
        "images:\n  - name: registry.example.com/acme/web\n    newTag: v1\n",
    )]);
    let before = repo.head();
    let server = GitHttp::start(repo.bare.parent().unwrap().to_owned()).await;
    let mut request = request(&repo, OVERLAY, "registry.example.com/acme/web", "v2");
    request.repo.url = server.url.clone();
    let wrong = "ghs_wrong_token_value";
    let err = bumper_with(wrong).bump(request).await.unwrap_err();
    let err = describe(&err);
    assert!(
        err.contains("Authentication failed") || err.contains("401"),
        "{err}"
    );
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{wrong}"));
    assert!(!err.contains(wrong) && !err.contains(&encoded), "{err}");
    assert_eq!(repo.head(), before);
    assert!(server.seen.lock().unwrap().iter().all(|s| !s.authorized));
}
