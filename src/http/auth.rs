//! Sign-in over HTTP: who a request comes from (the API token or a session cookie), the
//! guards every read and action goes through, and the `/login` and `/logout` routes.

use std::future::Future;
use std::pin::Pin;

use actix_web::cookie::{Cookie, SameSite, time};
use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::AppState;
use super::api::ApiError;
use crate::auth::forge::{ForgeUser, api_url, user};
use crate::auth::{Denied, User, Viewer, oauth};
use crate::config::OAuthApp;
use crate::domain::Forge;
use crate::store::{PendingSignIn, Run, now_millis};

/// The session cookie: the session's secret, signed with the session key.
const SESSION_COOKIE: &str = "gantry_session";
/// Binds an OAuth sign-in to the browser that started it: its `state`, signed.
const SIGN_IN_COOKIE: &str = "gantry_sign_in";
/// How long a person may take at the forge's sign-in page.
const SIGN_IN_MAX_AGE: time::Duration = time::Duration::minutes(10);
/// The login an API-token sign-in is shown under.
const API_TOKEN_LOGIN: &str = "api-token";

impl FromRequest for Viewer {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let request = request.clone();
        Box::pin(async move { viewer(&request).await })
    }
}

/// Who sent `request`: a bearer token must be the API token (anything else is refused,
/// not taken as a visitor); else a live session's cookie; else a visitor.
async fn viewer(request: &HttpRequest) -> Result<Viewer, ApiError> {
    let state = request
        .app_data::<web::Data<AppState>>()
        .expect("AppState is registered");
    if let Some(presented) = super::bearer_token(request) {
        return match &state.settings.server.api_token {
            Some(token) if token.matches(presented.as_bytes()) => Ok(Viewer::ApiToken),
            Some(_) => Err(ApiError::Unauthorized("wrong API token")),
            None => Err(ApiError::Unauthorized(
                "server.api_token is not set; bearer tokens are refused",
            )),
        };
    }
    // A cookie signed with another key, or of a session that ended, is a visitor's.
    let Some(secret) = signed_cookie(state, request, SESSION_COOKIE) else {
        return Ok(Viewer::Anonymous);
    };
    match state.access.session_user(&secret).await {
        Ok(Some(user)) => Ok(Viewer::User(user)),
        Ok(None) => Ok(Viewer::Anonymous),
        Err(err) => Err(ApiError::Store(err)),
    }
}

/// The value of cookie `name`, if the session key signed it.
fn signed_cookie(state: &AppState, request: &HttpRequest, name: &str) -> Option<String> {
    let cookie = request.cookie(name)?;
    state
        .access
        .keys()
        .verify(cookie.value())
        .map(str::to_owned)
}

/// The run `id`, if `viewer` may read it: a visitor gets 401 where signing in might help,
/// a signed-in person 404 for a run they may not see (its repo's existence stays hidden).
pub async fn readable_run(state: &AppState, viewer: &Viewer, id: i64) -> Result<Run, ApiError> {
    let run = super::api::existing_run(state, id).await?;
    match state
        .access
        .may_read(viewer, run.forge, &run.repo)
        .await
        .map_err(ApiError::Store)?
    {
        Ok(()) => Ok(run),
        Err(Denied::SignIn) => Err(ApiError::Unauthorized("sign in to see this run")),
        Err(Denied::Hidden | Denied::ReadOnly) => Err(ApiError::NotFound(id)),
    }
}

/// The run `id`, if `viewer` may act on it. A session's `POST` must carry its CSRF token
/// (`X-CSRF-Token`, or the form's `csrf` field given as `form_token`).
pub async fn actionable_run(
    state: &AppState,
    viewer: &Viewer,
    request: &HttpRequest,
    form_token: Option<&str>,
    id: i64,
) -> Result<Run, ApiError> {
    let run = super::api::existing_run(state, id).await?;
    actionable_repo(state, viewer, request, form_token, run.forge, &run.repo)
        .await
        .map_err(|err| match err {
            ApiError::UnknownRepo(_) => ApiError::NotFound(id),
            other => other,
        })?;
    Ok(run)
}

