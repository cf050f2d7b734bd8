#!/usr/bin/env bash
# Webhook intake throughput and latency: `gantry serve --role intake` (SQLite store) against
# adnanh/webhook, on the same signed GitHub push payload, in one run. Also Gantry's idle
# resident memory and a check that every delivery Gantry accepted is in its store. (The
# intake role runs nothing, so the queued runs stay queued and can be counted.)
#
#   scripts/bench-intake.sh [DURATION_SECONDS] [CONNECTIONS]
#
# Needs wrk and webhook (Debian packages; installed if missing, as root).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${1:-15}
CONNECTIONS=${2:-64}
THREADS=2
SECRET=bench-secret
PAYLOAD=tests/fixtures/webhooks/github/push/octokit__with-new-branch.json
GANTRY_PORT=18080
WEBHOOK_PORT=19000

for tool in wrk webhook; do
  command -v "$tool" >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk webhook; }
done
cargo build --release --locked -q

work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

signature=$(openssl dgst -sha256 -hmac "$SECRET" -hex <"$PAYLOAD" | awk '{print $NF}')
repo=$(python3 -c "import json,sys; print(json.load(open('$PAYLOAD'))['repository']['full_name'])")

# wrk script: POST the payload with a valid signature and a fresh delivery id per request,
# and count answers by status.
cat >"$work/post.lua" <<LUA
local body = io.open("$PAYLOAD"):read("*a")
local counter = 0
local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end
function init(args)
  statuses = {}
end
function request()
  counter = counter + 1
  local headers = {
    ["Content-Type"] = "application/json",
    ["X-GitHub-Event"] = "push",
    ["X-GitHub-Delivery"] = string.format("%d-%d-%d", id, counter, math.random(1, 1e9)),
    ["X-Hub-Signature-256"] = "sha256=$signature",
  }
  return wrk.format("POST", wrk.path, headers, body)
end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
function done(summary, latency, requests)
  local totals = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      totals[status] = (totals[status] or 0) + count
    end
  end
  for status, count in pairs(totals) do
    io.write(string.format("status %d: %d\n", status, count))
  end
  io.write(string.format("p50_ms %.2f\np99_ms %.2f\nrps %.0f\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests / (summary.duration / 1e6)))
end
LUA

wait_http() {
  for _ in $(seq 100); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "nothing answers at $1" >&2; return 1
}
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

# --- Gantry ---
cat >"$work/gantry.toml" <<TOML
[server]
listen = "127.0.0.1:$GANTRY_PORT"
[store]
url = "sqlite://$work/gantry.db"
[github]
webhook_secrets = ["$SECRET"]
[[repos]]
name = "$repo"
forge = "github"
TOML
target/release/gantry serve --role intake -c "$work/gantry.toml" 2>"$work/gantry.log" &
gantry_pid=$!
pids+=("$gantry_pid")
wait_http "http://127.0.0.1:$GANTRY_PORT/healthz"
sleep 1
idle_rss=$(rss_kib "$gantry_pid")
wrk -t$THREADS -c"$CONNECTIONS" -d"${DURATION}s" -s "$work/post.lua" \
  "http://127.0.0.1:$GANTRY_PORT/hooks/github" >"$work/gantry.wrk"
loaded_rss=$(rss_kib "$gantry_pid")
accepted=$(awk '/^status 202:/ {print $3}' "$work/gantry.wrk")
stored=$(curl -s "http://127.0.0.1:$GANTRY_PORT/metrics" | awk '/^gantry_runs_queued / {print $2}')
# Durable means on disk: kill without warning and count again from a fresh process.
kill -9 "$gantry_pid"; wait "$gantry_pid" 2>/dev/null || true
target/release/gantry serve --role intake -c "$work/gantry.toml" 2>>"$work/gantry.log" &
pids+=("$!")
wait_http "http://127.0.0.1:$GANTRY_PORT/healthz"
after_kill=$(curl -s "http://127.0.0.1:$GANTRY_PORT/metrics" | awk '/^gantry_runs_queued / {print $2}')

# --- adnanh/webhook ---
cat >"$work/hooks.json" <<JSON
[{
  "id": "push",
  "execute-command": "/bin/true",
  "trigger-rule": { "match": {
    "type": "payload-hmac-sha256", "secret": "$SECRET",
    "parameter": { "source": "header", "name": "X-Hub-Signature-256" } } }
}]
JSON
webhook -hooks "$work/hooks.json" -ip 127.0.0.1 -port "$WEBHOOK_PORT" >"$work/webhook.log" 2>&1 &
pids+=("$!")
wait_http "http://127.0.0.1:$WEBHOOK_PORT/"
wrk -t$THREADS -c"$CONNECTIONS" -d"${DURATION}s" -s "$work/post.lua" \
  "http://127.0.0.1:$WEBHOOK_PORT/hooks/push" >"$work/webhook.wrk"

field() { awk -v key="$1" '$1 == key {print $2}' "$2"; }
g_rps=$(field rps "$work/gantry.wrk"); w_rps=$(field rps "$work/webhook.wrk")
echo "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, payload $(basename "$PAYLOAD") ($(stat -c%s "$PAYLOAD") bytes)"
printf '%-10s %10s %10s %10s  %s\n' "" "req/s" "p50 ms" "p99 ms" "answers"
printf '%-10s %10s %10s %10s  %s\n' gantry "$g_rps" "$(field p50_ms "$work/gantry.wrk")" \
  "$(field p99_ms "$work/gantry.wrk")" "$(grep ^status "$work/gantry.wrk" | tr '\n' ' ')"
printf '%-10s %10s %10s %10s  %s\n' webhook "$w_rps" "$(field p50_ms "$work/webhook.wrk")" \
  "$(field p99_ms "$work/webhook.wrk")" "$(grep ^status "$work/webhook.wrk" | tr '\n' ' ')"
echo "gantry/webhook throughput: $(python3 -c "print(f'{$g_rps / $w_rps:.2f}x')")"
echo "gantry accepted (202): $accepted; queued runs in store: $stored; after SIGKILL and restart: $after_kill"
echo "gantry resident memory: idle $((idle_rss / 1024)) MiB ($idle_rss KiB), after load $((loaded_rss / 1024)) MiB"
