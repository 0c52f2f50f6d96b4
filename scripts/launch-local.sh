#!/usr/bin/env bash
# Starts a whole Chorus cluster on this machine: N draft workers and a coordinator, each its own
# process (and process group), waits until every one is listening, prints the addresses and a
# ready-to-paste `chorus generate` line, and runs until Ctrl-C (or SIGTERM), then stops every child
# cleanly: SIGTERM to each process group (coordinator first), a grace period, SIGKILL to what is left,
# and `wait` for all of them. Logs go to a fresh temporary directory, printed at start.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: scripts/launch-local.sh [options] [-- extra coordinator args]

Starts N draft workers and one coordinator on this machine and keeps them running until Ctrl-C.

options:
  -n, --workers N       number of draft workers (default 2)
  --target FILE         target model (default models/chorus-kjv-target-f32.gguf)
  --draft FILE          a draft model; repeat to give several, used round-robin by the workers
                        (default: chorus-kjv-draft-small-f32.gguf, chorus-kjv-draft-medium-f32.gguf)
  --scheme NAME         the coordinator's selection scheme (default: the coordinator's own default)
  --base-port P         coordinator port P, workers P+1 … P+N (default 7100)
  --bind ADDR           address everyone listens on (default 127.0.0.1; 0.0.0.0 to accept other hosts:
                        then every message is authenticated with a cluster key, generated in the log
                        directory unless --key-file is given)
  --key-file FILE       the cluster key for every process (see `chorus keygen`; default: none on loopback)
  --insecure            with a non-loopback --bind and no --key-file: run without authentication
  --worker-arg ARG      an extra argument for every worker (repeatable), e.g. --worker-arg --sequences=2
  --coordinator-cpus L  run the coordinator under `taskset -c L` (benchmarks: e.g. 0)
  --worker-cpus L       run every worker under `taskset -c L` (benchmarks: e.g. 1)
  --bin FILE            the chorus binary (default: build with `swift build -c release` if needed)
  --no-build            do not run `swift build`; use the binary that is there
  --ready-timeout S     seconds to wait for every process to listen (default 120)
  -h, --help            this help

Environment: CHORUS_BIN (same as --bin), CHORUS_MODELS (directory of the default models).
Example:  scripts/launch-local.sh -n 4 --scheme optimal -- --draft-length 6
EOF
}

die() {
    echo "launch-local: $*" >&2
    exit 2
}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

workers=2
target=""
drafts=()
scheme=""
base_port=7100
bind=127.0.0.1
worker_args=()
bin=${CHORUS_BIN:-}
build=1
ready_timeout=120
coordinator_args=()
key_file=""
insecure=0
coordinator_cpus=""
worker_cpus=""

need_value() {
    [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value (see --help)"
}

while [[ $# -gt 0 ]]; do
    case $1 in
        -h | --help) usage; exit 0 ;;
        -n | --workers) need_value "$@"; workers=$2; shift 2 ;;
        --target) need_value "$@"; target=$2; shift 2 ;;
        --draft) need_value "$@"; drafts+=("$2"); shift 2 ;;
        --scheme) need_value "$@"; scheme=$2; shift 2 ;;
        --base-port) need_value "$@"; base_port=$2; shift 2 ;;
        --bind) need_value "$@"; bind=$2; shift 2 ;;
        --worker-arg) need_value "$@"; worker_args+=("$2"); shift 2 ;;
        --bin) need_value "$@"; bin=$2; shift 2 ;;
        --no-build) build=0; shift ;;
        --ready-timeout) need_value "$@"; ready_timeout=$2; shift 2 ;;
        --key-file) need_value "$@"; key_file=$2; shift 2 ;;
        --insecure) insecure=1; shift ;;
        --coordinator-cpus) need_value "$@"; coordinator_cpus=$2; shift 2 ;;
        --worker-cpus) need_value "$@"; worker_cpus=$2; shift 2 ;;
        --) shift; coordinator_args=("$@"); break ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done

if ! [[ $workers =~ ^[0-9]+$ ]] || ((workers < 1 || workers > 64)); then
    die "-n must be a number in 1…64, got '$workers'"
