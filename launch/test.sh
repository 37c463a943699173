#!/usr/bin/env bash
# Installs the dependencies, builds, and runs every test (ctest: unit and mpi labels).
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/install_deps.sh
bash launch/build.sh
ctest --test-dir build --output-on-failure -j 2
