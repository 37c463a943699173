#!/usr/bin/env bash
# Launches stylefleet over one or many nodes with Open MPI's mpirun.
#
#   launch/mpirun.sh [options] -- train JOB.yaml [stylefleet options]
#
# Options:
#   --np N               total ranks (default: ranks per node x nodes in the hostfile, or ranks per node)
#   --hostfile FILE      Open MPI hostfile ("node1 slots=8" per line); omit for this machine only
#   --ranks-per-node K   ranks started on each node (default: GPUs per node from nvidia-smi,
#                        or 1 per node on CPU-only machines, where each rank uses all cores)
#   --iface IFACE        network interface for NCCL and MPI's TCP traffic (e.g. ib0, eth0);
#                        sets NCCL_SOCKET_IFNAME and btl_tcp_if_include
#   --binary PATH        stylefleet binary (default: build/stylefleet next to this script)
#   --restarts K         after a launch that lost hosts, relaunch up to K times on the hostfile's
#                        hosts that still answer (needs --hostfile, not --np); the styles resume
#                        from their newest checkpoints on fewer ranks (elastic resume, README)
#   --kill-grace S       seconds mpirun gives the ranks between SIGTERM and SIGKILL when it
#                        ends a launch itself (default 10; see below)
#   --dry-run            print the mpirun command instead of running it
# Environment variables named in STYLEFLEET_EXPORT (space-separated) are passed to every rank,
# as are NCCL_* and OMP_NUM_THREADS when set.
#
# When a launch over a hostfile fails (not a refused job, exit 2), every other host is asked
# through plm_rsh_agent (ssh by default) whether it still answers; those that do not are named,
# and with --restarts the launch starts again without them.
#
# Stopping: send SIGTERM to this script, or press Ctrl-C: every rank finishes its step, each
# group root writes a checkpoint, and the script exits 0 (rerun the same command to resume).
# A second signal stops the ranks at once. Signal this script, not the mpirun it starts.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
binary="$here/../build/stylefleet"
np="" hostfile="" per_node="" iface="" dry_run=0 restarts=0 kill_grace=10
while [ $# -gt 0 ]; do
  case "$1" in
    --np|--hostfile|--ranks-per-node|--iface|--binary|--restarts|--kill-grace)
      [ $# -ge 2 ] || { echo "mpirun.sh: $1 needs a value (see --help)" >&2; exit 2; } ;;
  esac
  case "$1" in
    --np) np="$2"; shift 2 ;;
    --hostfile) hostfile="$2"; shift 2 ;;
    --ranks-per-node) per_node="$2"; shift 2 ;;
    --iface) iface="$2"; shift 2 ;;
    --binary) binary="$2"; shift 2 ;;
    --restarts) restarts="$2"; shift 2 ;;
    --kill-grace) kill_grace="$2"; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    --) shift; break ;;
    -h|--help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
    *) echo "mpirun.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ $# -gt 0 ] || { echo "mpirun.sh: give the stylefleet command after --, e.g. -- train job.yaml" >&2; exit 2; }
stylefleet_args=("$@")

for value in "$np" "$per_node"; do
  [[ -z "$value" || "$value" =~ ^[1-9][0-9]{0,6}$ ]] ||
    { echo "mpirun.sh: --np and --ranks-per-node take a whole number from 1, not '$value'" >&2; exit 2; }
done
[[ "$kill_grace" =~ ^[1-9][0-9]{0,3}$ ]] ||
  { echo "mpirun.sh: --kill-grace takes whole seconds from 1, not '$kill_grace'" >&2; exit 2; }
[[ "$restarts" =~ ^[0-9]{1,4}$ ]] ||
  { echo "mpirun.sh: --restarts takes a whole number from 0, not '$restarts'" >&2; exit 2; }
if [ "$restarts" -gt 0 ]; then
  [ -n "$hostfile" ] ||
    { echo "mpirun.sh: --restarts relaunches on the hostfile's hosts that still answer: give --hostfile" >&2; exit 2; }
  [ -z "$np" ] ||
    { echo "mpirun.sh: --restarts starts --ranks-per-node ranks on each host that answers: leave --np out" >&2; exit 2; }
