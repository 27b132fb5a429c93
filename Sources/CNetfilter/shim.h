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

/* Macros Swift cannot import. */
static inline size_t weir_mnl_socket_buffer_size(void) { return MNL_SOCKET_BUFFER_SIZE; }

/* ---- weir tuning/status: ctnetlink statistics (WeirNetfilter/NodeStatusNetlink.swift).
 * libnetfilter_conntrack 1.0.9 has no statistics API, so weir does not link it: the requests are built with libmnl
 * here and the CTA_STATS_* attributes (kernel uapi headers) are parsed in C. */
#include <string.h>
#include <endian.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

/** Per-CPU conntrack counters (CTA_STATS_*), one per IPCTNL_MSG_CT_GET_STATS_CPU dump message. */
struct weir_ct_cpu_stats {
    uint32_t cpu;
    uint32_t found, invalid, insert, insert_failed, drop, early_drop, error, search_restart, clash_resolve;
    uint32_t chain_toolong;
    uint32_t present; /* bit i set when attribute i was present */
};

/** Global conntrack counters (CTA_STATS_GLOBAL_*), from IPCTNL_MSG_CT_GET_STATS. */
struct weir_ct_global_stats {
    uint32_t entries, max_entries;
    uint32_t present;
};

/** Builds a request for subsystem/message type (nfnetlink) with family and flags into buf; returns the header. */
static inline struct nlmsghdr *weir_nfnl_request(void *buf, uint16_t subsys, uint16_t msg, uint16_t flags,
                                                 uint8_t family, uint32_t seq) {
    struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
    nlh->nlmsg_type = (uint16_t)((subsys << 8) | msg);
    nlh->nlmsg_flags = flags;
    nlh->nlmsg_seq = seq;
    struct nfgenmsg *nfg = (struct nfgenmsg *)mnl_nlmsg_put_extra_header(nlh, sizeof(struct nfgenmsg));
    nfg->nfgen_family = family;
    nfg->version = NFNETLINK_V0;
    nfg->res_id = 0;
    return nlh;
}

static inline int weir_ct_cpu_stats_attr(const struct nlattr *attr, void *data) {
    struct weir_ct_cpu_stats *s = (struct weir_ct_cpu_stats *)data;
    uint16_t type = mnl_attr_get_type(attr);
    if (type > CTA_STATS_MAX || mnl_attr_validate(attr, MNL_TYPE_U32) < 0) return MNL_CB_OK;
    uint32_t v = be32toh(mnl_attr_get_u32(attr));
    switch (type) {
    case CTA_STATS_FOUND: s->found = v; break;
    case CTA_STATS_INVALID: s->invalid = v; break;
    case CTA_STATS_INSERT: s->insert = v; break;
    case CTA_STATS_INSERT_FAILED: s->insert_failed = v; break;
    case CTA_STATS_DROP: s->drop = v; break;
    case CTA_STATS_EARLY_DROP: s->early_drop = v; break;
    case CTA_STATS_ERROR: s->error = v; break;
    case CTA_STATS_SEARCH_RESTART: s->search_restart = v; break;
    case CTA_STATS_CLASH_RESOLVE: s->clash_resolve = v; break;
    case CTA_STATS_CHAIN_TOOLONG: s->chain_toolong = v; break;
    default: return MNL_CB_OK;
    }
    s->present |= (1u << type);
    return MNL_CB_OK;
}

/** Parses one IPCTNL_MSG_CT_GET_STATS_CPU reply; the CPU number is in nfgenmsg.res_id. */
static inline void weir_ct_parse_cpu_stats(const struct nlmsghdr *nlh, struct weir_ct_cpu_stats *out) {
    memset(out, 0, sizeof(*out));
    const struct nfgenmsg *nfg = (const struct nfgenmsg *)mnl_nlmsg_get_payload(nlh);
    out->cpu = be16toh(nfg->res_id);
    mnl_attr_parse(nlh, sizeof(struct nfgenmsg), weir_ct_cpu_stats_attr, out);
}

static inline int weir_ct_global_stats_attr(const struct nlattr *attr, void *data) {
    struct weir_ct_global_stats *s = (struct weir_ct_global_stats *)data;
    uint16_t type = mnl_attr_get_type(attr);
    if (type > CTA_STATS_GLOBAL_MAX || mnl_attr_validate(attr, MNL_TYPE_U32) < 0) return MNL_CB_OK;
    uint32_t v = be32toh(mnl_attr_get_u32(attr));
    if (type == CTA_STATS_GLOBAL_ENTRIES) s->entries = v;
    else if (type == CTA_STATS_GLOBAL_MAX_ENTRIES) s->max_entries = v;
    else return MNL_CB_OK;
    s->present |= (1u << type);
    return MNL_CB_OK;
}

/** Parses the IPCTNL_MSG_CT_GET_STATS reply. */
static inline void weir_ct_parse_global_stats(const struct nlmsghdr *nlh, struct weir_ct_global_stats *out) {
    memset(out, 0, sizeof(*out));
    mnl_attr_parse(nlh, sizeof(struct nfgenmsg), weir_ct_global_stats_attr, out);
}

/* ---- end weir tuning/status */

/* Netlink message walking (NLMSG_* are macros). */
static inline size_t weir_nlmsg_hdrlen(void) { return NLMSG_HDRLEN; }
static inline uint32_t weir_nlmsg_align(uint32_t len) { return NLMSG_ALIGN(len); }

#endif
