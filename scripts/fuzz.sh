#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ (coverage-guided, libFuzzer) for a bounded
# time: FUZZ_SECONDS per target (default 20). A crash fails the run and
# leaves its input in fuzz/artifacts/TARGET/: fix the bug, then keep the
# input in fuzz/regressions/TARGET/ (replayed by `cargo test`,
# crates/pliuz/tests/fuzz_regressions.rs).
#
# No third compile of the workspace: fuzz/ is a workspace member, and only
# the workspace's own crates get libFuzzer's coverage instrumentation,
# through RUSTC_WORKSPACE_WRAPPER (scripts/fuzz-rustc.sh). Every dependency
# is the debug build `cargo test` already made, shared in target/. (`cargo
# fuzz` sets RUSTFLAGS and RUSTC_BOOTSTRAP for every crate instead, so the
# whole dependency tree would be compiled a third time.)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
seconds=${FUZZ_SECONDS:-20}

# The instrumented executables, by the paths cargo reports: target/debug/NAME
# may hold a plain build of the same target (`cargo build --workspace`).
executables=$(
  RUSTC_WORKSPACE_WRAPPER="$root/scripts/fuzz-rustc.sh" \
    cargo build --locked -p pliuz-fuzz --bins --message-format=json-render-diagnostics |
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        print(m["target"]["name"], m["executable"])
'
)

for source in fuzz/fuzz_targets/*.rs; do
  target=$(basename "$source" .rs)
  executable=$(awk -v t="$target" '$1 == t { print $2 }' <<< "$executables")
  if [ -z "$executable" ]; then
    echo "fuzz: no executable built for $target" >&2
    exit 1
  fi
  corpus="fuzz/corpus/$target"
  artifacts="fuzz/artifacts/$target"
  mkdir -p "$corpus" "$artifacts" "fuzz/seeds/$target"
  echo "==> fuzz $target for ${seconds}s"
  log="$root/target/fuzz-$target.log"
  rc=0
  # New inputs go to the corpus (the first directory); the seeds are read only.
  "$executable" "$corpus" "fuzz/seeds/$target" \
    -artifact_prefix="$artifacts/" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 > "$log" 2>&1 || rc=$?
  grep -E "^stat::(number_of_executed_units|peak_rss_mb)|cov: " "$log" | tail -n 3 || true
  if [ "$rc" -ne 0 ]; then
    tail -n 40 "$log" >&2
    echo "fuzz $target failed (exit $rc); the input is in $artifacts/" >&2
    exit 1
  fi
done
echo "fuzzing passed"
