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
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
binary="$here/../build/stylefleet"
np="" hostfile="" per_node="" iface="" dry_run=0
while [ $# -gt 0 ]; do
  case "$1" in
    --np) np="$2"; shift 2 ;;
    --hostfile) hostfile="$2"; shift 2 ;;
    --ranks-per-node) per_node="$2"; shift 2 ;;
    --iface) iface="$2"; shift 2 ;;
    --binary) binary="$2"; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    --) shift; break ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "mpirun.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ $# -gt 0 ] || { echo "mpirun.sh: give the stylefleet command after --, e.g. -- train job.yaml" >&2; exit 2; }

gpus=0
if command -v nvidia-smi >/dev/null 2>&1; then gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true); fi
if [ -z "$per_node" ]; then
  if [ "$gpus" -gt 0 ]; then per_node="$gpus"; else per_node=1; fi
fi
nodes=1
if [ -n "$hostfile" ]; then
  [ -r "$hostfile" ] || { echo "mpirun.sh: cannot read hostfile '$hostfile'" >&2; exit 2; }
  nodes=$(grep -cvE '^\s*(#|$)' "$hostfile")
fi
[ -n "$np" ] || np=$((per_node * nodes))

cmd=(mpirun -np "$np" --map-by "ppr:${per_node}:node")
# GPU ranks: no core binding (LibTorch sizes its own thread pool from the cores per rank);
# CPU ranks: bind each to its share of cores so ranks do not steal each other's caches.
if [ "$gpus" -gt 0 ]; then cmd+=(--bind-to none); else cmd+=(--bind-to socket); fi
[ -n "$hostfile" ] && cmd+=(--hostfile "$hostfile")
[ "$(id -u)" -eq 0 ] && cmd+=(--allow-run-as-root)
[ "$np" -gt "$(( $(nproc) * nodes ))" ] && cmd+=(--oversubscribe)
if [ -n "$iface" ]; then
  export NCCL_SOCKET_IFNAME="$iface"
  cmd+=(--mca btl_tcp_if_include "$iface" --mca oob_tcp_if_include "$iface")
fi
for name in $(env | sed -n 's/^\(NCCL_[A-Z_]*\)=.*/\1/p') OMP_NUM_THREADS ${STYLEFLEET_EXPORT:-}; do
  [ -n "${!name:-}" ] && cmd+=(-x "$name")
done
cmd+=("$binary" "$@")

if [ "$dry_run" -eq 1 ]; then
  printf '%q ' "${cmd[@]}"; echo
else
  exec "${cmd[@]}"
fi
