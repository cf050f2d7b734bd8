//! `matrix:`: expansion, names, substitution, needs on the base name, and the checks of a
//! broken matrix at its `file:line:col`.

use gantry::pipeline::{ParallelGroup, StageKind};

use super::{errors, pipeline};

const MATRIX: &str = "stages:
  - name: test
    image: rust:${matrix.rust}
    matrix:
      rust: [\"1.80\", stable]
      db: [pg15, pg16]
      exclude: [{ rust: \"1.80\", db: pg15 }]
      include: [{ rust: nightly, db: pg16 }]
    max_parallel: 2
    env: { DATABASE: \"${matrix.db}\" }
    run: cargo +${matrix.rust} test
  - name: report
    image: busybox
    run: echo done
";

#[test]
fn a_matrix_expands_into_named_stages_that_needs_wait_for_together() {
    let pipeline = pipeline(MATRIX);
    let names: Vec<&str> = pipeline.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "test (rust=1.80, db=pg16)",
            "test (rust=stable, db=pg15)",
            "test (rust=stable, db=pg16)",
            "test (rust=nightly, db=pg16)",
            "report"
        ]
    );
    let StageKind::Run { image, script } = &pipeline.stages[1].action else {
        panic!("a run stage");
    };
    assert_eq!(image, "rust:stable");
    assert_eq!(script, "cargo +stable test");
    let env = &pipeline.stages[1].env;
    for pair in [
        ("DATABASE", "pg15"),
        ("MATRIX_RUST", "stable"),
        ("MATRIX_DB", "pg15"),
    ] {
        assert!(
            env.contains(&(pair.0.to_owned(), pair.1.to_owned())),
            "{pair:?} in {env:?}"
        );
    }
    assert_eq!(
        pipeline.stages[4].needs,
        [0, 1, 2, 3],
        "report waits for all"
    );
    assert!(
        pipeline.stages[..4]
            .iter()
            .all(|s| s.parallel == Some(ParallelGroup { id: 0, max: 2 }))
    );
    assert_eq!(pipeline.stages[4].parallel, None);
}

#[test]
fn broken_matrices_are_reported_where_they_are_written() {
    let values: Vec<String> = (0..17).map(|i| i.to_string()).collect();
    let huge = format!(
        "stages:\n  - name: t\n    image: x\n    run: 'true'\n    matrix:\n      a: [{0}]\n      b: [{0}]\n",
        values.join(", ")
    );
    assert_eq!(
        errors(&huge),
        [".gantry/test.yml:6:7: the matrix expands to 289 stages; a matrix is limited to 256"]
    );
    let yaml = "stages:
  - name: t
    image: x
    run: echo ${matrix.os}
    matrix:
      rust: [a]
      exclude: [{ rsut: a }]
  - name: v
    image: x
    run: echo ${matrix.os}
    matrix:
      rust: [a]
  - name: u
    image: ${matrix.rust}
    run: 'true'
    max_parallel: 2
  - name: b
    validate: { paths: ['*.yml'] }
    matrix: { x: [1] }
";
    assert_eq!(
        errors(yaml),
        [
            ".gantry/test.yml:7:25: the matrix has no axis `rsut`; did you mean `rust`?",
            ".gantry/test.yml:10:10: the matrix has no axis `os`",
            ".gantry/test.yml:14:12: `${matrix.rust}` is used, but the stage has no `matrix`",
            ".gantry/test.yml:16:19: `max_parallel` is only for stages with a `matrix`",
            ".gantry/test.yml:19:13: `matrix` is only for `run` stages",
        ]
    );
    let bad_value =
        "stages:\n  - name: t\n    image: x\n    run: 'true'\n    matrix:\n      os: [\"a b\"]\n";
    assert_eq!(
        errors(bad_value),
        [
            ".gantry/test.yml:6:12: matrix value `a b` must be 1 to 64 letters, digits, `.`, `_`, `-`, `/`, `:` or `+`"
        ]
    );
    let excluded = "stages:\n  - name: t\n    image: x\n    run: 'true'\n    matrix:\n      os: [a]\n      exclude: [{ os: a }]\n";
    assert_eq!(
        errors(excluded),
        [".gantry/test.yml:6:7: the matrix excludes every combination"]
    );
}
