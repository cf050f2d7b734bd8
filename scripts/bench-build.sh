#!/usr/bin/env bash
# Build and push speed: a small image built and pushed by a Gantry build stage (`gantry run`)
# against `docker build` + `docker push` of the same context to the same local registry
# (Debian's docker-registry, htpasswd auth), in one run.
#
#   scripts/bench-build.sh [RUNS]
#
# Needs a running Docker engine and the test image (scripts/test-services.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-10}
IMAGE=${GANTRY_TEST_IMAGE:-gantry-test/busybox:latest}
USER=bench
PASSWORD=bench-pw

command -v hyperfine >/dev/null || { apt-get update -qq && apt-get install -y -qq hyperfine >/dev/null; }
cargo build --release --locked -q
gantry=$PWD/target/release/gantry

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
registry=127.0.0.1:$port
htpasswd -Bbn "$USER" "$PASSWORD" >"$work/htpasswd"
cat >"$work/registry.yml" <<YAML
version: 0.1
storage: { filesystem: { rootdirectory: $work/registry } }
http: { addr: $registry }
auth: { htpasswd: { realm: bench, path: $work/htpasswd } }
YAML
docker-registry serve "$work/registry.yml" >/dev/null 2>&1 &
registry_pid=$!
trap 'kill $registry_pid 2>/dev/null; docker logout "$registry" >/dev/null 2>&1; rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -s -o /dev/null "http://$registry/v2/" && break; sleep 0.1; done

# One context for both: a few files and a layer that a fresh RUN produces each build.
ctx=$work/app
mkdir -p "$ctx/.gantry" "$ctx/src"
for i in $(seq 20); do head -c 4096 /dev/urandom | base64 >"$ctx/src/file$i.txt"; done
cat >"$ctx/Dockerfile" <<DOCKER
FROM $IMAGE
COPY src /app/src
RUN ls /app/src | wc -l > /app/count
DOCKER
cat >"$ctx/.gantry/image.yml" <<YAML
stages:
  - name: image
    build:
      image: $registry/bench/app
      tags: [gantry]
YAML
cat >"$ctx/gantry.toml" <<TOML
[registries."$registry"]
username = "$USER"
password = "$PASSWORD"
TOML
# Gantry builds commits: the context is one.
git -C "$ctx" init -q && git -C "$ctx" add -A \
  && git -C "$ctx" -c user.name=bench -c user.email=bench@localhost commit -qm bench
echo "$PASSWORD" | docker login -u "$USER" --password-stdin "$registry" >/dev/null 2>&1

hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$work/build.json" \
  -n "gantry build stage" "sh -c 'cd $ctx && $gantry run . >/dev/null 2>&1'" \
  -n "docker build + push" "sh -c 'docker build -q -t $registry/bench/app:cli $ctx >/dev/null 2>&1 && docker push -q $registry/bench/app:cli >/dev/null'" \
  >/dev/null

# The CLI gets the OCI labels Gantry adds, so both build the same image.
labels="--label org.opencontainers.image.source=app --label org.opencontainers.image.revision=bench --label org.opencontainers.image.created=2026-01-01T00:00:00Z"

# A new commit before every run: the COPY and RUN layers are rebuilt and pushed each time.
change="sh -c 'date +%s%N > $ctx/src/changed.txt && git -C $ctx add -A && git -C $ctx -c user.name=bench -c user.email=bench@localhost commit -qm change'"
hyperfine -N --warmup 2 --runs "$RUNS" --export-json "$work/fresh.json" --prepare "$change" \
  -n "gantry build stage" "sh -c 'cd $ctx && $gantry run . >/dev/null 2>&1'" \
  -n "docker build + push" "sh -c 'docker build -q $labels -t $registry/bench/app:cli $ctx >/dev/null 2>&1 && docker push -q $registry/bench/app:cli >/dev/null'" \
  >/dev/null

python3 - "$work/build.json" "$work/fresh.json" <<'PY'
import json, sys
for label, path in (("unchanged source (cached layers)", sys.argv[1]), ("changed source (layers rebuilt and pushed)", sys.argv[2])):
    results = {r["command"]: r for r in json.load(open(path))["results"]}
    print(label)
    for name, r in results.items():
        print(f"  {name:22} {r['mean'] * 1000:7.0f} ms ± {r['stddev'] * 1000:4.0f}")
    ratio = results["gantry build stage"]["mean"] / results["docker build + push"]["mean"]
    print(f"  gantry / CLI: {ratio:.2f} (goal <= 1.10)")
PY
