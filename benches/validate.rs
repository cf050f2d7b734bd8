//! The `validate` stage on real config repos: time per repo (median and slowest of many
//! runs) for each repo of the corpus the tests keep (`tests/corpus/`), or for the folders
//! given as arguments. For those, every finding is printed too, so a run on a new repo doubles
//! as a look for false alarms (the corpus's own findings are the tests' business). Run by
//! `scripts/bench-validate.sh`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use gantry::gitops::validate::check_tree;
use gantry::pipeline::{FileSelection, Pattern};

fn main() {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    let mut repos: Vec<PathBuf> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .map(PathBuf::from)
        .collect();
    let show_findings = !repos.is_empty();
    if repos.is_empty() {
        let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
        repos = std::fs::read_dir(&corpus)
            .expect("tests/corpus")
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.is_dir())
            .collect();
        repos.sort();
    }
    let selection = FileSelection::from(vec![
        Pattern::new("**/*.yaml").unwrap(),
        Pattern::new("**/*.yml").unwrap(),
    ]);
    println!(
        "{:<48} {:>6} {:>8} {:>9} {:>9}",
        "repo", "files", "findings", "median", "slowest"
    );
    for repo in &repos {
        let report = check_tree(repo, &selection).expect("the repo reads");
        if show_findings {
            for finding in &report.findings {
                println!("  {finding}");
            }
        }
        let mut times: Vec<Duration> = (0..runs)
            .map(|_| {
                let started = Instant::now();
                check_tree(repo, &selection).expect("the repo reads");
                started.elapsed()
            })
            .collect();
        times.sort();
        let name = repo.file_name().unwrap_or_default().to_string_lossy();
        println!(
            "{name:<48} {:>6} {:>8} {:>7.1}ms {:>7.1}ms",
            report.files_checked,
            report.findings.len(),
            times[times.len() / 2].as_secs_f64() * 1e3,
            times[times.len() - 1].as_secs_f64() * 1e3,
        );
        if show_findings {
            println!("  {}", report.summary());
        }
    }
}
