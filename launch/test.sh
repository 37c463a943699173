#!/usr/bin/env bash
# Installs the dependencies, checks the formatting of changed C++ files, builds, and runs
# every test: ctest (labels unit, mpi, gpu, cluster,
# integration, reliability), the job-file fuzzer for a bounded time (FUZZ_SECONDS, 60), and the
# unit tests again under AddressSanitizer and UBSan. Each stage's wall time is printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
timings=()
stage() {
  local name="$1" start=$SECONDS
  shift
  "$@"
  timings+=("$(printf '%-12s %5d s' "$name" $((SECONDS - start)))")
}
report() {
  [ "${#timings[@]}" -gt 0 ] && printf 'test.sh: %s\n' "${timings[@]}"
  return 0
}
trap report EXIT
stage install bash launch/install_deps.sh
stage format bash launch/check_format.sh
stage build bash launch/build.sh
stage ctest ctest --test-dir build --output-on-failure -j 2
stage fuzz bash tests/fuzz/run_fuzzer.sh "${FUZZ_SECONDS:-60}"
stage sanitizers bash launch/test_sanitizers.sh
