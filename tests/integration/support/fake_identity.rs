//! A stateful fake of what sign-in asks of a forge, for GitHub (as GitHub Enterprise, API
//! under `/api/v3`), GitLab (`/api/v4`) and Gitea (`/api/v1`): the OAuth authorize page and
//! token endpoint at the web root, `GET /user`, and a repo's permissions for the signed-in
//! user. It checks each request as the forge does: the registered client and callback,
//! `response_type=code`, a PKCE S256 challenge met by the verifier, a code used once and
//! within ten minutes for the callback it was issued to, the client secret, bearer tokens.
//! GitHub answers a bad exchange with 200 and an `error` field, as the real one does.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use gantry::domain::{Forge, Permission};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate, matchers::any};

pub const CLIENT_ID: &str = "gantry-client-id";
pub const CLIENT_SECRET: &str = "gantry-client-secret-value";

/// Someone with an account on the fake forge.
#[derive(Debug, Clone)]
pub struct Person {
    pub id: u64,
    pub login: String,
}

struct Grant {
    person: u64,
    redirect_uri: String,
    challenge: String,
    issued: Instant,
    used: bool,
}

#[derive(Default)]
struct State {
    /// Who the browser is signed in as at the forge; `None`: the person refuses consent.
    signed_in: Option<Person>,
    people: BTreeMap<u64, Person>,
    codes: BTreeMap<String, Grant>,
    /// Access token → person id.
    tokens: BTreeMap<String, u64>,
    /// (person id, repo) → permission.
    grants: BTreeMap<(u64, String), Permission>,
    /// Repos anyone may read.
    public: Vec<String>,
    /// Answers for the next token exchanges: a status code, or `None` for no answer.
    scripted_exchanges: Vec<Option<u16>>,
    unexpected: Vec<String>,
    /// Permission lookups answered, per repo.
    permission_calls: BTreeMap<String, usize>,
    next: u64,
}

struct Shared {
    forge: Forge,
    /// Gantry's callback URL, as registered with the forge.
    callback: Mutex<String>,
    state: Mutex<State>,
}

pub struct FakeIdentity {
    shared: Arc<Shared>,
    server: MockServer,
}

impl FakeIdentity {
    pub async fn start(forge: Forge) -> Self {
        let shared = Arc::new(Shared {
            forge,
            callback: Mutex::new(String::new()),
            state: Mutex::default(),
        });
        let server = MockServer::start().await;
        Mock::given(any())
            .respond_with(Responder(shared.clone()))
            .mount(&server)
            .await;
        Self { shared, server }
    }

    /// Registers Gantry's callback URL, as the OAuth app's settings on the forge do.
    pub fn register_callback(&self, url: &str) {
        *self.shared.callback.lock().unwrap() = url.to_owned();
    }

    pub fn web_url(&self) -> String {
        self.server.uri()
    }

    pub fn api_url(&self) -> String {
        format!("{}{}", self.server.uri(), api_prefix(self.shared.forge))
    }

    /// The person the forge's browser session is signed in as (who consents); `None`: the
    /// person declines.
    pub fn decline(&self) {
        self.state().signed_in = None;
    }

    /// The person the forge's browser session is signed in as (who consents).
    pub fn sign_in_as(&self, person: &Person) {
        let mut state = self.state();
        state.signed_in = Some(person.clone());
        state.people.insert(person.id, person.clone());
    }

    pub fn grant(&self, person: &Person, repo: &str, permission: Permission) {
        self.state()
            .grants
            .insert((person.id, repo.to_owned()), permission);
    }

    pub fn make_public(&self, repo: &str) {
        self.state().public.push(repo.to_owned());
    }

    /// The next token exchanges answer these codes (`None`: never answer).
    pub fn script_exchanges(&self, answers: Vec<Option<u16>>) {
        self.state().scripted_exchanges = answers;
    }

    pub fn unexpected(&self) -> Vec<String> {
        self.state().unexpected.clone()
    }

    pub fn permission_calls(&self, repo: &str) -> usize {
        self.state()
            .permission_calls
            .get(repo)
            .copied()
            .unwrap_or(0)
    }

    /// Every access token the fake handed out.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.state().tokens.keys().cloned().collect()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.state.lock().unwrap()
    }
}

pub fn person(id: u64, login: &str) -> Person {
    Person {
        id,
        login: login.to_owned(),
    }
}

