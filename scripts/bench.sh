#!/usr/bin/env bash
# Runs the fan-out benchmark (release build, LTO) and keeps its output with the date, the
# machine and the commit, ready to paste into docs/PERFORMANCE.md.
#   MIRROR_BENCH_ROUNDS (3), MIRROR_BENCH_ITERATIONS (2000), MIRROR_BENCH_FOLLOWERS (1,10,100,1000)
set -euo pipefail
cd "$(dirname "$0")/.."
out="target/bench-$(date -u +%Y%m%dT%H%M%SZ).md"
mkdir -p target
{
  echo "date: $(date -u +%Y-%m-%d) · commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown) · $(rustc --version)"
  echo "command: cargo bench -p mirror-benches"
  echo
  cargo bench -q -p mirror-benches 2>/dev/null
} | tee "$out"
echo "saved to $out"
