//! Gantry's configuration: a TOML file, then `GANTRY__SECTION__KEY` environment overrides.
//!
//! Everything is checked once, at start-up, before anything listens: an unknown key, a wrong
//! type, a secret whose source is missing or an unparsable duration stops Gantry with one line
//! that names the key. `config.example.toml` documents every key.

mod auth;
mod deploy;
mod secret;

pub use auth::{AuthSettings, OAuthApp};
pub use deploy::{DeploySettings, Environment};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::domain::{ApprovalPolicy, Forge, RepoName, Secret, Visibility};

/// The forges' own cap on a webhook body (GitHub truncates payloads over 25 MiB), so a larger
/// body is not a real delivery.
pub const DEFAULT_MAX_BODY_BYTES: usize = 25 * 1024 * 1024;

/// Output kept per stage by default: GitLab keeps 4 MiB of a job's log; 16 MiB holds any
/// build's real output, and a loop's far less than it would otherwise write.
pub const DEFAULT_MAX_LOG_SIZE: u64 = 16 * 1024 * 1024;

/// Connections served at once by default: enough that thousands of slow or idle ones (each
/// closed by its deadline) leave room for real deliveries, few enough that a small VM's
/// memory holds them: a slow upload holds about 14 KiB (`scripts/bench-abuse.sh`), so 8192
/// of them about 115 MiB.
pub const DEFAULT_MAX_CONNECTIONS: usize = 8192;

/// Prefix of environment overrides: `GANTRY__SERVER__LISTEN=0.0.0.0:8080`.
const ENV_PREFIX: &str = "GANTRY";
const ENV_SEPARATOR: &str = "__";

