#!/usr/bin/env bash
# Refreshes the vendored Phoenix JavaScript client that the web pages import:
# static/vendor/phoenix.mjs (the ES module build) and its license, taken from
# the npm package tarball (`npm pack`, so nothing is installed).
#
#   scripts/refresh-phoenix.sh           # the pinned version below
#   scripts/refresh-phoenix.sh 1.8.17    # another version (then update PHOENIX_VERSION
#                                        # here and "phoenix" in tests/node/package.json)
#
# Writes static/vendor/phoenix.mjs, static/vendor/phoenix.LICENSE.md and
# static/vendor/phoenix.VERSION.
set -euo pipefail
cd "$(dirname "$0")/.."

PHOENIX_VERSION=1.8.16
version=${1:-$PHOENIX_VERSION}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

tarball=$(cd "$work" && npm pack --silent "phoenix@$version")
tar -xzf "$work/$tarball" -C "$work"
install -m 0644 "$work/package/priv/static/phoenix.mjs" static/vendor/phoenix.mjs
install -m 0644 "$work/package/LICENSE.md" static/vendor/phoenix.LICENSE.md
printf 'phoenix %s (npm), priv/static/phoenix.mjs\n' "$version" > static/vendor/phoenix.VERSION
echo "static/vendor: phoenix $version"
