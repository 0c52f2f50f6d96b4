#!/usr/bin/env bash
# Soak test (issue 4/4): streaming clients against a coordinator whose workers live in network namespaces,
# while workers are killed (SIGKILL) and restarted every --kill-every seconds and the coordinator is restarted
# (SIGTERM, then started again) once. Every request must end in a completion or a clear error, none may hang,
# the coordinator's resident memory must grow less than 10 % after warm-up, and afterwards greedy output
# through the cluster must equal plain target decoding token for token. Needs root (namespaces).
#
#   scripts/soak.sh [--minutes 10] [--clients 8] [--workers 2] [--kill-every 30] [--restart-at SECONDS]
#                   [--max-tokens 64] [--out DIR] [--bin FILE] [--http-port 8088] [--coordinator-port 7150]
#
# Writes DIR/requests.tsv (one line per request), DIR/events.log (kills, restarts), DIR/rss.tsv (coordinator
# RSS every 5 s), the coordinator's and workers' logs, and DIR/summary.txt; exits 1 if any goal fails.
set -euo pipefail

minutes=10 clients=8 workers=2 kill_every=30 restart_at="" max_tokens=64 out="" bin=${CHORUS_BIN:-}
http_port=8088 coordinator_port=7150
die() { echo "soak: $*" >&2; exit 2; }
while [[ $# -gt 0 ]]; do
    case $1 in
        --minutes) minutes=$2; shift 2 ;;
        --clients) clients=$2; shift 2 ;;
        --workers) workers=$2; shift 2 ;;
        --kill-every) kill_every=$2; shift 2 ;;
        --restart-at) restart_at=$2; shift 2 ;;
        --max-tokens) max_tokens=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --bin) bin=$2; shift 2 ;;
        --http-port) http_port=$2; shift 2 ;;
        --coordinator-port) coordinator_port=$2; shift 2 ;;
        -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done
for v in minutes clients workers kill_every max_tokens http_port coordinator_port; do
    [[ ${!v} =~ ^[0-9]+([.][0-9]+)?$ ]] || die "--${v//_/-} must be a number, got '${!v}'"
done
[[ $(id -u) -eq 0 ]] || die "needs root (network namespaces); run it with sudo"
command -v curl >/dev/null || die "curl not found (apt-get install curl)"

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -z $bin ]]; then bin=$(cd "$repo" && swift build -c release --show-bin-path)/chorus; fi
[[ -x $bin ]] || die "chorus binary not found: $bin (build first: swift build -c release)"
target=${CHORUS_MODELS:-$repo/models}/chorus-kjv-target-f32.gguf
[[ -f $target ]] || die "target model not found: $target"
out=${out:-$(mktemp -d /tmp/chorus-soak.XXXXXX)}
mkdir -p "$out"
duration=$(awk -v m="$minutes" 'BEGIN { printf "%d", m * 60 }')
restart_at=${restart_at:-$((duration / 2))}
export CHORUS_NETNS_STATE=$out/netns
url=http://127.0.0.1:$http_port

start=$(date +%s)
elapsed() { echo $(($(date +%s) - start)); }
event() { echo "$(elapsed) $*" | tee -a "$out/events.log"; }

