//! Building and running the service. Tests call [`Application::build`] with port 0 and talk
//! to the real server.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::dev::{Server, Service};
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use tracing_actix_web::TracingLogger;

use crate::config::Settings;
use crate::forge::Forges;
use crate::forge::reporter::Reporter;
use crate::git::GitAuth;
use crate::gitops::bump::{Author, Bumper};
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use crate::runner::{BumpSetup, Engine, Executor, Scheduler};
use crate::store::{Retention, Store};
use tokio_util::sync::CancellationToken;

/// Which parts of Gantry this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Role {
    /// Intake, API and runner in one process: the single-node default.
    #[default]
    All,
    /// Webhooks and the API; runs nothing (for replicas in front of separate runners).
    Intake,
    /// Works the queue only; serves nothing but health and metrics.
    Runner,
}

impl Role {
    fn takes_webhooks(self) -> bool {
        matches!(self, Role::All | Role::Intake)
    }

    fn runs_stages(self) -> bool {
        matches!(self, Role::All | Role::Runner)
    }
}

/// A bound, not yet running, Gantry server.
pub struct Application {
    address: SocketAddr,
    server: Server,
    store: Store,
    draining: Arc<AtomicBool>,
    scheduler: Option<Arc<Scheduler>>,
    reporter: Option<Reporter>,
    /// Settles Flux's and Argo CD's reports; where stages run (it needs git).
    settler: Option<crate::deploy::Settler>,
    /// What the background pruning keeps, and where it counts what it removed.
    retention: Retention,
    metrics: Metrics,
}

impl Application {
    /// Opens the store (running migrations), binds the listener and prepares the server.
    /// Errors here stop start-up before anything is served.
    pub async fn build(settings: Settings, role: Role) -> anyhow::Result<Self> {
        let store = Store::connect(&settings.store.url).await?;
        let settings = Arc::new(settings);
        let engine = if role.runs_stages() {
            Some(Engine::connect(
                &settings.runner.docker_host,
                settings.runner.docker_tls.as_ref(),
            )?)
        } else {
            None
        };
        let metrics = Metrics::new();
        let mut reporter = None;
        let mut settler = None;
        let scheduler = match &engine {
            Some(engine) => {
                let forges =
                    Forges::from_settings(&settings).context("building forge API clients")?;
                let author = Author::parse(&settings.gitops.author).context("[gitops] author")?;
                let bumper = Bumper::new(author, GitAuth::for_config_repos(&settings.gitops))
                    .with_store(store.clone())
                    .with_forges(forges.clone())
                    .with_metrics(metrics.clone());
                let executor = Executor::new(engine.clone(), Arc::new(settings.runner.clone()))
                    .with_registries(settings.registries.clone())
                    .with_bumps(BumpSetup {
                        bumper,
                        public_url: settings.server.public_url.clone(),
                        allowed_repos: settings.gitops.repos.clone(),
                        forge: settings.gitops.forge,
                    });
                let scheduler = Scheduler::new(
                    store.clone(),
                    executor,
                    settings.clone(),
                    Some(forges.clone()),
                )
                .with_metrics(metrics.clone());
                reporter = Some(Reporter::new(store.clone(), forges).with_metrics(metrics.clone()));
                // Without environments the hooks store no report: nothing to poll for.
                settler = (!settings.deploy.environments.is_empty()).then(|| {
                    crate::deploy::Settler::new(store.clone(), settings.clone(), metrics.clone())
                });
                // A previous process's leftovers are taken back before anything new runs; an
                // engine that is down now only delays that to the next start.
                if let Err(err) = scheduler.recover().await {
                    tracing::error!(error = %format!("{err:#}"), "recovering interrupted runs failed");
                }
                Some(Arc::new(scheduler))
            }
            None => None,
        };
        allow_open_files(settings.server.max_connections);
        let listener = TcpListener::bind(settings.server.listen)
            .with_context(|| format!("binding server.listen {}", settings.server.listen))?;
        let address = listener.local_addr().context("reading the bound address")?;
        let draining = Arc::new(AtomicBool::new(false));
        let access = crate::auth::Access::new(settings.clone(), store.clone())
            .await
            .context("reading the session key")?;
        let retention = crate::housekeeping::retention(&settings.store);
        let pruning_metrics = metrics.clone();
        let state = web::Data::new(AppState {
            settings,
            store: store.clone(),
            access,
            metrics,
            engine,
            draining: draining.clone(),
            deliveries: Arc::new(tokio::sync::Semaphore::new(http::DELIVERIES_AT_ONCE)),
        });
        let takes_webhooks = role.takes_webhooks();
        let server_settings = state.settings.server.clone();
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let on_connect =
            http::count_connection(state.metrics.clone(), server_settings.max_connections);
        let server = HttpServer::new(move || {
            App::new()
                .wrap(TracingLogger::<http::spans::RequestSpans>::new())
                // Outside the log span: a body that is slow to arrive holds no span.
                .wrap(actix_web::middleware::from_fn(http::body::in_time))
                .wrap_fn(|mut request, app| {
                    http::own_headers(request.head_mut());
                    app.call(request)
                })
                .app_data(state.clone())
                .configure(|config| {
                    http::health_routes(config);
                    if takes_webhooks {
                        http::routes(config);
                    }
                })
        })
        .workers(workers)
        // actix caps connections per worker.
        .max_connections(server_settings.max_connections.div_ceil(workers))
        .keep_alive(server_settings.keep_alive)
        .client_request_timeout(http::HEADER_TIMEOUT)
        .on_connect(on_connect)
        // Signals are Gantry's own (`Application::run`): a runner drains before it stops.
        .disable_signals()
        .listen(listener)
        .context("starting the HTTP server")?
        .run();
        Ok(Self {
            address,
            server,
            store,
            draining,
            scheduler,
            reporter,
            settler,
            retention,
            metrics: pruning_metrics,
        })
    }

