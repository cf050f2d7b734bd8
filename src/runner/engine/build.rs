//! The `build` stage: the workspace's context sent to the engine as a tar stream (minus what
//! `.dockerignore` excludes), built, tagged, and pushed with the registry's credentials. The
//! pushed digest is handed to later stages as `GANTRY_IMAGE_DIGEST`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};

use bollard::auth::DockerCredentials;
use bollard::query_parameters::{BuildImageOptions, PushImageOptions, TagImageOptions};
use futures_util::StreamExt;
use globset::{GlobBuilder, GlobMatcher};

use super::upload::{ChunkWriter, stream_from};
use super::{DockerError, Engine, call_error};
use crate::config::RegistryCredentials;

/// The registry an image name without a host goes to.
const DEFAULT_REGISTRY: &str = "docker.io";

/// `.dockerignore` rules: the last rule matching a path (or one of its folders) decides.
#[derive(Debug, Default)]
pub struct DockerIgnore {
    rules: Vec<(GlobMatcher, bool)>,
}

impl DockerIgnore {
    pub fn read(context: &Path) -> Self {
        match std::fs::read_to_string(context.join(".dockerignore")) {
            Ok(text) => Self::parse(&text),
            Err(_) => Self::default(),
        }
    }

    pub fn parse(text: &str) -> Self {
        let rules = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .filter_map(|line| {
                let (keep, pattern) = match line.strip_prefix('!') {
                    Some(rest) => (true, rest.trim()),
                    None => (false, line),
                };
                let pattern = pattern
                    .trim_start_matches("./")
                    .trim_start_matches('/')
                    .trim_end_matches('/');
                let glob = GlobBuilder::new(pattern)
                    .literal_separator(true)
                    .build()
                    .ok()?;
                Some((glob.compile_matcher(), keep))
            })
            .collect();
        Self { rules }
    }

    /// Whether `relative` (with `/` separators) stays out of the context.
    pub fn excludes(&self, relative: &str) -> bool {
        let mut excluded = false;
        for (glob, keep) in &self.rules {
            let mut candidate = relative;
            let matched = loop {
                if glob.is_match(candidate) {
                    break true;
                }
                match candidate.rsplit_once('/') {
                    Some((parent, _)) => candidate = parent,
                    None => break false,
                }
            };
            if matched {
                excluded = !keep;
            }
        }
        excluded
    }
}

/// Resolves a path inside the checkout, refusing one that leaves it.
fn inside(root: &Path, relative: &str) -> Option<PathBuf> {
    let mut path = root.to_path_buf();
    for component in Path::new(relative).components() {
        match component {
            Component::Normal(part) => path.push(part),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(path)
}

/// Writes the context folder as a tar archive, leaving out what `.dockerignore` excludes
/// (never the Dockerfile, as `docker build` does).
fn archive_context(context: &Path, dockerfile: &str, writer: ChunkWriter) -> std::io::Result<()> {
    let ignore = DockerIgnore::read(context);
    let mut builder = tar::Builder::new(writer);
    builder.follow_symlinks(false);
    let mut stack = vec![PathBuf::new()];
    while let Some(relative_dir) = stack.pop() {
        for entry in std::fs::read_dir(context.join(&relative_dir))? {
            let entry = entry?;
            let relative = relative_dir.join(entry.file_name());
            let name = relative.to_string_lossy().replace('\\', "/");
            if name != dockerfile && ignore.excludes(&name) {
                continue;
            }
            let kind = entry.file_type()?;
            if kind.is_dir() {
                builder.append_dir(&relative, entry.path())?;
                stack.push(relative);
            } else {
                builder.append_path_with_name(entry.path(), &relative)?;
            }
        }
    }
    builder.into_inner()?.flush_rest()
}

/// The registry host of an image name, as Docker reads it.
pub fn registry_of(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => first,
        _ => DEFAULT_REGISTRY,
    }
}

/// What a build needs.
pub struct BuildRequest<'a> {
    pub checkout: &'a Path,
    pub context: &'a str,
    pub dockerfile: &'a str,
    pub image: &'a str,
    pub tags: &'a [String],
    pub args: &'a [(String, String)],
    pub target: Option<&'a str>,
    pub labels: Vec<(String, String)>,
    pub push: bool,
    pub registries: &'a BTreeMap<String, RegistryCredentials>,
}

/// What a build hands on: the image, its first tag, and the digest of the pushed manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    pub image: String,
    pub tag: String,
    pub digest: Option<String>,
}

