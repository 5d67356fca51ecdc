#!/usr/bin/env bash
# The main job, as a runtime does it: build the release plugins, create a
# fresh network namespace, run ADD with the plugin's config on stdin and the
# CNI_* variables set, print the result, show the namespace, then DEL.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v ping >/dev/null 2>&1 || missing+=(iputils-ping)
if [ "${#missing[@]}" -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
cargo build --release --workspace
bin="$PWD/target/release"
netns="cni-rs-demo-$$"

cleanup() { ip netns del "$netns" 2>/dev/null || true; }
trap cleanup EXIT INT TERM
ip netns add "$netns"

config='{"cniVersion":"1.0.0","name":"demo-lo","type":"loopback"}'
cni() {
    echo "$config" | env -i CNI_COMMAND="$1" CNI_CONTAINERID="$netns" CNI_NETNS="/run/netns/$netns" \
        CNI_IFNAME=lo CNI_PATH="$bin" "$bin/loopback"
}

echo "== before ADD: lo inside $netns"
ip netns exec "$netns" ip -br addr show lo
echo "== ADD (loopback, cniVersion 1.0.0)"
cni ADD
echo
echo "== after ADD"
ip netns exec "$netns" ip -br addr show lo
ip netns exec "$netns" ping -c1 -W1 127.0.0.1 >/dev/null && echo "ping 127.0.0.1 inside the namespace: ok"
echo "== CHECK"
cni CHECK && echo "ok"
echo "== DEL"
cni DEL && echo "ok"
ip netns exec "$netns" ip -br link show lo
