#!/usr/bin/env bash
# `swift format lint --strict` (the toolchain's swift-format, settings in .swift-format) over the
# package. Exits non-zero on any finding; `scripts/format-lint.sh --fix` rewrites the files instead.
#
# PENDING lists folders whose formatting belongs to work in flight on other branches; empty when
# every branch has merged.
set -euo pipefail
cd "$(dirname "$0")/.."
PENDING=()
paths=(Package.swift)
for dir in Sources/* Tests/*; do
    skip=0
    for p in "${PENDING[@]+"${PENDING[@]}"}"; do [[ $dir == "$p" ]] && skip=1; done
    ((skip)) || paths+=("$dir")
done
if [[ ${1:-} == --fix ]]; then
    swift format format --in-place --recursive "${paths[@]}"
else
    swift format lint --strict --recursive "${paths[@]}"
    echo "format-lint: clean (${#paths[@]} paths; pending: ${PENDING[*]+${PENDING[*]}})"
fi
