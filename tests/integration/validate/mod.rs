//! `gantry validate` as a user runs it: broken pipeline files, each with the exact message
//! and location it must report; and the example pipelines, which must pass.

use std::path::Path;
use std::process::Command;

/// (what is wrong, the file, the exact output; `FILE` stands for the file's path).
const BROKEN: &[(&str, &str, &str)] = &[
    (
        "YAML syntax error",
        "stages: [\n",
        "FILE:1:9: unclosed bracket '['",
    ),
    (
        "tab indentation",
        "stages:\n\t- name: a\n",
        "FILE:2:2: tabs disallowed within this context (block indentation)",
    ),
    (
        "no stages key",
        "name: web\n",
        "FILE:1:1: missing key `stages`",
    ),
    (
        "empty stage list",
        "stages: []\n",
        "FILE:1:9: a pipeline needs at least one stage",
    ),
    (
        "unknown top-level key with a near one",
        "stage:\n  - name: a\n",
        "FILE:1:1: unknown key `stage`; did you mean `stages`?",
    ),
    (
        "unknown stage key `need`",
        "stages:\n  - name: a\n    image: x\n    run: 'true'\n  - name: b\n    image: x\n    run: 'true'\n    need: [a]\n",
        "FILE:8:5: unknown key `need`; did you mean `needs`?",
    ),
    (
        "misspelt image",
        "stages:\n  - name: a\n    imgae: alpine\n    run: 'true'\n",
        "FILE:3:5: unknown key `imgae`; did you mean `image`?",
    ),
    (
        "unknown key far from any",
        "stages:\n  - name: a\n    image: x\n    run: 'true'\n    colour: red\n",
        "FILE:5:5: unknown key `colour`; expected one of name, image, run, build, validate, bump, needs, when, env, secrets, timeout, retries, matrix, max_parallel",
    ),
    (
        "duplicate key",
        "stages:\n  - name: a\n    image: x\n    image: y\n    run: 'true'\n",
        "FILE:4:5: duplicate key `image`",
    ),
    (
        "duplicate stage names",
        "stages:\n  - name: a\n    image: x\n    run: 'true'\n  - name: a\n    image: x\n    run: 'true'\n",
        "FILE:5:11: stage name `a` is used twice",
    ),
    (
        "stage with no kind",
        "stages:\n  - name: a\n    image: x\n",
        "FILE:2:11: stage `a` has none of `run`, `build`, `validate` or `bump`\nFILE:3:12: `image` is only for `run` stages",
    ),
    (
        "stage with two kinds",
        "stages:\n  - name: a\n    image: x\n    run: 'true'\n    validate: {paths: ['*.yaml']}\n",
        "FILE:2:11: stage `a` has both `run` and `validate`; a stage does one thing",
    ),
    (
        "run without image",
        "stages:\n  - name: a\n    run: make\n",
        "FILE:2:11: stage `a` has `run` but no `image` to run it in",
    ),
    (
        "image on a build stage",
        "stages:\n  - name: a\n    image: x\n    build: {image: registry.local/app}\n",
        "FILE:3:12: `image` is only for `run` stages",
    ),
    (
        "empty run",
        "stages:\n  - name: a\n    image: x\n    run: ''\n",
        "FILE:4:10: `run` is empty",
    ),
    (
        "needs a missing stage, with a near name",
        "stages:\n  - name: build\n    image: x\n    run: 'true'\n  - name: test\n    image: x\n    run: 'true'\n    needs: [biuld]\n",
        "FILE:8:13: `needs` names no stage `biuld`; did you mean `build`?",
    ),
    (
        "needs itself",
        "stages:\n  - name: a\n    image: x\n    run: 'true'\n    needs: [a]\n",
        "FILE:5:13: stage `a` needs itself",
    ),
    (
        "cycle through needs",
        "stages:\n  - name: a\n    image: x\n    run: 'true'\n    needs: [c]\n  - name: b\n    image: x\n    run: 'true'\n    needs: [a]\n  - name: c\n    image: x\n    run: 'true'\n    needs: [b]\n",
        "FILE:2:11: stages wait for each other in a cycle: `a` → `c` → `b` → `a` (a stage without `needs` waits for the one before it)",
    ),
    (
        "cycle through file order",
        "stages:\n  - name: a\n    image: x\n    run: 'true'\n    needs: [b]\n  - name: b\n    image: x\n    run: 'true'\n",
        "FILE:2:11: stages wait for each other in a cycle: `a` → `b` → `a` (a stage without `needs` waits for the one before it)",
    ),
    (
        "bad duration",
        "stages:\n  - name: a\n    image: x\n    run: 'true'\n    timeout: 20 minutes please\n",
        "FILE:5:14: `20 minutes please` is not a duration like `30s`, `20m` or `1h 30m`",
    ),
    (
        "zero duration",
        "stages:\n  - name: a\n    image: x\n    run: 'true'\n    timeout: 0s\n",
        "FILE:5:14: `timeout` must be longer than 0s",
    ),
    (
        "timeout over the limit",
        "stages:\n  - name: a\n    image: x\n    run: 'true'\n    timeout: 3d\n",
        "FILE:5:14: `timeout` of `3d` is over the 24h limit",
    ),
    (
        "negative retries",
        "stages:\n  - name: a\n    image: x\n    run: 'true'\n    retries: -1\n",
        "FILE:5:14: expected a whole number of 0 or more",
    ),
    (
        "too many retries",
        "stages:\n  - name: a\n    image: x\n    run: 'true'\n    retries: 9\n",
        "FILE:5:14: `retries` is at most 5",
    ),
    (
        "bad branch glob",
        "on:\n  push: {branches: ['release/[0-9']}\nstages:\n  - name: a\n    image: x\n    run: 'true'\n",
        "FILE:2:21: `release/[0-9` is not a valid glob: unclosed character class; missing ']'",
    ),
    (
        "bad path glob in validate",
        "stages:\n  - name: a\n    validate: {paths: 'deploy/{a,b'}\n",
        "FILE:3:23: `deploy/{a,b` is not a valid glob: unclosed alternate group; missing '}' (maybe escape '{' with '[{]'?)",
    ),
    (
        "unknown variable in tags, with a near one",
        "stages:\n  - name: image\n    build:\n      image: registry.local/app\n      tags: ['${GANTRY_COMIT_SHA}']\n",
        "FILE:5:14: unknown variable `${GANTRY_COMIT_SHA}`; did you mean `${GANTRY_COMMIT_SHA}`?",
    ),
    (
        "unknown variable in env",
        "env:\n  URL: https://${HOST}/x\nstages:\n  - name: a\n    image: x\n    run: 'true'\n",
        "FILE:2:8: unknown variable `${HOST}`",
    ),
    (
        "unterminated variable",
        "stages:\n  - name: a\n    image: x\n    run: 'true'\n    env: {A: '${GANTRY_BRANCH'}\n",
        "FILE:5:14: `${` without a closing `}` in `${GANTRY_BRANCH`",
    ),
    (
        "bump without a build before it",
        "stages:\n  - name: deploy\n    bump: {repo: 'file:///cfg.git', file: app.yaml}\n",
        "FILE:2:11: bump stage `deploy` has no `build` stage before it to take the image from",
    ),
    (
        "bump of an image no build builds",
        "stages:\n  - name: image\n    build: {image: registry.local/app}\n  - name: deploy\n    bump: {repo: 'file:///cfg.git', file: app.yaml, image: registry.local/other}\n",
        "FILE:4:11: bump stage `deploy` bumps `registry.local/other`, which no build stage before it builds",
    ),
    (
        "bump beside, not after, the build",
        "stages:\n  - name: image\n    build: {image: registry.local/app}\n  - name: deploy\n    needs: []\n    bump: {repo: 'file:///cfg.git', file: app.yaml}\n",
        "FILE:4:11: bump stage `deploy` has no `build` stage before it to take the image from",
    ),
    (
        "bump file outside the repo",
        "stages:\n  - name: image\n    build: {image: registry.local/app}\n  - name: deploy\n    bump: {repo: 'file:///cfg.git', file: ../../etc/passwd}\n",
        "FILE:5:43: bump file `../../etc/passwd` must be a relative path inside the repository",
    ),
    (
        "unknown bump mode",
        "stages:\n  - name: image\n    build: {image: registry.local/app}\n  - name: deploy\n    bump: {repo: r, file: f.yaml, mode: merge}\n",
        "FILE:5:41: unknown value `merge`; expected one of commit, pull_request",
    ),
    (
        "unknown bump pin",
        "stages:\n  - name: image\n    build: {image: registry.local/app}\n  - name: deploy\n    bump: {repo: r, file: f.yaml, pin: sha}\n",
        "FILE:5:40: unknown value `sha`; expected one of tag, digest, tag@digest",
    ),
    (
        "image name with a tag",
        "stages:\n  - name: image\n    build: {image: 'registry.local/App:latest'}\n",
        "FILE:3:20: `registry.local/App:latest` is not an image name like `registry.example.com/team/app` (lowercase, no tag: tags go in `tags`)",
    ),
    (
        "stage name with shell characters",
        "stages:\n  - name: 'a; rm -rf /'\n    image: x\n    run: 'true'\n",
        "FILE:2:11: stage name `a; rm -rf /` must be 1 to 63 letters, digits, `-`, `_` or `.`, starting with a letter or digit",
    ),
    (
        "unknown event in when",
        "stages:\n  - name: a\n    image: x\n    run: 'true'\n    when: {event: merge}\n",
        "FILE:5:19: unknown event `merge`; expected push, pull_request, tag, manual or schedule",
    ),
    (
        "empty when",
        "stages:\n  - name: a\n    image: x\n    run: 'true'\n    when: {}\n",
        "FILE:5:11: `when` sets no condition; use `event`, `branch` or `tag`",
    ),
    (
        "on with no event",
        "on: {}\nstages:\n  - name: a\n    image: x\n    run: 'true'\n",
        "FILE:1:5: `on` names no event; use `push`, `pull_request`, `manual` and/or `schedule`",
    ),
    (
        "secret listed twice",
        "stages:\n  - name: a\n    image: x\n    run: 'true'\n    secrets: [TOKEN, TOKEN]\n",
        "FILE:5:22: secret `TOKEN` is listed twice",
    ),
    (
        "env name that is no variable",
        "stages:\n  - name: a\n    image: x\n    run: 'true'\n    env: {'MY-VAR': x}\n",
        "FILE:5:21: `MY-VAR` is not a valid variable name (letters, digits and `_`)",
    ),
    (
        "wrong type for run",
        "stages:\n  - name: a\n    image: x\n    run: [make, test]\n",
        "FILE:4:10: expected a string",
    ),
    (
        "context escaping the repo",
        "stages:\n  - name: image\n    build: {image: registry.local/app, context: /}\n",
        "FILE:3:49: build context `/` must be a relative path inside the repository",
    ),
    (
        "several findings at once, in line order",
        "stages:\n  - name: a\n    image: x\n    run: 'true'\n    timeout: soon\n  - name: b\n    image: x\n    run: 'true'\n    needs: [zz]\n",
        "FILE:5:14: `soon` is not a duration like `30s`, `20m` or `1h 30m`\nFILE:9:13: `needs` names no stage `zz`",
    ),
    (
        "alias bomb in unknown keys: refused before any expansion",
        "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\nstages: *d\n",
        "FILE:1:1: unknown key `a`; expected one of name, on, env, runs_on, services, cache, stages",
    ),
    (
        "too many aliases",
        "env: {A: &a X}\nstages:\n  - name: a\n    image: x\n    run: 'true'\n    secrets: [ALIASES]\n",
        "FILE:6:1039: refused: more than 256 aliases (`*name`); such files are refused to bound memory and time",
    ),
];

