#ifndef WEIR_CNETFILTER_SHIM_H
#define WEIR_CNETFILTER_SHIM_H
/* libnftnl, which builds and parses nftables objects, and the kernel uapi headers whose constants and structs weir's
 * netlink requests use (rtnetlink, nfnetlink, nf_tables, ctnetlink). The messages themselves are built and read by
 * WeirSystem's netlink codec; libmnl is no longer called directly (libnftnl still links it). */
#include <stdint.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <net/if.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/fib_rules.h>
#include <linux/if_addr.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <libnftnl/table.h>
#include <libnftnl/chain.h>
#include <libnftnl/rule.h>
#include <libnftnl/expr.h>
#include <libnftnl/set.h>
#include <libnftnl/common.h>
#include <libnftnl/gen.h>

#endif
