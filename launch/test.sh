#!/usr/bin/env bash
# Installs the dependencies, checks the formatting of changed C++ files, builds, and runs
# every test: ctest (labels unit, mpi, gpu,
# integration, reliability), the job-file fuzzer for a bounded time (FUZZ_SECONDS, 60), and the
# unit tests again under AddressSanitizer and UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/install_deps.sh
bash launch/check_format.sh
bash launch/build.sh
ctest --test-dir build --output-on-failure -j 2
bash tests/fuzz/run_fuzzer.sh "${FUZZ_SECONDS:-60}"
bash launch/test_sanitizers.sh
