//! Services on the real engine: started on a network of the pipeline's own before its
//! first stage, reached by name, waited for until ready, shown with their output, and
//! removed with their network; a service that never gets ready ends the pipeline `error`.

use std::process::Command;

use super::{Server, app_repo, config_dir, finished, installation, push_payload};

const PIPELINE: &str = "services:
  - name: web
    image: IMAGE
    command: [sh, -c, \"mkdir -p /www && echo hello from $GREETING > /www/index.html && exec httpd -f -p 8080 -h /www\"]
    env: { GREETING: \"the ${GANTRY_BRANCH} service\" }
    ready: { port: 8080, timeout: 20s }
  - name: db
    image: IMAGE
    command: [sh, -c, \"echo db starting; sleep 1; mkdir -p /tmp; touch /tmp/ready; echo db up; exec sleep 600\"]
    ready: { cmd: test -f /tmp/ready, timeout: 20s }
stages:
  - name: fetch
    image: IMAGE
    run: wget -qO- http://web:8080/index.html
  - name: ping
    image: IMAGE
    run: ping -c 1 -W 2 db >/dev/null && echo db answers
";

/// What the engine still holds of a run: containers, volumes and networks with its label.
fn leftovers(label: &str) -> Vec<String> {
    let mut left = Vec::new();
    for kind in ["container", "volume", "network"] {
        let mut command = Command::new("docker");
        command.arg(kind).arg("ls").arg("-q");
        if kind == "container" {
            command.arg("-a");
        }
        let output = command
            .args(["--filter", &format!("label=gantry.run={label}")])
            .output()
            .unwrap();
        left.extend(
            String::from_utf8_lossy(&output.stdout)
                .lines()
                .map(|line| format!("{kind} {line}")),
        );
    }
    left
}

#[tokio::test]
async fn stages_reach_ready_services_by_name_and_see_their_logs() {
    let forge = app_repo(PIPELINE);
    let sha = forge.push("main");
    let (dir, config) = config_dir(&forge, |config| config);
    let server = Server::start(&config);
    let id = server.push(push_payload("main", &sha, "services")).await;
    let run = server.wait_for(id, "an end", finished).await;
    assert_eq!(run["state"], "success", "{run:#}");
    let stages = run["pipelines"][0]["stages"].as_array().unwrap();
    let rows: Vec<(&str, &str)> = stages
        .iter()
        .map(|s| (s["stage"].as_str().unwrap(), s["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        rows,
        [
            ("web (service)", "success"),
            ("db (service)", "success"),
            ("fetch", "success"),
            ("ping", "success")
        ]
    );
    let log = server.log(id).await;
    assert!(
        log.contains("[ci/fetch] hello from the main service"),
        "{log}"
    );
    assert!(log.contains("[ci/ping] db answers"), "{log}");
    assert!(log.contains("[ci/db (service)] db up"), "{log}");
    let label = format!(
        "{}-{id}.1",
        installation(&dir.path().join("gantry.db")).await
    );
    assert_eq!(leftovers(&label), Vec::<String>::new());
}

#[tokio::test]
async fn a_service_that_never_gets_ready_ends_the_pipeline_in_error_with_its_log() {
    let forge = app_repo(
        "services:
  - name: db
    image: IMAGE
    command: [sh, -c, \"echo cannot start: no disk; exec sleep 600\"]
    ready: { cmd: \"false\", timeout: 2s }
stages:
  - name: test
    image: IMAGE
    run: echo never
",
    );
    let sha = forge.push("main");
    let (dir, config) = config_dir(&forge, |config| config);
    let server = Server::start(&config);
    let id = server
        .push(push_payload("main", &sha, "broken service"))
        .await;
    let run = server.wait_for(id, "an end", finished).await;
    assert_eq!(run["state"], "error", "{run:#}");
    let pipeline = &run["pipelines"][0];
    assert_eq!(
        pipeline["description"], "db (service): not ready within 2s: `false` exited with code 1:",
        "{run:#}"
    );
    let stages = pipeline["stages"].as_array().unwrap();
    assert_eq!(
        (stages[0]["stage"].as_str(), stages[0]["state"].as_str()),
        (Some("db (service)"), Some("error"))
    );
    assert_eq!(
        (stages[1]["state"].as_str(), stages[1]["message"].as_str()),
        (Some("skipped"), Some("`db (service)` never got ready"))
    );
    let log = server.log(id).await;
    assert!(
        log.contains("[ci/db (service)] cannot start: no disk"),
        "{log}"
    );
    assert!(!log.contains("never\n"), "{log}");
    let label = format!(
        "{}-{id}.1",
        installation(&dir.path().join("gantry.db")).await
    );
    assert_eq!(leftovers(&label), Vec::<String>::new());
}
