#!/usr/bin/env bash
# Runs every test of the project: Rust (unit, integration against the real
# binary on SQLite and PostgreSQL), the Python SDK against a real server,
# the TypeScript SDK (real binary, real @openai/agents Runner), the independent
# audit cross-check, and the web inbox in headless Chromium.
# Installs what the tests need (Python packages, npm packages, Chromium).
# The workspace is compiled once for the tests (debug; the Python, README and
# browser tests use that binary too) besides clippy's check; fuzzing recompiles
# only our own crates, instrumented. Each step's time is printed, with a
# summary at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

step_names=()
step_secs=()
current=""
started=$SECONDS
finish_step() {
  if [ -n "$current" ]; then
    local took=$((SECONDS - started))
    step_names+=("$current")
    step_secs+=("$took")
    printf -- '--- %s: %ds\n' "$current" "$took"
  fi
  current=""
}
step() {
  finish_step
  current="$*"
  started=$SECONDS
  printf '\n==> %s\n' "$*"
}
summary() {
  local status=$?
  finish_step
  printf '\nStep times:\n'
  local i total=0
  for i in "${!step_names[@]}"; do
    printf '  %5ds  %s\n' "${step_secs[$i]}" "${step_names[$i]}"
    total=$((total + step_secs[i]))
  done
  printf '  %5ds  total\n' "$total"
  if [ "$status" -ne 0 ]; then
    printf 'FAILED (exit %d)\n' "$status"
  fi
}
trap summary EXIT

step "Rust: format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "Rust: cargo deny (licences, duplicate versions, sources)"
bash scripts/deny.sh

step "Rust: build the tests (and the pliuz binary they run)"
# One debug build serves every test: `cargo test` below reuses it, and the
# Python, README and browser tests run this binary.
cargo test --workspace --locked --no-run
export PLIUZ_BIN="$root/target/debug/pliuz"

step "Python: environment"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -c sdk/python/constraints.txt \
  -e "sdk/python[openai-agents,langgraph,claude-agent,dev]" -r tests/audit-crosscheck/requirements.txt

step "Browser: Chromium and playwright-core"
bash scripts/install-browser.sh

step "Rust: tests"
cargo test --workspace --locked

step "Python: lint, types and tests"
.venv/bin/ruff check sdk/python sdk/test-vectors examples tests/audit-crosscheck tests/schemathesis
.venv/bin/ruff format --check sdk/python sdk/test-vectors examples tests/audit-crosscheck tests/schemathesis
(cd sdk/python && ../../.venv/bin/python -m mypy)
.venv/bin/python -m pytest -q sdk/python/tests tests/audit-crosscheck

step "README: the quick start, verbatim"
bash scripts/readme-check.sh

step "TypeScript SDK: install, tsc --strict, lint, tests, npm pack"
(
  cd sdk/typescript
  npm ci --no-audit --no-fund
  npm run typecheck
  npm run lint
  npm test
  npm run pack-check
)

step "API: schemathesis against the real binary (agent and user credentials)"
bash scripts/schemathesis.sh

step "Fuzzing: every fuzz target for a bounded time (reusing the debug build)"
bash scripts/fuzz.sh

step "Web inbox: end-to-end in headless Chromium"
bash tests/e2e/run.sh

finish_step
printf '\n==> All tests passed\n'
