#!/usr/bin/env bash
# Per-call cost of a conntrack delete: the ctnetlink message weir built by hand before issue 20 against
# libnetfilter_conntrack's nfct_query(NFCT_Q_DESTROY), and the checked delete weir's workers make (NFCT_Q_GET of the
# entry on the tuple, then NFCT_Q_DESTROY of that entry by its id, sparing one redirected to the proxy), on the same
# entries, for an entry that is there (deleted) and one that is not (no entry). Runs scripts/bench/conntrack-delete.c inside a throwaway network namespace (as root),
# deleted afterwards even on failure. Not part of `make bench`; figures quoted in docs/proxy.md.
# Usage: scripts/bench/conntrack-delete.sh [N [ROUNDS]]     (default 2000 entries, 21 rounds)
# Prints "way case median_ns_per_call min_ns_per_call calls" lines.
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-2000}
rounds=${2:-21}
[ "$(id -u)" = 0 ] || { echo "conntrack-delete: needs root (a network namespace, CAP_NET_ADMIN)" >&2; exit 1; }
tmp=$(mktemp -d /tmp/weir-ct-bench.XXXXXX)
ns=wctb$$
cleanup() { ip netns del "$ns" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
gcc -O2 -Wall -o "$tmp/conntrack-delete" scripts/bench/conntrack-delete.c \
  $(pkg-config --cflags --libs libnetfilter_conntrack)
ip netns add "$ns"
ip netns exec "$ns" "$tmp/conntrack-delete" "$n" "$rounds"
