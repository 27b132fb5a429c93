/* Socket options and socket state Glibc does not expose to Swift: the original destination of a REDIRECTed
   connection, the options weir sets, a listener's queue and drops, SO_ERROR, and the data plane's abstract lock. */
#include "CWeirLinux.h"
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>
#include <netinet/tcp.h>
#include <sys/un.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <fcntl.h>
#include <linux/sock_diag.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>

/* Missing from older headers. */
#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

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

/* sendmsg of `len` bytes with `nfds` descriptors attached (SCM_RIGHTS), to `to` when given (an unconnected
   datagram socket), EINTR retried. */
static ssize_t send_with_fds(int s, const struct sockaddr_un *to, socklen_t tolen, const void *buf, size_t len,
                             const int *fds, int nfds) {
    if (nfds < 0 || nfds > 253) { errno = EINVAL; return -1; }
    struct iovec iov = { (void *)buf, len };
    struct msghdr msg = { 0 };
    msg.msg_name = (void *)to;
    msg.msg_namelen = to ? tolen : 0;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    union { char buf[CMSG_SPACE(253 * sizeof(int))]; struct cmsghdr align; } control;
    if (nfds > 0) {
        memset(&control, 0, sizeof control);
        msg.msg_control = control.buf;
        msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
        memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
    }
    ssize_t n;
    do { n = sendmsg(s, &msg, MSG_NOSIGNAL); } while (n < 0 && errno == EINTR);
    return n;
}

ssize_t weir_send_fds(int fd, const void *buf, size_t len, const int *fds, int nfds) {
    return send_with_fds(fd, NULL, 0, buf, len, fds, nfds);
}

ssize_t weir_recv_fds(int fd, void *buf, size_t len, int *fds, int maxfds, int *nfds, int *truncated) {
    struct iovec iov = { buf, len };
    struct msghdr msg = { 0 };
    union { char buf[CMSG_SPACE(253 * sizeof(int))]; struct cmsghdr align; } control;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof control.buf;
    *nfds = 0;
    *truncated = 0;
    ssize_t n;
    do { n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC); } while (n < 0 && errno == EINTR);
    if (n < 0) return -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        int *got = (int *)CMSG_DATA(c);
        for (int i = 0; i < count; i++) {
            if (*nfds < maxfds) fds[(*nfds)++] = got[i];
            else { close(got[i]); *truncated = 1; }
        }
    }
    if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) *truncated = 1;
    return n;
}

long weir_peer_uid(int fd) {
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return -1;
    return (long)cred.uid;
}

ssize_t weir_send_fds_to(const char *path, size_t path_len, const void *buf, size_t len, const int *fds, int nfds) {
    struct sockaddr_un addr;
    if (path_len == 0 || path_len >= sizeof addr.sun_path) { errno = EINVAL; return -1; }
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    memcpy(addr.sun_path, path, path_len);
    int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) return -1;
    ssize_t n = send_with_fds(s, &addr, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + path_len), buf, len,
                              fds, nfds);
    int e = errno;
    close(s);
    errno = e;
    return n;
}

int weir_memfd(const char *name) { return memfd_create(name, MFD_CLOEXEC); }

int weir_descriptor_key(int fd, uint64_t *inode, int *mode) {
    struct stat st;
    if (fstat(fd, &st) != 0) return -1;
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0) return -1;
    *inode = (uint64_t)st.st_ino;
    *mode = flags & O_ACCMODE;
    return 0;
}

int weir_set_cloexec(int fd, int on) {
    int flags = fcntl(fd, F_GETFD);
    if (flags < 0) return -1;
    return fcntl(fd, F_SETFD, on ? (flags | FD_CLOEXEC) : (flags & ~FD_CLOEXEC));
}

long weir_peer_pid(int fd) {
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return -1;
    return (long)cred.pid;
}

int weir_tcp_socket_exists(const struct sockaddr_storage *local, const struct sockaddr_storage *remote) {
    int family = local->ss_family;
    if (family != remote->ss_family || (family != AF_INET && family != AF_INET6)) { errno = EAFNOSUPPORT; return -1; }
    struct {
        struct nlmsghdr header;
        struct inet_diag_req_v2 request;
    } message;
    memset(&message, 0, sizeof message);
    message.header.nlmsg_len = sizeof message;
    message.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    message.header.nlmsg_flags = NLM_F_REQUEST;  /* one socket, looked up as an arriving packet would be */
    message.request.sdiag_family = (uint8_t)family;
    message.request.sdiag_protocol = IPPROTO_TCP;
    message.request.idiag_states = ~0u;
    message.request.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
    message.request.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
    if (family == AF_INET) {
        const struct sockaddr_in *l = (const struct sockaddr_in *)local, *r = (const struct sockaddr_in *)remote;
        message.request.id.idiag_sport = l->sin_port;
        message.request.id.idiag_dport = r->sin_port;
        memcpy(message.request.id.idiag_src, &l->sin_addr, 4);
        memcpy(message.request.id.idiag_dst, &r->sin_addr, 4);
    } else {
        const struct sockaddr_in6 *l = (const struct sockaddr_in6 *)local, *r = (const struct sockaddr_in6 *)remote;
        message.request.id.idiag_sport = l->sin6_port;
        message.request.id.idiag_dport = r->sin6_port;
        memcpy(message.request.id.idiag_src, &l->sin6_addr, 16);
        memcpy(message.request.id.idiag_dst, &r->sin6_addr, 16);
    }
    int s = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (s < 0) return -1;
    struct timeval timeout = {.tv_sec = 1};
    (void)setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    int result = -1;
    if (send(s, &message, sizeof message, 0) == (ssize_t)sizeof message) {
        char reply[1024];
        ssize_t n = recv(s, reply, sizeof reply, 0);
        const struct nlmsghdr *h = (const struct nlmsghdr *)reply;
        if (n >= (ssize_t)sizeof *h && NLMSG_OK(h, (size_t)n)) {
            if (h->nlmsg_type == SOCK_DIAG_BY_FAMILY) {
                result = 1;
            } else if (h->nlmsg_type == NLMSG_ERROR && h->nlmsg_len >= NLMSG_LENGTH(sizeof(struct nlmsgerr))) {
                int error = -((const struct nlmsgerr *)NLMSG_DATA(h))->error;
                if (error == ENOENT) result = 0;
                else errno = error ? error : EPROTO;
            } else {
                errno = EPROTO;
            }
        }
    }
    int saved = errno;
    close(s);
    errno = saved;
    return result;
}