impl Engine {
    /// Builds, tags and (when asked) pushes; `on_line` gets the build and push log.
    pub async fn build_and_push(
        &self,
        request: BuildRequest<'_>,
        mut on_line: impl FnMut(&str),
    ) -> Result<Built, DockerError> {
        let fail = |operation: String, message: String| DockerError::Refused { operation, message };
        let context = inside(request.checkout, request.context).ok_or_else(|| {
            fail(
                "build context".into(),
                format!("`{}` leaves the repository", request.context),
            )
        })?;
        if !context.is_dir() {
            return Err(fail(
                "build context".into(),
                format!("`{}` is not a folder", request.context),
            ));
        }
        let first_tag = request
            .tags
            .first()
            .cloned()
            .unwrap_or_else(|| "latest".into());
        let reference = format!("{}:{first_tag}", request.image);

        let (sender, receiver) = tokio::sync::mpsc::channel(4);
        let dockerfile = request.dockerfile.to_owned();
        let archiver = tokio::task::spawn_blocking(move || {
            archive_context(&context, &dockerfile, ChunkWriter::new(sender))
        });
        let options = BuildImageOptions {
            dockerfile: request.dockerfile.to_owned(),
            t: Some(reference.clone()),
            rm: true,
            forcerm: true,
            buildargs: Some(request.args.iter().cloned().collect()),
            labels: Some(request.labels.iter().cloned().collect::<HashMap<_, _>>()),
            target: request.target.unwrap_or_default().to_owned(),
            ..Default::default()
        };
        let build_credentials: HashMap<String, DockerCredentials> = request
            .registries
            .iter()
            .map(|(host, creds)| (host.clone(), credentials(host, creds)))
            .collect();
        let mut build = self.docker().build_image(
            options,
            Some(build_credentials),
            Some(bollard::body_stream(stream_from(receiver))),
        );
        let mut build_error = None;
        while let Some(step) = build.next().await {
            match step {
                Ok(info) => {
                    if let Some(text) = info.stream.as_deref().or(info.status.as_deref()) {
                        for line in text.lines().filter(|l| !l.trim().is_empty()) {
                            on_line(line.trim_end());
                        }
                    }
                    if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                        build_error = Some(detail);
                    }
                }
                Err(err) => {
                    build_error = Some(err.to_string());
                    break;
                }
            }
        }
        let archived = archiver.await;
        if let Some(message) = build_error {
            return Err(fail(format!("building {reference}"), message));
        }
        if let Ok(Err(source)) = archived {
            return Err(DockerError::Io {
                operation: "sending the build context".into(),
                source,
            });
        }
        for tag in request.tags.iter().skip(1) {
            let options = TagImageOptions {
                repo: Some(request.image.to_owned()),
                tag: Some(tag.clone()),
            };
            self.docker()
                .tag_image(&reference, Some(options))
                .await
                .map_err(call_error(format!("tagging {}:{tag}", request.image)))?;
        }
        if !request.push {
            on_line(&format!("built {reference} (not pushed)"));
            return Ok(Built {
                image: request.image.to_owned(),
                tag: first_tag,
                digest: None,
            });
        }
        let host = registry_of(request.image);
        let creds = request
            .registries
            .get(host)
            .map(|c| credentials(host, c))
            .or_else(|| docker_config_credentials(&docker_config_path()?, host));
        for tag in request.tags {
            let options = PushImageOptions {
                tag: Some(tag.clone()),
                ..Default::default()
            };
            let mut push = self
                .docker()
                .push_image(request.image, Some(options), creds.clone());
            while let Some(step) = push.next().await {
                let info =
                    step.map_err(|err| push_error(request.image, tag, host, &err.to_string()))?;
                if let Some(message) = info.error_detail.and_then(|d| d.message) {
                    return Err(push_error(request.image, tag, host, &message));
                }
                if let Some(status) = info.status.filter(|s| s.contains("digest:")) {
                    on_line(&status);
                }
            }
        }
        let inspected = self
            .docker()
            .inspect_image(&reference)
            .await
            .map_err(call_error(format!("inspecting {reference}")))?;
        let prefix = format!("{}@", request.image);
        let digest = inspected
            .repo_digests
            .unwrap_or_default()
            .into_iter()
            .find_map(|d| d.strip_prefix(&prefix).map(str::to_owned));
        on_line(&format!(
            "pushed {reference}{}",
            digest
                .as_deref()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default()
        ));
        Ok(Built {
            image: request.image.to_owned(),
            tag: first_tag,
            digest,
        })
    }
}

