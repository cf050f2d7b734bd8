//! The connection to the Docker engine that runs stages.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType, VolumeCreateRequest};
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, CreateImageOptions, KillContainerOptions,
    ListContainersOptions, ListVolumesOptions, RemoveContainerOptions, RemoveVolumeOptions,
    StartContainerOptions, StopContainerOptions, UploadToContainerOptions, WaitContainerOptions,
};
use bollard::{API_DEFAULT_VERSION, Docker};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use crate::config::PullPolicy;

/// How long one Engine API call may take before it is abandoned. Long operations (pulls,
/// builds, log streams) are not single calls and are bounded by their own stage timeouts.
const ENGINE_CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// `/readyz` must answer quickly even when the engine hangs.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("docker_host `{host}`: {message}")]
    Connect { host: String, message: String },
    #[error("Docker engine at `{host}` did not answer a ping: {message}")]
    Unreachable { host: String, message: String },
}

/// A handle on one Docker engine, local socket or remote. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    docker: Docker,
    host: String,
    cleanup_failures: Arc<AtomicU64>,
    cleanup: Arc<Cleanup>,
}

/// Container removals running in the background, so a finished stage's removal is not on
/// the path of the next stage's start.
#[derive(Default)]
struct Cleanup {
    pending: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Cleanup {
    fn defer(&self, engine: Engine, container: String) {
        let removal = tokio::spawn(async move { engine.remove_container(&container).await });
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(removal);
    }
}

impl Engine {
    /// Prepares a client for `host` (`unix:///path` or `tcp://host:port`). Nothing is
    /// contacted yet, so Gantry starts even while the engine is down.
    pub fn connect(host: &str) -> Result<Self, EngineError> {
        let timeout = ENGINE_CALL_TIMEOUT.as_secs();
        let docker = if let Some(path) = host.strip_prefix("unix://") {
            Docker::connect_with_unix(path, timeout, API_DEFAULT_VERSION)
        } else if host.starts_with("tcp://") || host.starts_with("http://") {
            Docker::connect_with_http(host, timeout, API_DEFAULT_VERSION)
        } else {
            return Err(EngineError::Connect {
                host: host.to_owned(),
                message: "expected `unix:///path/to/docker.sock` or `tcp://host:port`".into(),
            });
        };
        let docker = docker.map_err(|err| EngineError::Connect {
            host: host.to_owned(),
            message: err.to_string(),
        })?;
        Ok(Self {
            docker,
            host: host.to_owned(),
            cleanup_failures: Arc::default(),
            cleanup: Arc::default(),
        })
    }

