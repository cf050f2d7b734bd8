#!/usr/bin/env bash
# What `cache:` saves on a real build: a small Rust crate with some twenty dependencies from
# the crate registry, built by `gantry run` in a Rust toolchain image, cold (no cache) and
# then warm (the registry folder and `target` restored), with a one-line source change in
# between so the crate itself is rebuilt each time.
#
#   scripts/bench-cache.sh [ROUNDS]
#
# Nothing is pulled from the internet: the toolchain image is this machine's Rust toolchain
# on a debootstrapped Debian (with gcc), and the crates come from a local mirror, a
# service container serving a tarball of the dependencies vendored from this machine's
# cargo cache (`cargo vendor --offline`), which the stage fetches over HTTP into
# /usr/local/cargo/registry unless the cache brought it. Needs a running Docker engine and
# the test image (scripts/test-services.sh). Goal: warm <= cold / 4.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
BUSYBOX_IMAGE=${GANTRY_TEST_IMAGE:-gantry-test/busybox:latest}
RUST_IMAGE=gantry-bench/rust:latest
MIRROR_IMAGE=gantry-bench/crate-mirror:latest

cargo build --release --locked -q
gantry=$PWD/target/release/gantry
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The toolchain image: Debian with gcc (the linker), this machine's rustc and cargo, and a
# static busybox for `wget`.
if ! docker image inspect "$RUST_IMAGE" >/dev/null 2>&1; then
  command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
  echo "building $RUST_IMAGE" >&2
  rootfs=$work/rootfs
  debootstrap --variant=minbase --include=gcc,libc6-dev bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
  sysroot=$(rustc --print sysroot)
  mkdir -p "$rootfs/usr/local/rust" "$rootfs/usr/local/cargo"
  cp -a "$sysroot/bin" "$sysroot/lib" "$rootfs/usr/local/rust/"
  cp /bin/busybox "$rootfs/usr/local/bin/busybox"
  tar -C "$rootfs" -c . | docker import \
    -c 'ENV PATH=/usr/local/rust/bin:/usr/local/bin:/usr/bin:/bin CARGO_HOME=/usr/local/cargo' \
    - "$RUST_IMAGE" >/dev/null
  rm -rf "$rootfs"
fi

# The crate: dependencies at the versions Gantry itself locks, so that all of them are in
# this machine's cargo cache.
app=$work/app
mkdir -p "$app/src" "$app/.gantry" "$app/.cargo"
version() { awk -v name="$1" '$0 == "name = \"" name "\"" { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock; }
{
  echo '[package]'
  echo 'name = "bench-app"'
  echo 'version = "0.1.0"'
  echo 'edition = "2021"'
  echo '[dependencies]'
  for crate in serde_json regex chrono anyhow thiserror url humantime sha2 hex base64 bytes \
    globset strsim indexmap smallvec itoa memchr tracing; do
    echo "$crate = \"=$(version "$crate")\""
  done
  echo 'serde = { version = "='"$(version serde)"'", features = ["derive"] }'
  echo 'uuid = { version = "='"$(version uuid)"'", features = ["v4"] }'
  echo 'clap = { version = "='"$(version clap)"'", features = ["derive"] }'
} >"$app/Cargo.toml"
cat >"$app/src/main.rs" <<'RUST'
use clap::Parser;
use serde::Serialize;

#[derive(Parser, Serialize, Debug)]
struct Args {
    #[arg(long, default_value = "world")]
    name: String,
}

fn main() {
    let args = Args::parse();
    let re = regex::Regex::new(r"^\w+$").unwrap();
    let when = chrono::Utc::now();
    let id = uuid::Uuid::new_v4();
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(args.name.as_bytes()));
    println!("{} {} {} {} {}", serde_json::to_string(&args).unwrap(), re.is_match(&args.name), when, id, digest);
}
RUST
(cd "$app" && CARGO_NET_OFFLINE=true cargo generate-lockfile -q && CARGO_NET_OFFLINE=true cargo vendor -q --versioned-dirs "$work/vendor" >/dev/null)
echo "crates vendored: $(ls "$work/vendor" | wc -l)" >&2

# The mirror: busybox httpd serving the vendored crates as one tarball.
mkdir -p "$work/mirror"
tar -C "$work" -cf "$work/mirror/vendor.tar" vendor
cat >"$work/mirror/Dockerfile" <<DOCKER
FROM $BUSYBOX_IMAGE
COPY vendor.tar /srv/vendor.tar
DOCKER
docker build -q -t "$MIRROR_IMAGE" "$work/mirror" >/dev/null

cat >"$app/.cargo/config.toml" <<'TOML'
[source.crates-io]
replace-with = "mirror"
[source.mirror]
directory = "/usr/local/cargo/registry/vendor"
TOML
cat >"$app/.gantry/build.yml" <<YAML
services:
  - name: mirror
    image: $MIRROR_IMAGE
    command: [httpd, -f, -p, "8080", -h, /srv]
    ready: { port: 8080 }
cache:
  - key: cargo-\${hash:Cargo.lock}
    restore_keys: [cargo-]
    paths: [target, /usr/local/cargo/registry]
stages:
  - name: build
    image: $RUST_IMAGE
    run: |
      if [ ! -d /usr/local/cargo/registry/vendor ]; then
        busybox wget -qO- http://mirror:8080/vendor.tar | tar -x -C /usr/local/cargo/registry
        echo fetched the crates
      fi
      cargo build --release --offline
      ./target/release/bench-app --name gantry
YAML
git -C "$app" init -q && git -C "$app" add -A \
  && git -C "$app" -c user.name=bench -c user.email=bench@localhost commit -qm bench

# One timed `gantry run` after a source change (the crate is rebuilt every time).
timed_run() {
  echo "// $(date +%s%N)" >>"$app/src/main.rs"
  git -C "$app" -c user.name=bench -c user.email=bench@localhost commit -qam change
  local start end
  start=$(date +%s.%N)
  (cd "$app" && "$gantry" run . >"$work/last.log" 2>&1) || { cat "$work/last.log" >&2; exit 1; }
  end=$(date +%s.%N)
  python3 -c "print(f'{$end - $start:.1f}')"
}

cold=()
warm=()
for round in $(seq "$ROUNDS"); do
  docker volume rm -f gantry-caches-local >/dev/null
  cold+=("$(timed_run)")
  grep -q "fetched the crates" "$work/last.log" || { echo "the cold run did not fetch" >&2; exit 1; }
  warm+=("$(timed_run)")
  if grep -q "fetched the crates" "$work/last.log"; then echo "the warm run fetched again" >&2; exit 1; fi
  grep "cache \`cargo-" "$work/last.log" >&2 || true
  echo "round $round: cold ${cold[-1]}s, warm ${warm[-1]}s" >&2
done
python3 - "${cold[*]}" "${warm[*]}" <<'PY'
import statistics, sys
cold = [float(x) for x in sys.argv[1].split()]
warm = [float(x) for x in sys.argv[2].split()]
print(f"cold run (miss, fetch, build, save): median {statistics.median(cold):.1f}s  {cold}")
print(f"warm run (hit, build the crate only): median {statistics.median(warm):.1f}s  {warm}")
ratio = statistics.median(warm) / statistics.median(cold)
print(f"warm / cold: {ratio:.2f} (goal <= 0.25)")
PY
docker volume rm -f gantry-caches-local >/dev/null
