#!/usr/bin/env bash
# GitOps bump speed on a local config repo of 1,000 manifest files (release build):
# the library path the service takes (one bump at a time, p50/p95; 50 bumps at once through
# one bumper and through 50), then `gantry bump` as a whole process, timed by hyperfine.
#
#   scripts/bench-bump.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-40}

command -v hyperfine >/dev/null || { apt-get update -qq && apt-get install -y -qq hyperfine >/dev/null; }
BENCH_RUNS=$RUNS cargo bench --locked -q --bench bump
cargo build --release --locked -q

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src"
for i in $(seq -w 0 999); do
  mkdir -p "$work/src/apps/svc$i"
  printf 'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: svc%s\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: registry.example.com/acme/svc%s:v0\n' "$i" "$i" \
    >"$work/src/apps/svc$i/deployment.yaml"
done
git -C "$work" init -q --bare config.git
git -C "$work/src" init -q
git -C "$work/src" add .
git -C "$work/src" -c user.name=b -c user.email=b@b commit -qm config
git -C "$work/src" push -q ../config.git HEAD:refs/heads/main
echo 0 >"$work/n"
# Each run writes a new tag, so each makes a commit and a push.
hyperfine --warmup 2 --runs "$RUNS" \
  -n "gantry bump (process, 1000-file repo)" \
  "n=\$((\$(cat $work/n)+1)); echo \$n >$work/n; target/release/gantry bump --repo $work/config.git --file apps/svc500/deployment.yaml --image registry.example.com/acme/svc500 --tag t\$n >/dev/null" 2>&1 \
  | grep -v "^ *$"
