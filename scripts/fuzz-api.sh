#!/usr/bin/env bash
# The HTTP API fuzzed against its own OpenAPI document: schemathesis (from PyPI, into a
# virtualenv under target/) throws generated requests at every operation of `gantry serve`
# on SQLite with a few real runs in it, first as a visitor, then with the API token. Any
# failure (a 500, an answer the document does not describe, a bad input accepted) fails
# the script. Needs the services of scripts/test-services.sh (the Docker engine and the
# test image) and a debug build (`cargo build`).
#
#   scripts/fuzz-api.sh [MAX_EXAMPLES]
set -euo pipefail
cd "$(dirname "$0")/.."

EXAMPLES=${1:-25}
SCHEMATHESIS_VERSION=4.32.5
VENV=target/schemathesis
SECRET=fuzz-secret
TOKEN=fuzz-api-token
IMAGE=${GANTRY_TEST_IMAGE:?run scripts/test-services.sh first}

log() { echo "fuzz-api: $*" >&2; }

if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  log "installing schemathesis $SCHEMATHESIS_VERSION"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
cargo build --locked -q --bin gantry
rm -rf target/fuzz-api

work=$(mktemp -d)
gantry_pid=
cleanup() {
  [ -n "$gantry_pid" ] && kill "$gantry_pid" 2>/dev/null && wait "$gantry_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# The app repo the runs check out.
git init -q --bare "$work/app.git"
git init -q "$work/app"
mkdir -p "$work/app/.gantry"
cat >"$work/app/.gantry/ci.yml" <<YAML
on:
  push: {}
  pull_request: {}
  manual: {}
stages:
  - name: check
    image: $IMAGE
    run: echo "fuzzed at \$GANTRY_COMMIT_SHA"
YAML
git -C "$work/app" add -A
git -C "$work/app" -c user.name=fuzz -c user.email=fuzz@example.com commit -qm "the app"
git -C "$work/app" push -q "$work/app.git" HEAD:refs/heads/main
sha=$(git -C "$work/app" rev-parse HEAD)

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/gantry.toml" <<TOML
[server]
listen = "127.0.0.1:$port"
public_url = "http://127.0.0.1:$port"
api_token = "$TOKEN"
[store]
url = "sqlite://$work/gantry.db"
[runner]
pull = "never"
[github]
webhook_secrets = ["$SECRET"]
[[repos]]
name = "acme/app"
forge = "github"
clone_url = "file://$work/app.git"
TOML
target/debug/gantry serve -c "$work/gantry.toml" 2>"$work/gantry.log" &
gantry_pid=$!
base="http://127.0.0.1:$port"
for _ in $(seq 100); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.1; done

# A few real runs, so that ids, logs and pages exist.
for n in 1 2 3; do
  body=$(printf '{"ref":"refs/heads/main","before":"%s","after":"%s","commits":[],"head_commit":{"id":"%s","message":"run %s"},"repository":{"id":1,"full_name":"acme/app","clone_url":"file://%s/app.git","html_url":"https://github.invalid/acme/app","private":false},"sender":{"login":"fuzz","id":7}}' \
    "$(printf '0%.0s' {1..40})" "$sha" "$sha" "$n" "$work")
  signature=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$SECRET" -hex | awk '{print $NF}')
  curl -sf -o /dev/null -X POST "$base/hooks/github" -H "Content-Type: application/json" \
    -H "X-GitHub-Event: push" -H "X-GitHub-Delivery: fuzz-$n-$$" \
    -H "X-Hub-Signature-256: sha256=$signature" --data-binary "$body"
done
for _ in $(seq 120); do
  curl -s "$base/api/runs" | grep -q '"state":"\(queued\|running\)"' || break
  sleep 0.5
done
log "runs to fuzz with: $(curl -s "$base/api/runs" | python3 -c 'import json,sys; print(", ".join("#%s %s" % (r["id"], r["state"]) for r in json.load(sys.stdin)["runs"]))')"

fuzz() {
  local who=$1; shift
  log "schemathesis as $who: $EXAMPLES examples per operation"
  local started=$SECONDS
  if ! "$VENV/bin/schemathesis" run "$base/api/openapi.json" \
      --max-examples "$EXAMPLES" --workers 2 --seed 1 --no-color \
      --request-timeout 20 "$@" >"$work/fuzz-$who.out" 2>&1; then
    cat "$work/fuzz-$who.out" >&2
    mkdir -p target/fuzz-api && cp "$work/fuzz-$who.out" "$work/gantry.log" target/fuzz-api/
    log "the whole report and gantry's log are in target/fuzz-api/"
    return 1
  fi
  grep -E "operations|test cases|Test cases|passed|generated" "$work/fuzz-$who.out" | sed "s/^/fuzz-api: $who: /" >&2 || true
  log "$who took $((SECONDS - started)) s"
}
fuzz visitor
fuzz token -H "Authorization: Bearer $TOKEN"
if grep -q "panicked" "$work/gantry.log"; then
  grep -B2 -A10 "panicked" "$work/gantry.log" >&2
  exit 1
fi
log "no failure"