fn gantry_validate(args: &[&Path]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .arg("validate")
        .args(args)
        .output()
        .expect("gantry runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn each_broken_file_reports_its_exact_message_and_location() {
    assert!(BROKEN.len() >= 30);
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (index, (what, yaml, expected)) in BROKEN.iter().enumerate() {
        let path = dir.path().join(format!("case{index}.yml"));
        let yaml = yaml.replace("ALIASES", &vec!["*a"; 300].join(", "));
        std::fs::write(&path, yaml).unwrap();
        let (code, stdout, _) = gantry_validate(&[&path]);
        let shown = path.display().to_string();
        let actual = stdout.trim_end().replace(&shown, "FILE");
        let matches = actual == *expected;
        if code != 1 || !matches {
            failures.push(format!(
                "{what} (exit {code}):\n  expected: {expected}\n  actual:   {actual}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        BROKEN.len(),
        failures.join("\n")
    );
}

#[test]
fn example_pipelines_pass() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    let refs: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let (code, stdout, stderr) = gantry_validate(&refs);
    assert_eq!((code, stdout.as_str()), (0, ""), "{stderr}");
    assert!(
        stderr.contains(&format!("{} files checked, 0 errors", files.len())),
        "{stderr}"
    );
}

#[test]
fn validate_defaults_to_the_gantry_folder_and_fails_only_the_broken_file() {
    let dir = tempfile::tempdir().unwrap();
    let pipelines = dir.path().join(".gantry");
    std::fs::create_dir(&pipelines).unwrap();
    std::fs::write(
        pipelines.join("good.yml"),
        "stages:\n  - name: a\n    image: x\n    run: 'true'\n",
    )
    .unwrap();
    std::fs::write(pipelines.join("bad.yaml"), "stages:\n  - name: a\n").unwrap();
    std::fs::write(pipelines.join("notes.txt"), "not a pipeline").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .arg("validate")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        ".gantry/bad.yaml:2:11: stage `a` has none of `run`, `build`, `validate` or `bump`\n"
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("2 files checked, 1 error"));
}

#[test]
fn schema_is_json_that_names_the_format() {
    let output = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(["validate", "--schema"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(schema["title"], "Gantry pipeline");
    assert_eq!(schema["required"], serde_json::json!(["stages"]));
}

#[test]
fn oversized_file_is_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.yml");
    let mut text = String::from("stages:\n");
    while text.len() <= gantry::pipeline::MAX_FILE_BYTES {
        text.push_str("  - name: a\n    image: x\n    run: 'true'\n");
    }
    std::fs::write(&path, &text).unwrap();
    let (code, stdout, _) = gantry_validate(&[&path]);
    assert_eq!(code, 1);
    assert!(
        stdout.contains(":1:1: file is ") && stdout.contains("limited to 1048576"),
        "{stdout}"
    );
}

#[test]
fn deep_nesting_is_refused_fast() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deep.yml");
    let text = format!("stages: {}{}\n", "[".repeat(10_000), "]".repeat(10_000));
    std::fs::write(&path, &text).unwrap();
    let started = std::time::Instant::now();
    let (code, stdout, _) = gantry_validate(&[&path]);
    assert_eq!(code, 1);
    assert!(
        stdout.starts_with(&format!("{}:1:", path.display())),
        "{stdout}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}
