#!/usr/bin/env bash
# Checks the launch scripts and deployment files (run by CI; idempotent; works offline once installed):
#   - ShellCheck on scripts/*.sh and deploy/slurm/*.sbatch;
#   - yamllint -s on configs/ and deploy/kubernetes/ (settings: deploy/yamllint.yaml);
#   - every config in configs/ and in the ConfigMap uses only keys that
#     Sources/ChorusCluster/Configuration.swift knows;
#   - kubernetes-validate --strict against a pinned Kubernetes version (schemas ship in the package);
#   - systemd-analyze verify on the units, in a throwaway root with a stub /usr/local/bin/chorus (any
#     output, even a warning, fails);
#   - launch-hosts.sh --dry-run output equals deploy/testdata/launch-hosts.dry-run.expected.
# Installs what is missing: shellcheck, yamllint and systemd with apt-get, kubernetes-validate with pip
# into a virtualenv (CHECK_DEPLOY_VENV, default /opt/chorus-check-deploy). Installing needs root.
# Exits 1 naming every failed check; 2 when the tools cannot be installed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

usage() {
    cat <<'EOF'
usage: scripts/check-deploy.sh [--no-install] [--update-expected]

  --no-install        do not install anything; fail if a tool is missing
  --update-expected   rewrite deploy/testdata/launch-hosts.dry-run.expected from the current script
  -h, --help          this help
EOF
}

install=1
update_expected=0
while [[ $# -gt 0 ]]; do
    case $1 in
        -h | --help) usage; exit 0 ;;
        --no-install) install=0; shift ;;
        --update-expected) update_expected=1; shift ;;
        *) usage >&2; echo "check-deploy: unknown argument: $1" >&2; exit 2 ;;
    esac
done

kubernetes_validate_version=1.34.1 # the PyPI package
kubernetes_version=1.34.0          # the schema set it validates against (shipped in that package)
venv=${CHECK_DEPLOY_VENV:-/opt/chorus-check-deploy}

# ---- tools ---------------------------------------------------------------------------------------------
as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        echo "check-deploy: need root to run: $*" >&2
        exit 2
    fi
}

