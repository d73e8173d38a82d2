#!/usr/bin/env bash
# Runs every cargo fuzz target in fuzz/ for a bounded time: FUZZ_SECONDS per
# target (default 20). Installs the pinned cargo-fuzz when missing. A crash
# fails the run and leaves its input in fuzz/artifacts/TARGET/: fix the bug,
# then keep the input in fuzz/regressions/TARGET/ (replayed by `cargo test`,
# crates/pliuz/tests/fuzz_regressions.rs).
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.12.0
seconds=${FUZZ_SECONDS:-20}

if ! cargo fuzz --version 2>/dev/null | grep -qF "$CARGO_FUZZ_VERSION"; then
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi
# cargo fuzz passes nightly-only flags (-Zsanitizer and friends); this lets
# the single stable toolchain accept them.
export RUSTC_BOOTSTRAP=1

cd fuzz
# --dev and no sanitizer: the build stays short on a small CI machine; the
# code under test is safe Rust, and panics are what the checks look for.
flags=(--dev --sanitizer none)
cargo fuzz build "${flags[@]}"
for target in $(cargo fuzz list); do
  corpus="corpus/$target"
  mkdir -p "$corpus" "seeds/$target"
  echo "==> fuzz $target for ${seconds}s"
  log="target/fuzz-$target.log"
  mkdir -p target
  rc=0
  cargo fuzz run "${flags[@]}" "$target" "$corpus" "seeds/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 > "$log" 2>&1 || rc=$?
  grep -E "^stat::(number_of_executed_units|peak_rss_mb)" "$log" || true
  if [ "$rc" -ne 0 ]; then
    tail -n 40 "$log" >&2
    echo "fuzz $target failed (exit $rc); the input is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
echo "fuzzing passed"