fn api_prefix(forge: Forge) -> &'static str {
    match forge {
        Forge::Github => "/api/v3",
        Forge::Gitlab => "/api/v4",
        Forge::Gitea => "/api/v1",
    }
}

struct Responder(Arc<Shared>);

impl Respond for Responder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let shared = &self.0;
        let path = request.url.path().to_owned();
        let (authorize, token) = match shared.forge {
            Forge::Github | Forge::Gitea => ("/login/oauth/authorize", "/login/oauth/access_token"),
            Forge::Gitlab => ("/oauth/authorize", "/oauth/token"),
        };
        let answer = if path == authorize && request.method.as_str() == "GET" {
            shared.authorize(request)
        } else if path == token && request.method.as_str() == "POST" {
            shared.exchange(request)
        } else if let Some(rest) = path.strip_prefix(api_prefix(shared.forge)) {
            shared.api(request, rest)
        } else {
            Err((404, format!("{} {path}", request.method)))
        };
        match answer {
            Ok(response) => response,
            Err((code, why)) => {
                shared.state.lock().unwrap().unexpected.push(why.clone());
                ResponseTemplate::new(code).set_body_json(json!({ "message": why }))
            }
        }
    }
}

type Answer = Result<ResponseTemplate, (u16, String)>;

fn query(request: &Request) -> BTreeMap<String, String> {
    request.url.query_pairs().into_owned().collect()
}

fn form(request: &Request) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect()
}

