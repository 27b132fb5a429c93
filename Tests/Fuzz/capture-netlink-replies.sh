#!/usr/bin/env bash
# Writes real kernel netlink replies into Tests/Fuzz/corpus/netlink-reply (the seeds of that fuzz target): one file
# per receive buffer, as NetlinkSocket reads them. Run as root; everything happens in a throwaway network namespace,
# which holds weir's table from two golden files (one renamed, so replies of a foreign table are there too), the
# TPROXY ip rules and routes and the ::6 address, so the dumps are the ones weir reads in `weir run`.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=Tests/Fuzz/corpus/netlink-reply
ns=wtfuzz-$$-seeds
ip netns add "$ns"
trap 'ip netns delete "$ns"' EXIT
run() { ip netns exec "$ns" "$@"; }
run ip link set lo up
run nft -f Tests/WeirCoreTests/Golden/outbound-lists.nft
sed 's/inet weir/inet other/g' Tests/WeirCoreTests/Golden/sidecar-tproxy.nft | run nft -f -
for v in -4 -6; do
  run ip "$v" rule add fwmark 1337 lookup 133 proto 87
  run ip "$v" route add local default dev lo table 133 proto 87
done
# iproute2 6.1 cannot set an address protocol; weir sets 87 on its own ::6.
run ip addr add ::6/128 dev lo nodad
mkdir -p "$out"
run /usr/bin/python3 - "$out" <<'EOF'
import os, socket, struct, sys
out = sys.argv[1]
REQUEST, ACK, DUMP = 1, 4, 0x300
def attr(t, data):
    return struct.pack("=HH", 4 + len(data), t) + data + b"\0" * (-len(data) % 4)
def ask(bus, name, mtype, flags, extra, attrs=b""):
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, bus)
    s.setsockopt(270, 12, 1)  # SOL_NETLINK, NETLINK_GET_STRICT_CHK, as weir sets it
    body = extra + attrs
    s.send(struct.pack("=IHHII", 16 + len(body), mtype, REQUEST | flags, 1, 0) + body)
    buffers = []
    while True:
        b = s.recv(1 << 16)
        buffers.append(b)
        # A dump ends with NLMSG_DONE (3) or an error (2) as the buffer's last message; a request with one buffer.
        off, t = 0, 0
        while off + 16 <= len(b):
            ln, t = struct.unpack_from("=IH", b, off)
            off += (ln + 3) & ~3
        if t in (2, 3) or not flags & DUMP:
            break
    for i, b in enumerate(buffers):
        open(os.path.join(out, f"{name}-{i}" if len(buffers) > 1 else name), "wb").write(b)
    return buffers
NFT = lambda m: (10 << 8) | m
nfgen = lambda family: struct.pack("=BBH", family, 0, 0)
INET, UNSPEC = 1, 0
ROUTE, NETFILTER = 0, 12  # NETLINK_ROUTE, NETLINK_NETFILTER
z = lambda s: s.encode() + b"\0"
ask(NETFILTER, "nft-table", NFT(1), ACK, nfgen(INET), attr(1, z("weir")))
ask(NETFILTER, "nft-table-missing", NFT(1), ACK, nfgen(INET), attr(1, z("absent")))
ask(NETFILTER, "nft-gen", NFT(16), ACK, nfgen(UNSPEC))
ask(NETFILTER, "nft-chains", NFT(4), ACK | DUMP, nfgen(INET), attr(1, z("weir")))
sets = ask(NETFILTER, "nft-sets", NFT(10), ACK | DUMP, nfgen(INET), attr(1, z("weir")))
names = []
for b in sets:
    off = 0
    while off + 20 <= len(b):
        ln, t = struct.unpack_from("=IH", b, off)
        a = off + 20
        while t == NFT(9) and a + 4 <= off + ln:
            al, at = struct.unpack_from("=HH", b, a)
            if at == 2:
                names.append(b[a + 4:a + al].rstrip(b"\0").decode())
            a += (al + 3) & ~3
        off += (ln + 3) & ~3
for n in sorted(set(names)):
    ask(NETFILTER, f"nft-elements-{n}", NFT(13), ACK | DUMP, nfgen(INET),
        attr(1, z("weir")) + attr(2, z(n)))
ask(NETFILTER, "nft-rules", NFT(7), ACK | DUMP, nfgen(INET), attr(1, z("weir")))
ask(NETFILTER, "nft-rules-other", NFT(7), ACK | DUMP, nfgen(INET), attr(1, z("other")))
ask(NETFILTER, "ct-stats-cpu", (1 << 8) | 4, DUMP, nfgen(UNSPEC))
ask(NETFILTER, "ct-stats", (1 << 8) | 5, ACK, nfgen(UNSPEC))
for fam, v in ((socket.AF_INET, 4), (socket.AF_INET6, 6)):
    ask(ROUTE, f"rt-rules-v{v}", 34, DUMP, struct.pack("=B11x", fam))
    ask(ROUTE, f"rt-routes-v{v}", 26, DUMP, struct.pack("=B11x", fam))
ask(ROUTE, "rt-addresses-v6", 22, DUMP, struct.pack("=B7x", socket.AF_INET6))
EOF
ls -l "$out"
