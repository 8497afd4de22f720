#!/usr/bin/env bash
# Everything a change must pass before it is sent: formatting, lints, the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
