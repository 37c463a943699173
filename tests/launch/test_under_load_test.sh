#!/usr/bin/env bash
# launch/test_under_load.sh stopped by a signal stops the whole suite: ctest and every test it
# started (each test's own children included) end, no spinner is left, and the script exits
# 128 + the signal. A stand-in ctest (first on PATH) starts a long child and waits for it, as a
# real ctest waits for a test. Before ctest ran in a process group of its own, SIGTERM reached
# ctest only and its tests ran on.
#   tests/launch/test_under_load_test.sh SOURCE_DIR
set -uo pipefail
source_dir="$(cd "$1" && pwd)"
work="$(mktemp -d /tmp/stylefleet-under-load-XXXXXX)"
marker="$work/child-of-fake-ctest"
failures=0
fail() { echo "FAIL $*"; failures=$((failures + 1)); }
cleanup() { pkill -f "$work/" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

mkdir -p "$work/bin" "$work/build"
touch "$work/build/CTestTestfile.cmake"
cat > "$work/bin/ctest" <<FAKE
#!/usr/bin/env bash
# Stand-in for ctest: one long "test" (a sleep run under a name the check can find), waited for;
# the test keeps SIGINT as a real ctest's tests do (a script's background job would ignore it).
cp /bin/sleep "$marker" 2>/dev/null || true
(trap - INT; exec "$marker" 300) &
touch "$work/started"
wait
FAKE
chmod +x "$work/bin/ctest"

for case in "TERM 143" "INT 130" "HUP 129"; do
  read -r signal expected <<< "$case"
  before=$failures
  rm -f "$work/started"
  # A background job of a script starts with SIGINT ignored; the subshell gives it back, as a
  # terminal's Ctrl-C reaches a foreground script.
  (trap - INT; PATH="$work/bin:$PATH" exec bash "$source_dir/launch/test_under_load.sh" --hog 1 \
     --build "$work/build" > "$work/out.txt" 2>&1) &
  script=$!
  for _ in $(seq 1 100); do [ -f "$work/started" ] && break; sleep 0.1; done
  [ -f "$work/started" ] || { fail "$signal: the stand-in ctest never started"; cat "$work/out.txt"; continue; }
  sleep 0.3
  kill -s "$signal" "$script"
  status=""
  for _ in $(seq 1 100); do
    kill -0 "$script" 2>/dev/null || { wait "$script"; status=$?; break; }
    sleep 0.1
  done
  if [ -z "$status" ]; then
    fail "$signal: the script still runs 10 s after the signal"
    kill -9 "$script" 2>/dev/null
    continue
  fi
  [ "$status" = "$expected" ] || fail "$signal: exit $status, expected $expected"
  sleep 0.5
  left="$(pgrep -f "$marker" || true)"
  [ -z "$left" ] || fail "$signal: the suite's test still runs (pids $left)"
  spinners="$(pgrep -f "kill -0 $script " || true)"
  [ -z "$spinners" ] || fail "$signal: spinners still run (pids $spinners)"
  [ "$failures" -gt "$before" ] || echo "ok   $signal: exit $status, no test or spinner left"
  pkill -f "$marker" 2>/dev/null
done
echo "test_under_load_test $([ "$failures" -eq 0 ] && echo passed || echo failed): $failures failure(s)"
[ "$failures" -eq 0 ]
