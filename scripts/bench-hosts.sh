#!/usr/bin/env bash
# Scaling across emulated hosts: `chorus bench --hosts` (workers in network namespaces via
# scripts/netns-cluster.sh, the coordinator and the workers pinned to disjoint CPUs with taskset), then
# the plots. Needs root. Extra arguments go to `chorus bench` (e.g. --delay-ms 2 --tokens 32).
#
#   sudo scripts/bench-hosts.sh                      # hosts 1,2,4,8; K = 8 spread over them
#   sudo HOSTS=1,2,4 scripts/bench-hosts.sh --delay-ms 5
#
# Environment: HOSTS (default 1,2,4,8), OUT (results file, default results/bench-hosts-DATE.jsonl),
# CHORUS_BIN (default: the release build, built if missing), COORD_CPUS / WORKER_CPUS (taskset lists).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
if [[ $(id -u) -ne 0 ]]; then
    echo "bench-hosts: skipped — needs root (network namespaces); run it with sudo" >&2
    exit 0
fi
bin=${CHORUS_BIN:-}
if [[ -z $bin ]]; then
    swift build -c release --product chorus >&2
    bin=$(swift build -c release --show-bin-path)/chorus
fi
out=${OUT:-results/bench-hosts-$(date -u +%Y%m%d-%H%M%S).jsonl}
"$bin" bench --hosts "${HOSTS:-1,2,4,8}" --drafts 8 --schemes specinfer,optimal --out "$out" "$@"
"$bin" bench plot "$out" --out "${out%.jsonl}-plots" >/dev/null
echo "bench-hosts: results in $out, charts and table.md in ${out%.jsonl}-plots" >&2
