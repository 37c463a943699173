#!/usr/bin/env bash
# launch/mpirun.sh reads hostfiles as mpirun does and refuses bad options (ctest label unit).
# Dry runs only: nothing is launched.
#   usage: mpirun_sh_test.sh SOURCE_DIR
set -uo pipefail
script="$1/launch/mpirun.sh"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failures=0
expect() {  # expect WHAT EXIT_CODE TEXT -- command...
  local what="$1" code="$2" text="$3"
  shift 4
  local out rc
  out="$("$@" 2>&1)"
  rc=$?
  if [ "$rc" -eq "$code" ] && [[ "$out" == *"$text"* ]]; then
    echo "ok   $what"
  else
    echo "FAIL $what: exit $rc (wanted $code), output: $out"
    failures=$((failures + 1))
  fi
}
# Two hosts, written the ways Open MPI accepts: a comment, a Windows line end, a user, an
# exclusion, a '//' comment, a host listed again.
printf 'node-a slots=2 # first\r\n^node-c\nme@node-b slots=2\n// old\n\nnode-a\n' > "$work/hosts"
expect "two hosts counted once each, one rank each, unbound" 0 \
  "mpirun -np 2 --map-by ppr:1:node --mca odls_base_sigkill_timeout 10 --bind-to none" -- \
  "$script" --dry-run --hostfile "$work/hosts" -- train job.yaml
expect "two ranks per host are bound to sockets" 0 "-np 4 --map-by ppr:2:node --mca odls_base_sigkill_timeout 10 --bind-to socket" -- \
  "$script" --dry-run --hostfile "$work/hosts" --ranks-per-node 2 -- train job.yaml
# An exclusion with a user excludes its host (it once counted as a host of its own).
printf 'node-a\n^ops@node-d\n' > "$work/excluded_user"
expect "an excluded user@host is no host" 0 "mpirun -np 1 --map-by ppr:1:node" -- \
  "$script" --dry-run --hostfile "$work/excluded_user" -- train job.yaml
printf '# nothing\n\n' > "$work/empty"
expect "a hostfile without hosts" 2 "names no host" -- "$script" --dry-run --hostfile "$work/empty" -- train j
expect "a folder as hostfile" 2 "cannot read hostfile" -- "$script" --dry-run --hostfile "$work" -- train j
expect "--np abc" 2 "take a whole number from 1, not 'abc'" -- "$script" --dry-run --np abc -- train j
expect "--ranks-per-node 0" 2 "not '0'" -- "$script" --dry-run --ranks-per-node 0 -- train j
expect "a trailing --hostfile" 2 "--hostfile needs a value" -- "$script" --dry-run --hostfile
expect "NCCL variables with digits are passed on" 0 "-x NCCL_P2P_DISABLE" -- \
  env NCCL_P2P_DISABLE=1 "$script" --dry-run -- train j
expect "STYLEFLEET_EXPORT with a bad name" 2 "'A-B', which is not a variable name" -- \
  env STYLEFLEET_EXPORT=A-B "$script" --dry-run -- train j
expect "--restarts without a hostfile" 2 "give --hostfile" -- "$script" --dry-run --restarts 1 -- train j
expect "--restarts with --np" 2 "leave --np out" -- \
  "$script" --dry-run --hostfile "$work/hosts" --np 2 --restarts 1 -- train j
expect "--restarts -1" 2 "--restarts takes a whole number from 0, not '-1'" -- \
  "$script" --dry-run --hostfile "$work/hosts" --restarts -1 -- train j
expect "--restarts with a hostfile" 0 "mpirun -np 2 --map-by ppr:1:node" -- \
  "$script" --dry-run --hostfile "$work/hosts" --restarts 2 -- train job.yaml
expect "--kill-grace 30" 0 "--mca odls_base_sigkill_timeout 30" -- \
  "$script" --dry-run --kill-grace 30 -- train j
expect "--kill-grace 0" 2 "--kill-grace takes whole seconds from 1, not '0'" -- \
  "$script" --dry-run --kill-grace 0 -- train j
[ "$failures" -eq 0 ] && echo "mpirun_sh_test passed" || echo "mpirun_sh_test failed: $failures failure(s)"
[ "$failures" -eq 0 ]
