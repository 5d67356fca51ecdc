#!/usr/bin/env bash
# Benchmarks our bridge/host-local against Debian's reference plugins
# (containernetworking-plugins in /usr/lib/cni), interleaved in one run, with
# CRI-O's 100-crio-bridge.conf. Installs what it needs on a fresh Debian
# machine, builds the release binaries (scripts/build-release.sh), and runs bench.
# Arguments are passed on: --quick (smoke run, about 1 minute), --runs N,
# --pods N. The table goes to stdout and to results/bench.md, the chart to
# results/bench.svg. Needs root; about 5 minutes for the full run.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "bench.sh: needs root (network namespaces, bridges, iptables)" >&2
    exit 1
fi

. scripts/packages.sh
need ip iproute2
need iptables iptables
need nft nftables  # the sweep removes the nftables backend's rules with it
[ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] || missing+=(containernetworking-plugins)
install_missing

bin=$(./scripts/build-release.sh)
exec "$bin/bench" "$@"
