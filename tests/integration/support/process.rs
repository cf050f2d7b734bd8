//! The real `gantry` binary as a child process, for tests that kill it or restart it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

/// The lines a child Gantry logged, as they arrive.
pub type LogLines = Arc<Mutex<Vec<String>>>;

/// Starts `gantry serve` with `args` (a role, say) on `config`, and returns the child and
/// the address it listens on, read from its JSON start-up log line.
pub fn spawn_gantry(args: &[&str], config: &Path) -> (Child, String) {
    let (child, address, _) = spawn(args, config, false);
    (child, address)
}

/// [`spawn_gantry`], keeping every line the child logs.
pub fn spawn_gantry_logged(args: &[&str], config: &Path) -> (Child, String, LogLines) {
    spawn(args, config, true)
}

fn spawn(args: &[&str], config: &Path, keep: bool) -> (Child, String, LogLines) {
    gantry::forge::install_crypto_provider();
    let mut child = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .arg("serve")
        .args(args)
        .arg("-c")
        .arg(config)
        .env("GANTRY__LOG__FORMAT", "json")
        .env("RUST_LOG", "info")
        // A child a test kills leaves its checkouts behind: in the test's folder (beside the
        // config) they go when the test's folder does, instead of piling up in /tmp.
        .env(
            "TMPDIR",
            config.parent().expect("the config is in the test's folder"),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gantry starts");
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let log = LogLines::default();
    let address = loop {
        let line = lines.next().expect("gantry logged its address").unwrap();
        if keep {
            log.lock().unwrap().push(line.clone());
        }
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if entry["fields"]["message"] == "gantry listening" {
            break entry["fields"]["address"].as_str().unwrap().to_owned();
        }
    };
    // Keep draining the log so the child never blocks on a full pipe.
    let kept = log.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if keep {
                kept.lock().unwrap().push(line);
            }
        }
    });
    (child, format!("http://{address}"), log)
}
