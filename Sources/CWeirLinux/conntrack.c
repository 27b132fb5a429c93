/* Conntrack entries over ctnetlink (see CWeirLinux.h: weir_ct_socket, weir_ct_delete). Moved here unchanged from
   shim.c; WeirSystem may replace it with a Swift netlink codec. */
#include "CWeirLinux.h"
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <linux/netlink.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

int weir_ct_socket(void) {
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_NETFILTER);
    if (fd < 0) return -1;
    struct sockaddr_nl local = {.nl_family = AF_NETLINK};
    if (bind(fd, (struct sockaddr *)&local, sizeof local) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* Appends an attribute (type, payload) at *off; returns the offset of its header, for nesting. */
static size_t ct_attr(char *buf, size_t *off, uint16_t type, const void *data, size_t len) {
    size_t at = *off;
    struct nlattr *a = (struct nlattr *)(buf + at);
    a->nla_type = type;
    a->nla_len = (uint16_t)(NLA_HDRLEN + len);
    if (len) memcpy(buf + at + NLA_HDRLEN, data, len);
    *off = at + NLA_ALIGN(NLA_HDRLEN + len);
    return at;
}

static void ct_nest_end(char *buf, size_t at, size_t off) {
    ((struct nlattr *)(buf + at))->nla_len = (uint16_t)(off - at);
}

int weir_ct_delete(int fd, const struct sockaddr_storage *src, const struct sockaddr_storage *dst) {
    int family = src->ss_family;
    if (family != dst->ss_family || (family != AF_INET && family != AF_INET6)) { errno = EAFNOSUPPORT; return -1; }
    /* Well under 256 bytes: headers, two nests, two addresses of at most 16 bytes, the protocol and two ports. */
    union { char bytes[256]; struct nlmsghdr align; } msg;
    memset(&msg, 0, sizeof msg);
    char *buf = msg.bytes;
    struct nlmsghdr *h = (struct nlmsghdr *)buf;
    h->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE;
    h->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
    static __thread uint32_t last_seq;
    uint32_t seq = ++last_seq;
    h->nlmsg_seq = seq;
    struct nfgenmsg *g = (struct nfgenmsg *)(buf + NLMSG_HDRLEN);
    g->nfgen_family = (uint8_t)family;
    g->version = NFNETLINK_V0;
    size_t off = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof *g);
    size_t tuple = ct_attr(buf, &off, CTA_TUPLE_ORIG | NLA_F_NESTED, NULL, 0);
    size_t ip = ct_attr(buf, &off, CTA_TUPLE_IP | NLA_F_NESTED, NULL, 0);
    uint16_t sport, dport;
    if (family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)src, *d = (const struct sockaddr_in *)dst;
        ct_attr(buf, &off, CTA_IP_V4_SRC, &s->sin_addr, 4);
        ct_attr(buf, &off, CTA_IP_V4_DST, &d->sin_addr, 4);
        sport = s->sin_port;
        dport = d->sin_port;
    } else {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)src, *d = (const struct sockaddr_in6 *)dst;
        ct_attr(buf, &off, CTA_IP_V6_SRC, &s->sin6_addr, 16);
        ct_attr(buf, &off, CTA_IP_V6_DST, &d->sin6_addr, 16);
        sport = s->sin6_port;
        dport = d->sin6_port;
    }
    ct_nest_end(buf, ip, off);
    size_t proto = ct_attr(buf, &off, CTA_TUPLE_PROTO | NLA_F_NESTED, NULL, 0);
    uint8_t tcp = IPPROTO_TCP;
    ct_attr(buf, &off, CTA_PROTO_NUM, &tcp, 1);
    ct_attr(buf, &off, CTA_PROTO_SRC_PORT, &sport, 2);  /* network order, as ctnetlink wants */
    ct_attr(buf, &off, CTA_PROTO_DST_PORT, &dport, 2);
    ct_nest_end(buf, proto, off);
    ct_nest_end(buf, tuple, off);
    h->nlmsg_len = (uint32_t)off;
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    ssize_t n;
    do { n = sendto(fd, buf, off, 0, (struct sockaddr *)&kernel, sizeof kernel); } while (n < 0 && errno == EINTR);
    if (n < 0) return -1;
    /* The answer is queued by now; an older one (a previous request's, if its read was lost) is skipped. */
    for (;;) {
        union { char bytes[512]; struct nlmsghdr align; } reply;
        do { n = recv(fd, reply.bytes, sizeof reply.bytes, MSG_DONTWAIT); } while (n < 0 && errno == EINTR);
        if (n < 0) return -1;
        const struct nlmsghdr *r = (const struct nlmsghdr *)reply.bytes;
        if ((size_t)n < NLMSG_HDRLEN + sizeof(struct nlmsgerr) || r->nlmsg_type != NLMSG_ERROR) { errno = EPROTO; return -1; }
        if (r->nlmsg_seq != seq) continue;
        int code = ((const struct nlmsgerr *)NLMSG_DATA(r))->error;
        if (code == 0) return 0;
        errno = -code;
        return -1;
    }
}
