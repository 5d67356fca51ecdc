#!/usr/bin/env bash
# Regenerates layout/plugins.order, the function order the release link uses
# (scripts/build-release.sh). Needs root, as the benchmark does.
#
# Why: the kernel maps a binary's code in 64 KiB windows around each page a
# process touches, so a plugin's resident set is every window its run touches.
# Placing the functions an ADD runs next to each other takes the bridge's
# text from about 1.1 MiB resident to about half that.
#
# How: builds the release binaries with their symbols kept (the same symbol
# names as the shipped, stripped ones), runs each command of each plugin in a
# throwaway namespace and bridge under scripts/layout-trace.py (gdb), and
# writes the functions in the order they were first entered: bridge ADD first,
# then its other commands, then host-local and loopback. What a posix_spawn
# child runs before exec shares the bridge's memory but is invisible to gdb,
# so those glibc functions are added by name.
#
# Rerun after changes to the plugins, the toolchain or Cargo.lock: names that
# no longer exist are skipped by the linker, and `scripts/bench.sh` shows the
# resident set growing back.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "profile-layout.sh: needs root (network namespaces, bridges, iptables)" >&2
    exit 1
fi
missing=()
command -v gdb >/dev/null 2>&1 || missing+=(gdb)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v iptables >/dev/null 2>&1 || missing+=(iptables)
if [ "${#missing[@]}" -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

bin=$(./scripts/build-release.sh --symbols)
work=$(mktemp -d)
tag=lay$$
netns=$tag
bridge=$tag
data_dir=$work/leases
cleanup() {
    for pod in a b c; do
        CNI_COMMAND=DEL CNI_CONTAINERID=$tag$pod CNI_NETNS=/run/netns/$netns CNI_IFNAME=eth$pod \
            CNI_PATH=$bin "$bin/bridge" <<<"$(config 1.0.0)" >/dev/null 2>&1 || true
    done
    ip netns del "$netns" 2>/dev/null || true
    ip link del "$bridge" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# CRI-O's network with a name, bridge, subnets and lease directory of its own.
config() {
    cat <<EOF
{"cniVersion": "$1", "name": "$tag", "type": "bridge", "bridge": "$bridge",
 "isGateway": true, "ipMasq": true, "hairpinMode": true,
 "ipam": {"type": "host-local", "dataDir": "$data_dir",
          "routes": [{"dst": "0.0.0.0/0"}, {"dst": "1100:200::1/24"}],
          "ranges": [[{"subnet": "10.245.0.0/16"}], [{"subnet": "fd00:245::/64"}]]}}
EOF
}
with_key() { # CONFIG KEY JSON: the config with KEY set to JSON
    python3 -c 'import json,sys; c=json.loads(sys.argv[1]); c[sys.argv[2]]=json.loads(sys.argv[3]); print(json.dumps(c))' "$1" "$2" "$3"
}

n=0
# trace PLUGIN COMMAND POD CONFIG [ENV…]: one traced call; its result on stdout.
trace() {
    local plugin=$1 command=$2 pod=$3 conf=$4
    shift 4
    n=$((n + 1))
    local out=$work/$(printf %02d $n)-$plugin-$command
    env CNI_COMMAND="$command" CNI_CONTAINERID=$tag$pod CNI_NETNS=/run/netns/$netns \
        CNI_IFNAME=eth$pod CNI_PATH="$bin" "$@" TRACE_OUT="$out.trace" TRACE_STDOUT="$out.json" \
        gdb -q -batch -nx -x scripts/layout-trace.py --args "$bin/$plugin" <<<"$conf" >"$out.log" 2>&1
    local result
    result=$(cat "$out.json")
    if [ ! -s "$out.trace" ] || grep -q '"code":' <<<"$result"; then
        echo "profile-layout.sh: $plugin $command failed:" >&2
        cat "$out.log" >&2
        exit 1
    fi
    echo "$plugin $command: $(wc -l <"$out.trace") functions" >&2
    printf '%s\n' "$result"
}

ip netns add "$netns"
echo "tracing the plugins (about two minutes)" >&2
trace bridge ADD a "$(config 0.3.1)" >/dev/null # creates the bridge
trace bridge ADD b "$(config 0.3.1)" >/dev/null # the common case
trace bridge DEL b "$(config 0.3.1)" >/dev/null
added=$(trace bridge ADD c "$(config 1.0.0)")
trace bridge CHECK c "$(with_key "$(config 1.0.0)" prevResult "$added")" >/dev/null
trace bridge DEL c "$(config 1.0.0)" >/dev/null
trace bridge VERSION a "$(config 1.1.0)" >/dev/null
trace bridge STATUS a "$(config 1.1.0)" >/dev/null
trace bridge GC a "$(with_key "$(config 1.1.0)" cni.dev/valid-attachments "[{\"containerID\": \"${tag}a\", \"ifname\": \"etha\"}]")" >/dev/null
trace bridge DEL a "$(config 0.3.1)" >/dev/null
trace host-local ADD d "$(config 0.3.1)" >/dev/null
trace host-local DEL d "$(config 0.3.1)" >/dev/null
lo='{"cniVersion": "1.0.0", "name": "lo", "type": "loopback"}'
trace loopback ADD lo "$lo" CNI_IFNAME=lo >/dev/null
trace loopback DEL lo "$lo" CNI_IFNAME=lo >/dev/null

# What glibc's posix_spawn child runs between clone and exec (signal mask
# and handlers, file actions, the PATH search of execvp), every CPU variant.
spawn_child='^_*(spawni_child|spawn_valid_fd|libc_sigaction|sigaction|sigprocmask|pthread_sigmask|dup2|close|close_nocancel|fcntl64|fcntl64_nocancel|fcntl64_nocancel_adjusted|setsid|setpgid|chdir|fchdir|sched_setparam|execve|execvpe|execvpex|execvpe_common|maybe_script_execute|strnlen|strchrnul|_exit)(_[a-z0-9_]+)?$'

mkdir -p layout
{
    echo "# Function order for the release link (lld --symbol-ordering-file)."
    echo "# Generated by scripts/profile-layout.sh on $(date -u +%F) from $(git rev-parse --short HEAD); do not edit."
    cat "$work"/*-bridge-*.trace
    nm --defined-only "$bin/bridge" | awk '{print $3}' | grep -E "$spawn_child" || true
    cat "$work"/*-host-local-*.trace "$work"/*-loopback-*.trace
} | awk '/^#/ || !seen[$0]++' >layout/plugins.order
echo "wrote layout/plugins.order: $(grep -vc '^#' layout/plugins.order) functions" >&2
