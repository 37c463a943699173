#!/usr/bin/env bash
# Installs the dependencies, builds, and trains the demo job (configs/demo.yaml:
# three styles on the photos in data/content, CPU, one process). Outputs go to runs/demo,
# with the HTML report runs/demo/report.html.
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/install_deps.sh
bash launch/build.sh
./build/stylefleet check configs/demo.yaml
./build/stylefleet train configs/demo.yaml "$@"
./build/stylefleet report configs/demo.yaml
