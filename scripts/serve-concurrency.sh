#!/usr/bin/env bash
# Aggregate token rate of C concurrent HTTP clients against a local cluster (issue 12, "many clients at
# once"): starts scripts/launch-local.sh with the coordinator's HTTP API on loopback, then for each C in
# --clients sends C streaming /v1/completions requests at once through `chorus bench serve` (max_tokens T,
# ignore_eos, a seed each), R times, and prints per run: C, the wall time from the first send to the last
# answer, the completion tokens of all answers and their sum over the wall time (tokens/s). Stops the cluster
# at the end. Only loopback traffic; every request gives up after 300 s of silence.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: scripts/serve-concurrency.sh [options] [-- extra coordinator args, e.g. --no-batch]

options:
  --clients LIST   comma-separated concurrencies (default 1,4)
  --tokens T       max_tokens of each request (default 200)
  --repeat R       runs per concurrency (default 3)
  --workers N      draft workers (default 1)
  --port P         HTTP port (default 8177)
  --base-port P    the cluster's ports: coordinator P, workers P+1… (default 7300)
  --bin FILE       the chorus binary (default .build/release/chorus)
  --pin            coordinator on CPU 0, workers on CPU 1 (taskset), as separate machines would be
  --worker-arg ARG an extra argument for every worker (repeatable), e.g. --worker-arg --no-batch
  -h, --help       this help
EOF
}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
clients=1,4
tokens=200
repeat=3
workers=1
port=8177
base_port=7300
bin=$repo/.build/release/chorus
extra=()
launch=()
while [[ $# -gt 0 ]]; do
    case $1 in
        --clients) clients=$2; shift 2 ;;
        --tokens) tokens=$2; shift 2 ;;
        --repeat) repeat=$2; shift 2 ;;
        --workers) workers=$2; shift 2 ;;
        --port) port=$2; shift 2 ;;
        --base-port) base_port=$2; shift 2 ;;
        --bin) bin=$2; shift 2 ;;
        --pin) launch+=(--coordinator-cpus 0 --worker-cpus 1); shift ;;
        --worker-arg) launch+=(--worker-arg "$2"); shift 2 ;;
        -h | --help) usage; exit 0 ;;
        --) shift; extra=("$@"); break ;;
        *) echo "serve-concurrency: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

log=$(mktemp -d)
bash "$repo/scripts/launch-local.sh" -n "$workers" --bin "$bin" --no-build --base-port "$base_port" "${launch[@]}" \
    --draft "$repo/models/chorus-kjv-draft-small-f32.gguf" -- --http "127.0.0.1:$port" "${extra[@]}" \
    >"$log/cluster.log" 2>&1 &
cluster=$!
trap 'kill -TERM $cluster 2>/dev/null; wait $cluster 2>/dev/null || true' EXIT

ready() {  # every worker ready
    curl -sf "http://127.0.0.1:$port/health" 2>/dev/null |
        python3 -c "import json, sys; sys.exit(json.load(sys.stdin)['workers']['ready'] < $workers)" 2>/dev/null
}
for _ in $(seq 1 240); do
    if ready; then break; fi
    sleep 0.5
done
ready || { echo "cluster not ready; log: $log" >&2; exit 1; }

echo "clients wall_s tokens tokens_per_s"
for c in ${clients//,/ }; do
    for _ in $(seq 1 "$repeat"); do
        # One wave: exactly C requests, C at a time.
        "$bin" bench serve --url "http://127.0.0.1:$port" --concurrency "$c" --requests "$c" --max-tokens "$tokens" \
            --temperature 1 --timeout 300 --json 2>>"$log/bench.log" |
            python3 -c 'import json, sys
r = json.loads(sys.stdin.readline())
assert r["completed"] == r["requests"], "failed requests: " + str(r["errors"])
print(r["concurrency"], round(r["seconds"], 3), r["completionTokens"], round(r["tokensPerSecond"], 1))'
    done
done
