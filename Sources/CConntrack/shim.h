#ifndef WEIR_CCONNTRACK_SHIM_H
#define WEIR_CCONNTRACK_SHIM_H
/* libnetfilter_conntrack: the proxy's per-connection delete and the agent's start-up clean-up of its predecessor's
 * upstream entries, both through nfct_query (WeirSystem's Conntrack). Conntrack statistics stay on WeirSystem's own
 * netlink codec: the library has no statistics API.
 *
 * The kernel's uapi headers come first, as CNetfilter includes them: the library's header then skips its own older
 * copies of them (libnfnetlink's linux_nfnetlink.h and the rest carry the same include guards), whose different enum
 * nfnetlink_groups would clash with CNetfilter's wherever a module sees both (a release build's cross-module
 * optimisation does). */
#include <stdint.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <linux/netfilter/nfnetlink_compat.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>

#endif
