#!/usr/bin/env bash
# Logs that cannot sink the server: one stage printing SIZE bytes (default 300 MB) through
# `gantry serve` (SQLite store, the default runner.max_log_size), then 8 concurrent downloads
# of its log. Reports the store's size, the run page's size, the server's peak memory
# (VmHWM) after the run and after the downloads, and each download's time to first and to
# last byte.
#
#   scripts/bench-logs.sh [SIZE_BYTES] [DOWNLOADS]
#
# Needs what the tests need (scripts/test-services.sh, as root) and curl.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE=${1:-300000000}
DOWNLOADS=${2:-8}
SECRET=bench-secret
# Repos are private unless said otherwise: reads go with the API token.
TOKEN=bench-token
auth=(-H "Authorization: Bearer $TOKEN")
PORT=18081

eval "$(scripts/test-services.sh)"
cargo build --release --locked -q

work=$(mktemp -d)
pid=
cleanup() { [[ -n $pid ]] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

git init -q --bare "$work/app.git"
git init -q "$work/app"
mkdir -p "$work/app/.gantry"
cat >"$work/app/.gantry/ci.yml" <<YAML
stages:
  - name: loud
    image: $GANTRY_TEST_IMAGE
    run: yes 'a line of output from a test stuck in a loop, printing the same thing' | head -c $SIZE
YAML
git -C "$work/app" add .
git -C "$work/app" -c user.name=bench -c user.email=bench@example.com commit -qm loud
git -C "$work/app" push -q "$work/app.git" HEAD:refs/heads/main
sha=$(git -C "$work/app" rev-parse HEAD)

cat >"$work/gantry.toml" <<TOML
[server]
listen = "127.0.0.1:$PORT"
api_token = "$TOKEN"
[store]
url = "sqlite://$work/gantry.db"
[runner]
pull = "never"
[github]
webhook_secrets = ["$SECRET"]
[[repos]]
name = "bench/app"
forge = "github"
clone_url = "file://$work/app.git"
TOML

target/release/gantry serve -c "$work/gantry.toml" 2>"$work/gantry.log" &
pid=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done

body=$(printf '{"ref":"refs/heads/main","before":"%s","after":"%s","commits":[],"head_commit":{"id":"%s","message":"loud"},"repository":{"full_name":"bench/app","clone_url":"file://%s/app.git"}}' \
  "$(printf '0%.0s' {1..40})" "$sha" "$sha" "$work")
signature=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$SECRET" -hex | awk '{print $NF}')
started=$(date +%s.%N)
run_id=$(curl -sf "http://127.0.0.1:$PORT/hooks/github" -H "X-GitHub-Event: push" \
  -H "X-GitHub-Delivery: bench-$RANDOM" -H "X-Hub-Signature-256: sha256=$signature" \
  -H "Content-Type: application/json" -d "$body" | python3 -c 'import json,sys; print(json.load(sys.stdin)["run_id"])')
while :; do
  state=$(curl -sf "${auth[@]}" "http://127.0.0.1:$PORT/api/runs/$run_id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')
  [[ $state != queued && $state != running ]] && break
  sleep 0.5
done
finished=$(date +%s.%N)
peak() { awk '/VmHWM/ {printf "%.1f MiB", $2/1024}' "/proc/$pid/status"; }
peak_after_run=$(peak)
dropped=$(curl -sf "${auth[@]}" "http://127.0.0.1:$PORT/api/runs/$run_id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pipelines"][0]["stages"][0]["log_dropped"])')
mib() { awk '{printf "%.1f MiB", $1/1048576}' <<<"$(stat -c %s "$1" 2>/dev/null || echo 0)"; }
store="$(mib "$work/gantry.db") (and a write-ahead log of $(mib "$work/gantry.db-wal"), reused)"
page=$(curl -sf "${auth[@]}" "http://127.0.0.1:$PORT/runs/$run_id" | wc -c)

for i in $(seq "$DOWNLOADS"); do
  curl -sf "${auth[@]}" -o /dev/null -w "%{time_starttransfer} %{time_total} %{size_download}\n" \
    "http://127.0.0.1:$PORT/api/runs/$run_id/log" >"$work/download-$i" &
done
wait $(jobs -p | grep -v "^$pid$") 2>/dev/null || true
sleep 0.5

# What the log takes once SQLite folds its write-ahead log into the database file.
python3 -c "import sqlite3, sys; sqlite3.connect(sys.argv[1]).execute('PRAGMA wal_checkpoint(TRUNCATE)')" "$work/gantry.db"
echo "stage printed:         $SIZE bytes in $(printf '%.1f' "$(echo "$finished - $started" | bc)") s (state $state)"
echo "dropped by the cap:    $dropped bytes"
echo "store on disk:         $store; after a checkpoint $(mib "$work/gantry.db")"
echo "run page:              $page bytes"
echo "peak RSS after run:    $peak_after_run"
echo "peak RSS after $DOWNLOADS downloads: $(peak)"
cat "$work"/download-* | awk '{first += $1; total += $2; if ($2 > worst) worst = $2; size = $3}
  END {printf "downloads:             %d x %.1f MiB, first byte %.3f s avg, last byte %.3f s avg, %.3f s slowest\n", NR, size/1048576, first/NR, total/NR, worst}'
