//! The OAuth 2 authorization-code flow with each forge, with PKCE, through the `oauth2`
//! crate: the URL people are sent to, and the exchange of the code they come back with.

use anyhow::Context;
use oauth2::basic::BasicClient;
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse, TokenUrl,
};

use crate::config::OAuthApp;
use crate::domain::{Forge, Secret};

type Client = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// The forge's web root when the app does not name one.
pub fn web_url(forge: Forge, app: &OAuthApp) -> String {
    let default = match forge {
        Forge::Github => "https://github.com",
        Forge::Gitlab => "https://gitlab.com",
        Forge::Gitea => "",
    };
    app.web_url
        .as_deref()
        .unwrap_or(default)
        .trim_end_matches('/')
        .to_owned()
}

/// The scopes asked: enough to read who the person is and what they may do with a repo.
fn scopes(forge: Forge) -> &'static [&'static str] {
    match forge {
        // OAuth apps see a private repo's permissions only with `repo`.
        Forge::Github => &["repo", "read:user"],
        Forge::Gitlab => &["read_api"],
        // Gitea's OAuth tokens carry the user's rights; it ignores scopes it does not know.
        Forge::Gitea => &[],
    }
}

fn client(forge: Forge, app: &OAuthApp, redirect: &str) -> anyhow::Result<Client> {
    let web = web_url(forge, app);
    let (authorize, token) = match forge {
        Forge::Github | Forge::Gitea => ("login/oauth/authorize", "login/oauth/access_token"),
        Forge::Gitlab => ("oauth/authorize", "oauth/token"),
    };
    Ok(BasicClient::new(ClientId::new(app.client_id.clone()))
        .set_client_secret(ClientSecret::new(app.client_secret.expose().to_owned()))
        .set_auth_uri(AuthUrl::new(format!("{web}/{authorize}")).context("authorize URL")?)
        .set_token_uri(TokenUrl::new(format!("{web}/{token}")).context("token URL")?)
        .set_redirect_uri(RedirectUrl::new(redirect.to_owned()).context("callback URL")?)
        // All three forges take the client's credentials in the form body.
        .set_auth_type(AuthType::RequestBody))
}

/// Where to send a person to sign in, and what to keep until they come back.
pub struct Authorization {
    pub url: String,
    /// The `state` sent along; the callback must bring it back.
    pub state: String,
    /// The PKCE verifier the code exchange must show.
    pub verifier: String,
}

pub fn authorize(forge: Forge, app: &OAuthApp, redirect: &str) -> anyhow::Result<Authorization> {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let client = client(forge, app, redirect)?;
    let mut request = client
        .authorize_url(CsrfToken::new_random)
        .set_pkce_challenge(challenge);
    for scope in scopes(forge) {
        request = request.add_scope(Scope::new((*scope).to_owned()));
    }
    let (url, state) = request.url();
    Ok(Authorization {
        url: url.to_string(),
        state: state.secret().clone(),
        verifier: verifier.secret().clone(),
    })
}

/// Why a code could not be exchanged; the person sees the message, so it names no secret.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ExchangeError(pub String);

/// Trades the code the forge sent back for the person's access token.
pub async fn exchange(
    http: &reqwest::Client,
    forge: Forge,
    app: &OAuthApp,
    redirect: &str,
    code: &str,
    verifier: &str,
) -> Result<Secret, ExchangeError> {
    let client = client(forge, app, redirect).map_err(|err| ExchangeError(err.to_string()))?;
    let send = |request: oauth2::HttpRequest| send(http, request);
    let token = client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_owned()))
        .request_async(&send)
        .await
        .map_err(|err| ExchangeError(describe_exchange_error(forge, &err)))?;
    Ok(Secret::new(token.access_token().secret().clone()))
}

fn describe_exchange_error<RE: std::error::Error + 'static>(
    forge: Forge,
    err: &oauth2::RequestTokenError<RE, oauth2::basic::BasicErrorResponse>,
) -> String {
    match err {
        oauth2::RequestTokenError::ServerResponse(answer) => format!(
            "{forge} refused the sign-in: {}",
            answer
                .error_description()
                .cloned()
                .unwrap_or_else(|| answer.error().to_string())
        ),
        oauth2::RequestTokenError::Request(err) => {
            format!("{forge} could not be reached to finish the sign-in: {err}")
        }
        oauth2::RequestTokenError::Parse(_, body) => format!(
            "{forge} answered the sign-in with something other than a token ({} bytes)",
            body.len()
        ),
        oauth2::RequestTokenError::Other(message) => {
            format!("{forge} answered the sign-in unexpectedly: {message}")
        }
    }
}

/// Sends one of the `oauth2` crate's requests with Gantry's reqwest client.
async fn send(
    http: &reqwest::Client,
    request: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, reqwest::Error> {
    let request = reqwest::Request::try_from(request)?;
    let response = http.execute(request).await?;
    let status = response.status();
    let headers = response.headers().clone();
    let mut answer = oauth2::HttpResponse::new(response.bytes().await?.to_vec());
    *answer.status_mut() = status;
    *answer.headers_mut() = headers;
    Ok(answer)
}
