//! Finding and removing what Gantry created on the engine: every container, volume and
//! network carries the run's label, so a cancel, a crash or the next start can find them; removals
//! of finished stages' containers run in the background; failures are logged and counted.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bollard::query_parameters::{
    ListContainersOptions, ListNetworksOptions, ListVolumesOptions, RemoveContainerOptions,
    RemoveVolumeOptions,
};

use super::{Engine, RUN_LABEL};

/// Container removals running in the background, so a finished stage's removal is not on
/// the path of the next stage's start.
#[derive(Default)]
pub(super) struct Cleanup {
    pending: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Cleanup {
    pub(super) fn defer(&self, engine: Engine, container: String) {
        let removal = tokio::spawn(async move { engine.remove_container(&container).await });
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(removal);
    }
}

/// What the engine holds under a label: (id or name, run label) of each.
struct Labelled {
    containers: Vec<(String, Option<String>)>,
    volumes: Vec<(String, Option<String>)>,
    networks: Vec<(String, Option<String>)>,
}

impl Engine {
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

    /// Removes every container, volume and network labelled with a Gantry run (or with
    /// `run`, when given): what a crash or a kill left behind. Returns how many were
    /// removed.
    pub async fn reap(&self, run: Option<&str>) -> usize {
        let label = match run {
            Some(run) => format!("{RUN_LABEL}={run}"),
            None => RUN_LABEL.to_owned(),
        };
        let left = self.labelled(label).await;
        for (container, _) in &left.containers {
            self.remove_container(container).await;
        }
        for (volume, _) in &left.volumes {
            self.remove_volume(volume).await;
        }
        // Last: a network is removed only once no container is on it.
        for (network, _) in &left.networks {
            self.remove_network(network).await;
        }
        left.containers.len() + left.volumes.len() + left.networks.len()
    }

    /// The run labels starting with `prefix` (this installation's) that some container,
    /// volume or network on this engine carries. Other installations' and `gantry run`'s
    /// are left out.
    pub async fn runs_present(&self, prefix: &str) -> Vec<String> {
        let left = self.labelled(RUN_LABEL.to_owned()).await;
        let mut runs: Vec<String> = left
            .containers
            .into_iter()
            .chain(left.volumes)
            .chain(left.networks)
            .filter_map(|(_, run)| run)
            .filter(|run| run.starts_with(prefix))
            .collect();
        runs.sort();
        runs.dedup();
        runs
    }

    /// What carries `label` (`key` or `key=value`), each with its run label: (id or name,
    /// run). A listing the engine refuses is logged and counted, and gives nothing.
    async fn labelled(&self, label: String) -> Labelled {
        let filters: HashMap<String, Vec<String>> =
            HashMap::from([("label".to_owned(), vec![label])]);
        let containers = match self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters.clone()),
                ..Default::default()
            }))
            .await
        {
            Ok(containers) => containers
                .into_iter()
                .filter_map(|c| Some((c.id?, c.labels?.get(RUN_LABEL).cloned())))
                .collect(),
            Err(err) => {
                self.cleanup_failed("listing leftover containers", &err.to_string());
                Vec::new()
            }
        };
        let volumes = match self
            .docker
            .list_volumes(Some(ListVolumesOptions {
                filters: Some(filters.clone()),
            }))
            .await
        {
            Ok(list) => list
                .volumes
                .unwrap_or_default()
                .into_iter()
                .map(|v| {
                    let run = v.labels.get(RUN_LABEL).cloned();
                    (v.name, run)
                })
                .collect(),
            Err(err) => {
                self.cleanup_failed("listing leftover volumes", &err.to_string());
                Vec::new()
            }
        };
        let networks = match self
            .docker
            .list_networks(Some(ListNetworksOptions {
                filters: Some(filters),
            }))
            .await
        {
            Ok(list) => list
                .into_iter()
                .filter_map(|n| {
                    let run = n.labels.as_ref().and_then(|l| l.get(RUN_LABEL).cloned());
                    Some((n.name?, run))
                })
                .collect(),
            Err(err) => {
                self.cleanup_failed("listing leftover networks", &err.to_string());
                Vec::new()
            }
        };
        Labelled {
            containers,
            volumes,
            networks,
        }
    }

    pub(super) fn cleanup_failed(&self, what: &str, message: &str) {
        self.cleanup_failures.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(error = %message, "cleanup failed: {what}");
    }

    /// Cleanup operations that failed since start: exported as a metric.
    pub fn cleanup_failures(&self) -> u64 {
        self.cleanup_failures.load(Ordering::Relaxed)
    }
}
