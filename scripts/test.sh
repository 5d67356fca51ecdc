#!/usr/bin/env bash
# Runs every test: unit tests and the root integration tests that exec the
# built plugins in real network namespaces. Installs what the tests need on a
# fresh Debian machine (iproute2 to create namespaces and observe the kernel,
# iptables for masquerade checks, nftables for macspoofchk, Debian's
# reference plugins for side-by-side tests, and libcni, Go and Podman for the
# real-client tests).
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/packages.sh
need ip iproute2
need iptables iptables
need ping iputils-ping
# The nftables masquerade test counts what an ADD execs.
need strace strace
# bridge's macspoofchk (integration/tests/macspoofchk.rs).
command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ] || missing+=(nftables)
[ -x /usr/lib/cni/host-local ] || missing+=(containernetworking-plugins)
# The real-client tests (integration/tests/clients.rs): a libcni driver built
# offline from Debian's libcni source, and Podman's CNI backend running a
# busybox-static image with runc.
need go golang-go
[ -d /usr/share/gocode/src/github.com/containernetworking/cni/libcni ] || missing+=(golang-github-appc-cni-dev)
need podman podman
need runc runc
# The Docker workflow (integration/tests/docker.rs, scripts/docker-run.sh): a
# private dockerd, and jq for the script.
need dockerd docker.io
need jq jq
# The Kubernetes node path (integration/tests/cri.rs): a private containerd
# driven by a CRI client on python3-grpcio.
need containerd containerd
/usr/bin/python3 -c 'import grpc' 2>/dev/null || missing+=(python3-grpcio)
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || missing+=(busybox-static)
install_missing

if [ "$(id -u)" != 0 ]; then
    echo "warning: not root; tests that need network namespaces will say they are skipped" >&2
fi

# The integration tests exec the plugin binaries, so build them first.
cargo build --workspace --all-features
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
# --no-fail-fast: a failing test binary must not hide the results of the rest.
cargo test --workspace --all-features --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole run (cargo's last line is only the last crate's).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"

# The root suite again under a distribution kernel in QEMU: Debian 11's 5.10,
# the oldest supported, and one with bridge VLAN filtering, which this kind
# of VM's kernel lacks (so the VLAN tests run for real only there). About 9
# minutes. CNI_RS_KERNELS picks others ("5.10 6.1 6.12"), or none when empty;
# scripts/kernel-matrix.sh runs the full matrix on its own.
kernels=${CNI_RS_KERNELS-5.10}
if [ -n "$kernels" ] && [ "$(id -u)" = 0 ]; then
    # shellcheck disable=SC2086 # a list of kernels
    if ./scripts/kernel-matrix.sh $kernels; then
        echo "kernels ($kernels): pass"
    else
        echo "kernels ($kernels): FAILED"
        status=1
    fi
fi
exit "$status"