/// Whether `viewer` may act on `repo`'s runs (start one, approve one): as
/// [`actionable_run`], with a hidden repo answered as one Gantry does not know.
pub async fn actionable_repo(
    state: &AppState,
    viewer: &Viewer,
    request: &HttpRequest,
    form_token: Option<&str>,
    forge: crate::domain::Forge,
    repo: &crate::domain::RepoName,
) -> Result<(), ApiError> {
    match state
        .access
        .may_act(viewer, forge, repo)
        .await
        .map_err(ApiError::Store)?
    {
        Ok(()) => {}
        Err(Denied::SignIn) => {
            return Err(ApiError::Unauthorized(
                "sign in with write permission, or send `Authorization: Bearer <api token>`",
            ));
        }
        Err(Denied::Hidden) => return Err(ApiError::UnknownRepo(repo.to_string())),
        Err(Denied::ReadOnly) => {
            return Err(ApiError::Forbidden(
                "acting on this repo's runs needs write permission on it".into(),
            ));
        }
    }
    if let Viewer::User(user) = viewer {
        check_csrf(user, request, form_token)?;
    }
    Ok(())
}

fn check_csrf(
    user: &User,
    request: &HttpRequest,
    form_token: Option<&str>,
) -> Result<(), ApiError> {
    let presented = request
        .headers()
        .get("X-CSRF-Token")
        .and_then(|value| value.to_str().ok())
        .or(form_token)
        .unwrap_or_default();
    if bool::from(presented.as_bytes().ct_eq(user.csrf.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "missing or wrong CSRF token (`X-CSRF-Token`)".into(),
        ))
    }
}

/// What a page does when its reader may not read it: a visitor is sent to sign in first,
/// a signed-in person sees "not found".
pub fn page_denied(
    request: &HttpRequest,
    denied: Denied,
    nav: Nav,
    missing: String,
) -> HttpResponse {
    match denied {
        Denied::SignIn => sign_in_first(request),
        Denied::Hidden | Denied::ReadOnly => super::pages::missing(nav, missing),
    }
}

/// A visitor off to `/login`, to come back to the page they asked for.
pub fn sign_in_first(request: &HttpRequest) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header(("Location", login_url(&request_path(request))))
        .finish()
}

fn request_path(request: &HttpRequest) -> String {
    match request.query_string() {
        "" => request.path().to_owned(),
        query => format!("{}?{query}", request.path()),
    }
}

pub(super) fn login_url(next: &str) -> String {
    format!("/login?{}", next_query(next))
}

/// `next=…`, encoded: what carries the page to return to through sign-in.
fn next_query(next: &str) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("next", next)
        .finish()
}