    /// The address the server listens on (the real port when the config said 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Serves (and works the queue) until the process is told to stop. The first SIGTERM
    /// or SIGINT drains: `/readyz` answers 503, the runner takes nothing new and finishes
    /// or hands back what it holds, then the server stops; a second signal hands back at
    /// once.
    pub async fn run(self) -> anyhow::Result<()> {
        tracing::info!(address = %self.address, "gantry listening");
        let shutdown = CancellationToken::new();
        let drain = CancellationToken::new();
        let now = CancellationToken::new();
        tokio::spawn(watch_signals(drain.clone(), now.clone()));
        let worker = match self.scheduler {
            Some(scheduler) => tokio::spawn(scheduler.run(drain.clone(), now)),
            None => tokio::spawn({
                let drain = drain.clone();
                async move { drain.cancelled().await }
            }),
        };
        let server = self.server.handle();
        let draining = self.draining.clone();
        tokio::spawn(async move {
            drain.cancelled().await;
            draining.store(true, Ordering::SeqCst);
            // The queue worker returns once drained; then the server stops.
            let _ = worker.await;
            server.stop(true).await;
        });
        tokio::spawn(crate::memory::release_c_memory(shutdown.clone()));
        tokio::spawn(crate::housekeeping::run(
            self.store.clone(),
            self.retention,
            self.metrics,
            shutdown.clone(),
        ));
        if let Some(reporter) = self.reporter {
            tokio::spawn(reporter.run(shutdown.clone()));
        }
        if let Some(settler) = self.settler {
            tokio::spawn(settler.run(shutdown.clone()));
        }
        let result = self.server.await.context("HTTP server failed");
        shutdown.cancel();
        result
    }
}

/// Cancels `drain` at the first SIGTERM or SIGINT and `now` at the second.
async fn watch_signals(drain: CancellationToken, now: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot listen for SIGTERM and SIGINT");
        return;
    };
    for token in [drain, now] {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        token.cancel();
        tracing::info!("stop requested");
    }
}

/// File descriptors kept beyond the connections, for the store, git, the engine and logs.
const SPARE_FILES: u64 = 1024;

/// Raises the process's soft limit on open files so that `max_connections` fit (services
/// often start with a soft limit of 1024 under a much higher hard one).
fn allow_open_files(max_connections: usize) {
    let wanted = max_connections as u64 + SPARE_FILES;
    match rlimit::increase_nofile_limit(wanted) {
        Ok(got) if got < wanted => tracing::warn!(
            open_files = got,
            max_connections,
            "the open-files limit is below server.max_connections: extra connections fail"
        ),
        Ok(_) => {}
        Err(err) => tracing::warn!(error = %err, "could not raise the open-files limit"),
    }
}