fi
if ! [[ $base_port =~ ^[0-9]+$ ]] || ((base_port < 1 || base_port + workers > 65535)); then
    die "--base-port must leave room for $workers worker ports below 65536, got '$base_port'"
fi
[[ $ready_timeout =~ ^[0-9]+$ ]] || die "--ready-timeout must be whole seconds, got '$ready_timeout'"

# Default models: the repository's models/, else the shared checkout beside it.
models=${CHORUS_MODELS:-}
if [[ -z $models ]]; then
    for candidate in "$repo/models" "$repo/../shared/models"; do
        if [[ -f $candidate/chorus-kjv-target-f32.gguf ]]; then
            models=$(cd "$candidate" && pwd)
            break
        fi
    done
    models=${models:-$repo/models}
fi
target=${target:-$models/chorus-kjv-target-f32.gguf}
if ((${#drafts[@]} == 0)); then
    drafts=("$models/chorus-kjv-draft-small-f32.gguf" "$models/chorus-kjv-draft-medium-f32.gguf")
fi
for model in "$target" "${drafts[@]}"; do
    [[ -f $model ]] || die "model file not found: $model"
done

if [[ -z $bin ]]; then
    command -v swift >/dev/null || die "swift not found on PATH: install the toolchain or give --bin"
    bin_dir=$(cd "$repo" && swift build -c release --show-bin-path)
    bin=$bin_dir/chorus
    if ((build)); then
        echo "launch-local: swift build -c release (incremental)…"
        if ! build_log=$(cd "$repo" && swift build -c release 2>&1); then
            printf '%s\n' "$build_log" | tail -n 40 >&2
            die "build failed"
        fi
    fi
fi
[[ -x $bin ]] || die "chorus binary not found or not executable: $bin (build with: swift build -c release)"

log_dir=$(mktemp -d "${TMPDIR:-/tmp}/chorus-local.XXXXXX")
echo "launch-local: logs in $log_dir"

# Listening where other hosts can reach it needs authentication (docs/deployment.md, "Security"):
# the key given, else a fresh one (32 random bytes in hex, mode 600), unless --insecure.
security_args=()
if [[ -n $key_file ]]; then
    security_args=(--key-file "$key_file")
elif [[ $bind != 127.* && $bind != localhost && $bind != ::1 && $bind != "[::1]" ]]; then
    if ((insecure)); then
        security_args=(--insecure)
    else
        key_file=$log_dir/cluster.key
        (umask 077 && od -An -v -tx1 -N32 /dev/urandom | tr -d ' \n' >"$key_file" && echo >>"$key_file")
        security_args=(--key-file "$key_file")
        echo "launch-local: --bind $bind reaches other hosts: cluster key generated in $key_file"
    fi
fi

# taskset prefixes for pinned runs (empty: unpinned).
coordinator_pin=()
worker_pin=()
if [[ -n $coordinator_cpus || -n $worker_cpus ]]; then
    command -v taskset >/dev/null || die "--coordinator-cpus/--worker-cpus need taskset (util-linux)"
fi
[[ -n $coordinator_cpus ]] && coordinator_pin=(taskset -c "$coordinator_cpus")
[[ -n $worker_cpus ]] && worker_pin=(taskset -c "$worker_cpus")

# Children, in the order they are stopped (coordinator first, then workers).
pids=()
names=()
logs=()

stop_all() {
    local status=$?
    trap - EXIT INT TERM
    ((${#pids[@]})) || exit "$status"
    echo "launch-local: stopping ${#pids[@]} process(es)…" >&2
    local i
    for i in "${!pids[@]}"; do
        kill -TERM -- "-${pids[i]}" 2>/dev/null || true
    done
    local deadline=$((SECONDS + ${STOP_TIMEOUT:-15}))
    for i in "${!pids[@]}"; do
        while kill -0 -- "-${pids[i]}" 2>/dev/null && ((SECONDS < deadline)); do
            sleep 0.1
        done
        if kill -0 -- "-${pids[i]}" 2>/dev/null; then
            echo "launch-local: ${names[i]} (pid ${pids[i]}) did not stop within ${STOP_TIMEOUT:-15} s; killing it" >&2
            kill -KILL -- "-${pids[i]}" 2>/dev/null || true
        fi
    done
    for i in "${!pids[@]}"; do
        wait "${pids[i]}" 2>/dev/null || true
    done
    echo "launch-local: stopped; logs kept in $log_dir" >&2
    exit "$status"
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME LOG COMMAND…: runs COMMAND in its own session (so its own process group) with output to LOG.
start() {
    local name=$1 log=$2
    shift 2
    printf '%q ' "$@" >"$log.cmd"
    setsid "$@" >"$log" 2>&1 </dev/null &
    pids+=("$!")
    names+=("$name")
    logs+=("$log")
}

# wait_ready INDEX PORT: until the process logs its "… listening on …" ready line.
wait_ready() {
    local i=$1 port=$2 deadline=$((SECONDS + ready_timeout))
    while ((SECONDS < deadline)); do
        if ! kill -0 "${pids[i]}" 2>/dev/null; then
            echo "launch-local: ${names[i]} exited before it was ready; last lines of ${logs[i]}:" >&2
            tail -n 20 "${logs[i]}" >&2
            exit 1
        fi
        if grep -q "listening on" "${logs[i]}" 2>/dev/null; then
            return 0
        fi
        sleep 0.2
    done
    echo "launch-local: ${names[i]} not listening on port $port after ${ready_timeout} s; see ${logs[i]}" >&2
    tail -n 20 "${logs[i]}" >&2
    exit 1
}

worker_addresses=()
for ((w = 1; w <= workers; w++)); do
    port=$((base_port + w))
    draft=${drafts[(w - 1) % ${#drafts[@]}]}
    address=tcp://$bind:$port
    start "worker w$w" "$log_dir/worker-w$w.log" "${worker_pin[@]}" \
        "$bin" worker --listen "$address" --model "$draft" --id "w$w" "${security_args[@]}" "${worker_args[@]}"
    worker_addresses+=("$address")
done
for ((w = 1; w <= workers; w++)); do
    wait_ready $((w - 1)) $((base_port + w))
done

coordinator_address=tcp://$bind:$base_port
coordinator_command=("${coordinator_pin[@]}" "$bin" coordinator --model "$target" --listen "$coordinator_address" "${security_args[@]}")
for address in "${worker_addresses[@]}"; do
    coordinator_command+=(--worker "$address")
done
[[ -n $scheme ]] && coordinator_command+=(--scheme "$scheme")
coordinator_command+=("${coordinator_args[@]}")
start coordinator "$log_dir/coordinator.log" "${coordinator_command[@]}"
# Stop the coordinator first: move it to the front.
pids=("${pids[-1]}" "${pids[@]:0:${#pids[@]}-1}")
names=("${names[-1]}" "${names[@]:0:${#names[@]}-1}")
logs=("${logs[-1]}" "${logs[@]:0:${#logs[@]}-1}")
wait_ready 0 "$base_port"

dial=$coordinator_address
[[ $bind == 0.0.0.0 ]] && dial=tcp://127.0.0.1:$base_port
echo
echo "Chorus cluster ready (${workers} worker(s)):"
echo "  coordinator  $coordinator_address   target $(basename "$target")   log $log_dir/coordinator.log"
for ((w = 1; w <= workers; w++)); do
    echo "  worker w$w    ${worker_addresses[w - 1]}   draft $(basename "${drafts[(w - 1) % ${#drafts[@]}]}")   log $log_dir/worker-w$w.log"
done
echo
echo "Try:"
printf "  %q generate --coordinator %q%s --prompt 'In the beginning' -n 64\n" "$bin" "$dial" \
    "${key_file:+ --key-file $(printf %q "$key_file")}"
echo
echo "Ctrl-C stops the cluster."

# Run until a signal arrives (the traps exit) or a child dies on its own (an error).
while true; do
    set +e
    wait -n "${pids[@]}"
    code=$?
    set -e
    for i in "${!pids[@]}"; do
        if ! kill -0 "${pids[i]}" 2>/dev/null; then
            echo "launch-local: ${names[i]} exited unexpectedly (status $code); last lines of ${logs[i]}:" >&2
            tail -n 20 "${logs[i]}" >&2
            exit 1
        fi
    done
done
