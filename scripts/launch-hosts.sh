#!/usr/bin/env bash
# Starts a Chorus cluster over ssh: one draft worker per host line and the coordinator on the marked host,
# each under nohup with its PID recorded on its host (REMOTE_DIR/run/NAME.pid) and locally. `stop` ends
# them (SIGTERM, a grace period, SIGKILL), `status` shows them. Needs only bash and ssh here (scp for the
# optional copies); the remote hosts need a POSIX sh, nohup and the chorus binary with its libraries.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: scripts/launch-hosts.sh [start] HOSTFILE [options] [-- extra coordinator args]
       scripts/launch-hosts.sh stop HOSTFILE [--dry-run]
       scripts/launch-hosts.sh status HOSTFILE [--dry-run]

HOSTFILE: one host per line ([user@]host, as ssh takes it), '#' starts a comment. The line
`coordinator=HOST` marks the coordinator's host; without one, the first host is the coordinator (and
runs no worker). Every other line runs one worker; a host may appear several times. Per-line options:
  port=P        the worker's port (default: --worker-port, +1 for each earlier worker on the same host)
  addr=HOST     the address the cluster reaches this host by (default: the ssh host without user@)
  draft=FILE    this worker's draft model (a path on that host)
  id=NAME       this worker's id (default wI, I counting workers from 1)
Example:
  coordinator=alice@gpu1 addr=10.0.0.1
  node1
  node2 draft=/data/chorus-kjv-draft-medium-f32.gguf
  node2 port=7102

options (start):
  --target FILE          target model path on the coordinator's host (default REMOTE_MODELS/…target-f32.gguf)
  --draft FILE           draft model path on the workers' hosts (repeatable, round-robin;
                         default REMOTE_MODELS/…draft-small-f32.gguf and …draft-medium-f32.gguf)
  --scheme NAME          the coordinator's selection scheme
  --coordinator-port P   default 7100
  --worker-port P        default 7101
  --register             start the coordinator first and let workers register with it (--register and
                         --advertise) instead of giving it the static --worker list
  --copy-bin FILE        scp this chorus binary to every host as REMOTE_DIR/bin/chorus first (build it
                         with --static-swift-stdlib; hosts still need libnng and libopenblas)
  --copy-models DIR      scp the needed model files (by file name) from local DIR to REMOTE_MODELS first
  --key-file FILE        the cluster key (make one with `chorus keygen --out FILE`): copied to every host as
                         REMOTE_DIR/cluster.key (mode 600) and given to every process as --key-file, so every
                         message is authenticated. Required (the processes listen on 0.0.0.0) unless --insecure
  --insecure             run without authentication: anyone who can reach the ports can join the cluster
                         and steer its output; for a private network you trust
  --ready-timeout S      seconds to wait for each process's "listening on" line (default 120)
  --dry-run              print the exact ssh/scp commands instead of running them
  -h, --help             this help

environment:
  SSH, SSH_OPTS          ssh program (default ssh) and its options, e.g. SSH_OPTS='-i ~/.ssh/k -p 2222'
                         (BatchMode=yes and ConnectTimeout=10 are added after them)
  SCP, SCP_OPTS          scp program (default scp) and its options
  REMOTE_DIR             remote working directory for logs/ and run/ (default chorus, i.e. ~/chorus)
  REMOTE_BIN             remote chorus binary (default chorus on PATH; REMOTE_DIR/bin/chorus with --copy-bin)
  REMOTE_MODELS          remote model directory (default REMOTE_DIR/models)
  CHORUS_HOSTS_STATE     local directory for the PID record (default ~/.chorus-hosts)
EOF
}

die() {
    echo "launch-hosts: $*" >&2
    exit 2
}

# quote WORD…: each word quoted for a POSIX shell (plain words stay as they are), joined by spaces.
quote() {
    local out=() word
    for word in "$@"; do
        if [[ $word =~ ^[A-Za-z0-9_./:=@+,%-]+$ ]]; then
            out+=("$word")
        else
            out+=("'${word//\'/\'\\\'\'}'")
        fi
    done
    local IFS=' '
    echo "${out[*]}"
}

command=start
case ${1:-} in
    start | stop | status) command=$1; shift ;;
    -h | --help) usage; exit 0 ;;
    "") usage >&2; exit 2 ;;
