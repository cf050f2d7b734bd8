//! GitOps bump speed on a config repo of 1,000 manifest files (a bare repo on local disk):
//! one bump at a time (p50/p95 over many), and 50 bumps at once through one bumper (the
//! service's path: one lane, batched) and through 50 bumpers (separate processes' worst
//! case: every push races). Run by `scripts/bench-bump.sh`.

use std::time::{Duration, Instant};

// The bench uses the repo helper, not all of it.
#[allow(dead_code)]
#[path = "../tests/integration/support/git.rs"]
mod git_cli;

use gantry::git::GitAuth;
use gantry::gitops::bump::{Author, BumpRequest, Bumper, ConfigRepo};
use gantry::gitops::edit::NewImage;
use gantry::pipeline::BumpMode;
use git_cli::Repo;

const FILES: usize = 1_000;

fn manifest(i: usize) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: svc{i:04}\n  labels: {{ app: svc{i:04} }}\n\
         spec:\n  replicas: 2\n  selector:\n    matchLabels: {{ app: svc{i:04} }}\n  template:\n    metadata:\n\
         \x20     labels: {{ app: svc{i:04} }}\n    spec:\n      containers:\n        - name: app\n\
         \x20         image: registry.example.com/acme/svc{i:04}:v0 # bumped by Gantry\n\
         \x20         ports: [{{ containerPort: 8080 }}]\n          resources:\n\
         \x20           limits: {{ cpu: 500m, memory: 256Mi }}\n"
    )
}

fn request(url: &str, i: usize, tag: &str) -> BumpRequest {
    BumpRequest {
        repo: ConfigRepo {
            url: url.to_owned(),
            branch: "main".into(),
        },
        file: format!("apps/svc{i:04}/deployment.yaml"),
        new: NewImage {
            image: format!("registry.example.com/acme/svc{i:04}"),
            tag: Some(tag.to_owned()),
            digest: None,
            key: None,
        },
        mode: BumpMode::Commit,
        forge: None,
        source: None,
    }
}

fn bumper() -> Bumper {
    Bumper::new(
        Author::parse("Bench <bench@example.com>").unwrap(),
        GitAuth::None,
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    // `cargo test --all-targets` runs bench binaries without `--bench`: nothing to do then.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let files: Vec<(String, String)> = (0..FILES)
        .map(|i| (format!("apps/svc{i:04}/deployment.yaml"), manifest(i)))
        .collect();
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    let config = Repo::new(&files);
    let url = config.url();
    println!("config repo: {FILES} manifest files, one commit, bare, {url}");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let one = bumper();
        let mut times = Vec::with_capacity(runs);
        for run in 0..=runs {
            let started = Instant::now();
            let outcome = one.bump(request(&url, 500, &format!("r{run}"))).await.unwrap();
            assert!(outcome.bumped.commit.is_some());
            if run > 0 {
                times.push(started.elapsed()); // the first is a warm-up
            }
        }
        times.sort();
        println!(
            "one bump at a time ({runs} runs): p50 {:.1} ms, p95 {:.1} ms, min {:.1} ms, max {:.1} ms",
            percentile(&times, 0.5).as_secs_f64() * 1e3,
            percentile(&times, 0.95).as_secs_f64() * 1e3,
            times[0].as_secs_f64() * 1e3,
            times[times.len() - 1].as_secs_f64() * 1e3,
        );

        for (label, shared) in [("one bumper (service)", true), ("50 bumpers (racing)", false)] {
            let shared_bumper = bumper();
            let started = Instant::now();
            let tasks: Vec<_> = (0..50)
                .map(|i| {
                    let bumper = if shared { shared_bumper.clone() } else { bumper() };
                    let request = request(&url, i, &format!("c-{label:.3}-{i}").replace(' ', ""));
                    tokio::spawn(async move { bumper.bump(request).await })
                })
                .collect();
            let mut attempts = 0;
            let mut commits = std::collections::HashSet::new();
            for task in tasks {
                let outcome = task.await.unwrap().unwrap();
                attempts += outcome.attempts;
                commits.insert(outcome.bumped.commit.unwrap());
            }
            println!(
                "50 concurrent bumps, {label}: {:.2} s, {} commits, push attempts summed over bumps: {attempts}",
                started.elapsed().as_secs_f64(),
                commits.len()
            );
        }
    });
}
