//! The Docker engine that runs stages: the connection, images, volumes, and stage
//! containers from start to exit. Uploading a checkout (`upload.rs`), building and pushing
//! images (`build.rs`) and finding and removing what runs left (`reaper.rs`) have files of
//! their own.

mod build;
mod reaper;
mod service;
mod upload;

pub use build::BuildRequest;
use reaper::Cleanup;
pub use service::ServiceSpec;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType, VolumeCreateRequest};
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, CreateImageOptions, KillContainerOptions,
    StartContainerOptions, StopContainerOptions, WaitContainerOptions,
};
use bollard::{API_DEFAULT_VERSION, Docker};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use crate::config::{DockerTls, PullPolicy};

/// How long one Engine API call may take before it is abandoned. Long operations (pulls,
/// builds, log streams) are not single calls and are bounded by their own stage timeouts.
const ENGINE_CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// `/readyz` must answer quickly even when the engine hangs.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the engine cannot be used. Messages say only what their cause does not: show one
/// with [`crate::domain::describe`].
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("docker_host `{host}`: expected `unix:///path/to/docker.sock` or `tcp://host:port`")]
    Scheme { host: String },
    #[error("docker_tls for `{host}`: {message}")]
    Tls { host: String, message: String },
    #[error("docker_host `{host}`")]
    Connect {
        host: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("Docker engine at `{host}` did not answer a ping")]
    Unreachable {
        host: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("Docker engine at `{host}` did not answer a ping within {}s", PING_TIMEOUT.as_secs())]
    Silent { host: String },
}

/// A handle on one Docker engine, local socket or remote. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    docker: Docker,
    host: String,
    cleanup_failures: Arc<AtomicU64>,
    cleanup: Arc<Cleanup>,
}

impl Engine {
    /// Prepares a client for `host` (`unix:///path` or `tcp://host:port`, over TLS with
    /// client certificates when `tls` is given). Nothing is contacted yet, so Gantry starts
    /// even while the engine is down; missing or unreadable certificate files are refused
    /// here.
    pub fn connect(host: &str, tls: Option<&DockerTls>) -> Result<Self, EngineError> {
        let timeout = ENGINE_CALL_TIMEOUT.as_secs();
        let docker = match (host, tls) {
            (host, None) if host.starts_with("unix://") => {
                Docker::connect_with_unix(&host["unix://".len()..], timeout, API_DEFAULT_VERSION)
            }
            (host, None) if host.starts_with("tcp://") || host.starts_with("http://") => {
                Docker::connect_with_http(host, timeout, API_DEFAULT_VERSION)
            }
            (host, Some(tls)) if host.starts_with("tcp://") || host.starts_with("https://") => {
                for (what, path) in [("ca", &tls.ca), ("cert", &tls.cert), ("key", &tls.key)] {
                    if let Err(err) = std::fs::metadata(path) {
                        return Err(EngineError::Tls {
                            host: host.to_owned(),
                            message: format!("{what} `{}`: {err}", path.display()),
                        });
                    }
                }
                crate::forge::install_crypto_provider();
                Docker::connect_with_ssl(
                    host,
                    &tls.key,
                    &tls.cert,
                    &tls.ca,
                    timeout,
                    API_DEFAULT_VERSION,
                )
            }
            (host, Some(_)) => {
                return Err(EngineError::Tls {
                    host: host.to_owned(),
                    message: "TLS needs a `tcp://host:port` engine".into(),
                });
            }
            (host, None) => {
                return Err(EngineError::Scheme {
                    host: host.to_owned(),
                });
            }
        };
        let docker = docker.map_err(|source| EngineError::Connect {
            host: host.to_owned(),
            source,
        })?;
        Ok(Self {
            docker,
            host: host.to_owned(),
            cleanup_failures: Arc::default(),
            cleanup: Arc::default(),
        })
    }

    pub async fn ping(&self) -> Result<(), EngineError> {
        let host = self.host.clone();
        match tokio::time::timeout(PING_TIMEOUT, self.docker.ping()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(source)) => Err(EngineError::Unreachable { host, source }),
            Err(_) => Err(EngineError::Silent { host }),
        }
    }

    pub fn docker(&self) -> &Docker {
        &self.docker
    }
}

