#include "CWeirLinux.h"
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <linux/nsfs.h>
#include <signal.h>
#include <sys/un.h>
#include <stddef.h>
#include <string.h>
#include <errno.h>
#include <time.h>
#include <unistd.h>
#include <netinet/tcp.h>
#include <linux/sock_diag.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

const uint32_t WEIR_EPOLLIN = EPOLLIN, WEIR_EPOLLOUT = EPOLLOUT, WEIR_EPOLLERR = EPOLLERR, WEIR_EPOLLHUP = EPOLLHUP,
               WEIR_EPOLLRDHUP = EPOLLRDHUP, WEIR_EPOLLET = EPOLLET, WEIR_EPOLLPRI = EPOLLPRI;

int weir_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

static int ctl(int epfd, int op, int fd, uint32_t events, uint64_t data) {
    struct epoll_event ev = {.events = events, .data.u64 = data};
    return epoll_ctl(epfd, op, fd, &ev);
}
int weir_epoll_add(int epfd, int fd, uint32_t events, uint64_t data) { return ctl(epfd, EPOLL_CTL_ADD, fd, events, data); }
int weir_epoll_mod(int epfd, int fd, uint32_t events, uint64_t data) { return ctl(epfd, EPOLL_CTL_MOD, fd, events, data); }
int weir_epoll_del(int epfd, int fd) { return ctl(epfd, EPOLL_CTL_DEL, fd, 0, 0); }

int weir_epoll_wait(int epfd, weir_event *out, int max, int timeout_ms) {
    struct epoll_event evs[256];
    if (max > 256) max = 256;
    int n = epoll_wait(epfd, evs, max, timeout_ms);
    for (int i = 0; i < n; i++) { out[i].events = evs[i].events; out[i].data = evs[i].data.u64; }
    return n;
}

int weir_accept(int fd, struct sockaddr_storage *addr, socklen_t *len) {
    *len = sizeof(*addr);
    return accept4(fd, (struct sockaddr *)addr, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

ssize_t weir_splice(int fd_in, int fd_out, size_t len, int more) {
    return splice(fd_in, NULL, fd_out, NULL, len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK | (more ? SPLICE_F_MORE : 0));
}

ssize_t weir_send(int fd, const void *buf, size_t len, int more) {
    return send(fd, buf, len, MSG_NOSIGNAL | (more ? MSG_MORE : 0));
}

int weir_pipe(int fds[2], int size) {
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return -1;
    if (size > 0) (void)fcntl(fds[1], F_SETPIPE_SZ, size); /* best effort: the default 64 KiB also works */
    return 0;
}

int weir_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

int weir_original_dst(int fd, int family, struct sockaddr_storage *addr, socklen_t *len) {
    *len = sizeof(*addr);
    if (family == AF_INET6) return getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, addr, len);
    return getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, addr, len);
}

static int on(int fd, int level, int name) { int one = 1; return setsockopt(fd, level, name, &one, sizeof(one)); }
int weir_set_reuseport(int fd) { return on(fd, SOL_SOCKET, SO_REUSEPORT); }
int weir_set_transparent(int fd, int family) {
    return family == AF_INET6 ? on(fd, SOL_IPV6, IPV6_TRANSPARENT) : on(fd, SOL_IP, IP_TRANSPARENT);
}
int weir_set_freebind(int fd, int family) {
    return family == AF_INET6 ? on(fd, SOL_IPV6, IPV6_FREEBIND) : on(fd, SOL_IP, IP_FREEBIND);
}
/* IP_BIND_ADDRESS_NO_PORT is an IPPROTO_IP option that also applies to IPv6 sockets. */
int weir_set_bind_address_no_port(int fd) { return on(fd, SOL_IP, IP_BIND_ADDRESS_NO_PORT); }
int weir_set_mark(int fd, uint32_t mark) { return setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)); }
int weir_set_v6only(int fd) { return on(fd, SOL_IPV6, IPV6_V6ONLY); }
int weir_set_nodelay(int fd) { return on(fd, IPPROTO_TCP, TCP_NODELAY); }
int weir_set_quickack(int fd, int on) { return setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &on, sizeof(on)); }
int weir_set_linger_reset(int fd) {
    struct linger l = {.l_onoff = 1, .l_linger = 0};
    return setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
}
int weir_listen_queue(int fd, uint32_t *length, uint32_t *limit) {
    struct tcp_info info;
    socklen_t len = sizeof(info);
    memset(&info, 0, sizeof(info));
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return -1;
    if (info.tcpi_state != TCP_LISTEN) {
        errno = EINVAL;
        return -1;
    }
    *length = info.tcpi_unacked;
    *limit = info.tcpi_sacked;
    return 0;
}

