#!/usr/bin/env bash
# Validation speed. Pipeline files: `gantry validate` (release build) on one 500-stage file and
# on 1,000 small files, timed by hyperfine (installed from Debian if missing, as root). Config
# repos: the `validate` stage's check on each repo of the corpus in tests/corpus (median and
# slowest of RUNS; `benches/validate.rs`, which also takes other folders as arguments).
#
#   scripts/bench-validate.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-20}

command -v hyperfine >/dev/null || { apt-get update -qq && apt-get install -y -qq hyperfine >/dev/null; }
cargo build --release --locked -q

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 - "$work" <<'PY'
import os, sys
work = sys.argv[1]
# One big file: 500 stages, each waiting on up to two earlier ones, with env, when, timeout.
lines = ["name: big", "on:", "  push: { branches: [main, 'release/*'] }", "  pull_request: {}", "env:", "  RUST_LOG: info", "stages:"]
for i in range(500):
    lines += [f"  - name: stage-{i}", "    image: busybox:latest", f"    run: echo stage {i} && test -n \"$GANTRY_COMMIT_SHA\""]
    if i >= 2:
        lines.append(f"    needs: [stage-{i - 1}, stage-{i - 2}]")
    lines += ["    env: { LEVEL: \"${GANTRY_BRANCH}-" + str(i) + "\" }", "    timeout: 10m", "    when: { event: [push, pull_request], branch: 'main' }"]
open(os.path.join(work, "big.yml"), "w").write("\n".join(lines) + "\n")
os.makedirs(os.path.join(work, "many"))
small = """on:
  push: {{ branches: [main] }}
stages:
  - name: test
    image: rust:1.95
    run: cargo test
  - name: image
    build:
      image: registry.example.com/acme/app{0}
      tags: ["${{GANTRY_COMMIT_SHA}}"]
"""
for i in range(1000):
    open(os.path.join(work, "many", f"p{i:04}.yml"), "w").write(small.format(i))
PY

echo "big.yml: $(wc -c <"$work/big.yml") bytes, 500 stages; many/: 1000 files of $(wc -c <"$work/many/p0000.yml") bytes"
target/release/gantry validate "$work/big.yml"
target/release/gantry validate "$work"/many/*.yml
many=$(printf '%s ' "$work"/many/*.yml)
hyperfine --warmup 3 --runs "$RUNS" -N \
  -n "500-stage file" "target/release/gantry validate $work/big.yml" \
  -n "1000 small files" "target/release/gantry validate $many" 2>&1 \
  | grep -v "^ *$"

echo
echo "The validate stage on the config-repo corpus (tests/corpus), paths **/*.yaml and **/*.yml, no exclude"
echo "(the tests exclude example folders and expect the real upstream mistakes: tests/corpus/SOURCES.md):"
BENCH_RUNS=$RUNS cargo bench --locked -q --bench validate