/// Where the run's workspace volume is mounted in every stage container.
pub const WORKSPACE_DIR: &str = "/workspace";
/// The label every container and volume Gantry creates carries, valued with the run's id,
/// so cancel and start-up can find and remove what a run left behind.
pub const RUN_LABEL: &str = "gantry.run";
/// How long a stopped stage gets between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// One container to run: a stage's commands under `sh -e`.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub script: String,
    pub env: Vec<String>,
    pub labels: Vec<(String, String)>,
    pub volume: String,
    pub timeout: Duration,
    pub memory_bytes: Option<i64>,
    pub nano_cpus: Option<i64>,
    /// Privileged, with the engine's socket mounted: only for repos configured `trusted`.
    pub trusted: bool,
    /// The pipeline's network, where its services are, when it has some.
    pub network: Option<String>,
    /// More volumes to mount besides the workspace: (volume, path in the container).
    pub mounts: Vec<(String, String)>,
}

/// Where a trusted stage finds the Docker socket.
const DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// The gate a stage's script waits behind: one line on stdin, then the script runs under
/// `sh -e` as `$1`. Without the line (stdin closed) the script never runs.
const GATE: &str = "read -r _gate && exec /bin/sh -e -c \"$1\"";

/// A started stage container whose script waits for [`Engine::release`].
pub struct GatedContainer {
    name: String,
    attached: bollard::container::AttachContainerResults,
}

/// How a container ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerExit {
    Exited(i64),
    TimedOut,
    Canceled,
}

/// Which stream a piece of output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// Why an engine operation failed. Messages say only what their cause does not: show one
/// with [`crate::domain::describe`].
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("pulling image `{image}`")]
    Pull {
        image: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("image `{image}` is not present and runner.pull is `never`")]
    ImageMissing { image: String },
    /// An Engine API call failed.
    #[error("{operation}")]
    Call {
        operation: String,
        #[source]
        source: bollard::errors::Error,
    },
    /// Gantry's own side of an exchange with the engine failed (reading files, a stream).
    #[error("{operation}")]
    Io {
        operation: String,
        #[source]
        source: std::io::Error,
    },
    /// The engine (or a registry behind it) answered, but refused; `message` says how.
    #[error("{operation}: {message}")]
    Refused { operation: String, message: String },
}

