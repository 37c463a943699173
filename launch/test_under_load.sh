#!/usr/bin/env bash
# Runs the test suite of an existing build (ctest in build/) with a CPU hog beside it: HOG
# processes that spin for the whole run, so that a test which depends on how fast or how idle the
# machine is fails here rather than on a busy CI machine. Prints the suite's wall time and the
# hog's size; exits with ctest's status. The plain run is launch/test.sh (or ctest alone).
#   launch/test_under_load.sh [--hog N] [--build DIR] [-- CTEST_ARGS...]
#     --hog N      spinning processes beside the suite (default: the number of CPUs, 2 here)
#     --build DIR  the build folder (default: build)
#     CTEST_ARGS   passed to ctest after its defaults (-j 2 --output-on-failure)
set -euo pipefail
cd "$(dirname "$0")/.."
hog="$(nproc 2>/dev/null || echo 2)"
build=build
while [ $# -gt 0 ]; do
  case "$1" in
    --hog) [ $# -ge 2 ] && [[ "$2" =~ ^[0-9]+$ ]] ||
             { echo "test_under_load: --hog needs a number of processes" >&2; exit 2; }
           hog="$2"; shift 2 ;;
    --build) [ $# -ge 2 ] || { echo "test_under_load: --build needs a folder" >&2; exit 2; }
             build="$2"; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "test_under_load: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ -f "$build/CTestTestfile.cmake" ] ||
  { echo "test_under_load: '$build' holds no built tests; run launch/build.sh first" >&2; exit 2; }

spinners=()
stop_hog() {
  [ ${#spinners[@]} -eq 0 ] || kill "${spinners[@]}" 2>/dev/null || true
  spinners=()
}
trap stop_hog EXIT
trap 'stop_hog; exit 130' INT
trap 'stop_hog; exit 143' TERM
for _ in $(seq 1 "$hog"); do
  # A shell that never sleeps: one CPU's worth of load each, at normal priority.
  bash -c 'while :; do :; done' &
  spinners+=("$!")
done
echo "test_under_load: $hog spinning process(es) beside the suite (pids ${spinners[*]:-none})"
start=$(date +%s)
rc=0
ctest --test-dir "$build" -j 2 --output-on-failure "$@" || rc=$?
stop_hog
echo "test_under_load: the suite took $(( $(date +%s) - start )) s beside $hog spinning" \
  "process(es); ctest exit $rc"
exit "$rc"