/// `next` if it is a path on Gantry itself, else `/`: never a redirect elsewhere
/// (`//host`, `/\host`, `https:…` are all refused).
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.contains('\\')
                && !path.chars().any(char::is_control) =>
        {
            path.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// What the header of every page shows of the reader.
#[derive(Debug, Clone, Default)]
pub struct Nav {
    /// Who is signed in, as `forge:login` or `api-token`.
    pub signed_in: Option<String>,
    /// The session's CSRF token, for forms and the page's script.
    pub csrf: String,
}

impl Nav {
    pub fn of(viewer: &Viewer) -> Self {
        match viewer {
            Viewer::User(user) => Self {
                signed_in: Some(match user.forge {
                    Some(forge) => format!("{forge}:{}", user.login),
                    None => user.login.clone(),
                }),
                csrf: user.csrf.clone(),
            },
            _ => Self::default(),
        }
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    nav: Nav,
    forges: Vec<(String, String)>,
    next: String,
    token_sign_in: bool,
    message: Option<String>,
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// A button per forge people may sign in with, and a field for the API token.
#[utoipa::path(
    get, path = "/login", tag = "sign-in",
    params(("next" = Option<String>, Query, description = "Where to go once signed in (a path on this server)")),
    responses(
        (status = 200, description = "The sign-in page", content_type = "text/html", body = String),
    )
)]
pub async fn login_page(
    state: web::Data<AppState>,
    viewer: Viewer,
    query: web::Query<NextQuery>,
) -> HttpResponse {
    login(
        &state,
        &viewer,
        &safe_next(query.next.as_deref()),
        None,
        StatusCode::OK,
    )
}

fn login(
    state: &AppState,
    viewer: &Viewer,
    next: &str,
    message: Option<String>,
    status: StatusCode,
) -> HttpResponse {
    let query = next_query(next);
    let page = LoginPage {
        nav: Nav::of(viewer),
        forges: state
            .settings
            .auth
            .sign_in_forges()
            .into_iter()
            .map(|forge| {
                (
                    forge_title(forge).to_owned(),
                    format!("/login/{forge}?{query}"),
                )
            })
            .collect(),
        next: next.to_owned(),
        token_sign_in: state.settings.server.api_token.is_some(),
        message,
    };
    super::pages::html(status, page.render())
}

fn forge_title(forge: Forge) -> &'static str {
    match forge {
        Forge::Github => "GitHub",
        Forge::Gitlab => "GitLab",
        Forge::Gitea => "Gitea",
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenForm {
    token: String,
    next: Option<String>,
}

/// Sign in with the API token, for operators without OAuth.
#[utoipa::path(
    post, path = "/login", tag = "sign-in",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Signed in: back to `next`"),
        (status = 400, description = "A form without a token", body = super::ErrorBody),
        (status = 401, description = "Not the API token: the sign-in page again", content_type = "text/html", body = String),
        (status = 503, description = "The store is unavailable", content_type = "text/html", body = String),
    )
)]
pub async fn login_with_token(
    state: web::Data<AppState>,
    request: HttpRequest,
    form: web::Form<TokenForm>,
) -> HttpResponse {
    let next = safe_next(form.next.as_deref());
    let matches = state
        .settings
        .server
        .api_token
        .as_ref()
        .is_some_and(|token| token.matches(form.token.trim().as_bytes()));
    if !matches {
        return login(
            &state,
            &Viewer::Anonymous,
            &next,
            Some("That is not the API token.".into()),
            StatusCode::UNAUTHORIZED,
        );
    }
    let operator = ForgeUser {
        id: API_TOKEN_LOGIN.into(),
        login: API_TOKEN_LOGIN.into(),
    };
    end_current_session(&state, &request).await;
    match state.access.start_session(None, &operator, None).await {
        Ok(secret) => signed_in(&state, &secret, &next),
        Err(err) => sign_in_failed(&state, &err, StatusCode::SERVICE_UNAVAILABLE),
    }
}

/// Off to the forge's OAuth page, with a fresh `state` bound to this browser and a PKCE
/// challenge.
#[utoipa::path(
    get, path = "/login/{forge}", tag = "sign-in",
    params(
        ("forge" = String, Path, description = "github, gitlab or gitea"),
        ("next" = Option<String>, Query, description = "Where to go once signed in"),
    ),
    responses(
        (status = 303, description = "To the forge's authorization page"),
        (status = 404, description = "No sign-in with that forge here", content_type = "text/html", body = String),
    )
)]
pub async fn login_with_forge(
    state: web::Data<AppState>,
    forge: web::Path<String>,
    query: web::Query<NextQuery>,
) -> HttpResponse {
    let Some((forge, app)) = sign_in_app(&state, &forge) else {
        return missing_forge(&state);
    };
    let authorization = match oauth::authorize(forge, app, &callback_url(&state, forge)) {
        Ok(authorization) => authorization,
        Err(err) => return sign_in_failed(&state, &err, StatusCode::SERVICE_UNAVAILABLE),
    };
    let keys = state.access.keys();
    let stored = async {
        let pending = PendingSignIn {
            forge,
            verifier: keys.encrypt(&authorization.verifier)?,
            next: safe_next(query.next.as_deref()),
            created_at: now_millis(),
        };
        state
            .store
            .begin_sign_in(
                &crate::auth::keys::fingerprint(&authorization.state),
                &pending,
                SIGN_IN_MAX_AGE.whole_milliseconds() as i64,
            )
            .await
    }
    .await;
    if let Err(err) = stored {
        return sign_in_failed(&state, &err, StatusCode::SERVICE_UNAVAILABLE);
    }
    let binding = cookie(&state, SIGN_IN_COOKIE, keys.sign(&authorization.state))
        .path("/login")
        .max_age(SIGN_IN_MAX_AGE)
        .finish();
    HttpResponse::SeeOther()
        .insert_header(("Location", authorization.url))
        .cookie(binding)
        .finish()
}