    pub async fn ping(&self) -> Result<(), EngineError> {
        let unreachable = |message: String| EngineError::Unreachable {
            host: self.host.clone(),
            message,
        };
        match tokio::time::timeout(PING_TIMEOUT, self.docker.ping()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => Err(unreachable(err.to_string())),
            Err(_) => Err(unreachable(format!(
                "no answer within {}s",
                PING_TIMEOUT.as_secs()
            ))),
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
/// Size of the pieces a workspace is uploaded in.
const UPLOAD_CHUNK_BYTES: usize = 256 * 1024;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("pulling image `{image}`: {message}")]
    Pull { image: String, message: String },
    #[error("image `{image}` is not present and runner.pull is `never`")]
    ImageMissing { image: String },
    #[error("{operation}: {message}")]
    Call { operation: String, message: String },
}

fn call_error(operation: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> DockerError {
    let operation = operation.into();
    move |err| DockerError::Call {
        operation,
        message: err.to_string(),
    }
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
            step.map_err(|err| DockerError::Pull {
                image: image.clone(),
                message: err.to_string(),
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

    /// Copies `dir` into the volume through the Engine API (an archive upload into a
    /// created, never started container), so a remote engine works like the local one.
    pub async fn upload_dir(
        &self,
        dir: &Path,
        volume: &str,
        image: &str,
        labels: &[(String, String)],
    ) -> Result<(), DockerError> {
        let name = format!("{volume}-upload");
        let body = ContainerCreateBody {
            image: Some(with_default_tag(image)),
            entrypoint: Some(vec!["/bin/true".into()]),
            labels: Some(labels.iter().cloned().collect()),
            host_config: Some(HostConfig {
                mounts: Some(vec![volume_mount(volume)]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = CreateContainerOptions {
            name: Some(name.clone()),
            ..Default::default()
        };
        self.docker
            .create_container(Some(options), body)
            .await
            .map_err(call_error(format!(
                "creating upload container for {volume}"
            )))?;
        let (sender, receiver) = tokio::sync::mpsc::channel::<Bytes>(4);
        let dir = dir.to_owned();
        let archiver = tokio::task::spawn_blocking(move || {
            let writer = ChunkWriter {
                sender,
                buffer: Vec::with_capacity(UPLOAD_CHUNK_BYTES),
            };
            let mut builder = tar::Builder::new(writer);
            builder.follow_symlinks(false);
            builder.append_dir_all(".", &dir)?;
            builder.into_inner()?.flush_rest()
        });
        let stream = stream_from(receiver);
        let options = UploadToContainerOptions {
            path: WORKSPACE_DIR.into(),
            ..Default::default()
        };
        let uploaded = self
            .docker
            .upload_to_container(&name, Some(options), bollard::body_stream(stream))
            .await
            .map_err(call_error(format!("uploading the workspace into {volume}")));
        let archived = archiver.await;
        self.cleanup.defer(self.clone(), name);
        uploaded?;
        match archived {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(DockerError::Call {
                operation: format!("archiving the workspace for {volume}"),
                message: err.to_string(),
            }),
            Err(err) => Err(DockerError::Call {
                operation: "archiving the workspace".into(),
                message: err.to_string(),
            }),
        }
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
                mounts: Some(if spec.trusted {
                    vec![volume_mount(&spec.volume), socket_mount()]
                } else {
                    vec![volume_mount(&spec.volume)]
                }),
                privileged: Some(spec.trusted),
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
            return Err(DockerError::Call {
                operation: format!("releasing {name}"),
                message: err.to_string(),
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
            None => Err(DockerError::Call {
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

    /// Counts a background removal among those [`Engine::finish_cleanup`] waits for.
    pub fn track(&self, removal: tokio::task::JoinHandle<()>) {
        self.cleanup
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(removal);
    }

    /// Waits for the background removals started so far, including those they start.
    pub async fn finish_cleanup(&self) {
        loop {
            let pending: Vec<_> = std::mem::take(
                &mut *self
                    .cleanup
                    .pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()),
            );
            if pending.is_empty() {
                return;
            }
            for removal in pending {
                let _ = removal.await;
            }
        }
    }

    /// The same engine with its own list of background removals: one pipeline waits for
    /// its own containers' removal, not for other runs'.
    pub fn scoped(&self) -> Engine {
        Engine {
            cleanup: Arc::default(),
            ..self.clone()
        }
    }

    /// Removes a container, logging (and counting) a failure instead of hiding it.
    pub async fn remove_container(&self, name: &str) {
        let options = RemoveContainerOptions {
            force: true,
            ..Default::default()
        };
        if let Err(err) = self.docker.remove_container(name, Some(options)).await {
            self.cleanup_failed(&format!("removing container {name}"), &err.to_string());
        }
    }

    pub async fn remove_volume(&self, name: &str) {
        if let Err(err) = self
            .docker
            .remove_volume(name, None::<RemoveVolumeOptions>)
            .await
        {
            self.cleanup_failed(&format!("removing volume {name}"), &err.to_string());
        }
    }

    /// Removes every container and volume labelled with a Gantry run (or with `run`, when
    /// given): what a crash or a kill left behind. Returns how many were removed.
    pub async fn reap(&self, run: Option<&str>) -> usize {
        let label = match run {
            Some(run) => format!("{RUN_LABEL}={run}"),
            None => RUN_LABEL.to_owned(),
        };
        let filters: HashMap<String, Vec<String>> =
            HashMap::from([("label".to_owned(), vec![label])]);
        let mut removed = 0;
        let containers = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters.clone()),
                ..Default::default()
            }))
            .await;
        match containers {
            Ok(containers) => {
                for container in containers {
                    if let Some(id) = container.id {
                        self.remove_container(&id).await;
                        removed += 1;
                    }
                }
            }
            Err(err) => self.cleanup_failed("listing leftover containers", &err.to_string()),
        }
        match self
            .docker
            .list_volumes(Some(ListVolumesOptions {
                filters: Some(filters),
            }))
            .await
        {
            Ok(list) => {
                for volume in list.volumes.unwrap_or_default() {
                    self.remove_volume(&volume.name).await;
                    removed += 1;
                }
            }
            Err(err) => self.cleanup_failed("listing leftover volumes", &err.to_string()),
        }
        removed
    }

    /// Removes the containers and volumes of this installation's runs (labels starting with
    /// `prefix`) other than `keep`, the runs some runner is executing. Other installations'
    /// runs and `gantry run`'s are left alone.
    pub async fn reap_except(&self, prefix: &str, keep: &[String]) -> usize {
        let filters: HashMap<String, Vec<String>> =
            HashMap::from([("label".to_owned(), vec![RUN_LABEL.to_owned()])]);
        let mut runs: Vec<String> = Vec::new();
        match self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters.clone()),
                ..Default::default()
            }))
            .await
        {
            Ok(containers) => runs.extend(
                containers
                    .into_iter()
                    .filter_map(|c| c.labels?.get(RUN_LABEL).cloned()),
            ),
            Err(err) => self.cleanup_failed("listing leftover containers", &err.to_string()),
        }
        match self
            .docker
            .list_volumes(Some(ListVolumesOptions {
                filters: Some(filters),
            }))
            .await
        {
            Ok(list) => runs.extend(
                list.volumes
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|v| v.labels.get(RUN_LABEL).cloned()),
            ),
            Err(err) => self.cleanup_failed("listing leftover volumes", &err.to_string()),
        }
        runs.sort();
        runs.dedup();
        let mut removed = 0;
        for run in runs {
            if !run.starts_with(prefix) || keep.contains(&run) {
                continue;
            }
            removed += self.reap(Some(&run)).await;
        }
        removed
    }

    fn cleanup_failed(&self, what: &str, message: &str) {
        self.cleanup_failures.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(error = %message, "cleanup failed: {what}");
    }

    /// Cleanup operations that failed since start: exported as a metric.
    pub fn cleanup_failures(&self) -> u64 {
        self.cleanup_failures.load(Ordering::Relaxed)
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
    Mount {
        target: Some(WORKSPACE_DIR.into()),
        source: Some(volume.to_owned()),
        typ: Some(MountType::VOLUME),
        ..Default::default()
    }
}

/// A `Write` that hands full chunks to an async receiver, so a tar archive streams to the
/// engine without being held in memory whole.
pub(super) struct ChunkWriter {
    sender: tokio::sync::mpsc::Sender<Bytes>,
    buffer: Vec<u8>,
}

impl ChunkWriter {
    pub(super) fn new(sender: tokio::sync::mpsc::Sender<Bytes>) -> Self {
        Self {
            sender,
            buffer: Vec::with_capacity(UPLOAD_CHUNK_BYTES),
        }
    }

    fn send(&mut self) -> std::io::Result<()> {
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(UPLOAD_CHUNK_BYTES),
        ));
        self.sender
            .blocking_send(chunk)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the upload stopped"))
    }

    pub(super) fn flush_rest(mut self) -> std::io::Result<()> {
        if !self.buffer.is_empty() {
            self.send()?;
        }
        Ok(())
    }
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= UPLOAD_CHUNK_BYTES {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub(super) fn stream_from(
    mut receiver: tokio::sync::mpsc::Receiver<Bytes>,
) -> impl futures_util::Stream<Item = Bytes> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}
