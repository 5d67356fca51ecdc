#!/usr/bin/env bash
# Runs the root test suite under Debian's distribution kernels in QEMU (TCG:
# no KVM needed) and prints a kernel x test table.
#
#   scripts/kernel-matrix.sh [--reliability] [--tests a,b,...] [KERNEL...]
#
# KERNEL is 5.10 (Debian 11), 6.1 (Debian 12) or 6.12 (bookworm-backports,
# as Debian 13); all three by default. The kernels are fetched once with
# `apt-get download` through a private sources list (the host's apt state is
# not touched) into $CNI_RS_KERNEL_CACHE (default /var/cache/cni-rs-kernels).
# The guest needs no disk image: it boots an initramfs of busybox-static and
# the kernel's virtio/9p/overlay modules, mounts the host's / read-only over
# virtio-9p with a tmpfs overlay, and runs the test binaries cargo built
# here; a second, writable 9p share carries the results back.
#
# --tests picks integration test binaries by name (default: the root suite
# without reliability and the Docker, containerd, Podman and release tests,
# which need more than a bare guest); --reliability adds the long
# reliability test. Exits non-zero when a cell fails. Each guest's console
# and test logs are kept in $CNI_RS_MATRIX_LOGS (default results/kernel-matrix).
# Every qemu process and temporary directory is removed on exit and on
# Ctrl-C. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

tests=(bridge vlan fallbacks host_local loopback masq macspoofchk nftables nft_backend iptables_nft gc_status trace faults netlink)
kernels=()
while [ $# -gt 0 ]; do
    case "$1" in
    --reliability) tests+=(reliability); shift ;;
    --tests) IFS=, read -ra tests <<<"$2"; shift 2 ;;
    5.10 | 6.1 | 6.12) kernels+=("$1"); shift ;;
    *) echo "usage: kernel-matrix.sh [--reliability] [--tests a,b] [5.10] [6.1] [6.12]" >&2; exit 2 ;;
    esac