/// Keys that hold lists, so that an environment override can give several comma-separated
/// values (`GANTRY__GITHUB__WEBHOOK_SECRETS=old,new` during a rotation).
const LIST_KEYS: &[&str] = &[
    "github.webhook_secrets",
    "gitlab.webhook_tokens",
    "gitlab.signing_tokens",
    "gitea.webhook_secrets",
    "runner.labels",
    "auth.admins",
    "deploy.flux_secrets",
    "deploy.argocd_tokens",
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file `{path}`: {message}")]
    File { path: String, message: String },
    #[error("config key `{key}`: {message}")]
    Key { key: String, message: String },
    #[error("config: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub server: ServerSettings,
    #[serde(default)]
    pub store: StoreSettings,
    #[serde(default)]
    pub runner: RunnerSettings,
    #[serde(default)]
    pub log: LogSettings,
    #[serde(default)]
    pub github: GithubSettings,
    #[serde(default)]
    pub gitlab: GitlabSettings,
    #[serde(default)]
    pub gitea: GiteaSettings,
    #[serde(default)]
    pub registries: BTreeMap<String, RegistryCredentials>,
    #[serde(default)]
    pub repos: Vec<RepoSettings>,
    #[serde(default)]
    pub gitops: GitopsSettings,
    #[serde(default)]
    pub auth: AuthSettings,
    #[serde(default)]
    pub deploy: DeploySettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    pub public_url: String,
    pub max_body_bytes: usize,
    pub api_token: Option<Secret>,
    /// When set, `/metrics` answers only `Authorization: Bearer <metrics_token>`: it names
    /// every repo.
    pub metrics_token: Option<Secret>,
    /// How long a request's body may take to arrive (its headers have 5 s before that):
    /// past it, 408 and the connection is closed. The forges give up after 10 s anyway.
    #[serde(deserialize_with = "duration")]
    pub request_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// How long an idle keep-alive connection is kept open.
    #[serde(deserialize_with = "duration")]
    pub keep_alive: Duration,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: "http://localhost:8080".into(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            api_token: None,
            metrics_token: None,
            request_timeout: Duration::from_secs(15),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            keep_alive: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    pub url: String,
    /// Finished runs kept per repo, newest first.
    pub keep_runs: u32,
    /// Finished runs older than this many days are removed.
    pub keep_days: u32,
    /// Finished runs older than this many days keep their record and lose their log.
    pub keep_logs_days: u32,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            url: "sqlite://gantry.db".into(),
            keep_runs: 500,
            keep_days: 90,
            keep_logs_days: 30,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunnerSettings {
    pub docker_host: String,
    pub max_parallel_runs: usize,
    #[serde(deserialize_with = "duration")]
    pub stage_timeout: Duration,
    pub pull: PullPolicy,
    /// Memory limit of each stage container, like `2g` or `512m`; none when unset.
    #[serde(deserialize_with = "byte_size")]
    pub stage_memory: Option<u64>,
    /// CPU limit of each stage container, in CPUs (`1.5`); none when unset.
    pub stage_cpus: Option<f64>,
    /// Output kept per stage (`16MiB`); beyond it lines are dropped, and the log says how
    /// many bytes. A stage stuck printing in a loop must not fill the store's disk.
    #[serde(deserialize_with = "required_byte_size")]
    pub max_log_size: u64,
    /// This runner's name on `/runners` and in run records; the host name by default.
    pub name: Option<String>,
    /// What this runner offers; it takes only runs whose pipelines' `runs_on` are all here.
    pub labels: Vec<String>,
    /// A runner silent this long is presumed lost and its runs are queued again.
    #[serde(deserialize_with = "duration")]
    pub lease: Duration,
    /// On SIGTERM: how long runs in hand may go on before they are handed back.
    #[serde(deserialize_with = "duration")]
    pub drain_timeout: Duration,
    /// Client certificates for an engine on `tcp://…:2376` started with `--tlsverify`.
    pub docker_tls: Option<DockerTls>,
    /// What pipeline caches may take on this runner's engine (`20g`); beyond it the least
    /// recently used go.
    #[serde(deserialize_with = "required_byte_size")]
    pub cache_max_size: u64,
}

/// PEM files for a TLS connection to the Docker engine.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerTls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl RunnerSettings {
    pub fn stage_memory_bytes(&self) -> Option<i64> {
        self.stage_memory
            .map(|bytes| bytes.min(i64::MAX as u64) as i64)
    }

    pub fn stage_nano_cpus(&self) -> Option<i64> {
        self.stage_cpus.map(|cpus| (cpus * 1e9) as i64)
    }
}

impl Default for RunnerSettings {
    fn default() -> Self {
        Self {
            docker_host: "unix:///var/run/docker.sock".into(),
            max_parallel_runs: 4,
            stage_timeout: Duration::from_secs(30 * 60),
            pull: PullPolicy::IfNotPresent,
            stage_memory: None,
            stage_cpus: None,
            max_log_size: DEFAULT_MAX_LOG_SIZE,
            name: None,
            labels: Vec::new(),
            lease: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(10 * 60),
            docker_tls: None,
            cache_max_size: 20 << 30,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// A `tracing` filter such as `info` or `gantry=debug,actix_web=warn`; `RUST_LOG` wins.
    pub filter: String,
    pub format: LogFormat,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            filter: "info".into(),
            format: LogFormat::Human,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GithubSettings {
    pub webhook_secrets: Vec<Secret>,
    pub token: Option<Secret>,
    pub app_id: Option<u64>,
    pub private_key_file: Option<String>,
    pub api_url: String,
}

impl Default for GithubSettings {
    fn default() -> Self {
        Self {
            webhook_secrets: Vec::new(),
            token: None,
            app_id: None,
            private_key_file: None,
            api_url: "https://api.github.com".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GitlabSettings {
    pub webhook_tokens: Vec<Secret>,
    /// `whsec_…` tokens of GitLab's HMAC signing scheme.
    pub signing_tokens: Vec<Secret>,
    pub token: Option<Secret>,
    pub api_url: String,
}

impl Default for GitlabSettings {
    fn default() -> Self {
        Self {
            webhook_tokens: Vec::new(),
            signing_tokens: Vec::new(),
            token: None,
            api_url: "https://gitlab.com/api/v4".into(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GiteaSettings {
    pub webhook_secrets: Vec<Secret>,
    pub token: Option<Secret>,
    pub api_url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryCredentials {
    pub username: String,
    pub password: Secret,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoSettings {
    /// Full name on the forge: `owner/name`, or `group/subgroup/name` on GitLab.
    pub name: RepoName,
    pub forge: Forge,
    #[serde(default = "default_pipelines_dir")]
    pub pipelines: String,
    pub clone_url: Option<String>,
    #[serde(default)]
    pub secrets: BTreeMap<String, Secret>,
    /// Stages may run privileged with the Docker socket (never for pull requests from
    /// forks). Off by default: a stage could otherwise take over the host.
    #[serde(default)]
    pub trusted: bool,
    /// Overrides the visibility deliveries report (`public`, `internal`, `private`).
    pub visibility: Option<Visibility>,
    /// The branch caches fall back to; by default what deliveries say, else `main`.
    pub default_branch: Option<String>,
    /// Which runs wait for approval before anything of them runs.
    #[serde(default = "default_approval")]
    pub approval: ApprovalPolicy,
    /// Forge logins whose runs never wait for approval: the webhook's sender is compared,
    /// never a commit's author.
    #[serde(default)]
    pub trusted_users: Vec<String>,
}

impl RepoSettings {
    /// The branch caches fall back to and schedules run on by default: `default_branch`,
    /// else what the forge reported (`reported`), else `main`.
    pub fn default_branch_or<'a>(&'a self, reported: Option<&'a str>) -> &'a str {
        self.default_branch
            .as_deref()
            .or(reported)
            .unwrap_or("main")
    }
}

fn default_pipelines_dir() -> String {
    ".gantry".into()
}

/// Code from a fork is a stranger's: it waits unless the repo says otherwise.
fn default_approval() -> ApprovalPolicy {
    ApprovalPolicy::Forks
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GitopsSettings {
    /// `Name <email>` of bump commits.
    pub author: String,
    /// The config repos bump stages may push to (clone URLs, exactly as pipelines name
    /// them). A pipeline is written by the app's developers; this list keeps it from
    /// pushing, with Gantry's credentials, anywhere else. Empty: no bump stage runs.
    pub repos: Vec<String>,
    /// HTTPS token for the config repos, sent as basic auth with `username`.
    pub token: Option<Secret>,
    /// GitHub takes `x-access-token`, GitLab `oauth2`, Gitea the token owner's name.
    pub username: String,
    /// SSH private key for `ssh://` and `git@host:` config repos.
    pub ssh_key_file: Option<PathBuf>,
    /// Known hosts for SSH; without it a host's key is trusted the first time it is seen.
    pub known_hosts_file: Option<PathBuf>,
    /// The forge whose API opens `pull_request`-mode bumps; by default the app repo's.
    pub forge: Option<Forge>,
}

impl Default for GitopsSettings {
    fn default() -> Self {
        Self {
            author: "Gantry <gantry@localhost>".into(),
            repos: Vec::new(),
            token: None,
            username: "x-access-token".into(),
            ssh_key_file: None,
            known_hosts_file: None,
            forge: None,
        }
    }
}

impl Settings {
    /// Reads `path` (which may be absent: then only defaults and environment apply), then the
    /// `GANTRY__…` environment variables, and checks the result.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(path, std::env::vars())
    }

    /// [`Settings::load`] with the environment given, so tests need not touch the process's.
    pub fn load_with_env(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(path) = path {
            if !path.exists() {
                return Err(ConfigError::File {
                    path: path.display().to_string(),
                    message: "no such file".into(),
                });
            }
            builder = builder.add_source(
                config::File::from(path)
                    .format(config::FileFormat::Toml)
                    .required(true),
            );
        }
        let env: config::Map<String, String> = env
            .into_iter()
            .filter(|(key, _)| key.starts_with(&format!("{ENV_PREFIX}{ENV_SEPARATOR}")))
            .collect();
        let mut environment = config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator(ENV_SEPARATOR)
            .separator(ENV_SEPARATOR)
            .try_parsing(true)
            .list_separator(",")
            .source(Some(env));
        for key in LIST_KEYS {
            environment = environment.with_list_parse_key(key);
        }
        let raw = builder
            .add_source(environment)
            .build()
            .map_err(|err| match path {
                Some(path) => ConfigError::File {
                    path: path.display().to_string(),
                    message: err.to_string(),
                },
                None => ConfigError::Invalid(err.to_string()),
            })?;
        let settings: Settings = serde_path_to_error::deserialize(raw).map_err(|err| {
            let key = err.path().to_string();
            let message = strip_key_suffix(&err.into_inner().to_string());
            ConfigError::Key { key, message }
        })?;
        settings.check()?;
        Ok(settings)
    }

    /// Checks that span several keys, which serde cannot express.
    fn check(&self) -> Result<(), ConfigError> {
        let mut seen = std::collections::BTreeSet::new();
        for (index, repo) in self.repos.iter().enumerate() {
            if repo
                .name
                .as_str()
                .split('/')
                .filter(|part| !part.is_empty())
                .count()
                < 2
            {
                return Err(ConfigError::Key {
                    key: format!("repos[{index}].name"),
                    message: format!("`{}` is not a full name like `owner/repo`", repo.name),
                });
            }
            if !seen.insert((repo.forge, repo.name.as_str().to_lowercase())) {
                return Err(ConfigError::Key {
                    key: format!("repos[{index}].name"),
                    message: format!("`{}` is configured twice", repo.name),
                });
            }
        }
        self.auth.check()?;
        self.deploy.check()?;
        if self.store.keep_runs == 0 {
            return Err(ConfigError::Key {
                key: "store.keep_runs".into(),
                message: "must be at least 1".into(),
            });
        }
        if self.server.max_body_bytes == 0 {
            return Err(ConfigError::Key {
                key: "server.max_body_bytes".into(),
                message: "must be greater than 0".into(),
            });
        }
        if self.server.max_connections == 0 {
            return Err(ConfigError::Key {
                key: "server.max_connections".into(),
                message: "must be greater than 0".into(),
            });
        }
        for (index, label) in self.runner.labels.iter().enumerate() {
            crate::domain::check_runner_label(label).map_err(|message| ConfigError::Key {
                key: format!("runner.labels[{index}]"),
                message,
            })?;
        }
        if self.runner.lease < Duration::from_secs(2) {
            return Err(ConfigError::Key {
                key: "runner.lease".into(),
                message: "must be at least 2s (runners heartbeat several times per lease)".into(),
            });
        }
        if self.runner.max_parallel_runs == 0 {
            return Err(ConfigError::Key {
                key: "runner.max_parallel_runs".into(),
                message: "must be greater than 0".into(),
            });
        }
        Ok(())
    }

    /// The configured repo that a webhook names, if any. Forge names are case-insensitive.
    /// The configured repo of that name on whichever forge: for routes that name a repo
    /// without its forge (badges, manual runs).
    pub fn repo_named(&self, full_name: &RepoName) -> Option<&RepoSettings> {
        Forge::ALL
            .iter()
            .find_map(|forge| self.repo(*forge, full_name))
    }

    pub fn repo(&self, forge: Forge, full_name: &RepoName) -> Option<&RepoSettings> {
        self.repos.iter().find(|repo| {
            repo.forge == forge && repo.name.as_str().eq_ignore_ascii_case(full_name.as_str())
        })
    }
}

/// The `config` crate appends " for key `x`" to some messages; the key is already reported.
fn strip_key_suffix(message: &str) -> String {
    match message.find(" for key `") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

/// A size that must be given (see [`byte_size`]).
fn required_byte_size<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    byte_size(deserializer)?.ok_or_else(|| serde::de::Error::custom("a size is required"))
}

/// Parses sizes like `512m`, `2g`, `16MiB` or a plain number of bytes (units are powers of
/// 1024, as in Docker's).
fn byte_size<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    let Some(written) = Option::<String>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let text = written.trim().to_ascii_lowercase();
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let multiplier: u64 = match unit.trim_end_matches('b').trim_end_matches('i') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => 0,
    };
    match digits.parse::<u64>() {
        Ok(value) if multiplier > 0 && value > 0 => Ok(Some(value * multiplier)),
        _ => Err(serde::de::Error::custom(format!(
            "`{written}` is not a size like `512m` or `2g`"
        ))),
    }
}

/// Parses durations written the way people write them: `30m`, `1h 30m`, `90s`.
fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let written = String::deserialize(deserializer)?;
    humantime::parse_duration(&written).map_err(|err| {
        serde::de::Error::custom(format!(
            "`{written}` is not a duration like `30m` or `1h 30m` ({err})"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml: &str, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gantry.toml");
        std::fs::write(&path, toml).unwrap();
        let env = env
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()));
        Settings::load_with_env(Some(&path), env)
    }

    #[test]
    fn empty_file_gives_the_embedded_defaults() {
        let settings = load("", &[]).unwrap();
        assert_eq!(settings.store.url, "sqlite://gantry.db");
        assert_eq!(settings.server.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        assert_eq!(settings.runner.stage_timeout, Duration::from_secs(1800));
    }

    #[test]
    fn environment_overrides_the_file() {
        let settings = load(
            "[server]\nlisten = \"127.0.0.1:1\"\n",
            &[
                ("GANTRY__SERVER__LISTEN", "127.0.0.1:9999"),
                ("GANTRY__RUNNER__MAX_PARALLEL_RUNS", "7"),
                ("GANTRY__GITHUB__WEBHOOK_SECRETS", "old,new"),
            ],
        )
        .unwrap();
        assert_eq!(settings.server.listen.port(), 9999);
        assert_eq!(settings.runner.max_parallel_runs, 7);
        let secrets: Vec<_> = settings
            .github
            .webhook_secrets
            .iter()
            .map(Secret::expose)
            .collect();
        assert_eq!(secrets, ["old", "new"]);
    }

    #[test]
    fn unknown_key_is_named_with_its_section() {
        let err = load("[server]\nlisten_addr = \"x\"\n", &[]).unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with("config key `server.listen_addr`"),
            "{message}"
        );
        assert!(message.contains("expected one of"), "{message}");
    }

    #[test]
    fn wrong_type_is_named() {
        let err = load("[runner]\nmax_parallel_runs = \"many\"\n", &[]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("config key `runner.max_parallel_runs`"),
            "{err}"
        );
    }

    #[test]
    fn bad_duration_is_named() {
        let err = load("[runner]\nstage_timeout = \"soon\"\n", &[]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("config key `runner.stage_timeout`: `soon` is not a duration"),
            "{err}"
        );
    }

    #[test]
    fn missing_secret_source_is_named() {
        let err = load(
            "[github]\nwebhook_secrets = [\"env:GANTRY_TEST_NOT_SET_ANYWHERE\"]\n",
            &[],
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "config key `github.webhook_secrets[0]`: environment variable \
             `GANTRY_TEST_NOT_SET_ANYWHERE` is not set"
        );
    }

    #[test]
    fn sizes_are_read_with_units() {
        let settings = load("[runner]\nstage_memory = \"512m\"\nstage_cpus = 1.5\n", &[]).unwrap();
        assert_eq!(settings.runner.stage_memory, Some(512 << 20));
        assert_eq!(settings.runner.stage_nano_cpus(), Some(1_500_000_000));
        let settings = load("[runner]\nmax_log_size = \"4KiB\"\n", &[]).unwrap();
        assert_eq!(settings.runner.max_log_size, 4096);
        let err = load("[runner]\nstage_memory = \"lots\"\n", &[]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("config key `runner.stage_memory`"),
            "{err}"
        );
    }

    #[test]
    fn repo_configured_twice_is_refused() {
        let toml = "[[repos]]\nname = \"a/b\"\nforge = \"github\"\n\
                    [[repos]]\nname = \"A/B\"\nforge = \"github\"\n";
        let err = load(toml, &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "config key `repos[1].name`: `A/B` is configured twice"
        );
    }

    #[test]
    fn missing_file_is_reported() {
        let err = Settings::load_with_env(Some(Path::new("/nonexistent/gantry.toml")), []);
        assert_eq!(
            err.unwrap_err().to_string(),
            "config file `/nonexistent/gantry.toml`: no such file"
        );
    }

    #[test]
    fn repo_lookup_ignores_case_but_not_forge() {
        let toml = "[[repos]]\nname = \"Acme/Web\"\nforge = \"github\"\n";
        let settings = load(toml, &[]).unwrap();
        let name = RepoName::new("acme/web");
        assert!(settings.repo(Forge::Github, &name).is_some());
        assert!(settings.repo(Forge::Gitlab, &name).is_none());
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    /// `config.example.toml` is what users copy: it must load, and its uncommented values
    /// must be the defaults it claims they are.
    #[test]
    fn the_example_config_loads_and_shows_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
        let example = Settings::load_with_env(Some(&path), []).expect("example loads");
        let defaults = Settings::load_with_env(None, []).expect("defaults load");
        assert_eq!(example.server.listen, defaults.server.listen);
        assert_eq!(example.server.public_url, defaults.server.public_url);
        assert_eq!(
            example.server.max_body_bytes,
            defaults.server.max_body_bytes
        );
        assert_eq!(example.store.url, defaults.store.url);
        assert_eq!(
            example.server.request_timeout,
            defaults.server.request_timeout
        );
        assert_eq!(
            example.server.max_connections,
            defaults.server.max_connections
        );
        assert_eq!(example.server.keep_alive, defaults.server.keep_alive);
        assert_eq!(example.runner.docker_host, defaults.runner.docker_host);
        assert_eq!(
            example.runner.max_parallel_runs,
            defaults.runner.max_parallel_runs
        );
        assert_eq!(example.runner.stage_timeout, defaults.runner.stage_timeout);
        assert_eq!(example.runner.pull, defaults.runner.pull);
        assert_eq!(example.runner.max_log_size, defaults.runner.max_log_size);
        assert_eq!(example.log.filter, defaults.log.filter);
        assert_eq!(example.github.api_url, defaults.github.api_url);
        assert_eq!(example.gitlab.api_url, defaults.gitlab.api_url);
        assert_eq!(example.gitops.author, defaults.gitops.author);
    }

    /// The commented-out `[[repos]]` example, uncommented, is a valid repo entry.
    #[test]
    fn the_example_repo_entry_is_valid_when_uncommented() {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml"),
        )
        .unwrap();
        let repo_block: String = text
            .lines()
            .skip_while(|line| !line.starts_with("# [[repos]]"))
            .take_while(|line| line.starts_with('#'))
            .filter(|line| !line.starts_with("# #"))
            .map(|line| format!("{}\n", line.trim_start_matches("# ")))
            .collect::<String>()
            .replace("env:ACME_REGISTRY_TOKEN", "literal");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gantry.toml");
        std::fs::write(&path, &repo_block).unwrap();
        let settings = Settings::load_with_env(Some(&path), []).expect(&repo_block);
        let repo = settings
            .repo(Forge::Github, &RepoName::new("acme/web"))
            .expect("repo configured");
        assert_eq!(repo.secrets["REGISTRY_TOKEN"].expose(), "literal");
    }
}
