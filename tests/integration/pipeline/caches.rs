//! `cache:` as read and checked, and its keys as planned: `${VAR}`s expanded, `${hash:…}`
//! left for the runner.

use super::{errors, github_push, plan, secrets};

#[test]
fn cache_keys_are_planned_with_the_runs_variables() {
    let pipeline = super::pipeline(
        "cache:
  - key: cargo-${GANTRY_BRANCH}-${hash:Cargo.lock}
    restore_keys: [\"cargo-${GANTRY_BRANCH}-\", \"cargo-\"]
    paths: [target/, /usr/local/cargo/registry]
stages:
  - name: t
    image: x
    run: 'true'
",
    );
    let planned = plan(&pipeline, &github_push(), &secrets())
        .unwrap()
        .unwrap();
    let cache = &planned.caches[0];
    assert_eq!(cache.key, "cargo-master-${hash:Cargo.lock}");
    assert_eq!(cache.restore_keys, ["cargo-master-", "cargo-"]);
    assert_eq!(cache.paths, ["target", "/usr/local/cargo/registry"]);
}

#[test]
fn broken_caches_are_reported_where_they_are_written() {
    let found = errors(
        "cache:
  - key: a-${hash:../etc/passwd}
    paths: [../up]
  - key: b-${NOPE}
    paths: [/]
  - key: b-${NOPE}
    paths: [x]
stages:
  - name: t
    image: x
    run: 'true'
",
    );
    assert_eq!(
        found,
        [
            ".gantry/test.yml:2:10: `${hash:…}` hashes files of the checkout; `../etc/passwd` is not a relative path inside it",
            ".gantry/test.yml:3:13: cache path `../up` must be a folder inside the checkout, or an absolute path other than `/`",
            ".gantry/test.yml:4:10: unknown variable `${NOPE}`",
            ".gantry/test.yml:5:13: cache path `/` must be a folder inside the checkout, or an absolute path other than `/`",
            ".gantry/test.yml:6:10: unknown variable `${NOPE}`",
            ".gantry/test.yml:6:10: cache key `b-${NOPE}` is used twice",
        ]
    );
}