/// The forge named in the route and its OAuth app, if sign-in with it is configured.
fn sign_in_app<'a>(state: &'a AppState, name: &str) -> Option<(Forge, &'a OAuthApp)> {
    let forge = name.parse::<Forge>().ok()?;
    Some((forge, state.settings.auth.app(forge)?))
}

fn callback_url(state: &AppState, forge: Forge) -> String {
    format!(
        "{}/login/{forge}/callback",
        state.settings.server.public_url.trim_end_matches('/')
    )
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// The forge sends the person back with a code. The `state` must be the one this browser
/// was sent off with, unused and recent; the code is traded for a token, the token tells
/// who signed in, and a new session starts.
#[utoipa::path(
    get, path = "/login/{forge}/callback", tag = "sign-in",
    params(
        ("forge" = String, Path, description = "github, gitlab or gitea"),
        ("code" = Option<String>, Query, description = "The forge's authorization code"),
        ("state" = Option<String>, Query, description = "The state this browser was sent off with"),
        ("error" = Option<String>, Query, description = "Why the forge did not sign the person in"),
        ("error_description" = Option<String>, Query),
    ),
    responses(
        (status = 303, description = "Signed in: to the page asked for"),
        (status = 400, description = "A refused or stale sign-in", content_type = "text/html", body = String),
        (status = 403, description = "The forge would not say who signed in", content_type = "text/html", body = String),
        (status = 404, description = "No sign-in with that forge here", content_type = "text/html", body = String),
        (status = 502, description = "The forge did not answer as it should", content_type = "text/html", body = String),
        (status = 503, description = "The store is unavailable", content_type = "text/html", body = String),
    )
)]
pub async fn callback(
    state: web::Data<AppState>,
    request: HttpRequest,
    forge: web::Path<String>,
    query: web::Query<CallbackQuery>,
) -> HttpResponse {
    let Some((forge, app)) = sign_in_app(&state, &forge) else {
        return missing_forge(&state);
    };
    // Every refusal also spends the browser's sign-in cookie.
    let refuse_with = |message: String, status: StatusCode| {
        let mut response = failed_page(&state, message, status);
        forget_sign_in(&state, &mut response);
        response
    };
    let refuse = |message: String| refuse_with(message, StatusCode::BAD_REQUEST);
    if let Some(error) = &query.error {
        return refuse(format!(
            "{} did not sign you in: {}",
            forge_title(forge),
            query.error_description.as_deref().unwrap_or(error)
        ));
    }
    let Some(returned) = query.state.as_deref().filter(|s| !s.is_empty()) else {
        return refuse("The sign-in came back without its `state`.".into());
    };
    let bound = signed_cookie(&state, &request, SIGN_IN_COOKIE);
    if bound
        .as_deref()
        .map(str::as_bytes)
        .map(|b| b.ct_eq(returned.as_bytes()).into())
        != Some(true)
    {
        return refuse(
            "This sign-in was not started in this browser, or it expired. Please start again."
                .into(),
        );
    }
    let pending = match state
        .store
        .take_sign_in(&crate::auth::keys::fingerprint(returned))
        .await
    {
        Ok(Some(pending)) => pending,
        Ok(None) => {
            return refuse(
                "This sign-in was already used or has expired. Please start again.".into(),
            );
        }
        Err(err) => return sign_in_failed(&state, &err, StatusCode::SERVICE_UNAVAILABLE),
    };
    if pending.forge != forge
        || now_millis() - pending.created_at > SIGN_IN_MAX_AGE.whole_milliseconds() as i64
    {
        return refuse("This sign-in has expired. Please start again.".into());
    }
    let Some(code) = query.code.as_deref().filter(|code| !code.is_empty()) else {
        return refuse("The sign-in came back without a `code`.".into());
    };
    let Some(verifier) = state.access.keys().decrypt(&pending.verifier) else {
        return refuse("This sign-in was started under another key. Please start again.".into());
    };
    let http = state.access.http();
    let token = match oauth::exchange(
        http,
        forge,
        app,
        &callback_url(&state, forge),
        code,
        &verifier,
    )
    .await
    {
        Ok(token) => token,
        Err(err) => return refuse_with(err.to_string(), StatusCode::BAD_GATEWAY),
    };
    let Some(api) = api_url(&state.settings, forge) else {
        return missing_forge(&state);
    };
    let person = match user(http, &api, forge, &token).await {
        Ok(person) => person,
        Err(err) => return sign_in_failed(&state, &err, StatusCode::BAD_GATEWAY),
    };
    end_current_session(&state, &request).await;
    match state
        .access
        .start_session(Some(forge), &person, Some(&token))
        .await
    {
        Ok(secret) => {
            tracing::info!(%forge, login = %person.login, "signed in");
            let mut response = signed_in(&state, &secret, &pending.next);
            forget_sign_in(&state, &mut response);
            response
        }
        Err(err) => sign_in_failed(&state, &err, StatusCode::SERVICE_UNAVAILABLE),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogoutForm {
    csrf: Option<String>,
}

/// The session ends in the store, and its cookie goes.
#[utoipa::path(
    post, path = "/logout", tag = "sign-in",
    request_body(content = LogoutForm, content_type = "application/x-www-form-urlencoded"),
    security((), ("session" = [])),
    responses(
        (status = 303, description = "Signed out: to the run list"),
        (status = 400, description = "A form that is not one", body = super::ErrorBody),
        (status = 403, description = "A bad CSRF token", body = super::ErrorBody),
        (status = 503, description = "The store is unavailable", body = super::ErrorBody),
    )
)]
pub async fn logout(
    state: web::Data<AppState>,
    request: HttpRequest,
    viewer: Viewer,
    form: web::Form<LogoutForm>,
) -> Result<HttpResponse, ApiError> {
    if let Viewer::User(user) = &viewer {
        check_csrf(user, &request, form.csrf.as_deref())?;
        state
            .store
            .end_session(&user.session)
            .await
            .map_err(ApiError::Store)?;
    }
    let mut gone = cookie(&state, SESSION_COOKIE, String::new()).finish();
    gone.make_removal();
    Ok(HttpResponse::SeeOther()
        .insert_header(("Location", "/"))
        .cookie(gone)
        .finish())
}

