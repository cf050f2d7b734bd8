#!/usr/bin/env bash
# Intake under abuse: SLOW connections (default 5,000) send a webhook's headers and then a
# byte every five seconds, while wrk posts valid signed deliveries to `gantry serve --role
# intake` (SQLite). Reports the valid deliveries' latency and errors during the attack, and
# the server's open file descriptors and resident memory: idle, after 3 s of valid deliveries
# alone ("warm idle"), after a burst of valid deliveries over as many connections as the
# attack holds (what serving that many at once leaves: actix-web's request pools, the
# allocator's bookkeeping), during the attack and after it (the slow connections are closed
# by server.request_timeout), then after each further wave alone (WAVES in all, default 2).
#
#   scripts/bench-abuse.sh [SLOW] [WRK_SECONDS] [WRK_CONNECTIONS] [WAVES]
#
# Needs wrk (a Debian package; installed if missing, as root).
set -euo pipefail
cd "$(dirname "$0")/.."

SLOW=${1:-5000}
DURATION=${2:-10}
CONNECTIONS=${3:-16}
WAVES=${4:-2}
SECRET=bench-secret
PAYLOAD=tests/fixtures/webhooks/github/push/octokit__with-new-branch.json
PORT=18082
TIMEOUT=15

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release --locked -q
ulimit -n "$(ulimit -Hn)"

work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

repo=$(python3 -c "import json; print(json.load(open('$PAYLOAD'))['repository']['full_name'])")
cat >"$work/gantry.toml" <<TOML
[server]
listen = "127.0.0.1:$PORT"
request_timeout = "${TIMEOUT}s"
[store]
url = "sqlite://$work/gantry.db"
# Housekeeping would prune most of the bench's ~100k deliveries: with this it finds nothing.
keep_runs = 10000000
[github]
webhook_secrets = ["$SECRET"]
[[repos]]
name = "$repo"
forge = "github"
TOML
target/release/gantry serve --role intake -c "$work/gantry.toml" 2>"$work/gantry.log" &
gantry=$!
pids+=("$gantry")
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done
started=$SECONDS

# Resident memory in all, and its anonymous part (the heap; the rest is the binary's pages).
usage() {
  printf '%s fds, %s' "$(ls /proc/$gantry/fd | wc -l)" "$(awk '
    /^VmRSS/ {rss = $2} /^RssAnon/ {anon = $2}
    END {printf "%.1f MiB RSS (%.1f MiB anonymous)", rss / 1024, anon / 1024}' /proc/$gantry/status)"
}
echo "idle:            $(usage)"

signature=$(openssl dgst -sha256 -hmac "$SECRET" -hex <"$PAYLOAD" | awk '{print $NF}')
cat >"$work/post.lua" <<LUA
local body = io.open("$PAYLOAD"):read("*a")
local counter = 0
function init(args) statuses = {} end
function request()
  counter = counter + 1
  return wrk.format("POST", wrk.path, {
    ["Content-Type"] = "application/json",
    ["X-GitHub-Event"] = "push",
    ["X-GitHub-Delivery"] = string.format("%d-%d", counter, math.random(1, 1e9)),
    ["X-Hub-Signature-256"] = "sha256=$signature",
  }, body)
end
function response(status) statuses[status] = (statuses[status] or 0) + 1 end
LUA

# Valid deliveries alone first: what any traffic leaves behind (the binary's pages touched,
# the store's and the HTTP server's pools) is not the attack's.
wrk -t2 -c"$CONNECTIONS" -d3s -s "$work/post.lua" "http://127.0.0.1:$PORT/hooks/github" >/dev/null
# The store closes its extra connections 5 to 10 s after they were last used.
sleep 11
echo "warm idle:       $(usage)"

wrk -t2 -c"$SLOW" -d3s -s "$work/post.lua" "http://127.0.0.1:$PORT/hooks/github" >"$work/burst.out"
grep -E "Requests/sec|Non-2xx|Socket errors" "$work/burst.out" | sed 's/^/  valid burst: /'
sleep 16
echo "after the burst: $(usage)"
# The first housekeeping pass, 60 s after start, holds store connections for a few seconds:
# the attack comes after it.
sleep $((started + 75 - SECONDS > 0 ? started + 75 - SECONDS : 0))
echo "before attack:   $(usage)"

# The slow clients: headers promising a body, then a byte every five seconds.
cat >"$work/slow.py" <<PY
import asyncio, sys
async def slow():
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", $PORT)
        writer.write(b"POST /hooks/github HTTP/1.1\r\nHost: gantry\r\nX-GitHub-Event: push\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{")
        await writer.drain()
        while True:
            try:
                data = await asyncio.wait_for(reader.read(1024), 5)
                if not data:
                    return "closed"
                if data.startswith(b"HTTP/1.1 408"):
                    return "408"
            except asyncio.TimeoutError:
                writer.write(b" ")
                await writer.drain()
    except (ConnectionError, OSError):
        return "error"
async def main():
    ends = await asyncio.gather(*(slow() for _ in range($SLOW)))
    print(" ".join(f"{end}={ends.count(end)}" for end in sorted(set(ends))))
asyncio.run(main())
PY
python3 "$work/slow.py" >"$work/slow.out" &
slow=$!
pids+=("$slow")
sleep 3
echo "slow held:       $(usage)"

wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$work/post.lua" \
  "http://127.0.0.1:$PORT/hooks/github" >"$work/wrk.out" &
wrk_pid=$!
sleep $((DURATION / 2))
echo "during attack:   $(usage)"
wait "$wrk_pid"
grep -E "Requests/sec|99%|Non-2xx|Socket errors|requests in" "$work/wrk.out" | sed 's/^/  wrk: /'
wait "$slow" || true
echo "slow clients:    $(cat "$work/slow.out")"
sleep 1
echo "1 s after:       $(usage)"
sleep 5
echo "6 s after:       $(usage)"
sleep 10
echo "16 s after:      $(usage)"
# More waves alone: what the first left behind must not grow.
for wave in $(seq 2 "$WAVES"); do
  python3 "$work/slow.py" >"$work/slow.out"
  echo "wave $wave:          $(cat "$work/slow.out")"
  sleep 6
  echo "6 s after it:    $(usage)"
  sleep 10
  echo "16 s after it:   $(usage)"
done
curl -s "http://127.0.0.1:$PORT/metrics" | grep -E '^gantry_http_(connections_open|requests_timed_out)' | sed 's/^/  /'