fn header(request: &Request, name: &str) -> Option<String> {
    request
        .headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

impl Shared {
    /// The authorize page: the person (already signed in at the forge) consents, and the
    /// browser is sent back to the callback with a code and the `state`.
    fn authorize(&self, request: &Request) -> Answer {
        let params = query(request);
        let param = |name: &str| params.get(name).cloned().unwrap_or_default();
        if param("client_id") != CLIENT_ID {
            return Err((404, format!("unknown client_id `{}`", param("client_id"))));
        }
        let callback = self.callback.lock().unwrap().clone();
        if param("redirect_uri") != callback {
            return Err((
                400,
                format!(
                    "redirect_uri `{}` is not the registered callback",
                    param("redirect_uri")
                ),
            ));
        }
        if param("response_type") != "code" {
            return Err((400, "response_type must be `code`".into()));
        }
        if param("state").is_empty() {
            return Err((400, "no state".into()));
        }
        if param("code_challenge_method") != "S256" || param("code_challenge").len() != 43 {
            return Err((400, "a PKCE S256 challenge is required".into()));
        }
        let mut state = self.state.lock().unwrap();
        let back = url::Url::parse(&callback).unwrap();
        let Some(person) = state.signed_in.clone() else {
            let mut denied = back;
            denied
                .query_pairs_mut()
                .append_pair("error", "access_denied")
                .append_pair("error_description", "The user denied the request")
                .append_pair("state", &param("state"));
            return Ok(ResponseTemplate::new(302).insert_header("Location", denied.as_str()));
        };
        state.next += 1;
        let code = format!("code-{}-{}", state.next, uuid::Uuid::new_v4().simple());
        state.codes.insert(
            code.clone(),
            Grant {
                person: person.id,
                redirect_uri: callback,
                challenge: param("code_challenge"),
                issued: Instant::now(),
                used: false,
            },
        );
        let mut back = back;
        back.query_pairs_mut()
            .append_pair("code", &code)
            .append_pair("state", &param("state"));
        Ok(ResponseTemplate::new(302).insert_header("Location", back.as_str()))
    }

    /// The token endpoint.
    fn exchange(&self, request: &Request) -> Answer {
        let mut state = self.state.lock().unwrap();
        if !state.scripted_exchanges.is_empty() {
            return Ok(match state.scripted_exchanges.remove(0) {
                // A 4xx as RFC 6749 words it; anything else as a failing server does.
                Some(code) if (400..500).contains(&code) => ResponseTemplate::new(code)
                    .set_body_json(json!({ "error": "invalid_client", "error_description": "scripted refusal" })),
                Some(code) => ResponseTemplate::new(code).set_body_string("<html>Internal Server Error</html>"),
                None => ResponseTemplate::new(200).set_delay(Duration::from_secs(60)),
            });
        }
        let params = form(request);
        let param = |name: &str| params.get(name).cloned().unwrap_or_default();
        let refusal = |error: &str, description: &str| {
            let body = json!({ "error": error, "error_description": description });
            // GitHub answers 200 with the error; the others 400/401 as RFC 6749 says.
            let code = match (self.forge, error) {
                (Forge::Github, _) => 200,
                (_, "invalid_client") => 401,
                _ => 400,
            };
            Ok(ResponseTemplate::new(code).set_body_json(body))
        };
        if header(request, "accept").as_deref() != Some("application/json") {
            return Err((406, "the token request must ask for JSON".into()));
        }
        if param("client_id") != CLIENT_ID || param("client_secret") != CLIENT_SECRET {
            return refusal("invalid_client", "Client authentication failed");
        }
        if param("grant_type") != "authorization_code" {
            return refusal("unsupported_grant_type", "only authorization_code");
        }
        let code = param("code");
        let Some(grant) = state.codes.get_mut(&code) else {
            return refusal(
                "bad_verification_code",
                "The code passed is incorrect or expired.",
            );
        };
        if grant.used || grant.issued.elapsed() > Duration::from_secs(600) {
            return refusal(
                "bad_verification_code",
                "The code passed is incorrect or expired.",
            );
        }
        grant.used = true;
        if param("redirect_uri") != grant.redirect_uri {
            return refusal("redirect_uri_mismatch", "The redirect_uri does not match.");
        }
        let verifier = param("code_verifier");
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(Sha256::digest(verifier.as_bytes()));
        if challenge != grant.challenge {
            return refusal(
                "invalid_grant",
                "The code_verifier does not match the challenge.",
            );
        }
        let person = grant.person;
        let token = format!("forge-user-token-{}", uuid::Uuid::new_v4().simple());
        state.tokens.insert(token.clone(), person);
        let body = match self.forge {
            Forge::Github => {
                json!({ "access_token": token, "token_type": "bearer", "scope": "repo,read:user" })
            }
            Forge::Gitlab | Forge::Gitea => json!({
                "access_token": token, "token_type": "Bearer", "expires_in": 7200,
                "refresh_token": "refresh-not-used", "scope": "read_api"
            }),
        };
        Ok(ResponseTemplate::new(200).set_body_json(body))
    }

    fn api(&self, request: &Request, path: &str) -> Answer {
        let mut state = self.state.lock().unwrap();
        let token = header(request, "authorization")
            .and_then(|value| value.strip_prefix("Bearer ").map(str::to_owned));
        let Some(person) = token.and_then(|token| state.tokens.get(&token).copied()) else {
            return Ok(
                ResponseTemplate::new(401).set_body_json(json!({ "message": "Bad credentials" }))
            );
        };
        if self.forge == Forge::Github && header(request, "user-agent").is_none() {
            return Err((403, "GitHub requires a User-Agent".into()));
        }
        if path == "/user" {
            let login = state.people[&person].login.clone();
            let body = match self.forge {
                Forge::Gitlab => json!({ "id": person, "username": login, "name": login }),
                Forge::Github | Forge::Gitea => json!({ "id": person, "login": login }),
            };
            return Ok(ResponseTemplate::new(200).set_body_json(body));
        }
        let repo = match self.forge {
            Forge::Github | Forge::Gitea => path.strip_prefix("/repos/").map(str::to_owned),
            Forge::Gitlab => path.strip_prefix("/projects/").map(|encoded| {
                url::form_urlencoded::parse(format!("x={encoded}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            }),
        };
        let Some(repo) = repo else {
            return Err((404, format!("GET {path}")));
        };
        *state.permission_calls.entry(repo.clone()).or_default() += 1;
        let permission = state
            .grants
            .get(&(person, repo.clone()))
            .copied()
            .unwrap_or(Permission::None);
        let public = state.public.contains(&repo);
        if permission == Permission::None && !public {
            return Ok(ResponseTemplate::new(404).set_body_json(json!({ "message": "Not Found" })));
        }
        let body = match self.forge {
            Forge::Github | Forge::Gitea => json!({
                "full_name": repo,
                "private": !public,
                "permissions": {
                    "admin": permission >= Permission::Admin,
                    "push": permission >= Permission::Write,
                    "pull": permission >= Permission::Read || public,
                }
            }),
            Forge::Gitlab => {
                let level = match permission {
                    Permission::Admin => json!({ "access_level": 40 }),
                    Permission::Write => json!({ "access_level": 30 }),
                    Permission::Read => json!({ "access_level": 20 }),
                    Permission::None => Value::Null,
                };
                json!({
                    "path_with_namespace": repo,
                    "permissions": { "project_access": level, "group_access": null }
                })
            }
        };
        Ok(ResponseTemplate::new(200).set_body_json(body))
    }
}
