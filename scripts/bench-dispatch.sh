#!/usr/bin/env bash
# The runner fleet's own cost: RUNS runs queued at once on one PostgreSQL store (through
# `gantry serve --role intake`, as signed pushes to RUNS branches), each a pipeline whose one
# stage `when` skips, worked by 1, 2 and 4 `--role runner` processes (release build). Per
# fleet size: runs per second (first claim to last end, from the store), claim latency p50
# and p99 (the claim query, from each runner's `run started` log line), and whether any run
# was claimed twice (run ids across all runners' logs).
#
#   scripts/bench-dispatch.sh [RUNS] [FLEET_SIZES] [CAPACITY]   e.g. 1000 "1 2 4" 1
#
# CAPACITY is each runner's `max_parallel_runs` (default 1, so that the fleet size is the
# parallelism; one runner with 4 slots already fills this machine's two cores).
#
# Needs PostgreSQL and Docker as scripts/test-services.sh starts them (run as root).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-1000}
SIZES=${2:-"1 2 4"}
CAPACITY=${3:-1}
SECRET=bench-secret

eval "$(scripts/test-services.sh)"
cargo build --release --locked -q
gantry=$PWD/target/release/gantry

work=$(mktemp -d)
pids=()
stop() { for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done; pids=(); }
cleanup() { stop; [[ -n ${KEEP_WORK:-} ]] && echo "kept $work" >&2 || rm -rf "$work"; }
trap cleanup EXIT

# The app repo: one pipeline whose stage never runs, so a run is claim, checkout, plan, end.
git init -q -b main "$work/src"
mkdir -p "$work/src/.gantry"
cat >"$work/src/.gantry/ci.yml" <<YAML
stages:
  - name: skipped
    image: $GANTRY_TEST_IMAGE
    run: echo never
    when: { branch: no-such-branch }
YAML
git -C "$work/src" add -A
git -C "$work/src" -c user.name=bench -c user.email=bench@example.com commit -qm ci
sha=$(git -C "$work/src" rev-parse HEAD)
git clone -q --bare "$work/src" "$work/app.git"

pg() { psql "$GANTRY_TEST_POSTGRES_URL" -Atqc "$1"; }

printf '%-8s %8s %10s %12s %12s %14s\n' runners runs runs/s "claim p50" "claim p99" "claimed twice"
for size in $SIZES; do
  db="gantry_bench_$(date +%s%N)"
  pg "CREATE DATABASE $db"
  store="${GANTRY_TEST_POSTGRES_URL%/*}/$db"
  config() { # $1: folder
    mkdir -p "$1"
    cat >"$1/gantry.toml" <<TOML
[server]
listen = "127.0.0.1:0"
[store]
url = "$store"
[runner]
pull = "never"
max_parallel_runs = $CAPACITY
[github]
webhook_secrets = ["$SECRET"]
[[repos]]
name = "bench/app"
forge = "github"
clone_url = "file://$work/app.git"
TOML
  }
  config "$work/intake-$size"
  GANTRY__LOG__FORMAT=json "$gantry" serve --role intake -c "$work/intake-$size/gantry.toml" \
    2>"$work/intake-$size/log" &
  pids+=($!)
  for _ in $(seq 100); do grep -q 'gantry listening' "$work/intake-$size/log" && break; sleep 0.1; done
  address=$(python3 -c "
import json, sys
for line in open(sys.argv[1]):
    entry = json.loads(line)
    if entry['fields'].get('message') == 'gantry listening':
        print(entry['fields']['address'])" "$work/intake-$size/log")

  # Queue every run before any runner starts.
  python3 - "$address" "$RUNS" "$sha" "$SECRET" <<'PY'
import hashlib, hmac, http.client, json, sys
address, runs, sha, secret = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4].encode()
host, port = address.rsplit(":", 1)
conn = http.client.HTTPConnection(host, int(port))
for i in range(runs):
    body = json.dumps({
        "ref": f"refs/heads/b{i}", "before": "0" * 40, "after": sha, "created": True,
        "deleted": False, "forced": False, "commits": [],
        "head_commit": {"id": sha, "message": "bench"},
        "repository": {"full_name": "bench/app", "clone_url": "https://github.invalid/bench/app.git"},
        "sender": {"login": "bench"},
    }).encode()
    signature = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    conn.request("POST", "/hooks/github", body, {
        "Content-Type": "application/json", "X-GitHub-Event": "push",
        "X-GitHub-Delivery": f"bench-{i}", "X-Hub-Signature-256": signature})
    response = conn.getresponse()
    response.read()
    assert response.status == 202, response.status
PY
  queued=$(psql "$store" -Atqc "SELECT count(*) FROM runs WHERE state = 'queued'")
  [[ $queued == "$RUNS" ]] || { echo "only $queued of $RUNS runs queued" >&2; exit 1; }

  for r in $(seq "$size"); do
    config "$work/runner-$size-$r"
    GANTRY__LOG__FORMAT=json GANTRY__RUNNER__NAME="bench-$r" "$gantry" serve --role runner \
      -c "$work/runner-$size-$r/gantry.toml" 2>"$work/runner-$size-$r/log" &
    pids+=($!)
  done
  deadline=$((SECONDS + 600))
  until [[ $(psql "$store" -Atqc "SELECT count(*) FROM runs WHERE state IN ('queued', 'running')") == 0 ]]; do
    ((SECONDS < deadline)) || { echo "runs left unfinished after 600 s" >&2; exit 1; }
    sleep 0.5
  done
  span_ms=$(psql "$store" -Atqc "SELECT max(finished_at) - min(started_at) FROM runs")
  states=$(psql "$store" -Atqc "SELECT state || '=' || count(*) FROM runs GROUP BY state" | tr '\n' ' ')
  odd=$(psql "$store" -Atqc "SELECT state || ': ' || coalesce(description, '') FROM runs WHERE state NOT IN ('success', 'skipped') LIMIT 1")
  [[ -z $odd ]] || echo "a run that did not pass: $odd" >&2
  stop
  python3 - "$RUNS" "$span_ms" "$size" "$states" "$work"/runner-"$size"-*/log <<'PY'
import json, sys
runs, span_ms, size, states, logs = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:]
claims, seen, twice = [], set(), 0
for path in logs:
    for line in open(path):
        try:
            fields = json.loads(line)["fields"]
        except (ValueError, KeyError):
            continue
        if fields.get("message") != "run started":
            continue
        claims.append(float(fields["claim_ms"]))
        if fields["run_id"] in seen:
            twice += 1
        seen.add(fields["run_id"])
claims.sort()
pick = lambda q: claims[min(len(claims) - 1, int(q * len(claims)))]
assert len(seen) == runs, f"{len(seen)} runs started of {runs} ({states})"
print(f"{size:<8} {runs:>8} {runs / (span_ms / 1000):>10.1f} {pick(0.5):>10.2f}ms {pick(0.99):>10.2f}ms {twice:>14}")
print(f"  end states: {states}")
PY
  psql "$GANTRY_TEST_POSTGRES_URL" -Atqc "DROP DATABASE $db" >/dev/null 2>&1 || true
done
