//! The connection to the Docker engine that runs stages.

use std::time::Duration;

use bollard::{API_DEFAULT_VERSION, Docker};

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
