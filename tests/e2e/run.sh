#!/usr/bin/env bash
# End-to-end tests of the web inbox: installs Debian's chromium and
# playwright-core if needed, builds pliuz unless PLIUZ_BIN is given, then
# runs the tests with node's built-in runner. Exits non-zero on failure.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

"$repo/scripts/install-browser.sh"
if [ -z "${PLIUZ_BIN:-}" ]; then
    (cd "$repo" && cargo build -p pliuz --quiet)
fi
mkdir -p "$repo/test-artifacts"
cd "$here"
node --test --test-concurrency=1 "$@"
