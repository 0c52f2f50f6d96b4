#!/usr/bin/env bash
# Emulated hosts for Chorus: one network namespace per draft worker (chorus-w1 … chorus-wN), each joined
# to the root namespace by a veth pair on its own 10.200.I.0/30 (root side .1, worker side .2), a worker
# started inside each namespace, and optionally one `chorus delay-proxy` per worker in the root namespace
# so the coordinator's traffic gains a fixed latency (this kernel has no netem). The coordinator runs in
# the root namespace and dials the printed addresses. Needs root. State (pids, logs, addresses) lives in
# $CHORUS_NETNS_STATE (default /run/chorus-netns); `down` removes everything, also without that state.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: scripts/netns-cluster.sh up N [options]
       scripts/netns-cluster.sh down
       scripts/netns-cluster.sh status

up N        create N namespaces chorus-w1 … chorus-wN with veth links (10.200.I.2 inside, 10.200.I.1
            in the root namespace), start a worker in each, and print the addresses to dial
down        stop every worker and proxy, delete the namespaces and links (safe to run twice)
status      list the namespaces, links and processes

options for up:
  --delay-ms D        start one delay proxy per worker in the root namespace adding D ms each way;
                      the printed addresses are then the proxies' (tcp://127.0.0.1:PROXY_BASE+I)
  --draft FILE        a draft model (repeatable, used round-robin; default small and medium)
  --port P            the workers' port inside their namespaces (default 7101)
  --proxy-base P      the proxies' ports are P+1 … P+N (default 7200)
  --coordinator-port P
                      port the coordinator will listen on, for the printed command (default 7100)
  --register          workers also register with the coordinator at tcp://10.200.I.1:COORDINATOR_PORT
  --taskset           pin workers to WORKER_CPUS and print the coordinator command pinned to COORD_CPUS
                      (defaults: coordinator CPU 0, workers the other CPUs; one CPU: everything on 0);
                      proxies are pinned to PROXY_CPUS when set
  --bin FILE          the chorus binary (default: CHORUS_BIN, else swift build's release bin path)
  --worker-arg ARG    extra argument for every worker (repeatable)
  -h, --help          this help

environment:
  WORKER_CMD          instead of `chorus worker …`, run this shell command inside each namespace
                      (for tests with a stand-in listener); it sees CHORUS_WORKER_ID, CHORUS_WORKER_ADDR,
                      CHORUS_WORKER_PORT, CHORUS_WORKER_MODEL, CHORUS_WORKER_ADVERTISE
  WORKER_CPUS, COORD_CPUS, PROXY_CPUS   CPU lists for taskset -c (with --taskset)
  CHORUS_NETNS_STATE  state directory (default /run/chorus-netns)
EOF
}

die() {
    echo "netns-cluster: $*" >&2
    exit 2
}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
state=${CHORUS_NETNS_STATE:-/run/chorus-netns}
prefix=chorus-w

require_root() {
    if [[ $(id -u) -ne 0 ]]; then
        echo "netns-cluster: needs root (network namespaces and veth links); run it with sudo" >&2
        exit 1
    fi
    command -v ip >/dev/null || { echo "netns-cluster: 'ip' not found (apt-get install iproute2)" >&2; exit 1; }
}

# Root-side veth name for worker I (interface names are at most 15 bytes).
host_link() { echo "chorus-h$1"; }
worker_link() { echo "chorus-n$1"; }

# stop_pidfile FILE: SIGTERM the process group recorded in FILE, wait up to 10 s, then SIGKILL.
stop_pidfile() {
    local file=$1 pid
    pid=$(<"$file") || return 0
    [[ $pid =~ ^[0-9]+$ ]] || { rm -f "$file"; return 0; }
    if kill -0 -- "-$pid" 2>/dev/null; then
        kill -TERM -- "-$pid" 2>/dev/null || true
        local deadline=$((SECONDS + 10))
        while kill -0 -- "-$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
        if kill -0 -- "-$pid" 2>/dev/null; then
            echo "netns-cluster: $(basename "$file" .pid) (pid $pid) ignored SIGTERM for 10 s; killing it" >&2
            kill -KILL -- "-$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$file"
}

