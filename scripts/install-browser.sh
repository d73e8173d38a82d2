#!/usr/bin/env bash
# Installs what the end-to-end inbox tests need, idempotently:
#   - Debian's chromium at /usr/bin/chromium (only if it is missing)
#   - playwright-core from tests/e2e/package-lock.json (npm ci, no browser download)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if [ ! -x /usr/bin/chromium ]; then
    echo "install-browser: installing Debian's chromium" >&2
    sudo_cmd=""
    if [ "$(id -u)" -ne 0 ]; then
        sudo_cmd="sudo"
    fi
    $sudo_cmd apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y --no-install-recommends chromium
else
    echo "install-browser: /usr/bin/chromium is present" >&2
fi

cd "$repo/tests/e2e"
# playwright-core never downloads browsers; make sure nothing else tries to.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
if [ -d node_modules/playwright-core ] && [ node_modules/.package-lock.json -nt package-lock.json ]; then
    echo "install-browser: node_modules is up to date" >&2
else
    npm ci --no-audit --no-fund
fi
