#!/usr/bin/env bash
# Configures and builds stylefleet into ./build (Release, ccache when present, -j2
# by default; set JOBS to change). Used by demo.sh and test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs="${JOBS:-$(nproc 2>/dev/null || echo 2)}"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build build -j "$jobs"