our_namespaces() {
    ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${prefix}[0-9]+\$" || true
}

down() {
    require_root
    local file ns pid link
    # Proxies first (the coordinator's side), then workers.
    for file in "$state"/proxy-*.pid "$state"/worker-*.pid; do
        [[ -e $file ]] && stop_pidfile "$file"
    done
    for ns in $(our_namespaces); do
        # Anything still running inside (a worker started by hand, a stand-in listener).
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
            kill -TERM "$pid" 2>/dev/null || true
        done
        sleep 0.2
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
            kill -KILL "$pid" 2>/dev/null || true
        done
        ip netns delete "$ns"
        echo "netns-cluster: deleted namespace $ns"
    done
    # Deleting a namespace destroys its veth end and so the pair; remove any root-side leftovers too.
    for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E '^chorus-h[0-9]+$' || true); do
        ip link delete "$link" 2>/dev/null || true
        echo "netns-cluster: deleted link $link"
    done
    rm -rf "$state"
    echo "netns-cluster: down"
}

status() {
    require_root
    local ns file pid
    echo "namespaces: $(our_namespaces | tr '\n' ' ')"
    ip -br addr show 2>/dev/null | grep -E '^chorus-h[0-9]+' || true
    for file in "$state"/worker-*.pid "$state"/proxy-*.pid; do
        [[ -e $file ]] || continue
        pid=$(<"$file")
        if kill -0 "$pid" 2>/dev/null; then
            echo "$(basename "$file" .pid): pid $pid running"
        else
            echo "$(basename "$file" .pid): pid $pid not running (see $state/$(basename "$file" .pid).log)"
        fi
    done
    [[ -f $state/workers ]] && { echo "addresses:"; sed 's/^/  /' "$state/workers"; }
    return 0
}

default_cpus() {
    # $1 = coordinator | workers
    local last
    last=$(($(nproc) - 1))
    if [[ $1 == coordinator || $last -eq 0 ]]; then
        echo 0
    elif [[ $last -eq 1 ]]; then
        echo 1
    else
        echo "1-$last"
    fi
}

# wait_ready NAME LOGFILE PID: the "listening on" line, or the process's death, within 120 s.
wait_ready() {
    local name=$1 log=$2 pid=$3 deadline=$((SECONDS + ${READY_TIMEOUT:-120}))
    while ((SECONDS < deadline)); do
        grep -q "listening on" "$log" 2>/dev/null && return 0
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "netns-cluster: $name exited before it was ready; last lines of $log:" >&2
            tail -n 20 "$log" >&2
            return 1
        fi
        sleep 0.2
    done
    echo "netns-cluster: $name not ready after ${READY_TIMEOUT:-120} s; see $log" >&2
    return 1
}

# wait_port HOST PORT [NETNS]: until a TCP connection succeeds (for stand-ins that print nothing).
wait_port() {
    local host=$1 port=$2 ns=${3:-} deadline=$((SECONDS + ${READY_TIMEOUT:-120}))
    local probe="exec 3<>/dev/tcp/$host/$port"
    while ((SECONDS < deadline)); do
        if [[ -n $ns ]]; then
            ip netns exec "$ns" bash -c "$probe" 2>/dev/null && return 0
        else
            bash -c "$probe" 2>/dev/null && return 0
        fi
        sleep 0.2
    done
    return 1
}

