#!/usr/bin/env bash
# rustc for this workspace's own crates in the fuzz build (scripts/fuzz.sh
# passes it as RUSTC_WORKSPACE_WRAPPER): adds libFuzzer's coverage
# instrumentation, the flags cargo fuzz uses, less the sanitizer (the code
# under test is safe Rust; the targets look for panics and broken invariants).
# Cargo keeps these builds apart from the plain ones, and builds every
# dependency as usual, so the fuzz build reuses the debug build's.
set -euo pipefail
rustc=$1
shift
exec "$rustc" "$@" \
  -Cpasses=sancov-module \
  -Cllvm-args=-sanitizer-coverage-level=4 \
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
  -Cllvm-args=-sanitizer-coverage-pc-table \
  -Cllvm-args=-sanitizer-coverage-trace-compares
