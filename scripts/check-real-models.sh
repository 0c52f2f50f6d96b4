#!/usr/bin/env bash
# By-hand check of the engine on real GGUF files (not CI: the files are large and downloaded).
# Usage: scripts/check-real-models.sh DIR [LLAMA_BENCH]
#   DIR holds qwen2.5-coder-1.5b.gguf and qwen2.5-coder-0.5b.gguf (../shared/models/get-qwen-pair.sh DIR);
#   LLAMA_BENCH is llama.cpp's llama-bench (../shared/tools/get-llama-cpp.sh), for the side-by-side speed.
# For each model: load, fidelity against the Float32 reference (bench accuracy), decode speed, tree-scoring
# cost and resident memory (bench model), with llama.cpp beside it when LLAMA_BENCH is given.
set -euo pipefail
dir=${1:?usage: check-real-models.sh DIR [LLAMA_BENCH]}
llama=${2:-}
cd "$(dirname "$0")/.."
swift build -c release >/dev/null
bin=$(swift build -c release --show-bin-path)/chorus
for m in qwen2.5-coder-1.5b qwen2.5-coder-0.5b; do
  f="$dir/$m.gguf"
  [ -f "$f" ] || { echo "missing $f (run ../shared/models/get-qwen-pair.sh $dir)"; exit 2; }
  echo "== $m"
  "$bin" bench accuracy --model "$f"
  for t in 1 2; do
    # One core per thread: the first core for 1 thread, both for 2.
    cores=$([ "$t" = 1 ] && echo 0 || echo 0,1)
    taskset -c "$cores" "$bin" bench model --model "$f" --threads "$t" --trees 1,4,8,16 --prefix 16 --tokens 32 \
      --repeats 5 ${llama:+--llama-bench "$llama"}
  done
done