done
[ ${#kernels[@]} -gt 0 ] || kernels=(5.10 6.1 6.12)

. scripts/packages.sh
need qemu-system-x86_64 qemu-system-x86
need depmod kmod
need xz xz-utils
need zstd zstd
need jq jq
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || missing+=(busybox-static)
install_missing

cache=${CNI_RS_KERNEL_CACHE:-/var/cache/cni-rs-kernels}
logs=${CNI_RS_MATRIX_LOGS:-$repo/results/kernel-matrix}
work=$(mktemp -d /tmp/cni-kernel-matrix.XXXXXX)
qemu_pids=()
cleanup() {
    for pid in "${qemu_pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { echo "kernel-matrix: $*" >&2; }

# --- the test binaries ----------------------------------------------------
log "building the plugins and the test binaries"
cargo build --workspace --all-features --quiet
declare -A binary
while IFS=$'\t' read -r name path; do
    binary[$name]=$path
done < <(cargo test -p integration --all-features --no-run --message-format=json 2>/dev/null |
    jq -r 'select(.reason == "compiler-artifact" and .profile.test == true and .target.kind == ["test"])
           | [.target.name, .executable] | @tsv')
# The guests run a snapshot of the binaries, so target/ may be rebuilt
# meanwhile (a guest reading a binary being rewritten crashes).
snapshot=$work/target/debug
mkdir -p "$snapshot/deps"
find target/debug -maxdepth 1 -type f -perm -u+x -exec cp {} "$snapshot/" \;
for t in "${tests[@]}"; do
    [ -n "${binary[$t]:-}" ] || { log "no test binary $t"; exit 2; }
    cp "${binary[$t]}" "$snapshot/deps/"
    binary[$t]=$snapshot/deps/$(basename "${binary[$t]}")
done

# --- kernels --------------------------------------------------------------
apt_opts=(-o "Dir::Etc::sourcelist=$cache/apt/sources.list" -o Dir::Etc::sourceparts=-
    -o "Dir::State::Lists=$cache/apt/lists" -o "Dir::Cache=$cache/apt/cache")
# The same archive as the host's sources, other suites.
mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)
mirror=${mirror:-http://deb.debian.org/debian}

# fetch KERNEL: sets kdir (extracted package) and kver (uname -r).
fetch() {
    local series=$1 meta dep deb
    mkdir -p "$cache/apt/lists/partial" "$cache/apt/cache/archives/partial"
    if [ ! -f "$cache/apt/sources.list" ]; then
        printf 'deb %s %s main\n' "$mirror" bookworm "$mirror" bookworm-backports "$mirror" bullseye \
            >"$cache/apt/sources.list"
        apt-get "${apt_opts[@]}" update -qq
    fi
    meta=$(apt-cache "${apt_opts[@]}" madison linux-image-amd64 | awk -v s="$series." \
        '{ v = $3 } index(v, s) == 1 { print v; exit }')
    [ -n "$meta" ] || { log "no linux-image-amd64 $series.x in the archive"; return 1; }
    dep=$(apt-cache "${apt_opts[@]}" show "linux-image-amd64=$meta" | sed -n 's/^Depends: \([^ ,]*\).*/\1/p' | head -n1)
    kdir=$cache/$dep
    if [ ! -d "$kdir/boot" ]; then
        log "fetching $dep"
        (cd "$cache" && apt-get "${apt_opts[@]}" download -qq "$dep" 2>/dev/null)
        deb=$(ls "$cache/${dep}"_*.deb | head -n1)
        rm -rf "$kdir.tmp" && dpkg-deb -x "$deb" "$kdir.tmp" && rm -f "$deb"
        kver=$(ls "$kdir.tmp/lib/modules")
        depmod -b "$kdir.tmp" "$kver"
        mv "$kdir.tmp" "$kdir"
    fi
    kver=$(ls "$kdir/lib/modules")
}

# initramfs KDIR KVER OUT: busybox and the modules to reach the host's /.
initramfs() {
    local kdir=$1 kver=$2 out=$3 root=$work/initramfs-$2 mod dep
    local moddir=$kdir/lib/modules/$kver
    rm -rf "$root" && mkdir -p "$root"/{bin,dev,proc,sys,modules,lower,upper,newroot}
    cp /bin/busybox "$root/bin/busybox"
    # Each wanted module after what it depends on (modules.dep lists those).
    local order=() seen=" "
    add_module() {
        local m=$1 d
        case "$seen" in *" $m "*) return ;; esac
        seen="$seen$m "
        for d in $(awk -v m="$m:" '$1 == m { $1 = ""; print }' "$moddir/modules.dep"); do add_module "$d"; done
        order+=("$m")
    }
    for mod in virtio_pci 9pnet_virtio 9p overlay; do
        dep=$(awk -F: -v m="/$mod.ko" 'index($1, m) { print $1; exit }' "$moddir/modules.dep")
        [ -n "$dep" ] && add_module "$dep"
    done
    : >"$root/modules/order"
    for mod in "${order[@]}"; do
        local name
        name=$(basename "$mod")
        case "$name" in
        *.xz) xz -dc "$moddir/$mod" >"$root/modules/${name%.xz}"; name=${name%.xz} ;;
        *.zst) zstd -qdc "$moddir/$mod" >"$root/modules/${name%.zst}"; name=${name%.zst} ;;
        *) cp "$moddir/$mod" "$root/modules/$name" ;;
        esac
        echo "$name" >>"$root/modules/order"
    done
    cat >"$root/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in \$(cat /modules/order); do insmod /modules/\$m 2>/dev/null; done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144 hostroot /lower
mount -t tmpfs -o size=1536m tmpfs /upper
mkdir -p /upper/u /upper/w
mount -t overlay overlay -o lowerdir=/lower,upperdir=/upper/u,workdir=/upper/w /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 results /newroot$work/results
umount /proc /sys /dev
exec switch_root /newroot /bin/bash $work/results/guest.sh
echo "switch_root failed"; poweroff -f
EOF
    chmod 755 "$root/init"
    (cd "$root" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1 >"$out")
}

