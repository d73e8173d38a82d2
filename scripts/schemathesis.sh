#!/usr/bin/env bash
# Runs schemathesis against /api/v1/openapi.json of the real binary, once
# with an agent key and once with a user (admin) token: no response may be a
# 5xx, every error must be problem+json (tests/schemathesis/hooks.py), and
# responses must match the schema. Bounded: ST_MAX_EXAMPLES per operation
# (default 30). Needs PLIUZ_BIN (default target/debug/pliuz).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bin=${PLIUZ_BIN:-$root/target/debug/pliuz}
examples=${ST_MAX_EXAMPLES:-30}

venv=.venv-schemathesis
if [ ! -x "$venv/bin/st" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet -c tests/schemathesis/constraints.txt \
  -r tests/schemathesis/requirements.txt

work=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

config=$root/tests/schemathesis/pliuz.toml
pliuz() { "$bin" --data-dir "$work/data" --config "$config" "$@"; }
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
agent=$(pliuz agents create fuzz-bot 2>/dev/null)
echo "correct-horse-battery" | pliuz users create ops@example.com --role admin --group ops --password-stdin >/dev/null 2>&1
user=$(pliuz users token ops@example.com 2>/dev/null)
# The binary itself, not the function: `$!` must be the server's pid for
# the cleanup to stop it (a backgrounded function is a subshell).
PLIUZ_LOG=warn "$bin" --data-dir "$work/data" --config "$config" \
  serve --listen "127.0.0.1:$port" > "$work/server.log" 2>&1 &
server_pid=$!
base="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
  curl -fsS "$base/readyz" > /dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "$base/readyz" > /dev/null

for who in agent user; do
  token=$agent
  [ "$who" = user ] && token=$user
  echo "==> schemathesis as $who"
  SCHEMATHESIS_HOOKS=hooks PYTHONPATH="$root/tests/schemathesis" \
    "$venv/bin/st" run "$base/api/v1/openapi.json" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,problem_json_errors,status_code_conformance,content_type_conformance,response_schema_conformance \
    --max-examples "$examples" \
    --seed 1 \
    --request-timeout 70 \
    --no-color || { tail -n 50 "$work/server.log" >&2; exit 1; }
done
if grep -q "panicked" "$work/server.log"; then
  grep -n "panicked" "$work/server.log" >&2
  exit 1
fi
echo "schemathesis passed"
