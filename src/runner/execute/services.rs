//! A pipeline's services: started on a network of their own before the first stage, each
//! waited for until its `ready` check passes, shown among the stages as `NAME (service)`
//! with its output, and removed with the network when the pipeline ends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Executor, Observer, PipelineJob, StageOutcome};
use crate::domain::{StageState, describe};
use crate::pipeline::{ReadyCheck, Service};
use crate::runner::engine::{DockerError, ServiceSpec, name_part};

/// Between two readiness checks of a service.
const CHECK_INTERVAL: Duration = Duration::from_millis(250);
/// The most of a service's output kept on the run page.
const SERVICE_LOG_BYTES: usize = 256 * 1024;

/// The services of one pipeline, started.
pub(super) struct Started {
    pub network: String,
    /// Container name and service, of each service started.
    containers: Vec<(String, Service)>,
    started_at: Instant,
}

/// Why the stages cannot run: a service could not be started or never got ready.
pub(super) struct NotReady {
    /// The service's stage name and what went wrong.
    pub stage: String,
    pub message: String,
}

impl Executor {
    /// Creates the pipeline's network and starts its services, each reported as a running
    /// stage, and waits until all are ready. On failure what was started is still
    /// returned, to be stopped like the rest.
    pub(super) async fn start_services(
        &self,
        job: &PipelineJob,
        labels: &[(String, String)],
        observer: &Arc<dyn Observer>,
    ) -> (Started, Result<(), NotReady>) {
        let network = format!("gantry-{}-{}", job.run_label, job.plan.pipeline);
        let mut started = Started {
            network: network.clone(),
            containers: Vec::new(),
            started_at: Instant::now(),
        };
        if let Err(err) = self.engine.create_network(&network, labels).await {
            let first = &job.plan.services[0];
            return (started, Err(not_ready(first, describe(&err))));
        }
        for service in &job.plan.services {
            let spec = ServiceSpec {
                name: format!(
                    "gantry-{}-{}-service-{}",
                    job.run_label,
                    job.plan.pipeline,
                    name_part(&service.name)
                ),
                alias: service.name.clone(),
                image: service.image.clone(),
                env: service
                    .env
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect(),
                command: service.command.clone(),
                labels: labels.to_vec(),
                network: network.clone(),
                memory_bytes: self.settings.stage_memory_bytes(),
                nano_cpus: self.settings.stage_nano_cpus(),
            };
            observer.stage_started(&job.plan.pipeline, &Service::stage_name(&service.name));
            let result = self.engine.start_service(&spec).await;
            // Even a container that failed to start may exist: it is removed at the end.
            started
                .containers
                .push((spec.name.clone(), service.clone()));
            if let Err(err) = result {
                return (started, Err(not_ready(service, describe(&err))));
            }
        }
        let checks = started
            .containers
            .iter()
            .map(|(container, service)| self.wait_ready(container, service, job));
        let ready = futures_util::future::join_all(checks)
            .await
            .into_iter()
            .collect::<Result<Vec<()>, NotReady>>()
            .map(|_| ());
        (started, ready)
    }

    /// Checks `service` until it is ready, its container stops, its timeout passes or the
    /// run is canceled.
    async fn wait_ready(
        &self,
        container: &str,
        service: &Service,
        job: &PipelineJob,
    ) -> Result<(), NotReady> {
        let deadline = Instant::now() + service.ready.timeout;
        loop {
            match self.engine.exited(container).await {
                Ok(None) => {}
                Ok(Some(code)) => {
                    return Err(not_ready(
                        service,
                        format!("exited with code {code} before it was ready"),
                    ));
                }
                Err(err) => return Err(not_ready(service, describe(&err))),
            }
            let last = match self.check(container, &service.ready.check).await {
                Ok(None) => return Ok(()),
                Ok(Some(output)) => output,
                Err(err) => describe(&err),
            };
            if job.cancel.is_cancelled() {
                return Err(not_ready(service, "the run was canceled".into()));
            }
            if Instant::now() >= deadline {
                let took = humantime::format_duration(service.ready.timeout);
                let last = last.trim();
                return Err(not_ready(
                    service,
                    if last.is_empty() {
                        format!("not ready within {took}")
                    } else {
                        format!("not ready within {took}: {last}")
                    },
                ));
            }
            tokio::select! {
                () = tokio::time::sleep(CHECK_INTERVAL) => {}
                () = job.cancel.cancelled() => {}
            }
        }
    }

