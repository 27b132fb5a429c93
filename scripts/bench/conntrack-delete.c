/* Per-call cost of deleting one conntrack entry, three ways, on the same entries (scripts/bench/conntrack-delete.sh runs
 * it inside a throwaway network namespace; never run it in the machine's own).
 *
 *   conntrack-delete N ROUNDS
 *
 * Each round creates N TCP entries in SYN_SENT (198.18.0.1:PORT -> 198.18.0.2:80) and deletes them one by one, then
 * deletes the same N again (now absent: the no-entry case), either way:
 *   - hand:    the message weir built by hand before libnetfilter_conntrack (WeirSystem's ConntrackSocket, issue 12):
 *              IPCTNL_MSG_CT_DELETE with the original tuple, sendto on a NETLINK_NETFILTER socket, then a
 *              non-blocking recv of the answer, which the kernel queues before sendto returns;
 *   - library: nfct_query(h, NFCT_Q_DESTROY, ct) on one nf_conntrack object reused for every call, as WeirSystem's
 *              Conntrack did until 2026-12-07;
 *   - checked: what it does now: nfct_query(NFCT_Q_GET) of the entry on the tuple, a look at its status and reply
 *              port (one redirected to the proxy is spared), then NFCT_Q_DESTROY of that entry by its id.
 * Rounds alternate which way goes first. Prints, per way and case, the median over the rounds of the mean ns per call,
 * and the minimum, as "way case median_ns min_ns calls". Exits 1 when a delete answered other than expected.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack_tcp.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netlink.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static uint32_t src, dst;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* --- the hand-built request, attribute for attribute as ConntrackSocket built it --- */
struct request {
    char buf[256];
    size_t len;
};

static struct nlattr *put(struct request *r, uint16_t type, const void *data, size_t n) {
    struct nlattr *a = (struct nlattr *)(r->buf + r->len);
    a->nla_type = type;
    a->nla_len = NLA_HDRLEN + n;
    if (n) memcpy((char *)a + NLA_HDRLEN, data, n);
    r->len += NLA_ALIGN(a->nla_len);
    return a;
}
static size_t begin_nest(struct request *r, uint16_t type) {
    size_t at = r->len;
    put(r, type | NLA_F_NESTED, NULL, 0);
    return at;
}
static void end_nest(struct request *r, size_t at) { ((struct nlattr *)(r->buf + at))->nla_len = r->len - at; }

static void build(struct request *r, uint16_t sport, uint32_t seq) {
    memset(r->buf, 0, sizeof r->buf);
    struct nlmsghdr *h = (struct nlmsghdr *)r->buf;
    h->nlmsg_type = NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_DELETE;
    h->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
    h->nlmsg_seq = seq;
    r->len = NLMSG_HDRLEN;
    struct nfgenmsg *g = (struct nfgenmsg *)(r->buf + r->len);
    g->nfgen_family = AF_INET;
    g->version = NFNETLINK_V0;
    r->len += NLMSG_ALIGN(sizeof *g);
    size_t tuple = begin_nest(r, CTA_TUPLE_ORIG);
    size_t ip = begin_nest(r, CTA_TUPLE_IP);
    put(r, CTA_IP_V4_SRC, &src, 4);
    put(r, CTA_IP_V4_DST, &dst, 4);
    end_nest(r, ip);
    size_t proto = begin_nest(r, CTA_TUPLE_PROTO);
    uint8_t tcp = IPPROTO_TCP;
    uint16_t sp = htons(sport), dp = htons(80);
    put(r, CTA_PROTO_NUM, &tcp, 1);
    put(r, CTA_PROTO_SRC_PORT, &sp, 2);
    put(r, CTA_PROTO_DST_PORT, &dp, 2);
    end_nest(r, proto);
    end_nest(r, tuple);
    h->nlmsg_len = r->len;
}

