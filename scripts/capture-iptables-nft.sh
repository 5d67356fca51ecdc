#!/usr/bin/env bash
# Regenerates plugins/bridge/src/firewall/iptables_nft/*.hex: the nf_tables
# messages iptables-nft sends for the reference plugin's masquerade rules of
# CRI-O's network (`crio`, container abc123 at 10.85.0.2 / 1100:200::2 on an
# empty node, then def456 at .3 next to it), captured with
# `strace -e trace=sendmsg` in private network namespaces. Each line is a
# message's type, flags and payload (nfgenmsg and attributes) in hex. Run as
# root on an iptables-nft node; the unit tests compare our batches to these.
set -euo pipefail
cd "$(dirname "$0")/.."
out=plugins/bridge/src/firewall/iptables_nft
iptables -V | grep -q nf_tables || { echo "iptables here is not iptables-nft" >&2; exit 1; }
work=$(mktemp -d)
ns=capture-$$
trap 'ip netns del "$ns" 2>/dev/null || true; rm -rf "$work"' EXIT

chain() { python3 -c "import hashlib,sys; print('CNI-' + hashlib.sha512(sys.argv[1].encode()).hexdigest()[:24])" "crio$1"; }

# batch ID V4|V6 ADDRESS SUBNET MULTICAST
batch() {
    local chain comment
    chain=$(chain "$1")
    comment="\"name: \\\"crio\\\" id: \\\"$1\\\"\""
    printf '*nat\n-N %s\n' "$chain"
    printf -- '-A %s -d %s -m comment --comment %s -j ACCEPT\n' "$chain" "$4" "$comment"
    printf -- '-A %s ! -d %s -m comment --comment %s -j MASQUERADE\n' "$chain" "$5" "$comment"
    printf -- '-A POSTROUTING -s %s -m comment --comment %s -j %s\nCOMMIT\n' "$3" "$comment" "$chain"
}

# to_hex STRACE_LOG: one line per message of the batch sendmsg.
to_hex() {
    python3 - "$1" <<'PY'
import re, sys
line = [l for l in open(sys.argv[1]) if 'sendmsg' in l][0]
families = {'AF_UNSPEC': 0, 'AF_INET': 2, 'AF_INET6': 10}
attr = re.compile(r'\[\{nla_len=(\d+), nla_type=(NLA_F_NESTED\|)?0x([0-9a-f]+)\}, "((?:\\x[0-9a-f]{2})*)"\]')
for message in re.split(r'\[\{nlmsg_len=', line)[1:]:
    head = re.match(r'(\d+), nlmsg_type=([^,]+), nlmsg_flags=([^,]+)', message)
    family = families[re.search(r'nfgen_family=(\w+)', message).group(1)]
    res_id = int(re.search(r'res_id=htons\((\d+)\)', message).group(1))
    out = bytes([family, 0]) + res_id.to_bytes(2, 'big')
    for a in attr.finditer(message):
        length = int(a.group(1))
        kind = int(a.group(3), 16) | (0x8000 if a.group(2) else 0)
        value = bytes(int(x, 16) for x in a.group(4).split('\\x')[1:])
        out += length.to_bytes(2, 'little') + kind.to_bytes(2, 'little') + value + bytes((4 - length % 4) % 4)
    raw = re.search(r'res_id=htons\(10\)\}, "((?:\\x[0-9a-f]{2})*)"', message)
    if raw:
        out += bytes(int(x, 16) for x in raw.group(1).split('\\x')[1:])
    kind = head.group(2).split('|')[-1].replace('NFNL_SUBSYS_NFTABLES<<8', '')
    print(kind, head.group(3), out.hex())
PY
}

ip netns add "$ns"
for step in fresh:abc123:2 second:def456:3; do
    IFS=: read -r name id host <<<"$step"
    batch "$id" V4 "10.85.0.$host/32" 10.85.0.0/16 224.0.0.0/4 >"$work/v4"
    batch "$id" V6 "1100:200::$host/128" 1100:200::/24 ff00::/8 >"$work/v6"
    for family in v4 v6; do
        restore=iptables-restore
        [ "$family" = v6 ] && restore=ip6tables-restore
        ip netns exec "$ns" strace -e trace=sendmsg -xx -s 20000 -o "$work/log" \
            "$restore" --wait --noflush <"$work/$family"
        to_hex "$work/log" >"$out/$family-$name.hex"
    done
done
echo "wrote $out/{v4,v6}-{fresh,second}.hex"
