#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine with Rust: installs and starts the
# services the tests use (scripts/test-services.sh, needs root), then checks formatting and
# lints and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(scripts/test-services.sh)"

cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked --all-targets