/// Where the engine's client keeps registry logins for the user running Gantry:
/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
fn docker_config_path() -> Option<PathBuf> {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) => Some(PathBuf::from(dir).join("config.json")),
        None => {
            std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker/config.json"))
        }
    }
}

/// A `docker login` for `host` from a client config file: the `auths` entry's base64
/// `user:password`. Credential helpers (`credsStore`, `credHelpers`) are not consulted.
pub fn docker_config_credentials(path: &Path, host: &str) -> Option<DockerCredentials> {
    use base64::Engine as _;
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let auths = config.get("auths")?.as_object()?;
    let entry = auths.get(host).or_else(|| {
        auths
            .iter()
            .find(|(key, _)| {
                key.trim_start_matches("https://")
                    .trim_start_matches("http://")
                    .trim_end_matches('/')
                    == host
            })
            .map(|(_, entry)| entry)
    })?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(entry.get("auth")?.as_str()?)
        .ok()?;
    let (username, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    Some(DockerCredentials {
        username: Some(username.to_owned()),
        password: Some(password.to_owned()),
        serveraddress: Some(host.to_owned()),
        ..Default::default()
    })
}

fn credentials(host: &str, creds: &RegistryCredentials) -> DockerCredentials {
    DockerCredentials {
        username: Some(creds.username.clone()),
        password: Some(creds.password.expose().to_owned()),
        serveraddress: Some(host.to_owned()),
        ..Default::default()
    }
}

/// A push failure in terms a user can act on: which registry, and whether it was the
/// credentials or the connection.
fn push_error(image: &str, tag: &str, host: &str, message: &str) -> DockerError {
    let lower = message.to_ascii_lowercase();
    let hint = if lower.contains("unauthorized")
        || lower.contains("authentication required")
        || lower.contains("denied")
    {
        format!(
            "registry {host} refused the credentials (check [registries.\"{host}\"] in the config)"
        )
    } else if lower.contains("connection refused")
        || lower.contains("no such host")
        || lower.contains("timeout")
    {
        format!("registry {host} is unreachable")
    } else {
        format!("registry {host} refused the push")
    };
    DockerError::Refused {
        operation: format!("pushing {image}:{tag}"),
        message: format!("{hint}: {}", message.trim()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerignore_follows_docker() {
        let ignore = DockerIgnore::parse(
            "# comment\nnode_modules\n*.log\n!keep.log\n/secret\ndocs/**/*.md\n",
        );
        assert!(ignore.excludes("node_modules"));
        assert!(ignore.excludes("node_modules/a/b.js"));
        assert!(ignore.excludes("app.log"));
        assert!(!ignore.excludes("keep.log"));
        assert!(ignore.excludes("secret/key"));
        assert!(ignore.excludes("docs/a/b.md"));
        assert!(!ignore.excludes("src/main.rs"));
        assert!(
            !ignore.excludes("sub/app.log"),
            "`*` does not cross folders"
        );
    }

    #[test]
    fn logins_are_read_from_the_client_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths": {"registry.example.com": {"auth": "dXNlcjpwYXNzOndvcmQ="}, "https://other.example.com/": {"auth": "YTpi"}}}"#,
        )
        .unwrap();
        let found = docker_config_credentials(&path, "registry.example.com").unwrap();
        assert_eq!(
            (found.username.as_deref(), found.password.as_deref()),
            (Some("user"), Some("pass:word"))
        );
        assert_eq!(
            docker_config_credentials(&path, "other.example.com")
                .unwrap()
                .username
                .as_deref(),
            Some("a")
        );
        assert!(docker_config_credentials(&path, "nowhere.example.com").is_none());
        assert!(docker_config_credentials(&dir.path().join("missing.json"), "x").is_none());
    }

    #[test]
    fn registries_are_read_from_the_name() {
        assert_eq!(
            registry_of("registry.example.com/acme/web"),
            "registry.example.com"
        );
        assert_eq!(registry_of("127.0.0.1:5000/web"), "127.0.0.1:5000");
        assert_eq!(registry_of("localhost/web"), "localhost");
        assert_eq!(registry_of("acme/web"), "docker.io");
    }

    #[test]
    fn contexts_stay_inside_the_checkout() {
        let root = Path::new("/checkout");
        assert_eq!(inside(root, "app"), Some(PathBuf::from("/checkout/app")));
        assert_eq!(inside(root, "."), Some(PathBuf::from("/checkout")));
        assert_eq!(inside(root, "../etc"), None);
        assert_eq!(inside(root, "/etc"), None);
    }
}