fi
for name in ${STYLEFLEET_EXPORT:-}; do
  [[ "$name" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] ||
    { echo "mpirun.sh: STYLEFLEET_EXPORT names '$name', which is not a variable name" >&2; exit 2; }
done
# Each line of the hostfile as "HOST<tab>LINE": HOST is the first word of the line without
# comments ('#', '//'), a Windows line end or a user ('user@host'), and keeps an exclusion's
# '^' ('^user@host' gives '^host'); empty on a line that names none. The one reading of the
# hostfile's lines, for hostfile_hosts and drop_lost_hosts.
hostfile_lines() {
  sed -e 's/\r$//' "$hostfile" |
    awk '{ line = $0; sub(/#.*/, "", line); sub(/\/\/.*/, "", line); split(line, w, " ");
           host = w[1]; excluded = sub(/^\^/, "", host); sub(/^[^@]*@/, "", host);
           if (excluded) host = "^" host; print host "\t" $0 }'
}
# The hosts of the hostfile, once each, without exclusions ('^host').
hostfile_hosts() {
  hostfile_lines | awk -F'\t' '$1 != "" && $1 !~ /^\^/ && !seen[$1]++ { print $1 }'
}

gpus=0
if command -v nvidia-smi >/dev/null 2>&1; then gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true); fi
if [ -z "$per_node" ]; then
  if [ "$gpus" -gt 0 ]; then per_node="$gpus"; else per_node=1; fi
fi
nodes=1
if [ -n "$hostfile" ]; then
  [ -f "$hostfile" ] && [ -r "$hostfile" ] || { echo "mpirun.sh: cannot read hostfile '$hostfile'" >&2; exit 2; }
  nodes=$(hostfile_hosts | wc -l)
  [ "$nodes" -gt 0 ] || { echo "mpirun.sh: hostfile '$hostfile' names no host" >&2; exit 2; }
fi
np_given="$np"

# Open MPI's mpirun answers SIGTERM/SIGINT by killing the ranks (SIGTERM, then SIGKILL after
# odls_base_sigkill_timeout, 1 s by default) and exits 1 even when they stopped cleanly. So
# mpirun runs in its own session (a terminal's Ctrl-C reaches only this script) and a stop is
# passed on as SIGUSR1, which mpirun forwards to the ranks unchanged and stylefleet treats as a
# stop request. The longer grace covers a SIGTERM that reaches mpirun directly (a scheduler
# signalling every process): the ranks can still write their checkpoints, but mpirun exits 1.
# mpirun waits out the grace whenever it ends a launch itself, even when every rank has
# already exited (a refused job, exit 2, took 2 minutes to return with 60 s), so it is short.
build_command() {
  np="${np_given:-$((per_node * nodes))}"
  cmd=(mpirun -np "$np" --map-by "ppr:${per_node}:node" --mca odls_base_sigkill_timeout "$kill_grace")
  # GPU ranks, and one CPU rank per node (it uses every core of every socket): no binding
  # (LibTorch sizes its own thread pool from the cores per rank); several CPU ranks per node:
  # each bound to a socket so ranks do not steal each other's caches.
  if [ "$gpus" -gt 0 ] || [ "$per_node" -eq 1 ]; then cmd+=(--bind-to none); else cmd+=(--bind-to socket); fi
  [ -n "$hostfile" ] && cmd+=(--hostfile "$hostfile")
  [ "$(id -u)" -eq 0 ] && cmd+=(--allow-run-as-root)
  [ "$np" -gt "$(( $(nproc) * nodes ))" ] && cmd+=(--oversubscribe)
  if [ -n "$iface" ]; then
    export NCCL_SOCKET_IFNAME="$iface"
    cmd+=(--mca btl_tcp_if_include "$iface" --mca oob_tcp_if_include "$iface")
  fi
  for name in $(env | sed -n 's/^\(NCCL_[A-Z0-9_]*\)=.*/\1/p') OMP_NUM_THREADS ${STYLEFLEET_EXPORT:-}; do
    [ -n "${!name:-}" ] && cmd+=(-x "$name")
  done
  cmd+=("$binary" "${stylefleet_args[@]}")
}

if [ "$dry_run" -eq 1 ]; then
  build_command
  printf '%q ' "${cmd[@]}"; echo
  exit 0
