#!/usr/bin/env bash
# The paper-style table: block efficiency vs K for optimal, truncated-lp, specinfer and spectr with
# identical drafts at draft temperatures 1.2 … 2.4 (target at temperature 1), on the shipped models.
# Block efficiency does not depend on timing, so a busy machine changes only how long this takes.
# Extra arguments go to `chorus bench` (e.g. --drafts 1,2,4,8 for a shorter run).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
bin=${CHORUS_BIN:-}
if [[ -z $bin ]]; then
    swift build -c release --product chorus >&2
    bin=$(swift build -c release --show-bin-path)/chorus
fi
out=${OUT:-results/bench-paper-$(date -u +%Y%m%d-%H%M%S).jsonl}
"$bin" bench --schemes optimal,truncated-lp,specinfer,spectr --drafts 1,2,3,4,5,6,7,8 \
    --temperatures 1.2,1.4,1.6,1.8,2.0,2.2,2.4 --draft-lengths 4 --tokens 64 --baseline-every 0 --out "$out" "$@"
"$bin" bench plot "$out" --out "${out%.jsonl}-plots"