esac
[[ $# -ge 1 ]] || { usage >&2; die "give a HOSTFILE"; }
hostfile=$1
shift
[[ $hostfile != -* ]] || { usage >&2; die "give the HOSTFILE before the options"; }
[[ -f $hostfile ]] || die "host file not found: $hostfile"

target=""
drafts=()
scheme=""
coordinator_port=7100
worker_port=7101
register=0
copy_bin=""
copy_models=""
key_file=""
insecure=0
ready_timeout=120
dry_run=0
extra=()

while [[ $# -gt 0 ]]; do
    case $1 in
        -h | --help) usage; exit 0 ;;
        --dry-run) dry_run=1; shift ;;
        --) shift; extra=("$@"); break ;;
        --register) register=1; shift ;;
        --insecure) insecure=1; shift ;;
        --target | --draft | --scheme | --coordinator-port | --worker-port | --copy-bin | --copy-models | --ready-timeout | \
            --key-file)
            [[ $command == start ]] || die "$1 applies to start only"
            [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value"
            case $1 in
                --target) target=$2 ;;
                --draft) drafts+=("$2") ;;
                --scheme) scheme=$2 ;;
                --coordinator-port) coordinator_port=$2 ;;
                --worker-port) worker_port=$2 ;;
                --copy-bin) copy_bin=$2 ;;
                --copy-models) copy_models=$2 ;;
                --key-file) key_file=$2 ;;
                --ready-timeout) ready_timeout=$2 ;;
            esac
            shift 2
            ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
for value in "$coordinator_port" "$worker_port"; do
    if ! [[ $value =~ ^[0-9]+$ ]] || ((value < 1 || value > 65535)); then die "not a port number: '$value'"; fi
done
[[ $ready_timeout =~ ^[0-9]+$ ]] || die "--ready-timeout must be whole seconds"
[[ -z $copy_bin || -f $copy_bin ]] || die "--copy-bin: no such file: $copy_bin"
[[ -z $copy_models || -d $copy_models ]] || die "--copy-models: no such directory: $copy_models"
[[ -z $key_file || -f $key_file ]] || die "--key-file: no such file: $key_file"
if [[ $command == start && -z $key_file ]] && ((!insecure)); then
    die "the processes listen on tcp://0.0.0.0, where other hosts can reach them: give --key-file FILE (make one" \
        "with \`chorus keygen --out FILE\`; it is copied to every host) or, on a private network you trust, --insecure"
fi

read -ra ssh_cmd <<<"${SSH:-ssh}"
read -ra ssh_opts <<<"${SSH_OPTS:-}"
read -ra scp_cmd <<<"${SCP:-scp}"
read -ra scp_opts <<<"${SCP_OPTS:-}"
remote_dir=${REMOTE_DIR:-chorus}
remote_models=${REMOTE_MODELS:-$remote_dir/models}
if [[ -n ${REMOTE_BIN:-} ]]; then
    remote_bin=$REMOTE_BIN
elif [[ -n $copy_bin ]]; then
    remote_bin=$remote_dir/bin/chorus
else
    remote_bin=chorus
