#!/usr/bin/env bash
# Runs the test suite of an existing build (ctest) with a CPU hog beside it: HOG processes that
# spin for the whole run, so that a test which depends on how fast or how idle the machine is
# fails here rather than on a busy CI machine. Prints the suite's wall time and the hog's size;
# exits with ctest's status (130, 143 or 129 when stopped by SIGINT, SIGTERM or SIGHUP, which
# are passed on to ctest and every test it started). The plain run is launch/test.sh (or ctest alone).
#   launch/test_under_load.sh [--hog N] [--build DIR] [-- CTEST_ARGS...]
#     --hog N      spinning processes beside the suite, 0 to 4 per CPU (default: one per CPU)
#     --build DIR  the build folder, relative to the current folder (default: the repository's build/)
#     CTEST_ARGS   passed to ctest after its defaults (-j 2 --output-on-failure --no-tests=error),
#                  e.g. -- -L unit, or -- -R '^crash_test$'
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cpus="$(nproc 2>/dev/null || echo 2)"
hog="$cpus"
build="$repo/build"
while [ $# -gt 0 ]; do
  case "$1" in
    --hog) [ $# -ge 2 ] && [[ "$2" =~ ^[0-9]+$ ]] && [ "${#2}" -le 4 ] && [ "$2" -le $((4 * cpus)) ] ||
             { echo "test_under_load: --hog needs a number of processes from 0 to $((4 * cpus)) (4 per CPU)" >&2; exit 2; }
           hog="$2"; shift 2 ;;
    --build) [ $# -ge 2 ] || { echo "test_under_load: --build needs a folder" >&2; exit 2; }
             build="$2"; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "test_under_load: unknown option '$1' (see --help; ctest's options go after --)" >&2; exit 2 ;;
  esac
done
[ -f "$build/CTestTestfile.cmake" ] ||
  { echo "test_under_load: '$build' holds no built tests; run launch/build.sh first" >&2; exit 2; }

spinners=()
tester=""
stop_hog() {
  [ ${#spinners[@]} -eq 0 ] || kill "${spinners[@]}" 2>/dev/null || true
  spinners=()
}
# A signal stops the suite too: ctest runs in the background (bash runs a trap only once its
# foreground child has ended) in a process group of its own, which gets the signal (ctest alone
# would end and leave its tests running), and is waited for.
on_signal() {
  stop_hog
  if [ -n "$tester" ]; then
    kill -s "$1" -- "-$tester" 2>/dev/null || kill -s "$1" "$tester" 2>/dev/null || true
    wait "$tester" 2>/dev/null || true
  fi
  exit "$2"
}
trap stop_hog EXIT
trap 'on_signal INT 130' INT
trap 'on_signal TERM 143' TERM
trap 'on_signal HUP 129' HUP
for _ in $(seq 1 "$hog"); do
  # One CPU's worth of load at normal priority; every half million turns (a second or two) it
  # looks whether this script still runs, so that a SIGKILLed script leaves no spinner behind.
  bash -c 'while kill -0 '"$$"' 2>/dev/null; do for ((i = 0; i < 500000; i++)); do :; done; done' &
  spinners+=("$!")
done
echo "test_under_load: $hog spinning process(es) beside the suite (pids ${spinners[*]:-none})"
start=$(date +%s)
rc=0
# A background job of a non-interactive shell ignores SIGINT; ctest gets it back. The subshell
# is no process group leader (a script has no job control), so setsid makes its own pid the
# group's id without forking, and $tester names the group.
(trap - INT; exec setsid ctest --test-dir "$build" -j 2 --output-on-failure --no-tests=error "$@") &
tester=$!
wait "$tester" || rc=$?
tester=""
stop_hog
echo "test_under_load: the suite took $(( $(date +%s) - start )) s beside $hog spinning" \
  "process(es); ctest exit $rc"
exit "$rc"
