#!/usr/bin/env bash
# Installs cni-rs's bridge, host-local and loopback from a release archive
# (scripts/release.sh) into a CNI plugin directory, or takes them out again.
#
#   install.sh --archive cni-rs-<version>-linux-<arch>.tgz [--prefix DIR]
#   install.sh --uninstall [--prefix DIR]
#
# DIR defaults to /opt/cni/bin. Installing
# - checks the archive against its .sha256 (next to it) and refuses on a
#   mismatch or a missing checksum, before anything changes;
# - backs up the binaries it replaces into DIR/.cni-rs-backup (once: a
#   second install keeps the first backup, the reference's), and notes the
#   ones that were not there;
# - puts each binary in place by rename(2) from a staging copy in DIR, so a
#   runtime exec'ing a plugin meanwhile gets the old file or the new one,
#   never a partial one; pods keep running.
# Uninstalling restores the backed-up binaries the same way, removes the
# ones that were not there before, and removes the backup.
set -euo pipefail

prefix=/opt/cni/bin archive= uninstall=false
plugins=(bridge host-local loopback)
while [ $# -gt 0 ]; do
    case "$1" in
    --prefix) prefix=$2; shift 2 ;;
    --archive) archive=$2; shift 2 ;;
    --uninstall) uninstall=true; shift ;;
    -h | --help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
backup=$prefix/.cni-rs-backup

die() { echo "install.sh: $*" >&2; exit 1; }

# put SOURCE TARGET: copies SOURCE next to TARGET, then renames it over.
put() {
    local staged
    staged=$(mktemp "$prefix/.cni-rs-staged.XXXXXX")
    cp -p "$1" "$staged"
    chmod 755 "$staged"
    mv -f "$staged" "$2"
}

if $uninstall; then
    [ -d "$backup" ] || die "nothing to uninstall: no $backup"
    for plugin in "${plugins[@]}"; do
        if [ -f "$backup/$plugin" ]; then
            put "$backup/$plugin" "$prefix/$plugin"
        elif grep -qx "$plugin" "$backup/absent" 2>/dev/null; then
            rm -f "$prefix/$plugin"
        fi
    done
    rm -rf "$backup"
    echo "restored the plugins of $prefix from before cni-rs"
    exit 0
fi

[ -n "$archive" ] || die "--archive is required (see --help)"
[ -f "$archive" ] || die "no archive $archive"
[ -f "$archive.sha256" ] || die "no checksum $archive.sha256: refusing to install an unverified archive"
expected=$(cut -d' ' -f1 "$archive.sha256")
actual=$(sha256sum "$archive" | cut -d' ' -f1)
[ "$expected" = "$actual" ] || die "checksum mismatch for $archive: expected $expected, got $actual"

mkdir -p "$prefix"
unpacked=$(mktemp -d "$prefix/.cni-rs-unpacked.XXXXXX")
trap 'rm -rf "$unpacked" "$prefix"/.cni-rs-staged.*' EXIT
tar -xzf "$archive" -C "$unpacked" "${plugins[@]}"
for plugin in "${plugins[@]}"; do
    [ -x "$unpacked/$plugin" ] || die "$archive has no $plugin"
done

if [ ! -d "$backup" ]; then
    mkdir -p "$backup.new"
    : >"$backup.new/absent"
    for plugin in "${plugins[@]}"; do
        if [ -e "$prefix/$plugin" ]; then
            cp -p "$prefix/$plugin" "$backup.new/$plugin"
        else
            echo "$plugin" >>"$backup.new/absent"
        fi
    done
    mv "$backup.new" "$backup"
fi
for plugin in "${plugins[@]}"; do
    put "$unpacked/$plugin" "$prefix/$plugin"
done
echo "installed ${plugins[*]} into $prefix (previous ones in $backup)"