int64_t weir_socket_drops(int fd) {
    uint32_t mem[SK_MEMINFO_VARS];
    socklen_t len = sizeof(mem);
    memset(mem, 0, sizeof(mem));
    if (getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mem, &len) != 0) return -1;
    if (len < (SK_MEMINFO_DROPS + 1) * sizeof(uint32_t)) {
        errno = EINVAL;
        return -1;
    }
    return mem[SK_MEMINFO_DROPS];
}

int weir_socket_error(int fd) {
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
    return err;
}

int weir_affinity_cpus(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) != 0) return 1;
    int n = CPU_COUNT(&set);
    return n > 0 ? n : 1;
}

int weir_set_thread_fs_ids(uint32_t uid, uint32_t gid) {
    /* The raw syscalls change only the calling thread's credentials; glibc would not broadcast them anyway. */
    syscall(SYS_setfsgid, gid);
    syscall(SYS_setfsuid, uid);
    if ((uint32_t)syscall(SYS_setfsuid, -1) != uid) return -1;
    if ((uint32_t)syscall(SYS_setfsgid, -1) != gid) return -1;
    return 0;
}

void weir_name_this_thread(const char *name) { (void)prctl(PR_SET_NAME, name, 0, 0, 0); }

/* The signals weir takes synchronously: SIGTERM and SIGINT stop, SIGHUP reloads. */
static sigset_t control_signals(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    return set;
}

int weir_block_signals(void) {
    sigset_t set = control_signals();
    sigaddset(&set, SIGPIPE);
    return pthread_sigmask(SIG_BLOCK, &set, NULL);
}

int64_t weir_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t weir_atomic_add(int64_t *p, int64_t v) { return __atomic_add_fetch(p, v, __ATOMIC_RELAXED); }
int64_t weir_atomic_load(const int64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }

int64_t weir_now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t weir_wall_seconds(void) { return (int64_t)time(NULL); }

int weir_wait_signal(int timeout_ms) {
    sigset_t set = control_signals();
    struct timespec ts = { timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L };
    int sig = sigtimedwait(&set, NULL, timeout_ms < 0 ? NULL : &ts);
    if (sig < 0) return errno == EAGAIN ? 0 : -1;
    return sig;
}