up() {
    local count=${1:-}
    if ! [[ $count =~ ^[0-9]+$ ]] || ((count < 1 || count > 250)); then
        usage >&2
        die "up needs a worker count in 1…250"
    fi
    shift
    local delay="" port=7101 proxy_base=7200 coordinator_port=7100 register=0 pin=0 bin=${CHORUS_BIN:-}
    local drafts=() worker_args=()
    while [[ $# -gt 0 ]]; do
        case $1 in
            -h | --help) usage; exit 0 ;;
            --delay-ms) [[ $# -ge 2 ]] || die "--delay-ms needs a value"; delay=$2; shift 2 ;;
            --draft) [[ $# -ge 2 ]] || die "--draft needs a value"; drafts+=("$2"); shift 2 ;;
            --port) [[ $# -ge 2 ]] || die "--port needs a value"; port=$2; shift 2 ;;
            --proxy-base) [[ $# -ge 2 ]] || die "--proxy-base needs a value"; proxy_base=$2; shift 2 ;;
            --coordinator-port) [[ $# -ge 2 ]] || die "--coordinator-port needs a value"; coordinator_port=$2; shift 2 ;;
            --register) register=1; shift ;;
            --taskset) pin=1; shift ;;
            --bin) [[ $# -ge 2 ]] || die "--bin needs a value"; bin=$2; shift 2 ;;
            --worker-arg) [[ $# -ge 2 ]] || die "--worker-arg needs a value"; worker_args+=("$2"); shift 2 ;;
            *) usage >&2; die "unknown argument: $1" ;;
        esac
    done
    if [[ -n $delay ]] && ! [[ $delay =~ ^[0-9]+([.][0-9]+)?$ ]]; then
        die "--delay-ms must be a non-negative number of milliseconds, got '$delay'"
    fi
    local p
    for p in "$port" "$proxy_base" "$coordinator_port"; do
        if ! [[ $p =~ ^[0-9]+$ ]] || ((p < 1 || p > 65535)); then die "not a port number: '$p'"; fi
    done
    ((proxy_base + count <= 65535)) || die "--proxy-base $proxy_base leaves no room for $count proxies"
    require_root

    if [[ -n $(our_namespaces) ]]; then
        die "namespaces ${prefix}* already exist; run 'scripts/netns-cluster.sh down' first"
    fi
    local conflict
    conflict=$(ip -o -4 addr show 2>/dev/null | awk '{print $4}' | grep -E '^10\.200\.' || true)
    [[ -z $conflict ]] || die "10.200.0.0/16 is already in use on this host ($conflict); nothing created"

    local need_bin=0
    [[ -z ${WORKER_CMD:-} ]] && need_bin=1
    [[ -n $delay ]] && need_bin=1
    if ((need_bin)); then
        if [[ -z $bin ]]; then
            command -v swift >/dev/null || die "swift not found: give --bin or CHORUS_BIN"
            bin=$(cd "$repo" && swift build -c release --show-bin-path)/chorus
        fi
        [[ -x $bin ]] || die "chorus binary not found: $bin (build first: swift build -c release)"
    fi

    local models=${CHORUS_MODELS:-}
    if [[ -z $models ]]; then
        local candidate
        for candidate in "$repo/models" "$repo/../shared/models"; do
            if [[ -d $candidate ]]; then models=$(cd "$candidate" && pwd); break; fi
        done
    fi
    if ((${#drafts[@]} == 0)); then
        drafts=("$models/chorus-kjv-draft-small-f32.gguf" "$models/chorus-kjv-draft-medium-f32.gguf")
    fi
    if [[ -z ${WORKER_CMD:-} ]]; then
        local model
        for model in "${drafts[@]}"; do [[ -f $model ]] || die "draft model not found: $model"; done
    fi

    local worker_pin=() proxy_pin=() coordinator_pin=()
    if ((pin)); then
        command -v taskset >/dev/null || die "--taskset needs taskset (apt-get install util-linux)"
        worker_pin=(taskset -c "${WORKER_CPUS:-$(default_cpus workers)}")
        coordinator_pin=(taskset -c "${COORD_CPUS:-$(default_cpus coordinator)}")
        [[ -n ${PROXY_CPUS:-} ]] && proxy_pin=(taskset -c "$PROXY_CPUS")
    fi

    mkdir -p "$state"
    : >"$state/workers"
    # From here on a failure tears down what was made.
    trap 'echo "netns-cluster: up failed; cleaning up" >&2; down >/dev/null 2>&1 || true' ERR
    set -E

    local i ns host_if ns_if root_addr worker_addr address advertise log pid draft
    for ((i = 1; i <= count; i++)); do
        ns=$prefix$i
        host_if=$(host_link "$i")
        ns_if=$(worker_link "$i")
        root_addr=10.200.$i.1
        worker_addr=10.200.$i.2
        ip netns add "$ns"
        ip link add "$host_if" type veth peer name "$ns_if"
        ip link set "$ns_if" netns "$ns"
        ip addr add "$root_addr/30" dev "$host_if"
        ip link set "$host_if" up
        ip -n "$ns" addr add "$worker_addr/30" dev "$ns_if"
        ip -n "$ns" link set "$ns_if" up
        ip -n "$ns" link set lo up
        # No default route: a worker reaches only its /30 (the coordinator's side at $root_addr).

        if [[ -n $delay ]]; then
            address=tcp://127.0.0.1:$((proxy_base + i))
        else
            address=tcp://$worker_addr:$port
        fi
        advertise=$address
        draft=${drafts[(i - 1) % ${#drafts[@]}]}
        log=$state/worker-w$i.log
        local command=()
        if [[ -n ${WORKER_CMD:-} ]]; then
            command=(env CHORUS_WORKER_ID="w$i" CHORUS_WORKER_ADDR="$worker_addr" CHORUS_WORKER_PORT="$port"
                CHORUS_WORKER_MODEL="$draft" CHORUS_WORKER_ADVERTISE="$advertise" bash -c "$WORKER_CMD")
        else
            # --insecure on purpose: these emulated hosts hang off veth links that exist only on this machine
            # (10.200.I.0/30, no route out), and benchmarks measure the bare transport. A real multi-host
            # cluster gets a key (--key-file) or mutual TLS; docs/deployment.md, "Security".
            command=("$bin" worker --listen "tcp://0.0.0.0:$port" --model "$draft" --id "w$i" --advertise "$advertise"
                --insecure)
            ((register)) && command+=(--register "tcp://$root_addr:$coordinator_port")
            command+=("${worker_args[@]}")
        fi
        printf '%q ' ip netns exec "$ns" "${worker_pin[@]}" "${command[@]}" >"$log.cmd"
        setsid ip netns exec "$ns" "${worker_pin[@]}" "${command[@]}" >"$log" 2>&1 </dev/null &
        pid=$!
        echo "$pid" >"$state/worker-w$i.pid"

        if [[ -n $delay ]]; then
            log=$state/proxy-w$i.log
            setsid "${proxy_pin[@]}" "$bin" delay-proxy --listen "tcp://127.0.0.1:$((proxy_base + i))" \
                --forward "$worker_addr:$port" --delay-ms "$delay" >"$log" 2>&1 </dev/null &
            echo "$!" >"$state/proxy-w$i.pid"
        fi
        echo "$address" >>"$state/workers"
    done

    # Readiness: the worker's ready line (stand-ins: its port answers), then the proxy's ready line.
    for ((i = 1; i <= count; i++)); do
        pid=$(<"$state/worker-w$i.pid")
        if [[ -n ${WORKER_CMD:-} ]]; then
            wait_port "10.200.$i.2" "$port" || { echo "netns-cluster: stand-in w$i never listened on port $port" >&2; false; }
        else
            wait_ready "worker w$i" "$state/worker-w$i.log" "$pid"
        fi
        if [[ -n $delay ]]; then
            wait_ready "delay proxy w$i" "$state/proxy-w$i.log" "$(<"$state/proxy-w$i.pid")"
        fi
    done
    trap - ERR

    echo "netns-cluster: $count worker namespace(s) up${delay:+, ${delay} ms added each way by delay proxies}; logs in $state"
    echo "worker addresses (also in $state/workers):"
    sed 's/^/  /' "$state/workers"
    local coordinator=("${coordinator_pin[@]}" "${bin:-chorus}" coordinator --model "${models:-models}/chorus-kjv-target-f32.gguf"
        --listen "tcp://0.0.0.0:$coordinator_port" --insecure)
    while read -r address; do coordinator+=(--worker "$address"); done <"$state/workers"
    echo "start the coordinator in the root namespace with:"
    printf '  '
    printf '%q ' "${coordinator[@]}"
    echo
    echo "stop everything with: scripts/netns-cluster.sh down"
}

case ${1:-} in
    up) shift; up "$@" ;;
    down) shift; [[ $# -eq 0 ]] || die "down takes no arguments"; down ;;
    status) shift; status ;;
    -h | --help) usage ;;
    "") usage >&2; exit 2 ;;
    *) usage >&2; die "unknown command: $1" ;;
esac
