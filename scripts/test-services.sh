#!/usr/bin/env bash
# Installs and starts what Gantry's tests talk to: a Docker engine, PostgreSQL, and the
# tools the tests drive (git, Debian's docker-registry, static busybox for test images, an SSH
# server for git over SSH, headless Chromium and ChromeDriver for the browser test, tmux for
# the terminal test of `gantry run`, iproute2 for the bridge of the TLS engine test,
# debootstrap for the Debian base the image test builds Gantry's runtime stage on).
# Idempotent: what is installed and running is left as it is. Needs root.
# Prints the environment the tests need as `export` lines on stdout; everything else goes
# to stderr.
set -euo pipefail

PACKAGES=(docker.io docker-registry busybox-static postgresql git apache2-utils openssh-server chromium chromium-driver openssl tmux iproute2 debootstrap)
# How long to wait for a daemon to answer after starting it.
START_TIMEOUT_SECONDS=60
PG_USER=gantry
PG_PASSWORD=gantry-test

log() { echo "test-services: $*" >&2; }

missing=()
for package in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$package")
done
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
fi

wait_for() {
  local what=$1; shift
  for _ in $(seq "$START_TIMEOUT_SECONDS"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  log "$what did not come up within ${START_TIMEOUT_SECONDS}s"
  return 1
}

if ! docker info >/dev/null 2>&1; then
  log "starting dockerd"
  nohup dockerd >/var/log/gantry-test-dockerd.log 2>&1 &
  wait_for "dockerd" docker info || { tail -20 /var/log/gantry-test-dockerd.log >&2; exit 1; }
fi

# The image stage tests run in: a static busybox, built locally (nothing can be pulled).
TEST_IMAGE=gantry-test/busybox:latest
if ! docker image inspect "$TEST_IMAGE" >/dev/null 2>&1; then
  log "building $TEST_IMAGE"
  context=$(mktemp -d)
  cp /bin/busybox "$context/busybox"
  printf 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\n' >"$context/Dockerfile"
  DOCKER_BUILDKIT=0 docker build -q -t "$TEST_IMAGE" "$context" >&2
  rm -rf "$context"
fi

# A Debian bookworm base for the runtime stage of Gantry's Dockerfile (nothing can be pulled):
# a minimal root file system made by debootstrap, imported as an image.
DEBIAN_IMAGE=gantry-test/bookworm:latest
if ! docker image inspect "$DEBIAN_IMAGE" >/dev/null 2>&1; then
  log "building $DEBIAN_IMAGE with debootstrap"
  rootfs=$(mktemp -d)
  debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >&2
  tar -C "$rootfs" -c . | docker import - "$DEBIAN_IMAGE" >&2
  rm -rf "$rootfs"
fi

cluster=$(pg_lsclusters --no-header | awk 'NR==1 {print $1" "$2}')
if [[ -z $cluster ]]; then
  log "no PostgreSQL cluster found"
  exit 1
fi
read -r pg_version pg_name <<<"$cluster"
if ! pg_lsclusters --no-header | awk 'NR==1 {print $4}' | grep -q online; then
  log "starting PostgreSQL $pg_version/$pg_name"
  pg_ctlcluster "$pg_version" "$pg_name" start >&2
fi
pg_port=$(pg_lsclusters --no-header | awk 'NR==1 {print $3}')
wait_for "PostgreSQL" su postgres -c "psql -p $pg_port -Atc 'SELECT 1'"
su postgres -c "psql -p $pg_port -v ON_ERROR_STOP=1 -q" >&2 <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_USER') THEN
    CREATE ROLE $PG_USER LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
  END IF;
END \$\$;
SQL

# Each store test makes a database of its own; drop those earlier runs left (one still in use
# is kept), so that a long-lived machine does not pile up hundreds of them.
for db in $(su postgres -c "psql -p $pg_port -Atc \"SELECT datname FROM pg_database WHERE datname ~ '^gantry_(test|bench)_[0-9a-f]+$'\""); do
  su postgres -c "psql -p $pg_port -qc 'DROP DATABASE $db'" >/dev/null 2>&1 || true
done

echo "export GANTRY_TEST_IMAGE=$TEST_IMAGE"
echo "export GANTRY_TEST_DEBIAN_IMAGE=$DEBIAN_IMAGE"
echo "export GANTRY_TEST_POSTGRES_URL=postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:$pg_port/postgres"