    /// One readiness check: `None` when it passed, else what it said.
    async fn check(
        &self,
        container: &str,
        check: &ReadyCheck,
    ) -> Result<Option<String>, DockerError> {
        match check {
            ReadyCheck::Running => Ok(None),
            ReadyCheck::Command(command) => {
                let (code, output) = self
                    .engine
                    .exec(container, vec!["sh".into(), "-c".into(), command.clone()])
                    .await?;
                Ok((code != 0).then(|| format!("`{command}` exited with code {code}: {output}")))
            }
            // Read from the kernel's socket tables inside the service, so neither a client
            // in the image nor a route from Gantry to the container is needed.
            ReadyCheck::Port(port) => {
                let (_, tables) = self
                    .engine
                    .exec(
                        container,
                        vec![
                            "cat".into(),
                            "/proc/net/tcp".into(),
                            "/proc/net/tcp6".into(),
                        ],
                    )
                    .await?;
                Ok(
                    (!listens_on(&tables, *port))
                        .then(|| format!("nothing listens on port {port}")),
                )
            }
        }
    }

    /// Puts each service's output on its stage, ends the stages (as `error` for the one
    /// that never got ready), and removes the services and their network.
    pub(super) async fn stop_services(
        &self,
        job: &PipelineJob,
        started: Started,
        failed: Option<&NotReady>,
        observer: &Arc<dyn Observer>,
    ) {
        let pipeline = &job.plan.pipeline;
        for (container, service) in &started.containers {
            let stage = Service::stage_name(&service.name);
            match self.engine.output_lines(container, SERVICE_LOG_BYTES).await {
                Ok(lines) => {
                    for line in lines {
                        observer.log_line(pipeline, &stage, &line);
                    }
                }
                Err(err) => observer.log_line(
                    pipeline,
                    &stage,
                    &format!("(its output could not be read: {})", describe(&err)),
                ),
            }
            let (state, message) = match failed {
                Some(failed) if failed.stage == stage => {
                    (StageState::Error, Some(failed.message.clone()))
                }
                _ => (StageState::Success, Some("stopped".to_owned())),
            };
            let outcome = StageOutcome {
                state,
                exit_code: None,
                message,
                duration: started.started_at.elapsed(),
                attempts: 1,
                log_dropped: 0,
            };
            observer.stage_finished(pipeline, &stage, &outcome);
            self.engine.remove_container(container).await;
        }
        self.engine.remove_network(&started.network).await;
    }
}

fn not_ready(service: &Service, message: String) -> NotReady {
    NotReady {
        stage: Service::stage_name(&service.name),
        message,
    }
}

/// Whether `/proc/net/tcp`-style `tables` show a socket listening on `port`: a line whose
/// local address ends in the port (hex) and whose state is `0A` (LISTEN).
fn listens_on(tables: &str, port: u16) -> bool {
    let wanted = format!("{port:04X}");
    tables.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.len() > 3
            && fields[3] == "0A"
            && fields[1]
                .rsplit_once(':')
                .is_some_and(|(_, local)| local.eq_ignore_ascii_case(&wanted))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_sockets_are_read_from_the_kernel_tables() {
        let tables = "  sl  local_address rem_address   st tx_queue rx_queue\n\
            0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000\n\
            1: 0100007F:1538 0100007F:9C40 01 00000000:00000000 00:00000000 00000000\n";
        assert!(listens_on(tables, 8080));
        assert!(!listens_on(tables, 5432), "established, not listening");
        let six =
            "0: 00000000000000000000000000000000:1538 00000000000000000000000000000000:0000 0A";
        assert!(listens_on(six, 5432));
    }
}
