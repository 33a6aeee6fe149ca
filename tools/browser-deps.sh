#!/bin/sh
# playwright-core for the browser tests, from npm, into tests/browser/node_modules
# (as pinned by tests/browser/package-lock.json); nothing when it is there
# already. The browser itself is Debian's chromium (tools/deps.sh).
set -eu
dir="$(cd "$(dirname "$0")/.." && pwd)/tests/browser"
stamp="$dir/node_modules/.package-lock.json"
if [ -f "$stamp" ] && [ ! "$dir/package-lock.json" -nt "$stamp" ]; then
	exit 0
fi
echo "make deps: npm ci in tests/browser (playwright-core)"
cd "$dir" && npm ci --no-audit --no-fund --loglevel=error