fi
child=""
stops=0
pass_stop() {
  stops=$((stops + 1))
  if [ "$stops" -eq 1 ]; then
    echo "mpirun.sh: stopping: each rank finishes its step and writes a checkpoint (signal again to stop at once)" >&2
    kill -USR1 "$child" 2>/dev/null || true
  else
    kill -TERM "$child" 2>/dev/null || true
  fi
}
trap pass_stop TERM INT
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# A launch over several hosts that failed: say which hosts can no longer be reached (a lost
# node), asking each the way mpirun starts its daemons there (plm_rsh_agent, ssh by default).
# Not after a refused job (exit 2) or a stop, not under a resource manager (mpirun starts its
# daemons through it, not ssh), not for this machine; when no other host answers either, the
# message says that the probe itself may be at fault (mpirun may use other ssh options).
# Sets `lost` (host names, space-separated) and `answered` (how many others answered).
find_lost_hosts() {
  lost="" answered=0
  local under_rm="${SLURM_JOB_ID:-}${PBS_JOBID:-}${PE_HOSTFILE:-}${LSB_JOBID:-}"
  if [ "$rc" -eq 0 ] || [ "$rc" -eq 2 ] || [ -z "$hostfile" ] || [ "$stops" -ne 0 ] || [ -n "$under_rm" ]; then
    return 0
  fi
  local agent="${OMPI_MCA_plm_rsh_agent:-ssh}"
  agent="${agent%%:*}"   # Open MPI's form "ssh : rsh": the first one
  read -r -a probe <<< "$agent" || true
  [ "${#probe[@]}" -gt 0 ] || probe=(ssh)
  [ "$(basename "${probe[0]}")" = ssh ] && probe+=(-o BatchMode=yes -o ConnectTimeout=10)
  local me probes host found
  me="$(hostname)"
  probes="$(mktemp -d "$work/probe.XXXXXX")"
  for host in $(hostfile_hosts); do
    case "$host" in
      localhost|127.*|"$me"|"${me%%.*}") ;;  # this machine: mpirun does not ask it
      *) ( if timeout 20 "${probe[@]}" "$host" true </dev/null >/dev/null 2>&1; then
             touch "$probes/answered-$host"; else touch "$probes/lost-$host"; fi ) & ;;
    esac
  done
  wait
  for found in "$probes"/*; do
    case "${found##*/}" in
      lost-*) lost+="${found##*/lost-} " ;;
      answered-*) answered=$((answered + 1)) ;;
    esac
  done
  rm -rf "$probes"
  lost="${lost% }"
  if [ -n "$lost" ]; then
    local doubt=""
    [ "$answered" -gt 0 ] || doubt=" (no other host was reached either: if mpirun reaches them with other options, this says nothing)"
    echo "mpirun.sh: the launch ended (exit $rc) and host(s) $lost could not be reached with ${probe[0]}${doubt}: a lost node ends the whole launch; rerun on the hosts that answer to resume from the newest checkpoints" >&2
  fi
}

# The current hostfile without the lines of the `lost` hosts, as a new file; sets `hostfile`
# and `nodes`.
drop_lost_hosts() {
  local kept="$work/hostfile.$attempt"
  hostfile_lines | awk -F'\t' -v lost=" $lost " \
    'index(lost, " " $1 " ") == 0 || $1 == "" { print substr($0, index($0, "\t") + 1) }' > "$kept"
  hostfile="$kept"
  nodes=$(hostfile_hosts | wc -l)
}

attempt=0
while :; do
  build_command
  setsid "${cmd[@]}" &
  child=$!
  # `wait` returns early when a trapped signal arrives; wait again until mpirun has exited.
  while :; do
    rc=0
    wait "$child" || rc=$?
    kill -0 "$child" 2>/dev/null || break
  done
  find_lost_hosts
  [ -n "$lost" ] && [ "$attempt" -lt "$restarts" ] && [ "$stops" -eq 0 ] || break
  attempt=$((attempt + 1))
  drop_lost_hosts
  if [ "$nodes" -eq 0 ]; then
    echo "mpirun.sh: no host of the hostfile is left to relaunch on" >&2
    break
  fi
  [ "$stops" -eq 0 ] || break  # a stop that came during the probe
  echo "mpirun.sh: restart $attempt of $restarts, without host(s) $lost: $((per_node * nodes)) rank(s) on $(hostfile_hosts | tr '\n' ' ' | sed 's/ $//'); the styles resume from their newest checkpoints" >&2
done
exit "$rc"
