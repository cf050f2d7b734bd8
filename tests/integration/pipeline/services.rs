//! `services:` as read and checked: names that are host names, one readiness check each,
//! bounded timeouts, and each mistake at its `file:line:col`.

use gantry::pipeline::ReadyCheck;
use std::time::Duration;

use super::{errors, pipeline};

#[test]
fn services_are_read_with_their_readiness() {
    let pipeline = pipeline(
        "services:
  - name: db
    image: postgres:16
    env: { POSTGRES_PASSWORD: test }
    command: [postgres, -c, fsync=off]
    ready: { cmd: pg_isready -U postgres, timeout: 90s }
  - name: cache
    image: redis:7
    ready: { port: 6379 }
  - name: plain
    image: busybox
stages:
  - name: t
    image: x
    run: 'true'
",
    );
    let ready: Vec<(&str, &ReadyCheck, Duration)> = pipeline
        .services
        .iter()
        .map(|s| (s.name.as_str(), &s.ready.check, s.ready.timeout))
        .collect();
    assert_eq!(
        ready,
        [
            (
                "db",
                &ReadyCheck::Command("pg_isready -U postgres".into()),
                Duration::from_secs(90)
            ),
            ("cache", &ReadyCheck::Port(6379), Duration::from_secs(60)),
            ("plain", &ReadyCheck::Running, Duration::from_secs(60)),
        ]
    );
    assert_eq!(
        pipeline.services[0].command.as_deref(),
        Some(&["postgres".to_owned(), "-c".into(), "fsync=off".into()][..])
    );
}

#[test]
fn broken_services_are_reported_where_they_are_written() {
    let found = errors(
        "services:
  - name: Db_1
    image: x
    ready: { cmd: x, port: 1 }
  - name: db
    image: x
    ready: { timeout: 2h }
  - name: db
    image: x
    imgae: y
stages:
  - name: t
    image: x
    run: 'true'
",
    );
    assert_eq!(
        found,
        [".gantry/test.yml:10:5: unknown key `imgae`; did you mean `image`?"],
        "a shape error stops the reader first"
    );
    let found = errors(
        "services:
  - name: Db_1
    image: x
    ready: { cmd: x, port: 1 }
  - name: db
    image: x
    ready: { timeout: 2h }
  - name: db
    image: x
    env: { URL: \"${NOPE}\" }
stages:
  - name: t
    image: x
    run: 'true'
",
    );
    assert_eq!(
        found,
        [
            ".gantry/test.yml:2:11: service name `Db_1` is the host name stages reach it by: 1 to 63 lowercase letters, digits or `-`, starting with a letter",
            ".gantry/test.yml:4:28: `ready` takes `cmd` or `port`, not both",
            ".gantry/test.yml:7:12: `ready` needs `cmd` or `port`",
            ".gantry/test.yml:7:23: `ready.timeout` of `2h` is over the 30m limit",
            ".gantry/test.yml:8:11: service name `db` is used twice",
            ".gantry/test.yml:10:17: unknown variable `${NOPE}`",
        ]
    );
}
