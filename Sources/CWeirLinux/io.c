/* The event loop and the data path: epoll, eventfd, accept4, splice, send and pipes (Glibc hides epoll_create1,
   accept4, splice and F_SETPIPE_SZ from Swift, and struct epoll_event is packed). */
#include "CWeirLinux.h"
#include <fcntl.h>
#include <stddef.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

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
