//! What a forge says about a signed-in person, asked with their own token: who they are,
//! and what they may do with a repo.

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::config::Settings;
use crate::domain::{Forge, Permission, RepoName, Secret};

/// A person as their forge knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForgeUser {
    /// The forge's numeric id: logins can be renamed, ids cannot.
    pub id: String,
    pub login: String,
}

/// The REST API root of `forge` as configured (`[github] api_url`, …). Gitea's defaults to
/// `/api/v1` under the sign-in app's host.
pub fn api_url(settings: &Settings, forge: Forge) -> Option<String> {
    let url = match forge {
        Forge::Github => Some(settings.github.api_url.clone()),
        Forge::Gitlab => Some(settings.gitlab.api_url.clone()),
        Forge::Gitea => settings.gitea.api_url.clone().or_else(|| {
            let app = settings.auth.gitea.as_ref()?;
            Some(format!("{}/api/v1", super::oauth::web_url(forge, app)))
        }),
    };
    url.map(|url| url.trim_end_matches('/').to_owned())
}

fn get(http: &reqwest::Client, url: &str, token: &Secret) -> reqwest::RequestBuilder {
    http.get(url)
        .bearer_auth(token.expose())
        .header("Accept", "application/json")
        .header("User-Agent", "gantry")
}

/// The person `token` belongs to.
pub async fn user(
    http: &reqwest::Client,
    api: &str,
    forge: Forge,
    token: &Secret,
) -> anyhow::Result<ForgeUser> {
    #[derive(Deserialize)]
    struct UserJson {
        id: u64,
        #[serde(alias = "username")]
        login: String,
    }
    let response = get(http, &format!("{api}/user"), token)
        .send()
        .await
        .with_context(|| format!("asking {forge} who signed in"))?;
    let status = response.status();
    if !status.is_success() {
        bail!("{forge} answered {status} when asked who signed in");
    }
    let user: UserJson = response
        .json()
        .await
        .with_context(|| format!("reading {forge}'s answer about who signed in"))?;
    Ok(ForgeUser {
        id: user.id.to_string(),
        login: user.login,
    })
}

/// What the owner of `token` may do with `repo`. A repo the forge hides from them (404, or
/// 401/403 for a token it no longer takes) is [`Permission::None`]; a forge that fails or
/// does not answer is an error, never a permission.
pub async fn permission(
    http: &reqwest::Client,
    api: &str,
    forge: Forge,
    token: &Secret,
    repo: &RepoName,
) -> anyhow::Result<Permission> {
    let url = match forge {
        Forge::Github | Forge::Gitea => format!("{api}/repos/{}", repo.as_str()),
        Forge::Gitlab => format!(
            "{api}/projects/{}",
            url::form_urlencoded::byte_serialize(repo.as_str().as_bytes()).collect::<String>()
        ),
    };
    let response = get(http, &url, token)
        .send()
        .await
        .with_context(|| format!("asking {forge} for a permission on {repo}"))?;
    let status = response.status();
    if matches!(status.as_u16(), 401 | 403 | 404) {
        return Ok(Permission::None);
    }
    if !status.is_success() {
        bail!("{forge} answered {status} when asked for a permission on {repo}");
    }
    let body: serde_json::Value = response
        .json()
        .await
        .with_context(|| format!("reading {forge}'s permission on {repo}"))?;
    Ok(match forge {
        Forge::Github | Forge::Gitea => from_flags(&body["permissions"]),
        Forge::Gitlab => from_access_levels(&body["permissions"]),
    })
}

/// GitHub's and Gitea's `permissions` flags (`admin`, `push`, `pull`; GitHub adds
/// `maintain` and `triage`).
fn from_flags(flags: &serde_json::Value) -> Permission {
    let set = |name: &str| flags[name].as_bool() == Some(true);
    if set("admin") {
        Permission::Admin
    } else if set("push") || set("maintain") {
        Permission::Write
    } else if set("pull") {
        Permission::Read
    } else {
        Permission::None
    }
}

/// GitLab's access levels, the higher of the project's and the group's: Reporter (20)
/// reads code, Developer (30) pushes, Maintainer (40) and Owner (50) administer.
fn from_access_levels(permissions: &serde_json::Value) -> Permission {
    let level = ["project_access", "group_access"]
        .iter()
        .filter_map(|scope| permissions[scope]["access_level"].as_i64())
        .max()
        .unwrap_or(0);
    match level {
        40.. => Permission::Admin,
        30.. => Permission::Write,
        20.. => Permission::Read,
        _ => Permission::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flags_give_the_strongest_permission() {
        let flags = |v| from_flags(&v);
        assert_eq!(
            flags(json!({"admin": true, "push": true, "pull": true})),
            Permission::Admin
        );
        assert_eq!(
            flags(json!({"admin": false, "push": true, "pull": true})),
            Permission::Write
        );
        assert_eq!(
            flags(json!({"admin": false, "maintain": true, "pull": true})),
            Permission::Write
        );
        assert_eq!(flags(json!({"pull": true})), Permission::Read);
        assert_eq!(flags(json!(null)), Permission::None);
    }

    #[test]
    fn gitlab_takes_the_higher_of_project_and_group_access() {
        let levels = |v| from_access_levels(&v);
        assert_eq!(
            levels(
                json!({"project_access": {"access_level": 20}, "group_access": {"access_level": 30}})
            ),
            Permission::Write
        );
        assert_eq!(
            levels(json!({"project_access": null, "group_access": {"access_level": 20}})),
            Permission::Read
        );
        assert_eq!(
            levels(json!({"project_access": {"access_level": 10}, "group_access": null})),
            Permission::None
        );
        assert_eq!(
            levels(json!({"project_access": {"access_level": 50}})),
            Permission::Admin
        );
    }
}
