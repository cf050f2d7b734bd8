#!/usr/bin/env bash
# Intake latency while retention prunes 100,000 runs: a SQLite store filled with finished
# runs (each with a pipeline, a stage and a log chunk) all older than keep_days, served by
# `gantry serve --role intake`; wrk posts signed pushes for DURATION seconds once with
# nothing else going on, and once while `gantry prune` removes the old runs from the same
# store in its small batches.
#
#   scripts/bench-prune.sh [RUNS] [DURATION_SECONDS] [CONNECTIONS]
#
# Needs wrk (a Debian package; installed if missing, as root).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${1:-100000}
DURATION=${2:-20}
CONNECTIONS=${3:-16}
SECRET=bench-secret
PAYLOAD=tests/fixtures/webhooks/github/push/octokit__with-new-branch.json
PORT=18090

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release --locked -q
gantry=$PWD/target/release/gantry

work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

repo=$(python3 -c "import json; print(json.load(open('$PAYLOAD'))['repository']['full_name'])")
cat >"$work/gantry.toml" <<TOML
[server]
listen = "127.0.0.1:$PORT"
[store]
url = "sqlite://$work/gantry.db"
keep_runs = 500
keep_days = 90
keep_logs_days = 30
[github]
webhook_secrets = ["$SECRET"]
[[repos]]
name = "$repo"
forge = "github"
TOML

# The schema, made by Gantry itself; then the old runs, written straight into the file.
"$gantry" prune -c "$work/gantry.toml" --dry-run >/dev/null
python3 - "$work/gantry.db" "$RUNS" "$repo" <<'PY'
import sqlite3, sys, time
db, count, repo = sys.argv[1], int(sys.argv[2]), sys.argv[3]
old = int(time.time() * 1000) - 200 * 24 * 3600 * 1000
conn = sqlite3.connect(db)
with conn:
    for start in range(0, count, 10000):
        ids = range(start + 1, min(start + 10000, count) + 1)
        conn.executemany(
            "INSERT INTO deliveries (id, forge, delivery_id, event_name, repo, received_at) "
            "VALUES (?, 'github', ?, 'push', ?, ?)",
            [(i, f"old-{i}", repo, old + i) for i in ids])
        conn.executemany(
            "INSERT INTO runs (id, delivery, forge, repo, trigger_kind, git_ref, commit_sha, "
            "state, event, created_at, finished_at, attempts) VALUES "
            "(?, ?, 'github', ?, 'push', 'refs/heads/main', ?, 'success', '{}', ?, ?, 1)",
            [(i, i, repo, f"{i:040x}", old + i, old + i) for i in ids])
        conn.executemany(
            "INSERT INTO run_pipelines (run_id, pipeline, file, state) VALUES (?, 'ci', '.gantry/ci.yml', 'success')",
            [(i,) for i in ids])
        conn.executemany(
            "INSERT INTO log_chunks (run_id, pipeline, stage, first_line, line_count, text) "
            "VALUES (?, 'ci', 'test', 1, 20, ?)",
            [(i, "a line of a test's output, as a stage prints it\n" * 20) for i in ids])
conn.close()
PY
echo "store: $RUNS finished runs, $(du -h "$work/gantry.db" | cut -f1)" >&2

signature=$(openssl dgst -sha256 -hmac "$SECRET" -hex <"$PAYLOAD" | awk '{print $NF}')
cat >"$work/post.lua" <<LUA
local body = io.open("$PAYLOAD"):read("*a")
local counter = 0
function request()
  counter = counter + 1
  local headers = {
    ["Content-Type"] = "application/json",
    ["X-GitHub-Event"] = "push",
    ["X-GitHub-Delivery"] = string.format("%d-%d", counter, math.random(1, 1e9)),
    ["X-Hub-Signature-256"] = "sha256=$signature",
  }
  return wrk.format("POST", wrk.path, headers, body)
end
function done(summary, latency, requests)
  io.write(string.format("p50_ms %.2f\np99_ms %.2f\nmax_ms %.2f\nrps %.0f\nerrors %d\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    summary.requests / (summary.duration / 1e6),
    summary.errors.status + summary.errors.timeout + summary.errors.connect))
end
LUA

"$gantry" serve --role intake -c "$work/gantry.toml" 2>"$work/gantry.log" &
pids+=("$!")
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/healthz" && break; sleep 0.1; done
load() {
  wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" -s "$work/post.lua" \
    "http://127.0.0.1:$PORT/hooks/github" >"$work/$1.wrk"
}
load quiet
start=$(date +%s.%N)
"$gantry" prune -c "$work/gantry.toml" >"$work/prune.out" 2>&1 &
prune_pid=$!
load pruning
wait "$prune_pid" || { cat "$work/prune.out" >&2; exit 1; }
end=$(date +%s.%N)
field() { awk -v key="$1" '$1 == key {print $2}' "$2"; }
printf '%-22s %8s %8s %8s %8s %7s\n' "" "req/s" "p50 ms" "p99 ms" "max ms" "errors"
for phase in quiet pruning; do
  printf '%-22s %8s %8s %8s %8s %7s\n' "intake, $phase" "$(field rps "$work/$phase.wrk")" \
    "$(field p50_ms "$work/$phase.wrk")" "$(field p99_ms "$work/$phase.wrk")" \
    "$(field max_ms "$work/$phase.wrk")" "$(field errors "$work/$phase.wrk")"
done
echo "gantry prune: $(cat "$work/prune.out") in $(python3 -c "print(f'{$end - $start:.1f}')") s"
echo "store after: $(du -h "$work/gantry.db" | cut -f1)"
