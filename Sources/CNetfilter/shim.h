#ifndef WEIR_CNETFILTER_SHIM_H
#define WEIR_CNETFILTER_SHIM_H
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
#include <libmnl/libmnl.h>
#include <libnftnl/table.h>
#include <libnftnl/chain.h>
#include <libnftnl/rule.h>
#include <libnftnl/expr.h>
#include <libnftnl/set.h>
#include <libnftnl/batch.h>
#include <libnftnl/common.h>
#include <libnftnl/gen.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>

/* Macros Swift cannot import. */
static inline size_t weir_mnl_socket_buffer_size(void) { return MNL_SOCKET_BUFFER_SIZE; }


/* Netlink message walking (NLMSG_* are macros). */
static inline size_t weir_nlmsg_hdrlen(void) { return NLMSG_HDRLEN; }
static inline uint32_t weir_nlmsg_align(uint32_t len) { return NLMSG_ALIGN(len); }

#endif