/// Ends the session `request` came with, if any: a sign-in replaces it.
async fn end_current_session(state: &AppState, request: &HttpRequest) {
    let Some(secret) = signed_cookie(state, request, SESSION_COOKIE) else {
        return;
    };
    let ended = state
        .store
        .end_session(&crate::auth::keys::fingerprint(&secret))
        .await;
    if let Err(err) = ended {
        tracing::warn!(error = %format!("{err:#}"), "ending the replaced session failed");
    }
}

/// The answer that sets a new session's cookie and goes on to `next`.
fn signed_in(state: &AppState, secret: &str, next: &str) -> HttpResponse {
    let ttl = state.settings.auth.session_ttl;
    let session = cookie(state, SESSION_COOKIE, state.access.keys().sign(secret))
        .max_age(time::Duration::seconds(ttl.as_secs() as i64))
        .finish();
    HttpResponse::SeeOther()
        .insert_header(("Location", next.to_owned()))
        .cookie(session)
        .finish()
}

fn cookie(
    state: &AppState,
    name: &'static str,
    value: String,
) -> actix_web::cookie::CookieBuilder<'static> {
    Cookie::build(name, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.settings.server.public_url.starts_with("https://"))
}

fn forget_sign_in(state: &AppState, response: &mut HttpResponse) {
    let mut gone = cookie(state, SIGN_IN_COOKIE, String::new())
        .path("/login")
        .finish();
    gone.make_removal();
    let _ = response.add_cookie(&gone);
}

fn missing_forge(state: &AppState) -> HttpResponse {
    failed_page(
        state,
        "Sign-in with that forge is not configured here.".into(),
        StatusCode::NOT_FOUND,
    )
}

/// A sign-in that failed inside Gantry: logged in full, shown without detail.
fn sign_in_failed(state: &AppState, err: &anyhow::Error, status: StatusCode) -> HttpResponse {
    tracing::warn!(error = %format!("{err:#}"), "sign-in failed");
    failed_page(
        state,
        "Signing in failed on Gantry's side; please try again in a moment.".into(),
        status,
    )
}

fn failed_page(state: &AppState, message: String, status: StatusCode) -> HttpResponse {
    login(state, &Viewer::Anonymous, "/", Some(message), status)
}
