#!/usr/bin/env bash
# Writes a Prometheus file-based service discovery file for a stylefleet job, into
# monitoring/targets/ (read by monitoring/prometheus.yml).
#
#   launch/prometheus_targets.sh --from-run OUTPUT_DIR
#       copy the file the job's rank 0 wrote (OUTPUT_DIR/prometheus_targets.json): exact,
#       since each rank reports the address it actually serves on
#   launch/prometheus_targets.sh --job NAME --hostfile FILE --ranks-per-node K [--port 9450]
#       compute it before launching: host:port+local_rank for every rank
# Options: --out FILE (default monitoring/targets/<job>.json)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
from="" job="" hostfile="" per_node="" port=9450 out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --from-run) from="$2"; shift 2 ;;
    --job) job="$2"; shift 2 ;;
    --hostfile) hostfile="$2"; shift 2 ;;
    --ranks-per-node) per_node="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
    *) echo "prometheus_targets.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
done
if [ -n "$from" ]; then
  src="$from/prometheus_targets.json"
  [ -r "$src" ] || { echo "prometheus_targets.sh: $src not found (is the job running with monitoring on?)" >&2; exit 2; }
  [ -n "$job" ] || job=$(basename "$from")
  out="${out:-$here/../monitoring/targets/$job.json}"
  mkdir -p "$(dirname "$out")"
  cp "$src" "$out.tmp" && mv "$out.tmp" "$out"
else
  [ -n "$job" ] && [ -n "$hostfile" ] && [ -n "$per_node" ] || {
    echo "prometheus_targets.sh: give --from-run DIR, or --job, --hostfile and --ranks-per-node" >&2; exit 2; }
  out="${out:-$here/../monitoring/targets/$job.json}"
  mkdir -p "$(dirname "$out")"
  targets=""
  while read -r host _; do
    case "$host" in ''|'#'*) continue ;; esac
    for ((r = 0; r < per_node; r++)); do
      targets+="${targets:+, }\"$host:$((port + r))\""
    done
  done < "$hostfile"
  printf '[\n  {"targets": [%s], "labels": {"stylefleet_job": "%s"}}\n]\n' "$targets" "$job" > "$out.tmp"
  mv "$out.tmp" "$out"
fi
echo "wrote $out"
