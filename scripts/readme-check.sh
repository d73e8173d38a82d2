#!/usr/bin/env bash
# Runs the README's quick start as written, so it cannot rot: the block
# marked `readme-check: terminal-1` in the background (it ends waiting for a
# decision), then the block marked `terminal-2` (approve over the API), and
# checks that the tool ran once with the approved arguments.
#
# It runs in a temporary copy of the repository's tracked files with its own
# HOME. What differs from a newcomer's machine, and why:
#   - the line `cargo install --locked --path crates/pliuz` is skipped (a
#     release build would take minutes): the already built debug binary
#     ($PLIUZ_BIN, default target/debug/pliuz) is first on PATH as `pliuz`;
#   - 127.0.0.1:8700 is replaced by a free port, and PLIUZ_BASE_URL points
#     the SDK at it (its default is 127.0.0.1:8700);
#   - pip uses the repository's pinned versions (PIP_CONSTRAINT) and the
#     usual pip cache, so the run is reproducible and quick;
#   - PLIUZ_EXAMPLE_LEDGER makes the example's stand-in tool record each run.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${PLIUZ_BIN:-$root/target/debug/pliuz}"
if [ ! -x "$bin" ]; then
  echo "readme-check: no pliuz binary at $bin (cargo build -p pliuz, or set PLIUZ_BIN)" >&2
  exit 1
fi
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"

work="$(mktemp -d)"
t1_pid=""
cleanup() {
  # Terminal 1 runs in its own process group (setsid): the server with it.
  if [ -n "$t1_pid" ]; then
    kill -- "-$t1_pid" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 -- "-$t1_pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL -- "-$t1_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# The quick-start blocks, by their markers.
block() {
  awk -v marker="<!-- readme-check: $1 -->" '
    $0 == marker { found = 1; next }
    found && /^```sh$/ { inside = 1; next }
    inside && /^```$/ { exit }
    inside { print }
  ' "$root/README.md"
}
t1="$(block terminal-1)"
t2="$(block terminal-2)"
install_line='cargo install --locked --path crates/pliuz'
if ! grep -qxF "$install_line" <<<"$t1" || ! grep -q 'examples/openai_agents_refund.py' <<<"$t1" \
   || [ -z "$t2" ]; then
  echo "readme-check: README.md lacks the marked quick-start blocks (or the install line)" >&2
  exit 1
fi
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
t1="$(grep -vxF "$install_line" <<<"$t1" | sed "s/127\.0\.0\.1:8700/127.0.0.1:$port/g")"
t2="$(sed "s/127\.0\.0\.1:8700/127.0.0.1:$port/g" <<<"$t2")"

mkdir -p "$work/repo" "$work/home" "$work/bin"
# What a clone has (tracked files, and new ones not ignored), as they are now.
(cd "$root" && git ls-files -z --cached --others --exclude-standard sdk/python examples \
  | tar --null -T - -cf -) | tar -C "$work/repo" -xf -
ln -s "$bin" "$work/bin/pliuz"

export PIP_CACHE_DIR="${PIP_CACHE_DIR:-$HOME/.cache/pip}"
export HOME="$work/home"
export PATH="$work/bin:$PATH"
export PIP_CONSTRAINT="$root/sdk/python/constraints.txt"
export PIP_DISABLE_PIP_VERSION_CHECK=1
export PLIUZ_BASE_URL="http://127.0.0.1:$port"
export PLIUZ_EXAMPLE_LEDGER="$work/ledger.jsonl"
unset OPENAI_API_KEY PLIUZ_API_KEY PLIUZ_CONFIG PLIUZ_DATA_DIR PLIUZ_DATABASE_URL \
  PLIUZ_LISTEN PLIUZ_PUBLIC_URL PLIUZ_ADMIN_PASSWORD PLIUZ_AUDIT_SIGNING_KEY VIRTUAL_ENV || true

cd "$work/repo"
echo "readme-check: terminal 1 (port $port)" >&2
setsid bash -euo pipefail -c "$t1" > "$work/terminal-1.log" 2>&1 &
t1_pid=$!

# Waits until terminal 1's output matches PATTERN, polling every PAUSE
# seconds; fails with MESSAGE if terminal 1 ends or LIMIT seconds pass first.
wait_for_terminal_1() {
  local pattern="$1" limit="$2" pause="$3" message="$4"
  local deadline=$((SECONDS + limit))
  until grep -q "$pattern" "$work/terminal-1.log"; do
    if ! kill -0 "$t1_pid" 2>/dev/null || [ "$SECONDS" -gt "$deadline" ]; then
      echo "readme-check: $message:" >&2
      cat "$work/terminal-1.log" >&2
      exit 1
    fi
    sleep "$pause"
  done
}

# Like a person: wait until the example says it is waiting (the pip install
# before it may take a while), then approve from the second terminal.
wait_for_terminal_1 'waiting for a decision' 600 1 "terminal 1 stopped before the example waited"
echo "readme-check: terminal 2" >&2
bash -euo pipefail -c "$t2" > "$work/terminal-2.log" 2>&1 || {
  echo "readme-check: terminal 2 failed:" >&2
  cat "$work/terminal-2.log" "$work/terminal-1.log" >&2
  exit 1
}

# Terminal 1's last command (the example) ends once the tool ran.
wait_for_terminal_1 '^FINAL:' 120 0.5 "the example did not finish"

fail() {
  echo "readme-check: $1" >&2
  cat "$work/terminal-1.log" "$work/terminal-2.log" >&2
  exit 1
}
log="$(cat "$work/terminal-1.log")"
grep -q 'password:' <<<"$log" || fail "the first admin's one-time password was not shown"
grep -q "Log in at  http://127.0.0.1:$port/" <<<"$log" || fail "the log-in URL is not the real one"
grep -q '^Model: scripted, offline' <<<"$log" || fail "the example did not say it runs offline"
grep -qxF 'TOOL OUTPUT: Refunded 5000 cents on order A-1.' <<<"$log" || fail "the tool output is missing"
grep -q '^Approving .*issue_refund({"order_id": "A-1", "amount_cents": 5000})' "$work/terminal-2.log" \
  || fail "terminal 2 did not approve the refund"
[ "$(cat "$work/ledger.jsonl")" = '{"order_id": "A-1", "amount_cents": 5000}' ] \
  || fail "the tool did not run exactly once with the approved arguments: $(cat "$work/ledger.jsonl" 2>/dev/null)"
echo "readme-check: OK, the tool ran once with the approved arguments" >&2