fn call_error(operation: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> DockerError {
    let operation = operation.into();
    move |source| DockerError::Call { operation, source }
}

/// `name` as a part of a container or network name, which Docker limits to letters,
/// digits, `_`, `.` and `-`: a matrix stage's `test (rust=1.80, db=pg16)` becomes
/// `test-rust-1.80-db-pg16-` and a hash of the whole, so that two names never meet.
pub fn name_part(name: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    if name.chars().all(safe) {
        return name.to_owned();
    }
    let mut part = String::with_capacity(name.len() + 9);
    for c in name.chars() {
        let c = if safe(c) { c } else { '-' };
        if !(c == '-' && part.ends_with('-')) {
            part.push(c);
        }
    }
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(name.as_bytes());
    part.push_str(&hex::encode(&digest[..4]));
    part
}

/// `name` with `:latest` when it names no tag or digest, as `docker pull` reads it.
pub fn with_default_tag(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if last.contains(':') || image.contains('@') {
        image.to_owned()
    } else {
        format!("{image}:latest")
    }
}

impl Engine {
    /// Makes `image` available according to the pull policy.
    pub async fn ensure_image(&self, image: &str, policy: PullPolicy) -> Result<(), DockerError> {
        let image = with_default_tag(image);
        let present = self.docker.inspect_image(&image).await.is_ok();
        match (policy, present) {
            (PullPolicy::IfNotPresent, true) | (PullPolicy::Never, true) => return Ok(()),
            (PullPolicy::Never, false) => return Err(DockerError::ImageMissing { image }),
            _ => {}
        }
        let options = CreateImageOptions {
            from_image: Some(image.clone()),
            ..Default::default()
        };
        let mut progress = self.docker.create_image(Some(options), None, None);
        while let Some(step) = progress.next().await {
            step.map_err(|source| DockerError::Pull {
                image: image.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// Creates the named volume a run's stages share.
    pub async fn create_volume(
        &self,
        name: &str,
        labels: &[(String, String)],
    ) -> Result<(), DockerError> {
        let request = VolumeCreateRequest {
            name: Some(name.to_owned()),
            labels: Some(labels.iter().cloned().collect()),
            ..Default::default()
        };
        self.docker
            .create_volume(request)
            .await
            .map_err(call_error(format!("creating volume {name}")))?;
        Ok(())
    }

    /// Runs one container to its end, feeding its output to `on_output` as it comes.
    /// A timeout or a cancel stops it (SIGTERM, then SIGKILL after [`STOP_GRACE`]). The
    /// container is removed afterwards in every case, in the background: call
    /// [`Engine::finish_cleanup`] before removing the volume it used.
    pub async fn run_container(
        &self,
        spec: &ContainerSpec,
        cancel: &CancellationToken,
        on_output: impl FnMut(OutputStream, &[u8]),
    ) -> Result<ContainerExit, DockerError> {
        let started = self.start_gated(spec).await?;
        self.release(started, spec.timeout, cancel, on_output).await
    }

    /// Creates and starts a stage's container with its script held at a gate: the shell
    /// waits for one line on stdin before it runs the script. Starting a container (its
    /// namespaces, its network) is most of a short stage's cost, so the executor starts the
    /// next stage's container while the stage before it still runs, and releases it when
    /// its turn comes.
    pub async fn start_gated(&self, spec: &ContainerSpec) -> Result<GatedContainer, DockerError> {
        let body = ContainerCreateBody {
            image: Some(with_default_tag(&spec.image)),
            entrypoint: Some(vec![
                "/bin/sh".into(),
                "-c".into(),
                GATE.into(),
                "gantry-stage".into(),
            ]),
            cmd: Some(vec![spec.script.clone()]),
            env: Some(spec.env.clone()),
            working_dir: Some(WORKSPACE_DIR.into()),
            labels: Some(spec.labels.iter().cloned().collect()),
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            open_stdin: Some(true),
            stdin_once: Some(true),
            tty: Some(false),
            host_config: Some(HostConfig {
                mounts: Some({
                    let mut mounts = vec![volume_mount(&spec.volume)];
                    if spec.trusted {
                        mounts.push(socket_mount());
                    }
                    mounts.extend(
                        spec.mounts
                            .iter()
                            .map(|(volume, target)| volume_at(volume, target)),
                    );
                    mounts
                }),
                privileged: Some(spec.trusted),
                network_mode: spec.network.clone(),
                // A tiny init as PID 1 passes SIGTERM on to the script, so a stopped stage
                // ends at once instead of after the grace period.
                init: Some(true),
                memory: spec.memory_bytes,
                nano_cpus: spec.nano_cpus,
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = CreateContainerOptions {
            name: Some(spec.name.clone()),
            ..Default::default()
        };
        self.docker
            .create_container(Some(options), body)
            .await
            .map_err(call_error(format!("creating container {}", spec.name)))?;
        let attach = AttachContainerOptions {
            stream: true,
            stdin: true,
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        let started = async {
            let attached = self
                .docker
                .attach_container(&spec.name, Some(attach))
                .await
                .map_err(call_error(format!("attaching to {}", spec.name)))?;
            self.docker
                .start_container(&spec.name, None::<StartContainerOptions>)
                .await
                .map_err(call_error(format!("starting {}", spec.name)))?;
            Ok(attached)
        }
        .await;
        match started {
            Ok(attached) => Ok(GatedContainer {
                name: spec.name.clone(),
                attached,
            }),
            Err(err) => {
                self.cleanup.defer(self.clone(), spec.name.clone());
                Err(err)
            }
        }
    }

    /// Lets a gated container's script run, then follows it to its end like
    /// [`Engine::run_container`]; `timeout` counts from the release.
    pub async fn release(
        &self,
        container: GatedContainer,
        timeout: Duration,
        cancel: &CancellationToken,
        mut on_output: impl FnMut(OutputStream, &[u8]),
    ) -> Result<ContainerExit, DockerError> {
        let GatedContainer { name, mut attached } = container;
        // One line opens the gate; closing stdin leaves the script an empty one, as
        // `docker run` without `-i` would.
        let opened = async {
            attached.input.write_all(b"go\n").await?;
            attached.input.shutdown().await
        }
        .await;
        if let Err(err) = opened {
            self.cleanup.defer(self.clone(), name.clone());
            return Err(DockerError::Io {
                operation: format!("releasing {name}"),
                source: err,
            });
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut stopped = None;
        loop {
            tokio::select! {
                chunk = attached.output.next() => match chunk {
                    Some(Ok(LogOutput::StdOut { message })) => on_output(OutputStream::Stdout, &message),
                    Some(Ok(LogOutput::StdErr { message })) => on_output(OutputStream::Stderr, &message),
                    Some(Ok(LogOutput::Console { message })) => on_output(OutputStream::Stdout, &message),
                    Some(Ok(LogOutput::StdIn { .. })) => {}
                    Some(Err(err)) => {
                        tracing::warn!(container = %name, error = %err, "output stream broke off");
                        break;
                    }
                    None => break,
                },
                () = &mut deadline, if stopped.is_none() => {
                    stopped = Some(ContainerExit::TimedOut);
                    self.stop(&name).await;
                }
                () = cancel.cancelled(), if stopped.is_none() => {
                    stopped = Some(ContainerExit::Canceled);
                    self.stop(&name).await;
                }
            }
        }
        let code = self.exit_code(&name).await;
        self.cleanup.defer(self.clone(), name);
        Ok(stopped.unwrap_or(ContainerExit::Exited(code?)))
    }

    /// Removes a gated container that will not run after all (its stage was skipped).
    pub fn discard(&self, container: GatedContainer) {
        self.cleanup.defer(self.clone(), container.name);
    }

    async fn exit_code(&self, name: &str) -> Result<i64, DockerError> {
        let mut wait = self
            .docker
            .wait_container(name, None::<WaitContainerOptions>);
        match wait.next().await {
            Some(Ok(response)) => Ok(response.status_code),
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(err)) => Err(call_error(format!("waiting for {name}"))(err)),
            None => Err(DockerError::Refused {
                operation: format!("waiting for {name}"),
                message: "the engine closed the wait without an exit code".into(),
            }),
        }
    }

    async fn stop(&self, name: &str) {
        let options = StopContainerOptions {
            t: Some(STOP_GRACE.as_secs() as i32),
            ..Default::default()
        };
        if let Err(err) = self.docker.stop_container(name, Some(options)).await {
            tracing::warn!(container = %name, error = %err, "stopping a container failed; killing it");
            let _ = self
                .docker
                .kill_container(name, None::<KillContainerOptions>)
                .await;
        }
    }
}

fn socket_mount() -> Mount {
    Mount {
        target: Some(DOCKER_SOCKET.into()),
        source: Some(DOCKER_SOCKET.into()),
        typ: Some(MountType::BIND),
        ..Default::default()
    }
}

fn volume_mount(volume: &str) -> Mount {
    volume_at(volume, WORKSPACE_DIR)
}

fn volume_at(volume: &str, target: &str) -> Mount {
    Mount {
        target: Some(target.into()),
        source: Some(volume.to_owned()),
        typ: Some(MountType::VOLUME),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_parts_are_docker_names_and_stay_apart() {
        assert_eq!(name_part("check"), "check");
        let part = name_part("test (rust=1.80, db=pg16)");
        assert!(part.starts_with("test-rust-1.80-db-pg16-"), "{part}");
        assert!(
            part.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        );
        assert_ne!(name_part("a b"), name_part("a,b"));
    }
}