apt_updated=0
apt_install() {
    ((install)) || { echo "check-deploy: missing Debian package(s) $* (and --no-install given)" >&2; exit 2; }
    if ((!apt_updated)); then
        as_root apt-get update -qq
        apt_updated=1
    fi
    echo "check-deploy: apt-get install $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

started=$SECONDS
missing=()
command -v shellcheck >/dev/null || missing+=(shellcheck)
command -v yamllint >/dev/null || missing+=(yamllint)
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v python3 >/dev/null || missing+=(python3 python3-venv)
((${#missing[@]} == 0)) || apt_install "${missing[@]}"

if ! "$venv/bin/python" -c "import importlib.metadata as m, sys
sys.exit(m.version('kubernetes-validate') != '$kubernetes_validate_version')" 2>/dev/null; then
    ((install)) || { echo "check-deploy: kubernetes-validate $kubernetes_validate_version missing in $venv" >&2; exit 2; }
    if [[ ! -x $venv/bin/python ]]; then
        as_root mkdir -p "$(dirname "$venv")"
        if ! as_root python3 -m venv "$venv" 2>/dev/null; then
            apt_install python3-venv
            as_root rm -rf "$venv"
            as_root python3 -m venv "$venv"
        fi
    fi
    echo "check-deploy: pip install kubernetes-validate==$kubernetes_validate_version into $venv"
    as_root "$venv/bin/python" -m pip install -q --disable-pip-version-check "kubernetes-validate==$kubernetes_validate_version"
fi
echo "check-deploy: tools ready ($((SECONDS - started)) s): $(shellcheck --version | sed -n 's/^version: /shellcheck /p'), $(yamllint --version)," \
    "$(systemd-analyze --version | head -n 1 | cut -d' ' -f1-2), kubernetes-validate $kubernetes_validate_version (Kubernetes $kubernetes_version)"

# ---- checks --------------------------------------------------------------------------------------------
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=()

# check NAME COMMAND…: runs COMMAND; fails when it exits non-zero or prints anything.
check() {
    local name=$1 out=$work/out
    shift
    local code=0
    "$@" >"$out" 2>&1 || code=$?
    if ((code != 0)) || [[ -s $out ]]; then
        echo "FAIL  $name (exit $code)"
        head -n 60 "$out" | sed 's/^/      /'
        (($(wc -l <"$out") <= 60)) || echo "      … $(($(wc -l <"$out") - 60)) more line(s)"
        failed+=("$name")
    else
        echo "ok    $name"
    fi
}

shell_files=(scripts/*.sh deploy/slurm/*.sbatch)
check "shellcheck (${#shell_files[@]} files)" shellcheck "${shell_files[@]}"

check "yamllint -s configs/ deploy/kubernetes/" yamllint -s -c deploy/yamllint.yaml configs deploy/kubernetes deploy/yamllint.yaml

# Keys that Configuration.swift accepts, read from its `static let keys = [...]` lists.
config_keys() {
    "$venv/bin/python" - "$@" <<'EOF'
import re, sys, yaml

swift = open("Sources/ChorusCluster/Configuration.swift", encoding="utf-8").read()
def keys(type_name):
    m = re.search(r"extension %s \{\s*static let keys = \[(.*?)\]" % type_name, swift, re.S)
    if not m:
        sys.exit("cannot find %s.keys in Configuration.swift (update scripts/check-deploy.sh)" % type_name)
    return set(re.findall(r'"([a-z_]+)"', m.group(1)))
known = {"coordinator": keys("CoordinatorConfiguration"), "worker": keys("WorkerConfiguration")}
tls = {"certificate", "key", "ca"}

def check(doc, where):
    problems = []
    if not isinstance(doc, dict) or not doc:
        return ["%s: expected a mapping with coordinator: and/or worker:" % where]
    for section, body in doc.items():
        if section not in known:
            problems.append("%s: unknown section %r" % (where, section)); continue
        if not isinstance(body, dict):
            problems.append("%s: %s: expected a mapping" % (where, section)); continue
        for key, value in body.items():
            if key not in known[section]:
                problems.append("%s: %s.%s is not a known key (%s)" % (where, section, key, ", ".join(sorted(known[section]))))
            elif key == "tls" and (not isinstance(value, dict) or set(value) != tls):
                problems.append("%s: %s.tls needs exactly certificate, key and ca" % (where, section))
    return problems

problems, count = [], 0
for path in sys.argv[1:]:
    for doc in yaml.safe_load_all(open(path, encoding="utf-8")):
        if isinstance(doc, dict) and doc.get("kind") == "ConfigMap":
            for name, text in (doc.get("data") or {}).items():
                if name.endswith(".yaml"):
                    count += 1
                    problems += check(yaml.safe_load(text), "%s (ConfigMap key %s)" % (path, name))
        elif isinstance(doc, dict) and "kind" not in doc:
            count += 1
            problems += check(doc, path)
if problems:
    print("\n".join(problems))
    sys.exit(1)
if count == 0:
    sys.exit("no configs found")
EOF
}
check "config keys match Configuration.swift" config_keys configs/*.yaml deploy/kubernetes/*.yaml

check "kubernetes-validate --strict (Kubernetes $kubernetes_version)" \
    "$venv/bin/kubernetes-validate" --kubernetes-version "$kubernetes_version" --strict --quiet deploy/kubernetes/*.yaml

# systemd-analyze verify needs the units' dependencies (sysinit.target, …) and an executable at ExecStart.
# Offline, in a container without systemd running: a throwaway root holding a copy of this host's unit
# files, a stub /usr/local/bin/chorus and our units; --man=no skips the man page lookups. Warnings
# (unknown keys, bad values) exit 0 but print, so any output fails the check.
systemd_verify() {
    local root=$work/systemd-root unit
    mkdir -p "$root/usr/lib/systemd" "$root/etc/systemd/system" "$root/usr/local/bin"
    cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
    printf '#!/bin/sh\nexit 0\n' >"$root/usr/local/bin/chorus"
    chmod 755 "$root/usr/local/bin/chorus"
    cp deploy/systemd/*.service "$root/etc/systemd/system/"
    local units=()
    for unit in deploy/systemd/*.service; do
        unit=$(basename "$unit")
        # A template is checked through an instance.
        [[ $unit == *@.service ]] && unit=${unit%@.service}@check.service
        units+=("$unit")
    done
    SYSTEMD_LOG_COLOR=0 systemd-analyze verify --root="$root" --man=no "${units[@]}"
}
check "systemd-analyze verify ($(cd deploy/systemd && echo *.service))" systemd_verify

expected=deploy/testdata/launch-hosts.dry-run.expected
launch_hosts_dry_run() {
    env -u SSH -u SSH_OPTS -u SCP -u SCP_OPTS -u REMOTE_DIR -u REMOTE_BIN -u REMOTE_MODELS \
        bash scripts/launch-hosts.sh deploy/testdata/launch-hosts.hosts --dry-run --scheme optimal \
        --copy-bin scripts/launch-hosts.sh --key-file deploy/testdata/launch-hosts.key -- --draft-length 6
    env -u SSH -u SSH_OPTS -u REMOTE_DIR bash scripts/launch-hosts.sh stop deploy/testdata/launch-hosts.hosts --dry-run
}
if ((update_expected)); then
    launch_hosts_dry_run >"$expected"
    echo "check-deploy: wrote $expected"
fi
check "launch-hosts.sh --dry-run matches $expected" diff -u "$expected" <(launch_hosts_dry_run 2>&1)

echo
if ((${#failed[@]})); then
    echo "check-deploy: ${#failed[@]} check(s) FAILED: ${failed[*]}"
    exit 1
fi
echo "check-deploy: all checks passed ($((SECONDS - started)) s)"
