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
#   --dry-run            print the mpirun command instead of running it
# Environment variables named in STYLEFLEET_EXPORT (space-separated) are passed to every rank,
# as are NCCL_* and OMP_NUM_THREADS when set.
#
# When a launch over a hostfile fails (not a refused job, exit 2), every other host is asked
# through plm_rsh_agent (ssh by default) whether it still answers; those that do not are named.
#
# Stopping: send SIGTERM to this script, or press Ctrl-C: every rank finishes its step, each
# group root writes a checkpoint, and the script exits 0 (rerun the same command to resume).
# A second signal stops the ranks at once. Signal this script, not the mpirun it starts.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
binary="$here/../build/stylefleet"
np="" hostfile="" per_node="" iface="" dry_run=0
while [ $# -gt 0 ]; do
  case "$1" in
    --np|--hostfile|--ranks-per-node|--iface|--binary)
      [ $# -ge 2 ] || { echo "mpirun.sh: $1 needs a value (see --help)" >&2; exit 2; } ;;
  esac
  case "$1" in
    --np) np="$2"; shift 2 ;;
    --hostfile) hostfile="$2"; shift 2 ;;
    --ranks-per-node) per_node="$2"; shift 2 ;;
    --iface) iface="$2"; shift 2 ;;
    --binary) binary="$2"; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    --) shift; break ;;
    -h|--help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
    *) echo "mpirun.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ $# -gt 0 ] || { echo "mpirun.sh: give the stylefleet command after --, e.g. -- train job.yaml" >&2; exit 2; }

for value in "$np" "$per_node"; do
  [[ -z "$value" || "$value" =~ ^[1-9][0-9]{0,6}$ ]] ||
    { echo "mpirun.sh: --np and --ranks-per-node take a whole number from 1, not '$value'" >&2; exit 2; }
done
for name in ${STYLEFLEET_EXPORT:-}; do
  [[ "$name" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] ||
    { echo "mpirun.sh: STYLEFLEET_EXPORT names '$name', which is not a variable name" >&2; exit 2; }
done
# The hosts of the hostfile, once each: the first word of each line, without comments ('#',
# '//'), Windows line ends, exclusions ('^host') or a user ('user@host').
hostfile_hosts() {
  sed -e 's/\r$//' -e 's/#.*//' -e 's|//.*||' "$hostfile" |
    awk 'NF && $1 !~ /^\^/ { sub(/^[^@]*@/, "", $1); if (!seen[$1]++) print $1 }'
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
[ -n "$np" ] || np=$((per_node * nodes))

# Open MPI's mpirun answers SIGTERM/SIGINT by killing the ranks (SIGTERM, then SIGKILL after
# odls_base_sigkill_timeout, 1 s by default) and exits 1 even when they stopped cleanly. So
# mpirun runs in its own session (a terminal's Ctrl-C reaches only this script) and a stop is
# passed on as SIGUSR1, which mpirun forwards to the ranks unchanged and stylefleet treats as a
# stop request. The longer grace covers a SIGTERM that reaches mpirun directly (a scheduler
# signalling every process): the ranks can still write their checkpoints, but mpirun exits 1.
cmd=(mpirun -np "$np" --map-by "ppr:${per_node}:node" --mca odls_base_sigkill_timeout 60)
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
cmd+=("$binary" "$@")

if [ "$dry_run" -eq 1 ]; then
  printf '%q ' "${cmd[@]}"; echo
  exit 0
fi
setsid "${cmd[@]}" &
child=$!
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
# `wait` returns early when a trapped signal arrives; wait again until mpirun has exited.
while :; do
  rc=0
  wait "$child" || rc=$?
  kill -0 "$child" 2>/dev/null || break
done
# A launch over several hosts that failed: say which hosts can no longer be reached (a lost
# node), asking each the way mpirun starts its daemons there (plm_rsh_agent, ssh by default).
# Not after a refused job (exit 2) or a stop, not under a resource manager (mpirun starts its
# daemons through it, not ssh), not for this machine; when no other host answers either, the
# message says that the probe itself may be at fault (mpirun may use other ssh options).
under_rm="${SLURM_JOB_ID:-}${PBS_JOBID:-}${PE_HOSTFILE:-}${LSB_JOBID:-}"
if [ "$rc" -ne 0 ] && [ "$rc" -ne 2 ] && [ -n "$hostfile" ] && [ "$stops" -eq 0 ] && [ -z "$under_rm" ]; then
  trap - TERM INT
  agent="${OMPI_MCA_plm_rsh_agent:-ssh}"
  agent="${agent%%:*}"   # Open MPI's form "ssh : rsh": the first one
  read -r -a probe <<< "$agent" || true
  [ "${#probe[@]}" -gt 0 ] || probe=(ssh)
  [ "$(basename "${probe[0]}")" = ssh ] && probe+=(-o BatchMode=yes -o ConnectTimeout=10)
  me="$(hostname)"
  probes="$(mktemp -d)"
  for host in $(hostfile_hosts); do
    case "$host" in
      localhost|127.*|"$me"|"${me%%.*}") ;;  # this machine: mpirun does not ask it
      *) ( if timeout 20 "${probe[@]}" "$host" true </dev/null >/dev/null 2>&1; then
             touch "$probes/answered-$host"; else touch "$probes/lost-$host"; fi ) & ;;
    esac
  done
  wait
  lost="" answered=0
  for found in "$probes"/*; do
    case "${found##*/}" in
      lost-*) lost+="${found##*/lost-} " ;;
      answered-*) answered=$((answered + 1)) ;;
    esac
  done
  rm -rf "$probes"
  if [ -n "$lost" ]; then
    doubt=""
    [ "$answered" -gt 0 ] || doubt=" (no other host was reached either: if mpirun reaches them with other options, this says nothing)"
    echo "mpirun.sh: the launch ended (exit $rc) and host(s) ${lost% } could not be reached with ${probe[0]}${doubt}: a lost node ends the whole launch; rerun on the hosts that answer to resume from the newest checkpoints" >&2
  fi
fi
exit "$rc"