int weir_dataplane_lock(const char *name, int *holder) {
    *holder = 0;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    size_t n = strlen(name);
    if (n > sizeof a.sun_path - 2) n = sizeof a.sun_path - 2;
    memcpy(a.sun_path + 1, name, n);
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
    if (bind(fd, (struct sockaddr *)&a, len) == 0 && listen(fd, 1) == 0) return fd;
    int e = errno;
    close(fd);
    if (e == EADDRINUSE) {
        int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c >= 0) {
            if (connect(c, (struct sockaddr *)&a, len) == 0) {
                struct ucred cred;
                socklen_t cl = sizeof cred;
                if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0) *holder = cred.pid;
            }
            close(c);
        }
    }
    errno = e;
    return -1;
}
void weir_atomic_store(int64_t *p, int64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

/* Baked in by Package.swift from the environment of the build (make passes the VERSION file and git's commit). */
#ifndef WEIR_VERSION
#define WEIR_VERSION "unknown"
#endif
#ifndef WEIR_COMMIT
#define WEIR_COMMIT "unknown"
#endif
const char *weir_build_version(void) { return WEIR_VERSION; }
const char *weir_build_commit(void) { return WEIR_COMMIT; }

#include <sys/signalfd.h>
int weir_signalfd(void) {
    sigset_t set = control_signals();
    return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

int weir_signalfd_read(int fd) {
    struct signalfd_siginfo info;
    ssize_t n = read(fd, &info, sizeof info);
    return n == (ssize_t)sizeof info ? (int)info.ssi_signo : 0;
}

#include <sched.h>
/* An open network namespace file, or -1 with errno (EINVAL when path is another kind of file or namespace). */
int weir_netns_open(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    int type = ioctl(fd, NS_GET_NSTYPE);
    if (type == CLONE_NEWNET) return fd;
    int e = type < 0 && errno != ENOTTY ? errno : EINVAL;
    close(fd);
    errno = e;
    return -1;
}

int weir_netns_check(const char *path) {
    int fd = weir_netns_open(path);
    if (fd < 0) return -1;
    close(fd);
    return 0;
}

int weir_netns_set(int fd) { return setns(fd, CLONE_NEWNET); }

int weir_enter_netns(const char *path) {
    int fd = weir_netns_open(path);
    if (fd < 0) return -1;
    int rc = setns(fd, CLONE_NEWNET);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

#include <pthread.h>
struct netns_probe { int fd; int error; };

static void *netns_probe_thread(void *arg) {
    struct netns_probe *p = arg;
    p->error = setns(p->fd, CLONE_NEWNET) == 0 ? 0 : errno;
    return NULL;
}

int weir_netns_probe(const char *path) {
    int fd = weir_netns_open(path);
    if (fd < 0) return -1;
    struct netns_probe p = { fd, 0 };
    pthread_t thread;
    int rc = pthread_create(&thread, NULL, netns_probe_thread, &p);
    if (rc == 0) rc = pthread_join(thread, NULL) == 0 ? p.error : EAGAIN;
    close(fd);
    if (rc == 0) return 0;
    errno = rc;
    return -1;
}

#include <stdio.h>
#include <sys/mman.h>
long weir_release_clean_file_pages(void) {
    FILE *f = fopen("/proc/self/smaps", "re");
    if (!f) return -1;
    enum { MAX_RANGES = 256 };
    unsigned long starts[MAX_RANGES], ends[MAX_RANGES];
    long sizes[MAX_RANGES];
    int writable[MAX_RANGES];
    int n = 0;
    char line[512];
    unsigned long start = 0, end = 0, inode = 0;
    char perms[8] = "";
    long rss = 0, anonymous = -1;
    int have = 0;
    for (;;) {
        char *got = fgets(line, sizeof line, f);
        unsigned long s, e, off, ino;
        char p[8], dev[16];
        int header = got && sscanf(line, "%lx-%lx %7s %lx %15s %lu", &s, &e, p, &off, dev, &ino) == 6;
        if ((header || !got) && have) {
            /* Backed by a file. Read-only without private copies: dropped outright (the kernel reads them back).
               Writable (data): only paged out, which never discards a page another thread may have written. */
            if (inode != 0 && rss > 0 && n < MAX_RANGES && (perms[1] != '-' || anonymous == 0)) {
                starts[n] = start; ends[n] = end; sizes[n] = rss - (anonymous > 0 ? anonymous : 0);
                writable[n] = perms[1] != '-'; n++;
            }
            have = 0;
        }
        if (!got) break;
        if (header) {
            start = s; end = e; inode = ino; memcpy(perms, p, sizeof perms); rss = 0; anonymous = -1; have = 1;
        } else if (have) {
            long v;
            if (sscanf(line, "Rss: %ld kB", &v) == 1) rss = v;
            else if (sscanf(line, "Anonymous: %ld kB", &v) == 1) anonymous = v;
        }
    }
    fclose(f);
    long released = 0;
    for (int i = 0; i < n; i++) {
        void *addr = (void *)starts[i];
        size_t len = ends[i] - starts[i];
        if (madvise(addr, len, writable[i] ? MADV_PAGEOUT : MADV_DONTNEED) == 0) released += sizes[i];
    }
    return released;
}

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
