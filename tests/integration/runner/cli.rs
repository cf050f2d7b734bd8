//! `gantry run` as a user runs it.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::runner::checkout;

fn gantry_run(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .arg("run")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

const TWO_PIPELINES: &[(&str, &str)] = &[
    (
        ".gantry/good.yml",
        "stages:\n  - name: hello\n    image: IMAGE\n    run: echo hello from $GANTRY_BRANCH\n",
    ),
    (
        ".gantry/bad.yml",
        "stages:\n  - name: boom\n    image: IMAGE\n    run: echo going down; exit 4\n",
    ),
];

#[test]
fn output_is_prefixed_and_the_exit_code_says_whether_all_passed() {
    let dir = checkout(TWO_PIPELINES);
    let (code, stdout, stderr) = gantry_run(dir.path(), &["--branch", "feature/x"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stdout.contains("[good/hello] hello from feature/x\n"),
        "{stdout}"
    );
    assert!(stdout.contains("[bad/boom] going down\n"), "{stdout}");
    assert!(stderr.contains("▶ good/hello started"), "{stderr}");
    assert!(stderr.contains("✘ bad/boom failure in"), "{stderr}");
    let summary: Vec<&str> = stderr
        .lines()
        .skip_while(|l| !l.starts_with("STAGE"))
        .collect();
    assert!(
        summary[1].starts_with("bad/boom    failure") && summary[1].ends_with("exit code 4"),
        "{summary:?}"
    );
    assert!(summary[2].starts_with("good/hello  success"), "{summary:?}");

    let (code, stdout, _) = gantry_run(dir.path(), &["--pipeline", "good"]);
    assert_eq!(code, 0);
    assert!(!stdout.contains("[bad/"));
}

#[test]
fn a_broken_pipeline_file_is_reported_and_fails_the_run() {
    let dir = checkout(&[(".gantry/oops.yml", "stages:\n  - name: a\n    imgae: x\n")]);
    let (code, _, stderr) = gantry_run(dir.path(), &[]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("✘ .gantry/oops.yml:3:5: unknown key `imgae`; did you mean `image`?"),
        "{stderr}"
    );
}

#[test]
fn a_stage_printing_200_mb_keeps_memory_flat() {
    // 200 MiB of 100-byte lines: 2 Mi lines through the log path.
    let dir = checkout(&[(
        ".gantry/loud.yml",
        "stages:\n  - name: loud\n    image: IMAGE\n    run: yes 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' | head -c 209715200\n",
    )]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .arg("run")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut peak_kib = 0u64;
    loop {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            for line in status.lines() {
                if let Some(value) = line.strip_prefix("VmHWM:") {
                    peak_kib = peak_kib.max(
                        value
                            .trim()
                            .trim_end_matches(" kB")
                            .trim()
                            .parse()
                            .unwrap_or(0),
                    );
                }
            }
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(peak_kib > 0, "could not read the peak memory");
    assert!(
        peak_kib < 64 * 1024,
        "peak resident memory {peak_kib} KiB for 200 MiB of output"
    );
}

#[test]
fn interrupting_cancels_the_run_and_removes_what_it_created() {
    let dir = checkout(&[(
        ".gantry/long.yml",
        "stages:\n  - name: wait\n    image: IMAGE\n    run: echo started; sleep 300\n",
    )]);
    let child = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .arg("run")
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Wait until the stage's container runs, then press Ctrl-C.
    let mut seen = false;
    for _ in 0..100 {
        let ps = Command::new("docker")
            .args(["ps", "--format", "{{.Labels}}"])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&ps.stdout).contains(&format!("gantry.run=local-{pid}-")) {
            seen = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(seen, "the stage container never started");
    let started = std::time::Instant::now();
    Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("interrupted: stopping stages and cleaning up"),
        "{stderr}"
    );
    assert!(stderr.contains("long/wait canceled"), "{stderr}");
    let containers = Command::new("docker")
        .args(["ps", "-a", "--format", "{{.Labels}}"])
        .output()
        .unwrap();
    let volumes = Command::new("docker")
        .args(["volume", "ls", "--format", "{{.Name}}"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&containers.stdout).contains(&format!("gantry.run=local-{pid}-"))
    );
    assert!(!String::from_utf8_lossy(&volumes.stdout).contains(&format!("gantry-local-{pid}-")));
}

/// In a terminal (tmux), the live board of running stages stays at the bottom: no log line
/// shares a line with it, on screen or in the scrollback, and the board is gone at the end.
#[test]
fn on_a_terminal_log_lines_never_share_a_line_with_the_board() {
    let dir = checkout(&[(
        ".gantry/ci.yml",
        "stages:\n  \
         - name: lint\n    image: IMAGE\n    run: for i in $(seq 1 30); do echo lint $i; sleep 0.1; done\n  \
         - name: unit\n    image: IMAGE\n    needs: []\n    run: for i in $(seq 1 30); do echo unit $i; sleep 0.1; done\n",
    )]);
    let session = format!("gantry-{}", uuid::Uuid::new_v4().simple());
    let tmux = |args: &[&str]| {
        Command::new("tmux")
            .args(args)
            .output()
            .expect("tmux runs (scripts/test-services.sh installs it)")
    };
    let command = format!(
        "GANTRY_TEST_IMAGE={} {} run {}; echo gantry-exited $?; sleep 60",
        crate::runner::image(),
        env!("CARGO_BIN_EXE_gantry"),
        dir.path().display()
    );
    let started = tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "160",
        "-y",
        "40",
        &command,
    ]);
    assert!(started.status.success(), "{started:?}");
    let capture = || {
        String::from_utf8_lossy(
            &tmux(&["capture-pane", "-p", "-J", "-S", "-", "-t", &session]).stdout,
        )
        .into_owned()
    };
    let mut screens = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let screen = capture();
        let done = screen.contains("gantry-exited");
        screens.push(screen);
        if done {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{:?}", screens.last());
        std::thread::sleep(Duration::from_millis(150));
    }
    tmux(&["kill-session", "-t", &session]);
    let last = screens.last().unwrap();
    assert!(last.contains("gantry-exited 0"), "{last}");
    assert!(
        screens.iter().any(|screen| screen.contains('⏵')),
        "the board showed while stages ran"
    );
    for screen in &screens {
        for line in screen.lines() {
            assert!(
                !(line.contains("[ci/") && line.contains('⏵')),
                "a log line shares a line with the board: {line:?}\n{screen}"
            );
        }
    }
    assert!(last.contains("[ci/lint] lint 30") && last.contains("[ci/unit] unit 30"));
    assert!(
        !last.contains('⏵'),
        "the board is cleared at the end:\n{last}"
    );
}
