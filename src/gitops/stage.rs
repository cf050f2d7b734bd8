//! What a pipeline's `bump` stage asks of the bumper: the rules that turn the stage and the
//! image its build pushed into a [`BumpRequest`], or say why there is nothing to bump.

use super::bump::{BumpRequest, BumpSource, ConfigRepo};
use super::edit::NewImage;
use crate::domain::Forge;
use crate::pipeline::vars::{self, IMAGE, IMAGE_DIGEST, IMAGE_TAG};
use crate::pipeline::{BumpPin, BumpSpec};

/// Why a bump stage makes no bump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoBump {
    /// Nothing to deploy, and that is fine: the build did not push.
    Skipped(String),
    /// The stage cannot do what it asks: the stage fails.
    Refused(String),
}

/// Where bumps may go and on whose behalf; the same for every bump stage of a server.
#[derive(Debug, Clone)]
pub struct BumpPolicy<'a> {
    /// The config repos bumps may push to (`[gitops] repos`).
    pub allowed_repos: &'a [String],
    /// The forge that opens pull requests, when not the app repo's.
    pub forge: Option<Forge>,
}

/// The bump `action` asks for, given what the run's builds handed on (`outputs`, newest
/// last) and where the image came from (`source`, whose digest is filled here).
pub fn bump_request(
    action: &BumpSpec,
    outputs: &[(String, String)],
    policy: &BumpPolicy<'_>,
    app_forge: Option<Forge>,
    mut source: BumpSource,
) -> Result<BumpRequest, NoBump> {
    // The newest value a build handed on under `name`.
    let lookup = |name: &str| {
        outputs
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let output = |name: &str| lookup(name).filter(|v| !v.is_empty()).map(str::to_owned);
    let nothing_built = || NoBump::Refused("no image was built in this run to bump".into());
    // `${GANTRY_IMAGE…}` were left for now, when the build has run.
    let expand = |text: &str| vars::expand(text, lookup).map_err(|_| nothing_built());
    let repo = expand(&action.repo)?;
    let branch = expand(&action.branch)?;
    let file = expand(&action.file)?;
    let key = action.key.as_deref().map(expand).transpose()?;
    let image = match action.image.as_deref().map(expand).transpose()? {
        Some(image) => image,
        None => output(IMAGE).ok_or_else(nothing_built)?,
    };
    if !policy.allowed_repos.contains(&repo) {
        return Err(NoBump::Refused(format!(
            "config repo `{repo}` is not listed in `[gitops] repos`; Gantry pushes only there"
        )));
    }
    // Only a pushed image can be deployed: a pull request's build, or `push: false`,
    // leaves nothing in the registry for the config repo to point at.
    let Some(pushed_digest) = output(IMAGE_DIGEST) else {
        return Err(NoBump::Skipped(
            "the build did not push the image (a pull request, or `push: false`), so there \
             is nothing to deploy"
                .into(),
        ));
    };
    let tag = output(IMAGE_TAG);
    let (tag, digest) = match action.pin {
        BumpPin::Tag => (tag, None),
        BumpPin::Digest => (None, Some(pushed_digest.clone())),
        BumpPin::TagAndDigest => (tag, Some(pushed_digest.clone())),
    };
    if action.pin != BumpPin::Digest && tag.is_none() {
        return Err(NoBump::Refused(
            "the build gave the image no tag to bump to".into(),
        ));
    }
    source.digest = Some(pushed_digest);
    Ok(BumpRequest {
        repo: ConfigRepo { url: repo, branch },
        file,
        new: NewImage {
            image,
            tag,
            digest,
            key,
        },
        mode: action.mode,
        forge: policy.forge.or(app_forge),
        source: Some(source),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::BumpMode;

    const CONFIG: &str = "https://git.example.com/acme/config.git";

    fn action(pin: BumpPin) -> BumpSpec {
        BumpSpec {
            repo: CONFIG.into(),
            branch: "main".into(),
            file: "apps/web.yaml".into(),
            image: None,
            key: None,
            mode: BumpMode::Commit,
            pin,
        }
    }

    fn built(digest: &str) -> Vec<(String, String)> {
        vec![
            (IMAGE.into(), "registry.example.com/acme/web".into()),
            (IMAGE_TAG.into(), "abc123".into()),
            (IMAGE_DIGEST.into(), digest.into()),
        ]
    }

    fn request(
        action: &BumpSpec,
        outputs: &[(String, String)],
        allowed: &[String],
    ) -> Result<BumpRequest, NoBump> {
        let policy = BumpPolicy {
            allowed_repos: allowed,
            forge: None,
        };
        bump_request(
            action,
            outputs,
            &policy,
            Some(Forge::Gitea),
            BumpSource::default(),
        )
    }

    #[test]
    fn a_pushed_image_is_bumped_as_the_pin_says() {
        let allowed = [CONFIG.to_owned()];
        let pinned = request(&action(BumpPin::TagAndDigest), &built("sha256:1"), &allowed).unwrap();
        assert_eq!(pinned.new.image, "registry.example.com/acme/web");
        assert_eq!(pinned.new.tag.as_deref(), Some("abc123"));
        assert_eq!(pinned.new.digest.as_deref(), Some("sha256:1"));
        assert_eq!(pinned.forge, Some(Forge::Gitea));
        assert_eq!(pinned.source.unwrap().digest.as_deref(), Some("sha256:1"));
        let by_digest = request(&action(BumpPin::Digest), &built("sha256:1"), &allowed).unwrap();
        assert_eq!(by_digest.new.tag, None);
    }

    #[test]
    fn an_unpushed_build_skips_and_an_unlisted_repo_is_refused() {
        let allowed = [CONFIG.to_owned()];
        assert!(matches!(
            request(&action(BumpPin::Tag), &built(""), &allowed),
            Err(NoBump::Skipped(_))
        ));
        assert!(matches!(
            request(&action(BumpPin::Tag), &built("sha256:1"), &[]),
            Err(NoBump::Refused(why)) if why.contains("not listed in `[gitops] repos`")
        ));
        assert_eq!(
            request(&action(BumpPin::Tag), &[], &allowed).unwrap_err(),
            NoBump::Refused("no image was built in this run to bump".into())
        );
    }
}
