//! Building and running the service. Tests call [`Application::build`] with port 0 and talk
//! to the real server.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use tracing_actix_web::TracingLogger;

use crate::config::Settings;
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use crate::runner::Engine;
use crate::store::Store;

/// A bound, not yet running, Gantry server.
pub struct Application {
    address: SocketAddr,
    server: Server,
    store: Store,
}

impl Application {
    /// Opens the store (running migrations), binds the listener and prepares the server.
    /// Errors here stop start-up before anything is served.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let store = Store::connect(&settings.store.url).await?;
        let engine = Engine::connect(&settings.runner.docker_host)?;
        let listener = TcpListener::bind(settings.server.listen)
            .with_context(|| format!("binding server.listen {}", settings.server.listen))?;
        let address = listener.local_addr().context("reading the bound address")?;
        let state = web::Data::new(AppState {
            settings: Arc::new(settings),
            store: store.clone(),
            metrics: Metrics::new(),
            engine: Some(engine),
        });
        let server = HttpServer::new(move || {
            App::new()
                .wrap(TracingLogger::default())
                .app_data(state.clone())
                .configure(http::routes)
        })
        .listen(listener)
        .context("starting the HTTP server")?
        .run();
        Ok(Self {
            address,
            server,
            store,
        })
    }

    /// The address the server listens on (the real port when the config said 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Serves until the process is told to stop.
    pub async fn run(self) -> anyhow::Result<()> {
        tracing::info!(address = %self.address, "gantry listening");
        self.server.await.context("HTTP server failed")
    }
}
