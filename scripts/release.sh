#!/usr/bin/env bash
# Packs the plugins into a release archive like upstream's
# cni-plugins-linux-<arch>-<version>.tgz: dist/cni-rs-<version>-linux-<arch>.tgz
# with bridge, host-local, loopback, install.sh and INSTALL at its top level,
# and
# dist/cni-rs-<version>-linux-<arch>.tgz.sha256 (`sha256sum -c` format).
# The binaries are the static ones of scripts/build-release.sh unless
# --bin DIR names others; --out DIR puts the archive elsewhere. Prints the
# archive's path. The archive is reproducible: sorted, owned by root, dated
# at the last commit.
set -euo pipefail
cd "$(dirname "$0")/.."

bin= out=dist
while [ $# -gt 0 ]; do
    case "$1" in
    --bin) bin=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "usage: release.sh [--bin DIR] [--out DIR]" >&2; exit 2 ;;
    esac
done
[ -n "$bin" ] || bin=$(scripts/build-release.sh)

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
case "$(uname -m)" in
    x86_64) arch=amd64 ;;
    aarch64) arch=arm64 ;;
    *) arch=$(uname -m) ;;
esac
name=cni-rs-$version-linux-$arch
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

for plugin in bridge host-local loopback; do
    install -m 755 "$bin/$plugin" "$stage/$plugin"
done
install -m 755 scripts/install.sh "$stage/install.sh"
cat >"$stage/INSTALL" <<EOF
cni-rs $version: bridge, host-local and loopback, drop-in replacements for
the reference CNI plugins (containernetworking/plugins) of the same names.

Install (as root; checks the archive against $name.tgz.sha256 next to it
and backs up the binaries it replaces):
    tar -xzf $name.tgz install.sh
    ./install.sh --archive $name.tgz [--prefix /opt/cni/bin]
or by hand: extract next to the target directory and rename each binary
over the old one (rename is atomic; a runtime never execs half a file).

Uninstall (restores what the install backed up):
    ./install.sh --uninstall [--prefix /opt/cni/bin]

Configs need no change: CRI-O's 100-crio-bridge.conf and the same network
as a conflist at 0.4.0, 1.0.0 and 1.1.0 work as they are; leases and
masquerade rules are the reference's, so pods attached by either
implementation are detached by the other.
EOF

mkdir -p "$out"
archive=$(cd "$out" && pwd)/$name.tgz
stamp=$(git log -1 --format=%ct 2>/dev/null || echo 0)
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$stamp" \
    -C "$stage" -cf - bridge host-local loopback install.sh INSTALL | gzip -n >"$archive.tmp"
mv "$archive.tmp" "$archive"
(cd "$(dirname "$archive")" && sha256sum "$name.tgz" >"$name.tgz.sha256")
echo "$archive"
