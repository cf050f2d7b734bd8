//! Service containers and the network they share with a pipeline's stages: started before
//! the first stage, reached by name, checked for readiness by commands run inside them, and
//! read for their output before they are removed.

use std::collections::HashMap;

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, NetworkCreateRequest, NetworkingConfig,
};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, LogsOptions, StartContainerOptions,
};
use futures_util::StreamExt;

use super::{DockerError, Engine, call_error, with_default_tag};

/// Most output of one readiness check kept for the message of a service that never got
/// ready.
const CHECK_OUTPUT_BYTES: usize = 4 * 1024;

/// A service container to start.
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    /// The container's name.
    pub name: String,
    /// The name stages reach it by on `network`.
    pub alias: String,
    pub image: String,
    pub env: Vec<String>,
    /// Replaces the image's `CMD`.
    pub command: Option<Vec<String>>,
    pub labels: Vec<(String, String)>,
    pub network: String,
    pub memory_bytes: Option<i64>,
    pub nano_cpus: Option<i64>,
}

impl Engine {
    /// Creates a bridge network of a pipeline's own, labelled with its run.
    pub async fn create_network(
        &self,
        name: &str,
        labels: &[(String, String)],
    ) -> Result<(), DockerError> {
        let request = NetworkCreateRequest {
            name: name.to_owned(),
            driver: Some("bridge".into()),
            labels: Some(labels.iter().cloned().collect()),
            ..Default::default()
        };
        self.docker
            .create_network(request)
            .await
            .map_err(call_error(format!("creating network {name}")))?;
        Ok(())
    }

    pub async fn remove_network(&self, name: &str) {
        if let Err(err) = self.docker.remove_network(name).await {
            self.cleanup_failed(&format!("removing network {name}"), &err.to_string());
        }
    }

    /// Creates and starts a service container on its network, under its alias. It is
    /// removed with [`Engine::remove_container`] (or by the reaper, through its label).
    pub async fn start_service(&self, spec: &ServiceSpec) -> Result<(), DockerError> {
        let body = ContainerCreateBody {
            image: Some(with_default_tag(&spec.image)),
            cmd: spec.command.clone(),
            env: Some(spec.env.clone()),
            labels: Some(spec.labels.iter().cloned().collect()),
            host_config: Some(HostConfig {
                network_mode: Some(spec.network.clone()),
                init: Some(true),
                memory: spec.memory_bytes,
                nano_cpus: spec.nano_cpus,
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    spec.network.clone(),
                    EndpointSettings {
                        aliases: Some(vec![spec.alias.clone()]),
                        ..Default::default()
                    },
                )])),
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
            .map_err(call_error(format!("creating service {}", spec.alias)))?;
        self.docker
            .start_container(&spec.name, None::<StartContainerOptions>)
            .await
            .map_err(call_error(format!("starting service {}", spec.alias)))?;
        Ok(())
    }

    /// Runs `command` inside the running container `name` and returns its exit code and
    /// (the start of) its output.
    pub async fn exec(
        &self,
        name: &str,
        command: Vec<String>,
    ) -> Result<(i64, String), DockerError> {
        let created = self
            .docker
            .create_exec(
                name,
                CreateExecOptions {
                    cmd: Some(command),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .map_err(call_error(format!("running a command in {name}")))?;
        let mut output = Vec::new();
        if let StartExecResults::Attached {
            output: mut stream, ..
        } = self
            .docker
            .start_exec(&created.id, None)
            .await
            .map_err(call_error(format!("running a command in {name}")))?
        {
            while let Some(chunk) = stream.next().await {
                let Ok(chunk) = chunk else { break };
                if output.len() < CHECK_OUTPUT_BYTES {
                    output.extend_from_slice(&chunk.into_bytes());
                }
            }
        }
        let inspected = self
            .docker
            .inspect_exec(&created.id)
            .await
            .map_err(call_error(format!("reading a command's end in {name}")))?;
        output.truncate(CHECK_OUTPUT_BYTES);
        Ok((
            inspected.exit_code.unwrap_or(-1),
            String::from_utf8_lossy(&output).into_owned(),
        ))
    }

    /// `None` while the container runs; its exit code once it has stopped.
    pub async fn exited(&self, name: &str) -> Result<Option<i64>, DockerError> {
        let inspected = self
            .docker
            .inspect_container(name, None::<InspectContainerOptions>)
            .await
            .map_err(call_error(format!("inspecting {name}")))?;
        let state = inspected.state.unwrap_or_default();
        Ok(match state.running {
            Some(true) => None,
            _ => Some(state.exit_code.unwrap_or(-1)),
        })
    }

    /// The container's output so far, stdout and stderr as they came, at most the last
    /// `max_bytes` of it, split into lines.
    pub async fn output_lines(
        &self,
        name: &str,
        max_bytes: usize,
    ) -> Result<Vec<String>, DockerError> {
        let mut stream = self.docker.logs(
            name,
            Some(LogsOptions {
                stdout: true,
                stderr: true,
                tail: "all".into(),
                ..Default::default()
            }),
        );
        let mut text: Vec<u8> = Vec::new();
        while let Some(chunk) = stream.next().await {
            match chunk.map_err(call_error(format!("reading the output of {name}")))? {
                LogOutput::StdOut { message }
                | LogOutput::StdErr { message }
                | LogOutput::Console { message } => text.extend_from_slice(&message),
                LogOutput::StdIn { .. } => {}
            }
            if text.len() > 2 * max_bytes {
                text.drain(..text.len() - max_bytes);
            }
        }
        if text.len() > max_bytes {
            text.drain(..text.len() - max_bytes);
        }
        Ok(String::from_utf8_lossy(&text)
            .lines()
            .map(str::to_owned)
            .collect())
    }
}
