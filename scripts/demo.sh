#!/usr/bin/env bash
# The main job, as a runtime does it: build the release plugins, then with
# CRI-O's 100-crio-bridge.conf (only the bridge name and the lease directory
# changed, so a real node's cni0 and /var/lib/cni are never touched) attach
# two fresh network namespaces, print the results, show addresses and routes,
# ping pod to pod and pod to gateway over IPv4 and IPv6, CHECK, DEL, and show
# that nothing is left. Exits non-zero if any step fails; cleans up on Ctrl-C.
#
# --two-nodes: instead, two simulated Kubernetes nodes (network namespaces,
# each with its own containerd and our plugins, pod CIDRs handed over as
# kubelet does), a pod on each, pod to pod and pod to outside; see
# integration/src/two_nodes.rs.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = --two-nodes ]; then
    . scripts/packages.sh
    need ip iproute2
    need iptables iptables
    need ping iputils-ping
    need containerd containerd
    /usr/bin/python3 -c 'import grpc' 2>/dev/null || missing+=(python3-grpcio)
    dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || missing+=(busybox-static)
    install_missing
    bin=$(./scripts/build-release.sh)
    cargo build --release --quiet -p integration --bin two-nodes
    exec target/release/two-nodes "$bin"
fi

. scripts/packages.sh
need ip iproute2
need iptables iptables
need ping iputils-ping
install_missing
bin=$(./scripts/build-release.sh)

bridge=cnirs-demo0
data_dir=/run/cni-rs-demo
pods=(cnirs-demo-a cnirs-demo-b)
config=$(sed -e "s/\"bridge\": \"cni0\"/\"bridge\": \"$bridge\"/" \
             -e "s|\"type\": \"host-local\",|\"type\": \"host-local\",\n        \"dataDir\": \"$data_dir\",|" \
             cni-types/tests/fixtures/100-crio-bridge.conf)

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# cni COMMAND POD [CONFIG]: exec the plugin exactly as a runtime does.
cni() {
    printf '%s' "${3:-$config}" | env -i PATH="$PATH" CNI_COMMAND="$1" CNI_CONTAINERID="$2" \
        CNI_NETNS="/run/netns/$2" CNI_IFNAME=eth0 CNI_PATH="$bin" "$bin/bridge"
}
cleanup() {
    for pod in "${pods[@]}"; do
        cni DEL "$pod" >/dev/null 2>&1 || true
        ip netns del "$pod" 2>/dev/null || true
    done
    ip link del "$bridge" 2>/dev/null || true
    rm -rf "$data_dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "config (CRI-O's 100-crio-bridge.conf, demo bridge and lease dir)"
echo "$config"

declare -A result
for pod in "${pods[@]}"; do
    ip netns add "$pod"
    step "ADD $pod"
    result[$pod]=$(cni ADD "$pod")
    echo "${result[$pod]}"
done

addr_of() { ip -n "$1" -o "-$2" addr show dev eth0 scope global | awk '{print $4}' | cut -d/ -f1; }
for pod in "${pods[@]}"; do
    step "inside $pod"
    ip -n "$pod" -br addr show dev eth0
    ip -n "$pod" route
    ip -n "$pod" -6 route show dev eth0 | grep -v fe80
done

step "connectivity"
a=${pods[0]} b=${pods[1]}
for family in 4 6; do
    gateway=$( [ "$family" = 4 ] && echo 10.85.0.1 || echo 1100:200::1 )
    for target in "$(addr_of "$b" "$family")" "$gateway"; do
        ip netns exec "$a" ping "-$family" -c1 -W2 "$target" >/dev/null
        echo "IPv$family: $a -> $target ok"
    done
done

step "CHECK (CHECK needs cniVersion 0.4.0+: the same network as a 1.0.0 conflist, with prevResult)"
for pod in "${pods[@]}"; do
    v1=${config/\"cniVersion\": \"0.3.1\"/\"cniVersion\": \"1.0.0\"}
    prev=${result[$pod]/\"cniVersion\": \"0.3.1\"/\"cniVersion\": \"1.0.0\"}
    cni CHECK "$pod" "${v1%\}}, \"prevResult\": $prev}"
    echo "CHECK $pod ok"
done

step "DEL"
for pod in "${pods[@]}"; do
    cni DEL "$pod"
    echo "DEL $pod ok"
    ip netns del "$pod"
done

step "left behind"
echo "veths on $bridge: $(ip -o link show master "$bridge" | wc -l)"
echo "leases: $(find "$data_dir/crio" -maxdepth 1 -type f ! -name lock ! -name 'last_reserved_ip.*' | wc -l) (only lock and last_reserved_ip.* remain)"
echo "masquerade chains: $( (iptables -t nat -S; ip6tables -t nat -S) 2>/dev/null | grep -c 'name: \\"crio\\"' || true)"