coordinator_pid=""
client_pids=()
cleanup() {
    set +e
    ((${#client_pids[@]})) && kill "${client_pids[@]}" 2>/dev/null
    [[ -n ${sampler_pid:-} ]] && kill "$sampler_pid" 2>/dev/null
    [[ -n $coordinator_pid ]] && kill -TERM "$coordinator_pid" 2>/dev/null && wait "$coordinator_pid" 2>/dev/null
    "$repo/scripts/netns-cluster.sh" down >/dev/null 2>&1
}
trap cleanup EXIT

"$bin" keygen --out "$out/cluster.key" >/dev/null

start_coordinator() {
    # As deploy/systemd/chorus-coordinator.service runs it (two malloc arenas; docs/benchmarks.md §8). Set
    # MALLOC_ARENA_MAX in the environment to soak another setting.
    MALLOC_ARENA_MAX=${MALLOC_ARENA_MAX:-2} "$bin" coordinator --model "$target" --listen "tcp://0.0.0.0:$coordinator_port" --key-file "$out/cluster.key" \
        --http "127.0.0.1:$http_port" >>"$out/coordinator.log" 2>&1 &
    coordinator_pid=$!
    echo "$coordinator_pid" >"$out/coordinator.pid"
    local deadline=$((SECONDS + 120))
    until curl -sf "$url/health" >/dev/null 2>&1; do
        kill -0 "$coordinator_pid" 2>/dev/null || die "the coordinator exited; see $out/coordinator.log"
        ((SECONDS < deadline)) || die "the coordinator's /health never answered 200; see $out/coordinator.log"
        sleep 0.2
    done
}

# Workers register with the coordinator (10.200.I.1:PORT from inside their namespaces) under the cluster key.
"$repo/scripts/netns-cluster.sh" up "$workers" --register --coordinator-port "$coordinator_port" --bin "$bin" \
    --worker-arg --key-file --worker-arg "$out/cluster.key" >"$out/netns-up.log"
start_coordinator
event "coordinator up (pid $coordinator_pid), $workers worker(s) in namespaces"

# RSS of the running coordinator every 5 s: seconds, pid, kB.
(
    while true; do
        pid=$(<"$out/coordinator.pid")
        rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
        [[ -n $rss ]] && echo "$(elapsed) $pid $rss" >>"$out/rss.tsv"
        sleep 5
    done
) &
sampler_pid=$!

# One client: streaming completions until the end of the run. Each request gets one line:
# client, started, seconds taken, HTTP status, curl's exit code, outcome, tokens streamed.
#   completed  200, chunks, a finish_reason, [DONE], no error event
#   error      a clear error: an HTTP error status with a JSON body, an error event in the stream,
#              or the connection refused while the coordinator restarts
#   cut        the stream ended without [DONE] (data lost)
#   hung       no end within 120 s
client() {
    local c=$1 n=0 body file code rc outcome chunks t0
    file=$out/client-$c.body
    while (($(elapsed) < duration)); do
        n=$((n + 1))
        body="{\"prompt\":\"And God said\",\"max_tokens\":$max_tokens,\"stream\":true,\"seed\":$((c * 100000 + n))}"
        t0=$(date +%s.%N)
        set +e
        code=$(curl -sS -N --max-time 120 -o "$file" -w '%{http_code}' -H 'Content-Type: application/json' \
            -d "$body" "$url/v1/completions" 2>>"$out/client-$c.stderr")
        rc=$?
        set -e
        chunks=$(grep -c '"text"' "$file" 2>/dev/null || true)
        if ((rc == 28)); then
            outcome=hung
        elif ((rc == 7)); then
            outcome=error  # connection refused: the coordinator is restarting
        elif [[ $code == 200 ]] && grep -q '"error"' "$file"; then
            outcome=error
        elif [[ $code == 200 ]] && grep -q 'data: \[DONE\]' "$file" && grep -q '"finish_reason":"' "$file"; then
            outcome=completed
        elif [[ $code =~ ^[45][0-9][0-9]$ ]] && grep -q '"error"' "$file"; then
            outcome=error
        else
            outcome="cut"
        fi
        printf '%s\t%s\t%.3f\t%s\t%s\t%s\t%s\n' "$c" "$t0" "$(echo "$(date +%s.%N) - $t0" | bc)" "$code" "$rc" \
            "$outcome" "$chunks" >>"$out/requests.tsv"
        [[ $outcome == error ]] && sleep 0.5  # do not spin while the coordinator is away
    done
}
for ((c = 1; c <= clients; c++)); do
    client "$c" &
    client_pids+=("$!")
done
event "$clients streaming clients started (max_tokens $max_tokens)"

# Kill a worker every kill_every seconds (round robin) and restart it 3 s later; restart the coordinator once.
next_kill=$kill_every victim=1 restarted=0 kills=0
while (($(elapsed) < duration)); do
    if ((restarted == 0 && $(elapsed) >= restart_at)); then
        event "coordinator: SIGTERM (pid $coordinator_pid)"
        kill -TERM "$coordinator_pid"
        wait "$coordinator_pid" || true
        event "coordinator exited; starting it again"
        start_coordinator
        event "coordinator up again (pid $coordinator_pid)"
        restarted=1
    fi
    if (($(elapsed) >= next_kill)); then
        pidfile=$CHORUS_NETNS_STATE/worker-w$victim.pid
        event "worker w$victim: SIGKILL (pid $(<"$pidfile"))"
        kill -KILL -- "-$(<"$pidfile")" 2>/dev/null || kill -KILL "$(<"$pidfile")" 2>/dev/null || true
        sleep 3
        setsid bash -c "exec $(<"$CHORUS_NETNS_STATE/worker-w$victim.log.cmd")" \
            >>"$CHORUS_NETNS_STATE/worker-w$victim.log" 2>&1 </dev/null &
        echo "$!" >"$pidfile"
        disown  # its SIGKILL later is the test's, not a failure to report
        event "worker w$victim: restarted (pid $!)"
        kills=$((kills + 1))
        victim=$((victim % workers + 1))
        next_kill=$((next_kill + kill_every))
    fi
    sleep 1
done
event "time is up: waiting for the clients' last requests"
for pid in "${client_pids[@]}"; do wait "$pid" || true; done
client_pids=()

# Exactness afterwards: greedy decoding through the cluster equals the target alone, token for token.
prompt="In the beginning"
curl -sS --max-time 120 -H 'Content-Type: application/json' \
    -d "{\"prompt\":\"$prompt\",\"max_tokens\":48,\"temperature\":0,\"ignore_eos\":true}" \
    "$url/v1/completions" >"$out/greedy-cluster.json"
cluster_text=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["choices"][0]["text"] if "choices" in d else "", end="")' \
    "$out/greedy-cluster.json" 2>/dev/null || true)
plain_text=$("$bin" generate --model "$target" --prompt "$prompt" -n 48 --temperature 0 --ignore-eos 2>/dev/null)
if [[ $plain_text == *"$cluster_text" && -n $cluster_text ]]; then exact=pass; else exact=FAIL; fi

# Summary.
total=$(wc -l <"$out/requests.tsv")
count() { awk -F'\t' -v o="$1" '$6 == o' "$out/requests.tsv" | wc -l; }
completed=$(count completed) errors=$(count error) cut=$(count cut) hung=$(count hung)
tokens=$(awk -F'\t' '$6 == "completed" { s += $7 } END { print s + 0 }' "$out/requests.tsv")
# RSS growth of each coordinator instance from 60 s after it started to its last sample.
rss_report=$(awk -v restart="$restart_at" '
    { if (!($2 in first)) { first[$2] = $1; order[++n] = $2 } last[$2] = $3; lastt[$2] = $1
      if ($1 >= first[$2] + 60 && !($2 in base)) base[$2] = $3 }
    END { worst = 0
          for (i = 1; i <= n; i++) { p = order[i]; if (!(p in base)) continue
              g = (last[p] - base[p]) / base[p] * 100; if (g > worst) worst = g
              printf "instance %d (pid %s): %d kB after warm-up -> %d kB at %d s (%+.1f %%)\n", i, p, base[p], last[p], lastt[p], g }
          printf "worst %.1f\n", worst }' "$out/rss.tsv")
worst=$(echo "$rss_report" | awk '/^worst/ { print $2 }')
{
    echo "soak: $minutes min, $clients streaming clients, $workers workers killed every $kill_every s ($kills kills), coordinator restarted at ${restart_at} s"
    echo "requests: $total = $completed completed + $errors clear errors + $cut cut + $hung hung; $tokens tokens streamed in completed requests"
    echo "$rss_report" | grep -v '^worst' || true
    echo "greedy through the cluster equals the target alone: $exact"
} | tee "$out/summary.txt"
ok=1
((cut == 0 && hung == 0)) || { echo "soak: FAIL: $cut cut and $hung hung requests" | tee -a "$out/summary.txt"; ok=0; }
awk -v w="${worst:-0}" 'BEGIN { exit !(w < 10) }' || { echo "soak: FAIL: RSS grew ${worst} % (goal < 10 %)" | tee -a "$out/summary.txt"; ok=0; }
[[ $exact == pass ]] || { echo "soak: FAIL: greedy output differs from the target alone" | tee -a "$out/summary.txt"; ok=0; }
((completed > 0)) || { echo "soak: FAIL: no request completed" | tee -a "$out/summary.txt"; ok=0; }
echo "soak: results in $out"
((ok)) && echo "soak: PASS" || exit 1
