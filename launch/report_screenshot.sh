#!/usr/bin/env bash
# Writes a job's HTML report and a PNG of it as a browser renders it (headless Chromium,
# no network), to check the page by eye. Needs Debian's chromium (not installed by
# install_deps.sh: it is large and only this check uses it):
#   apt-get install --no-install-recommends chromium
# Usage: launch/report_screenshot.sh JOB_OR_OUTPUT_DIR OUT.png [WIDTH HEIGHT]
set -euo pipefail
if [ $# -lt 2 ] || [ "$1" = "--help" ] || [ "$1" = "-h" ]; then
  echo "usage: launch/report_screenshot.sh JOB_OR_OUTPUT_DIR OUT.png [WIDTH HEIGHT]" >&2
  echo "  writes the job's report.html and a headless-Chromium screenshot of it" >&2
  exit 2
fi
cd "$(dirname "$0")/.."
browser="$(command -v chromium || command -v chromium-browser || true)"
if [ -z "$browser" ]; then
  echo "chromium not found: apt-get install --no-install-recommends chromium" >&2
  exit 1
fi
# A fresh folder, not mktemp's empty file: report replaces only an earlier report.
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
html="$tmp/report.html"
./build/stylefleet report "$1" --output "$html"
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars \
  --window-size="${3:-1300},${4:-1800}" --screenshot="$(realpath -m "$2")" "file://$html" 2>/dev/null
echo "screenshot: $2"
