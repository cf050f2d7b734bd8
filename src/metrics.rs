//! Prometheus metrics, served at `/metrics`.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Buckets for webhook intake latency, in seconds: the goal is well under 10 ms, so the
/// resolution is finest there.
const INTAKE_LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    pub forge: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

/// Buckets for stage durations, in seconds: from a quick check to a long build.
const STAGE_DURATION_BUCKETS: [f64; 12] = [
    0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 3600.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    pub repo: String,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

/// Buckets for the time from a bump's push to its deployment, in seconds: Flux and Argo CD
/// poll every few minutes by default, sooner when a webhook tells them.
const DEPLOY_BUCKETS: [f64; 10] = [
    5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 3600.0, 14400.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EnvironmentLabels {
    pub environment: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ForgeLabels {
    pub forge: &'static str,
}

/// Every metric Gantry exports. Cheap to clone: the metrics inside are shared.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub deliveries: Family<DeliveryLabels, Counter>,
    pub intake_latency: Family<DeliveryLabels, Histogram>,
    pub queue_depth: Gauge,
    pub runs_blocked: Gauge,
    pub approvals: Family<OutcomeLabels, Counter>,
    pub bumps: Family<OutcomeLabels, Counter>,
    pub bump_conflicts: Counter,
    pub bump_pushes: Counter,
    pub runs: Family<RunLabels, Counter>,
    pub stage_durations: Family<ResultLabels, Histogram>,
    pub status_failures: Family<ForgeLabels, Counter>,
    pub deploy_seconds: Family<EnvironmentLabels, Histogram>,
    pub connections_open: Gauge,
    pub connections: Counter,
    pub connections_at_cap: Counter,
    pub requests_timed_out: Counter,
    pub store_bytes: Gauge,
    pub pruned_runs: Counter,
    pub pruned_logs: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("gantry");
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        registry.register(
            "webhook_deliveries",
            "Webhook deliveries received, by forge and outcome",
            deliveries.clone(),
        );
        let intake_latency = Family::<DeliveryLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(INTAKE_LATENCY_BUCKETS)
        });
        registry.register(
            "webhook_intake_seconds",
            "Time from a webhook request's arrival to its answer, by forge and outcome",
            intake_latency.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "runs_queued",
            "Runs waiting for a runner, as of the last scrape",
            queue_depth.clone(),
        );
        let runs_blocked = Gauge::default();
        registry.register(
            "runs_blocked",
            "Runs waiting for approval, as of the last scrape",
            runs_blocked.clone(),
        );
        let approvals = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "run_approvals",
            "Runs that had to wait for approval (blocked), and decisions on them (approved, \
             declined)",
            approvals.clone(),
        );
        let bumps = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "bumps",
            "GitOps bumps, by outcome (applied, unchanged, contended, failed)",
            bumps.clone(),
        );
        let bump_conflicts = Counter::default();
        registry.register(
            "bump_push_conflicts",
            "Bump pushes rejected because the config branch had moved on (each is retried)",
            bump_conflicts.clone(),
        );
        let bump_pushes = Counter::default();
        registry.register(
            "bump_pushes",
            "Pushes to config repos by bumps (a batch of bumps is one push)",
            bump_pushes.clone(),
        );
        let runs = Family::<RunLabels, Counter>::default();
        registry.register("runs", "Finished runs, by repo and result", runs.clone());
        let stage_durations = Family::<ResultLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(STAGE_DURATION_BUCKETS)
        });
        registry.register(
            "stage_duration_seconds",
            "How long stages ran, by result (skipped stages are not counted)",
            stage_durations.clone(),
        );
        let status_failures = Family::<ForgeLabels, Counter>::default();
        registry.register(
            "status_delivery_failures",
            "Commit status requests a forge refused or did not answer (each may be retried)",
            status_failures.clone(),
        );
        let deploy_seconds = Family::<EnvironmentLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(DEPLOY_BUCKETS)
        });
        registry.register(
            "deploy_seconds",
            "From a bump's push to the report that its environment applied it, by environment",
            deploy_seconds.clone(),
        );
        let connections_open = Gauge::default();
        registry.register(
            "http_connections_open",
            "HTTP connections open now",
            connections_open.clone(),
        );
        let connections = Counter::default();
        registry.register(
            "http_connections",
            "HTTP connections accepted",
            connections.clone(),
        );
        let connections_at_cap = Counter::default();
        registry.register(
            "http_connections_at_cap",
            "Connections accepted that reached server.max_connections; until one closes, \
             new ones wait in the listen backlog (and the kernel refuses them once it is full)",
            connections_at_cap.clone(),
        );
        let requests_timed_out = Counter::default();
        registry.register(
            "http_requests_timed_out",
            "Requests whose body did not arrive within server.request_timeout (408)",
            requests_timed_out.clone(),
        );
        let store_bytes = Gauge::default();
        registry.register(
            "store_bytes",
            "Size of the store on disk, as of the last scrape",
            store_bytes.clone(),
        );
        let pruned_runs = Counter::default();
        registry.register(
            "pruned_runs",
            "Finished runs removed by retention ([store] keep_runs, keep_days)",
            pruned_runs.clone(),
        );
        let pruned_logs = Counter::default();
        registry.register(
            "pruned_logs",
            "Runs whose log was removed by retention ([store] keep_logs_days)",
            pruned_logs.clone(),
        );
        Self {
            registry: Arc::new(registry),
            store_bytes,
            pruned_runs,
            pruned_logs,
            connections_open,
            connections,
            connections_at_cap,
            requests_timed_out,
            deliveries,
            intake_latency,
            queue_depth,
            runs_blocked,
            approvals,
            bumps,
            bump_conflicts,
            bump_pushes,
            runs,
            stage_durations,
            status_failures,
            deploy_seconds,
        }
    }

    pub fn observe_delivery(&self, labels: DeliveryLabels, seconds: f64) {
        self.deliveries.get_or_create(&labels).inc();
        self.intake_latency.get_or_create(&labels).observe(seconds);
    }

    /// `outcome`: `blocked` when a run is stored waiting, `approved` or `declined` after.
    pub fn observe_approval(&self, outcome: &'static str) {
        self.approvals
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    pub fn observe_bump(&self, outcome: &'static str) {
        self.bumps.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    pub fn observe_deployment(&self, environment: &str, seconds: f64) {
        self.deploy_seconds
            .get_or_create(&EnvironmentLabels {
                environment: environment.to_owned(),
            })
            .observe(seconds);
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}