# The guest's side: mounts, the module tree, the tests, then power off.
mkdir -p "$work/results"
cat >"$work/results/guest.sh" <<EOF
#!/bin/bash
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root CI=1
# Every guest kernel has bridge VLAN filtering: the VLAN tests must run.
export CNI_RS_EXPECT_VLAN_FILTERING=1
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm; mount -t devpts devpts /dev/pts; mount -t tmpfs tmpfs /dev/shm
ln -sf /proc/self/fd /dev/fd; ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout; ln -sf /proc/self/fd/2 /dev/stderr
mount -t tmpfs tmpfs /run; mkdir -p /run/netns
kver=\$(uname -r)
mkdir -p /lib/modules/\$kver && mount --bind "\$KDIR/lib/modules/\$kver" /lib/modules/\$kver
ip link set lo up
uname -r >"$work/results/uname"
cd "$repo"
for t in \$TESTS; do
    bin=\$(grep "^\$t " "$work/results/binaries" | cut -d' ' -f2)
    timeout 1800 "\$bin" --test-threads=2 >"$work/results/\$t.log" 2>&1
    echo \$? >"$work/results/\$t.status"
    { echo "after \$t:"; head -n 3 /proc/meminfo; } >>"$work/results/memory.log"
done
dmesg >"$work/results/dmesg.log"
sync
echo o >/proc/sysrq-trigger
EOF
for t in "${tests[@]}"; do echo "$t ${binary[$t]}"; done >"$work/results/binaries"

declare -A cell uname_of
for series in "${kernels[@]}"; do
    fetch "$series"
    log "$series: $kver, building the initramfs"
    initramfs "$kdir" "$kver" "$work/initrd-$kver.gz"
    rm -f "$work/results/"*.status "$work/results/"*.log "$work/results/uname"
    sed -i "2i export KDIR=$kdir TESTS='${tests[*]}'" "$work/results/guest.sh"
    log "$series: booting (TCG, 2 CPUs, 2 GiB); console in $work/console-$series.log"
    start=$(date +%s)
    qemu-system-x86_64 -accel tcg -smp 2 -m 2G -nographic -no-reboot \
        -kernel "$kdir/boot/vmlinuz-$kver" -initrd "$work/initrd-$kver.gz" \
        -append "console=ttyS0 panic=-1 quiet" \
        -virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap" \
        -virtfs "local,path=$work/results,mount_tag=results,security_model=none,multidevs=remap" \
        </dev/null >"$work/console-$series.log" 2>&1 &
    qemu_pids+=($!)
    wait "${qemu_pids[-1]}" || true
    sed -i '2d' "$work/results/guest.sh"
    uname_of[$series]=$(cat "$work/results/uname" 2>/dev/null || echo "did not boot")
    [ -f "$work/results/uname" ] || tail -n 40 "$work/console-$series.log" >&2
    cut_short=0
    for t in "${tests[@]}"; do
        status=$(cat "$work/results/$t.status" 2>/dev/null || echo none)
        case "$status" in
        0) cell[$series,$t]=pass ;;
        none) cell[$series,$t]="not run"; cut_short=1 ;;
        *) cell[$series,$t]="FAIL ($status)"; tail -n 30 "$work/results/$t.log" >&2 ;;
        esac
    done
    if [ "$cut_short" = 1 ]; then
        log "$series: the guest stopped before every test ran; its console ends:"
        tail -n 40 "$work/console-$series.log" >&2
    fi
    # Kept for reading afterwards (results/ is not tracked).
    mkdir -p "$logs/$series"
    rm -f "$logs/$series/"*.log
    cp "$work/console-$series.log" "$work/results/"*.log "$logs/$series/" 2>/dev/null || true
    log "$series: done in $(($(date +%s) - start)) s; logs in $logs/$series"
done

# --- the table ------------------------------------------------------------
failed=0
printf '\n| test |'; for s in "${kernels[@]}"; do printf ' %s |' "$s"; done; printf '\n|---|'
for s in "${kernels[@]}"; do printf -- '---|'; done; printf '\n| uname -r |'
for s in "${kernels[@]}"; do printf ' %s |' "${uname_of[$s]}"; done; printf '\n'
for t in "${tests[@]}"; do
    printf '| %s |' "$t"
    for s in "${kernels[@]}"; do
        printf ' %s |' "${cell[$s,$t]}"
        [ "${cell[$s,$t]}" = pass ] || failed=1
    done
    printf '\n'
done
exit "$failed"