/* 0 deleted, ENOENT, or another errno. */
static int hand_delete(int fd, struct request *r, uint16_t sport, uint32_t seq) {
    static char reply[512];
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    build(r, sport, seq);
    if (sendto(fd, r->buf, r->len, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) return errno;
    for (;;) {
        ssize_t n = recv(fd, reply, sizeof reply, MSG_DONTWAIT);
        if (n < 0) return errno == EAGAIN ? EAGAIN : errno;
        for (struct nlmsghdr *m = (struct nlmsghdr *)reply; NLMSG_OK(m, (size_t)n); m = NLMSG_NEXT(m, n)) {
            if (m->nlmsg_seq != seq) continue;
            if (m->nlmsg_type != NLMSG_ERROR) return EPROTO;
            return -((struct nlmsgerr *)NLMSG_DATA(m))->error;
        }
    }
}

static int library_delete(struct nfct_handle *h, struct nf_conntrack *ct, uint16_t sport) {
    nfct_set_attr_u32(ct, ATTR_ORIG_IPV4_SRC, src);
    nfct_set_attr_u32(ct, ATTR_ORIG_IPV4_DST, dst);
    nfct_set_attr_u16(ct, ATTR_ORIG_PORT_SRC, htons(sport));
    nfct_set_attr_u16(ct, ATTR_ORIG_PORT_DST, htons(80));
    return nfct_query(h, NFCT_Q_DESTROY, ct) == 0 ? 0 : errno;
}

/* What weir's workers do since the stress reload fault showed a delete hitting an application's new connection on
 * the same 4-tuple: a GET of the entry on the tuple, a look at its status and reply port (redirected to the proxy's
 * listener: spared), then the delete of exactly that entry by its id. */
struct found { int seen; uint32_t id; int redirected; };

static int found_cb(enum nf_conntrack_msg_type type, struct nf_conntrack *ct, void *data) {
    struct found *f = data;
    (void)type;
    f->seen = 1;
    f->id = nfct_get_attr_u32(ct, ATTR_ID);
    uint16_t port = nfct_get_attr_u16(ct, ATTR_REPL_PORT_SRC);
    f->redirected = (nfct_get_attr_u32(ct, ATTR_STATUS) & IPS_DST_NAT) && (port == htons(15001) || port == htons(15006));
    return NFCT_CB_CONTINUE;
}

static int checked_delete(struct nfct_handle *h, struct nf_conntrack *ct, uint16_t sport) {
    nfct_set_attr_u32(ct, ATTR_ORIG_IPV4_SRC, src);
    nfct_set_attr_u32(ct, ATTR_ORIG_IPV4_DST, dst);
    nfct_set_attr_u16(ct, ATTR_ORIG_PORT_SRC, htons(sport));
    nfct_set_attr_u16(ct, ATTR_ORIG_PORT_DST, htons(80));
    nfct_attr_unset(ct, ATTR_ID);
    struct found f = {0, 0, 0};
    nfct_callback_register(h, NFCT_T_ALL, found_cb, &f);
    int got = nfct_query(h, NFCT_Q_GET, ct);
    int e = errno;
    nfct_callback_unregister(h);
    if (got != 0) return e;
    if (!f.seen) return ENOENT;
    if (f.redirected) return EEXIST;
    nfct_set_attr_u32(ct, ATTR_ID, f.id);
    int r = nfct_query(h, NFCT_Q_DESTROY, ct) == 0 ? 0 : errno;
    nfct_attr_unset(ct, ATTR_ID);
    return r;
}

static void create_all(struct nfct_handle *h, int n) {
    struct nf_conntrack *ct = nfct_new();
    nfct_set_attr_u8(ct, ATTR_L3PROTO, AF_INET);
    nfct_set_attr_u8(ct, ATTR_L4PROTO, IPPROTO_TCP);
    nfct_set_attr_u8(ct, ATTR_REPL_L3PROTO, AF_INET);
    nfct_set_attr_u8(ct, ATTR_REPL_L4PROTO, IPPROTO_TCP);
    nfct_set_attr_u32(ct, ATTR_IPV4_SRC, src);
    nfct_set_attr_u32(ct, ATTR_IPV4_DST, dst);
    nfct_set_attr_u32(ct, ATTR_REPL_IPV4_SRC, dst);
    nfct_set_attr_u32(ct, ATTR_REPL_IPV4_DST, src);
    nfct_set_attr_u8(ct, ATTR_TCP_STATE, TCP_CONNTRACK_SYN_SENT);
    nfct_set_attr_u32(ct, ATTR_TIMEOUT, 120);
    for (int i = 0; i < n; i++) {
        nfct_set_attr_u16(ct, ATTR_PORT_SRC, htons(20000 + i));
        nfct_set_attr_u16(ct, ATTR_PORT_DST, htons(80));
        nfct_set_attr_u16(ct, ATTR_REPL_PORT_SRC, htons(80));
        nfct_set_attr_u16(ct, ATTR_REPL_PORT_DST, htons(20000 + i));
        if (nfct_query(h, NFCT_Q_CREATE, ct) != 0) {
            fprintf(stderr, "conntrack-delete: create %d: %s\n", i, strerror(errno));
            exit(1);
        }
    }
    nfct_destroy(ct);
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: conntrack-delete N ROUNDS\n");
        return 2;
    }
    int n = atoi(argv[1]), rounds = atoi(argv[2]);
    if (n < 1 || n > 40000 || rounds < 1 || rounds > 1000) {
        fprintf(stderr, "conntrack-delete: N in 1..40000, ROUNDS in 1..1000\n");
        return 2;
    }
    inet_pton(AF_INET, "198.18.0.1", &src);
    inet_pton(AF_INET, "198.18.0.2", &dst);
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
    struct nfct_handle *h = nfct_open(CONNTRACK, 0), *admin = nfct_open(CONNTRACK, 0);
    struct nf_conntrack *ct = nfct_new();
    if (fd < 0 || !h || !admin || !ct) {
        perror("conntrack-delete: open");
        return 1;
    }
    nfct_set_attr_u8(ct, ATTR_ORIG_L3PROTO, AF_INET);
    nfct_set_attr_u8(ct, ATTR_ORIG_L4PROTO, IPPROTO_TCP);
    struct request r;
    uint32_t seq = 1;
    /* [way][case][round]: way 0 hand, 1 library, 2 checked (GET, then delete by id); case 0 deleted, 1 no entry */
    double *ns[3][2];
    for (int w = 0; w < 3; w++)
        for (int c = 0; c < 2; c++) ns[w][c] = calloc(rounds, sizeof(double));
    int bad = 0;
    for (int round = 0; round < rounds; round++) {
        for (int k = 0; k < 3; k++) {
            int way = (round + k) % 3;
            create_all(admin, n);
            for (int c = 0; c < 2; c++) {
                int64_t t0 = now_ns();
                for (int i = 0; i < n; i++) {
                    uint16_t port = 20000 + i;
                    int e = way == 0 ? hand_delete(fd, &r, port, seq++)
                          : way == 1 ? library_delete(h, ct, port) : checked_delete(h, ct, port);
                    if (e != (c == 0 ? 0 : ENOENT)) bad++;
                }
                ns[way][c][round] = (double)(now_ns() - t0) / n;
            }
        }
    }
    const char *ways[] = {"hand", "library", "checked"}, *cases[] = {"deleted", "no_entry"};
    for (int w = 0; w < 3; w++)
        for (int c = 0; c < 2; c++) {
            qsort(ns[w][c], rounds, sizeof(double), cmp);
            printf("%s %s %.0f %.0f %d\n", ways[w], cases[c], ns[w][c][rounds / 2], ns[w][c][0], n * rounds);
        }
    if (bad) {
        fprintf(stderr, "conntrack-delete: %d deletes answered other than expected\n", bad);
        return 1;
    }
    return 0;
}
