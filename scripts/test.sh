#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine with Rust: installs and starts the
# services the tests use (scripts/test-services.sh, needs root), then checks formatting and
# lints and runs every test, then fuzzes the HTTP API against its OpenAPI document.
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(scripts/test-services.sh)"

# One build from scratch gains nothing from incremental state, which is most of a debug
# target directory's size.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked --all-targets
# The HTTP API against its OpenAPI document, with generated requests (schemathesis).
scripts/fuzz-api.sh
