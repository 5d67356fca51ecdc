#!/usr/bin/env bash
# Builds the release binaries the way they ship and prints the directory that
# holds them. On glibc Linux they are linked statically (static-pie): no
# dynamic loader and no libc.so to map, so a plugin starts faster than
# /bin/true and its resident set is a third smaller. The target is named
# explicitly so the static flag applies to the binaries only, not to the
# build scripts and proc-macros cargo runs on the host.
#
# Where lld links (x86_64 Linux, Rust 1.90 and later), the functions are
# placed in the order of layout/plugins.order (scripts/profile-layout.sh), so
# the code a plugin runs shares as few 64 KiB fault-around windows as
# possible. The file is passed by a content-addressed copy, so a new order
# relinks.
#
# --symbols: the same binaries with their symbol tables kept (same symbol
# names, as RUSTFLAGS do not change them), under target/symbols.
set -euo pipefail
cd "$(dirname "$0")/.."

flags=()
case "${1:-}" in
    --symbols)
        flags+=(-C strip=none)
        export CARGO_TARGET_DIR=$PWD/target/symbols
        ;;
    "") ;;
    *)
        echo "usage: build-release.sh [--symbols]" >&2
        exit 2
        ;;
esac

host=$(rustc -vV | sed -n 's/^host: //p')
minor=$(rustc -vV | sed -n 's/^release: 1\.\([0-9]*\)\..*/\1/p')
case "$host" in
    *-linux-gnu) flags+=(-C target-feature=+crt-static) ;;
esac
order=layout/plugins.order
if [ "$host" = x86_64-unknown-linux-gnu ] && [ "${minor:-0}" -ge 90 ] && [ -f "$order" ]; then
    copy=target/layout/plugins-$(sha256sum "$order" | cut -c1-16).order
    if [ ! -f "$copy" ]; then
        mkdir -p target/layout
        cp "$order" "$copy.tmp" && mv "$copy.tmp" "$copy"
    fi
    flags+=(-C "link-arg=-Wl,--symbol-ordering-file=$PWD/$copy" -C link-arg=-Wl,--no-warn-symbol-ordering)
fi
var="CARGO_TARGET_$(printf '%s' "$host" | tr 'a-z-' 'A-Z_')_RUSTFLAGS"
export "$var=${!var:-} ${flags[*]}"
cargo build --release --workspace --quiet --target "$host" >&2
echo "${CARGO_TARGET_DIR:-$PWD/target}/$host/release"