fi
target=${target:-$remote_models/chorus-kjv-target-f32.gguf}
if ((${#drafts[@]} == 0)); then
    drafts=("$remote_models/chorus-kjv-draft-small-f32.gguf" "$remote_models/chorus-kjv-draft-medium-f32.gguf")
fi

# ---- the host file -------------------------------------------------------------------------------------
coordinator_host=""
coordinator_addr=""
worker_hosts=()
worker_addrs=()
worker_ports=()
worker_drafts=()
worker_ids=()
worker_options=()
declare -A per_host_count=()

parse_options() {
    # parse_options LINE_NO FIELD…: sets opt_port, opt_addr, opt_draft, opt_id
    local line_no=$1 field
    shift
    opt_port="" opt_addr="" opt_draft="" opt_id=""
    for field in "$@"; do
        case $field in
            port=*) opt_port=${field#port=} ;;
            addr=*) opt_addr=${field#addr=} ;;
            draft=*) opt_draft=${field#draft=} ;;
            id=*) opt_id=${field#id=} ;;
            *) die "$hostfile:$line_no: unknown option '$field' (known: port=, addr=, draft=, id=)" ;;
        esac
    done
    if [[ -n $opt_id && ! $opt_id =~ ^[A-Za-z0-9_.-]+$ ]]; then
        die "$hostfile:$line_no: id=$opt_id: use letters, digits, '_', '.' and '-' only"
    fi
    if [[ -n $opt_port ]] && { ! [[ $opt_port =~ ^[0-9]+$ ]] || ((opt_port < 1 || opt_port > 65535)); }; then
        die "$hostfile:$line_no: port=$opt_port is not a port number"
    fi
    return 0
}

line_no=0
first_host=""
first_fields=()
first_line_no=0
while IFS= read -r line || [[ -n $line ]]; do
    line_no=$((line_no + 1))
    line=${line%%#*}
    read -ra fields <<<"$line"
    ((${#fields[@]})) || continue
    host=${fields[0]}
    if [[ $host == coordinator=* ]]; then
        [[ -z $coordinator_host ]] || die "$hostfile:$line_no: a second coordinator= line"
        coordinator_host=${host#coordinator=}
        [[ -n $coordinator_host ]] || die "$hostfile:$line_no: coordinator= needs a host"
        parse_options "$line_no" "${fields[@]:1}"
        [[ -z $opt_draft && -z $opt_port && -z $opt_id ]] || die "$hostfile:$line_no: the coordinator line takes only addr="
        coordinator_addr=${opt_addr:-${coordinator_host#*@}}
        continue
    fi
    [[ $host != -* ]] || die "$hostfile:$line_no: '$host' is not a host name"
    if [[ -z $first_host ]]; then
        first_host=$host
        first_fields=("${fields[@]:1}")
        first_line_no=$line_no
    fi
    worker_hosts+=("$host")
    worker_options+=("$line_no ${fields[*]:1}")
done <"$hostfile"

if [[ -z $coordinator_host ]]; then
    [[ -n $first_host ]] || die "$hostfile has no hosts"
    coordinator_host=$first_host
    parse_options "$first_line_no" "${first_fields[@]}"
    coordinator_addr=${opt_addr:-${coordinator_host#*@}}
    # The first line is the coordinator, not a worker.
    worker_hosts=("${worker_hosts[@]:1}")
    worker_options=("${worker_options[@]:1}")
fi
((${#worker_hosts[@]})) || die "$hostfile names no worker hosts (the coordinator's line does not count)"

for i in "${!worker_hosts[@]}"; do
    host=${worker_hosts[i]}
    read -ra fields <<<"${worker_options[i]}"
    parse_options "${fields[0]}" "${fields[@]:1}"
    n=${per_host_count[$host]:-0}
    per_host_count[$host]=$((n + 1))
    worker_ports+=("${opt_port:-$((worker_port + n))}")
    worker_addrs+=("${opt_addr:-${host#*@}}")
    worker_drafts+=("${opt_draft:-${drafts[i % ${#drafts[@]}]}}")
    worker_ids+=("${opt_id:-w$((i + 1))}")
done

# Every distinct host, the coordinator's first.
all_hosts=("$coordinator_host")
for host in "${worker_hosts[@]}"; do
    [[ " ${all_hosts[*]} " == *" $host "* ]] || all_hosts+=("$host")
done

# ---- running things ------------------------------------------------------------------------------------
# remote HOST COMMAND_STRING: runs a POSIX sh command string on HOST (or prints the ssh line).
remote() {
    local host=$1 script=$2
    local argv=("${ssh_cmd[@]}" "${ssh_opts[@]}" -o BatchMode=yes -o ConnectTimeout=10 "$host" "$script")
    if ((dry_run)); then
        quote "${argv[@]}"
    else
        "${argv[@]}"
    fi
}

copy() {
    local source=$1 host=$2 destination=$3
    local argv=("${scp_cmd[@]}" "${scp_opts[@]}" -o BatchMode=yes "$source" "$host:$destination")
    if ((dry_run)); then
        quote "${argv[@]}"
    else
        "${argv[@]}"
    fi
}

# launch_script NAME COMMAND…: the remote sh script that starts COMMAND under nohup (and setsid where there
# is one, so it leads its own process group) and records its PID.
launch_script() {
    local name=$1
    shift
    local dir
    dir=$(quote "$remote_dir")
    echo "mkdir -p $dir/logs $dir/run && if [ -f $dir/run/$name.pid ] && kill -0 \"\$(cat $dir/run/$name.pid)\" 2>/dev/null;" \
        "then echo \"$name is already running (pid \$(cat $dir/run/$name.pid))\" >&2; exit 1; fi;" \
        "s=; command -v setsid >/dev/null 2>&1 && s=setsid;" \
        "nohup \$s $(quote "$@") >$dir/logs/$name.log 2>&1 </dev/null & echo \$! >$dir/run/$name.pid; echo \$!"
}

# ready_script NAME: exit 0 when NAME logged its ready line, 1 while not yet, 3 when it is not running.
ready_script() {
    local name=$1 dir
    dir=$(quote "$remote_dir")
    echo "grep -q \"listening on\" $dir/logs/$name.log 2>/dev/null && exit 0;" \
        "kill -0 \"\$(cat $dir/run/$name.pid 2>/dev/null)\" 2>/dev/null || { tail -n 20 $dir/logs/$name.log >&2; exit 3; }; exit 1"
}

# stop_script: stops every process recorded in REMOTE_DIR/run (coordinator first; its whole process group
# when it was started with setsid) and removes the records.
stop_script() {
    local dir
    dir=$(quote "$remote_dir")
    echo "cd $dir/run 2>/dev/null || exit 0; for f in coordinator.pid worker-*.pid; do [ -f \"\$f\" ] || continue;" \
        "pid=\$(cat \"\$f\"); name=\${f%.pid}; g=\$pid; kill -0 -\"\$pid\" 2>/dev/null && g=-\$pid;" \
        "if kill -0 \"\$g\" 2>/dev/null; then kill -TERM \"\$g\"; i=0;" \
        "while kill -0 \"\$g\" 2>/dev/null && [ \$i -lt 150 ]; do sleep 0.1; i=\$((i + 1)); done;" \
        "if kill -0 \"\$g\" 2>/dev/null; then kill -KILL \"\$g\"; echo \"\$(hostname): \$name (pid \$pid) killed after 15 s\";" \
        "else echo \"\$(hostname): \$name (pid \$pid) stopped\"; fi; else echo \"\$(hostname): \$name (pid \$pid) was not running\"; fi;" \
        "rm -f \"\$f\"; done"
}

status_script() {
    local dir
    dir=$(quote "$remote_dir")
    echo "cd $dir/run 2>/dev/null || { echo \"\$(hostname): nothing started\"; exit 0; }; for f in *.pid; do [ -f \"\$f\" ] || continue;" \
        "pid=\$(cat \"\$f\"); name=\${f%.pid}; if kill -0 \"\$pid\" 2>/dev/null; then state=running; else state=\"NOT running\"; fi;" \
        "echo \"\$(hostname): \$name pid \$pid \$state; \$(grep -m1 \"listening on\" ../logs/\$name.log 2>/dev/null || echo \"no ready line yet\")\"; done"
}

wait_ready() {
    local host=$1 name=$2 deadline=$((SECONDS + ready_timeout)) code
    ((dry_run)) && { remote "$host" "$(ready_script "$name")"; return 0; }
    while ((SECONDS < deadline)); do
        set +e
        remote "$host" "$(ready_script "$name")"
        code=$?
        set -e
        case $code in
            0) echo "launch-hosts: $name on $host is listening"; return 0 ;;
            3) echo "launch-hosts: $name on $host exited; see $remote_dir/logs/$name.log there" >&2; exit 1 ;;
            1) sleep 1 ;;
            *) echo "launch-hosts: ssh to $host failed (status $code)" >&2; exit 1 ;;
        esac
    done
    echo "launch-hosts: $name on $host not listening after $ready_timeout s" >&2
    exit 1
}

state_dir=${CHORUS_HOSTS_STATE:-$HOME/.chorus-hosts}
state_file=$state_dir/$(basename "$hostfile").pids

# start_process HOST NAME COMMAND…
start_process() {
    local host=$1 name=$2 pid
    shift 2
    if ((dry_run)); then
        remote "$host" "$(launch_script "$name" "$@")"
        return 0
    fi
    pid=$(remote "$host" "$(launch_script "$name" "$@")") || die "could not start $name on $host"
    echo "$host $name $pid" >>"$state_file"
    echo "launch-hosts: started $name on $host (pid $pid)"
}

case $command in
    stop)
        ((${#extra[@]} == 0)) || die "stop takes no extra arguments"
        for host in "${all_hosts[@]}"; do remote "$host" "$(stop_script)" || echo "launch-hosts: ssh to $host failed" >&2; done
        ((dry_run)) || rm -f "$state_file"
        exit 0
        ;;
    status)
        for host in "${all_hosts[@]}"; do remote "$host" "$(status_script)" || echo "launch-hosts: ssh to $host failed" >&2; done
        exit 0
        ;;
esac

if ((dry_run)); then
    echo "# launch-hosts --dry-run: coordinator on $coordinator_host ($coordinator_addr:$coordinator_port)," \
        "${#worker_hosts[@]} worker(s); commands in order:"
else
    mkdir -p "$state_dir"
    echo "# start $(date -u +%Y-%m-%dT%H:%M:%SZ): host name pid" >>"$state_file"
fi

if [[ -n $copy_bin ]]; then
    for host in "${all_hosts[@]}"; do
        remote "$host" "mkdir -p $(quote "$(dirname "$remote_bin")")"
        copy "$copy_bin" "$host" "$remote_bin"
    done
fi
if [[ -n $copy_models ]]; then
    remote "$coordinator_host" "mkdir -p $(quote "$(dirname "$target")")"
    copy "$copy_models/$(basename "$target")" "$coordinator_host" "$target"
    for i in "${!worker_hosts[@]}"; do
        remote "${worker_hosts[i]}" "mkdir -p $(quote "$(dirname "${worker_drafts[i]}")")"
        copy "$copy_models/$(basename "${worker_drafts[i]}")" "${worker_hosts[i]}" "${worker_drafts[i]}"
    done
fi

# Every process gets the same key (or runs --insecure): docs/deployment.md, "Security".
security_args=(--insecure)
if [[ -n $key_file ]]; then
    remote_key=$remote_dir/cluster.key
    security_args=(--key-file "$remote_key")
    for host in "${all_hosts[@]}"; do
        remote "$host" "umask 077 && mkdir -p $(quote "$remote_dir") && rm -f $(quote "$remote_key")"
        copy "$key_file" "$host" "$remote_key"
        remote "$host" "chmod 600 $(quote "$remote_key")"
    done
fi

coordinator_command=("$remote_bin" coordinator --model "$target" --listen "tcp://0.0.0.0:$coordinator_port"
    "${security_args[@]}")
[[ -n $scheme ]] && coordinator_command+=(--scheme "$scheme")

start_workers() {
    local i command
    for i in "${!worker_hosts[@]}"; do
        command=("$remote_bin" worker --listen "tcp://0.0.0.0:${worker_ports[i]}" --model "${worker_drafts[i]}"
            --id "${worker_ids[i]}" "${security_args[@]}")
        if ((register)); then
            command+=(--register "tcp://$coordinator_addr:$coordinator_port"
                --advertise "tcp://${worker_addrs[i]}:${worker_ports[i]}")
        fi
        start_process "${worker_hosts[i]}" "worker-${worker_ids[i]}" "${command[@]}"
    done
    for i in "${!worker_hosts[@]}"; do
        wait_ready "${worker_hosts[i]}" "worker-${worker_ids[i]}"
    done
}

if ((register)); then
    start_process "$coordinator_host" coordinator "${coordinator_command[@]}" "${extra[@]}"
    wait_ready "$coordinator_host" coordinator
    start_workers
else
    start_workers
    for i in "${!worker_hosts[@]}"; do
        coordinator_command+=(--worker "tcp://${worker_addrs[i]}:${worker_ports[i]}")
    done
    start_process "$coordinator_host" coordinator "${coordinator_command[@]}" "${extra[@]}"
    wait_ready "$coordinator_host" coordinator
fi

((dry_run)) && exit 0
echo
echo "Chorus cluster up: coordinator tcp://$coordinator_addr:$coordinator_port, ${#worker_hosts[@]} worker(s); PIDs in $state_file"
echo "Try:   chorus generate --coordinator tcp://$coordinator_addr:$coordinator_port" \
    "$(if [[ -n $key_file ]]; then quote --key-file "$key_file"; else echo --insecure; fi)" \
    "--prompt 'In the beginning' -n 64"
echo "Stop:  scripts/launch-hosts.sh stop $(quote "$hostfile")"
