//! `[deploy]`: where Flux and Argo CD tell Gantry what they applied, and which config repo
//! path each environment deploys from.

use serde::Deserialize;

use super::ConfigError;
use crate::domain::Secret;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeploySettings {
    /// HMAC keys of Flux `generic-hmac` Providers (the Secret's `token`); several during a
    /// rotation.
    pub flux_secrets: Vec<Secret>,
    /// Bearer tokens the Argo CD notifications webhook sends.
    pub argocd_tokens: Vec<Secret>,
    pub environments: Vec<Environment>,
}

/// One place the config repo deploys to, and the controller that applies it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// Named in the status context `gantry/deploy/<name>`.
    pub name: String,
    /// The config repo, as bump stages name it.
    pub config_repo: String,
    /// Bumps of files under this folder of the config repo deploy here.
    pub path: String,
    /// `namespace/name` of the Flux Kustomization or HelmRelease that applies `path`.
    pub flux: Option<String>,
    /// The Argo CD application that applies `path`.
    pub argocd: Option<String>,
}

impl Environment {
    /// Whether a bump of `file` in `repo` deploys here: the same repo (a trailing `.git` or
    /// `/` aside) and a file inside `path`.
    pub fn deploys(&self, repo: &str, file: &str) -> bool {
        let bare = |url: &str| {
            url.trim_end_matches('/')
                .trim_end_matches(".git")
                .to_owned()
        };
        let folder = self.path.trim_matches('/');
        let file = file.trim_start_matches('/');
        bare(repo) == bare(&self.config_repo)
            && (folder.is_empty()
                || file
                    .strip_prefix(folder)
                    .is_some_and(|rest| rest.starts_with('/')))
    }
}

impl DeploySettings {
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        let mut seen = std::collections::BTreeSet::new();
        for (index, environment) in self.environments.iter().enumerate() {
            let key = |field: &str| format!("deploy.environments[{index}].{field}");
            let name = &environment.name;
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                return Err(ConfigError::Key {
                    key: key("name"),
                    message: format!(
                        "`{name}` must be letters, digits, `-`, `_` or `.` (it names a status)"
                    ),
                });
            }
            if !seen.insert(name.as_str()) {
                return Err(ConfigError::Key {
                    key: key("name"),
                    message: format!("`{name}` is configured twice"),
                });
            }
            match (&environment.flux, &environment.argocd) {
                (Some(_), Some(_)) | (None, None) => {
                    return Err(ConfigError::Key {
                        key: key("flux"),
                        message: "name exactly one of `flux` (namespace/name) and `argocd` \
                                  (application)"
                            .into(),
                    });
                }
                (Some(object), None) if object.split('/').count() != 2 => {
                    return Err(ConfigError::Key {
                        key: key("flux"),
                        message: format!("`{object}` must be namespace/name"),
                    });
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The environment Flux's `namespace/name` object applies.
    pub fn flux_environment(&self, object: &str) -> Option<&Environment> {
        self.environments
            .iter()
            .find(|environment| environment.flux.as_deref() == Some(object))
    }

    /// The environment the Argo CD application applies.
    pub fn argocd_environment(&self, application: &str) -> Option<&Environment> {
        self.environments
            .iter()
            .find(|environment| environment.argocd.as_deref() == Some(application))
    }

    /// The environments a bump of `file` in `repo` deploys to.
    pub fn environments_of<'a>(
        &'a self,
        repo: &'a str,
        file: &'a str,
    ) -> impl Iterator<Item = &'a Environment> + 'a {
        self.environments
            .iter()
            .filter(move |environment| environment.deploys(repo, file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev() -> Environment {
        Environment {
            name: "dev".into(),
            config_repo: "https://github.com/acme/config.git".into(),
            path: "apps/web/overlays/dev".into(),
            flux: Some("flux-system/web-dev".into()),
            argocd: None,
        }
    }

    #[test]
    fn a_bump_deploys_where_its_file_lies_inside_the_path() {
        let dev = dev();
        assert!(dev.deploys(
            "https://github.com/acme/config",
            "apps/web/overlays/dev/kustomization.yaml"
        ));
        assert!(dev.deploys(
            "https://github.com/acme/config.git",
            "apps/web/overlays/dev/deep/values.yaml"
        ));
        assert!(!dev.deploys(
            "https://github.com/acme/config.git",
            "apps/web/overlays/dev-eu/kustomization.yaml"
        ));
        assert!(!dev.deploys(
            "https://github.com/acme/other.git",
            "apps/web/overlays/dev/kustomization.yaml"
        ));
    }

    #[test]
    fn each_environment_names_one_controller_object() {
        let mut both = dev();
        both.argocd = Some("web-dev".into());
        let mut bad_flux = dev();
        bad_flux.flux = Some("web-dev".into());
        let mut bad_name = dev();
        bad_name.name = "dev env".into();
        for environment in [both, bad_flux, bad_name] {
            let settings = DeploySettings {
                environments: vec![environment],
                ..DeploySettings::default()
            };
            assert!(settings.check().is_err());
        }
        let twice = DeploySettings {
            environments: vec![dev(), dev()],
            ..DeploySettings::default()
        };
        assert!(
            twice
                .check()
                .unwrap_err()
                .to_string()
                .contains("configured twice")
        );
    }
}
