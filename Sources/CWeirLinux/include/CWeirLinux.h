#ifndef WEIR_CWEIRLINUX_H
#define WEIR_CWEIRLINUX_H
/* Linux calls and constants Glibc hides from Swift, compiled with _GNU_SOURCE; each wrapper is tiny on purpose. Only
   WeirSystem calls them. One section per source file. */
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>

/* ---- io.c: the event loop and the data path ---- */

/* Event flags, re-exported because Swift imports <sys/epoll.h> poorly (enum EPOLL_EVENTS). */
extern const uint32_t WEIR_EPOLLIN, WEIR_EPOLLOUT, WEIR_EPOLLERR, WEIR_EPOLLHUP, WEIR_EPOLLRDHUP, WEIR_EPOLLET,
                      WEIR_EPOLLPRI;

/* One epoll event flattened to plain fields so Swift never touches the packed struct epoll_event. */
typedef struct weir_event {
    uint32_t events;
    uint64_t data;
} weir_event;

/* epoll_create1(EPOLL_CLOEXEC), hidden from Swift. */
int weir_epoll_create(void);
/* epoll_ctl(ADD/MOD/DEL) with a 64-bit cookie; struct epoll_event is packed on x86-64 and awkward from Swift. */
int weir_epoll_add(int epfd, int fd, uint32_t events, uint64_t data);
int weir_epoll_mod(int epfd, int fd, uint32_t events, uint64_t data);
int weir_epoll_del(int epfd, int fd);
/* epoll_wait into flattened events (at most 256); returns the count or -1 with errno. */
int weir_epoll_wait(int epfd, weir_event *out, int max, int timeout_ms);
/* A non-blocking, close-on-exec eventfd, to wake a loop from another thread. */
int weir_eventfd(void);
/* accept4 (non-blocking, close-on-exec), hidden from Swift. The peer's address is written to addr. */
int weir_accept(int fd, struct sockaddr_storage *addr, socklen_t *len);
/* splice, hidden from Swift; always SPLICE_F_MOVE | SPLICE_F_NONBLOCK between a socket and a pipe, plus
   SPLICE_F_MORE when `more` (see weir_send). */
ssize_t weir_splice(int fd_in, int fd_out, size_t len, int more);
/* send(MSG_NOSIGNAL), with MSG_MORE when `more`: the bytes wait in the socket for what follows (a FIN from
   shutdown or close leaves in the same segment). */
ssize_t weir_send(int fd, const void *buf, size_t len, int more);
/* pipe2(O_NONBLOCK|O_CLOEXEC) then F_SETPIPE_SZ (hidden) when size > 0; fds[0] read end, fds[1] write end. */
int weir_pipe(int fds[2], int size);

/* ---- sockets.c: socket options and state ---- */

/* SO_ORIGINAL_DST (IPv4) / IP6T_SO_ORIGINAL_DST (IPv6): the destination before REDIRECT rewrote it. */
int weir_original_dst(int fd, int family, struct sockaddr_storage *addr, socklen_t *len);
/* Boolean and integer setsockopt helpers; the constants are missing from Glibc as Swift sees it. 0, or -1 with
   errno. */
int weir_set_reuseport(int fd);
int weir_set_transparent(int fd, int family);
int weir_set_freebind(int fd, int family);
/* IP_BIND_ADDRESS_NO_PORT: an IPPROTO_IP option that also applies to IPv6 sockets. */
int weir_set_bind_address_no_port(int fd);
int weir_set_mark(int fd, uint32_t mark);
int weir_set_v6only(int fd);
int weir_set_nodelay(int fd);
/* TCP_QUICKACK: 0 before connect makes the handshake's last ACK wait for the first data segment and leave with it
   (the kernel leaves that mode by itself once the handshake completes). */
int weir_set_quickack(int fd, int on);
/* SO_LINGER {1, 0}: the next close() sends a RST instead of a FIN. */
int weir_set_linger_reset(int fd);
/* SO_ERROR, to learn how a non-blocking connect ended. */
int weir_socket_error(int fd);
/* A listener's accept queue, from its own socket: TCP_INFO on a LISTEN socket reports the connections waiting to be
   accepted in tcpi_unacked and the queue's limit (the backlog) in tcpi_sacked. 0, or -1 with errno. */
int weir_listen_queue(int fd, uint32_t *length, uint32_t *limit);
/* Connections this listener dropped: tcp_listendrop() increments the listener's sk_drops (a full accept queue, a
   SYN that could not be answered), read with SO_MEMINFO at SK_MEMINFO_DROPS. -1 with errno on failure. */
int64_t weir_socket_drops(int fd);
/* Whether a TCP socket of the calling thread's network namespace, in any state, has this 4-tuple: `local`/`remote`
   are AF_INET or AF_INET6 addresses with ports. The kernel's own lookup (sock_diag, one request, no dump): 1 found,
   0 none (ENOENT), -1 with errno when the kernel could not say. */
int weir_tcp_socket_exists(const struct sockaddr_storage *local, const struct sockaddr_storage *remote);

/* ---- namespaces.c: network namespaces ---- */

/* The network namespace at `path`, opened (close-on-exec): a descriptor, or -1 with errno (EINVAL when path is
   another kind of file or namespace). */
int weir_netns_open(const char *path);
/* 0 if path is a network namespace, else -1 with errno (ENOENT, EINVAL for another kind of file). */
int weir_netns_check(const char *path);
/* setns(fd, CLONE_NEWNET) for the calling thread: 0, or -1 with errno. */
int weir_netns_set(int fd);
/* Moves the calling thread into the network namespace at `path` (/var/run/netns/NAME, /proc/PID/ns/net): sockets it
   creates afterwards live there. */
int weir_enter_netns(const char *path);
/* Whether this process may enter the network namespace at `path`, without entering it: setns on a short-lived thread
   of its own, whose namespace goes with it. 0, or -1 with errno (EPERM: no CAP_SYS_ADMIN, or a seccomp filter such
   as systemd's RestrictNamespaces= refuses setns). */
int weir_netns_probe(const char *path);
/* 0 when fd is a network namespace, else -1 with errno EINVAL (or ioctl's errno). */
int weir_netns_fd_check(int fd);
/* A non-blocking, close-on-exec TCP socket of `family` made inside the network namespace `netns_fd`, by the calling
   thread, which then returns to `home_fd` (pod mode: an upstream socket per connection). The socket stays in the
   pod's namespace whichever thread uses it. A thread that cannot return aborts the process: it would go on serving
   in the wrong namespace. Returns the socket, or -1 with errno. */
int weir_socket_in_netns(int netns_fd, int home_fd, int family);
/* sendmsg of `len` bytes with `nfds` descriptors attached (SCM_RIGHTS, nfds <= 253); the byte count or -1. */
ssize_t weir_send_fds(int fd, const void *buf, size_t len, const int *fds, int nfds);
/* recvmsg of one message into buf (MSG_CMSG_CLOEXEC); up to `maxfds` received descriptors into fds, their count into
   *nfds; *truncated is 1 when bytes or descriptors did not fit (the descriptors that came are still returned). */
ssize_t weir_recv_fds(int fd, void *buf, size_t len, int *fds, int maxfds, int *nfds, int *truncated);
/* SO_PEERCRED's uid of a connected unix socket, or -1. */
long weir_peer_uid(int fd);
/* SO_PEERCRED's pid of a connected unix socket, or -1. */
long weir_peer_pid(int fd);
/* sendmsg of one datagram to the unix socket at `path` (len bytes; a leading 0 byte: abstract), with `nfds`
   descriptors attached (<= 253): sd_notify's FDSTORE=1. The byte count or -1. */
ssize_t weir_send_fds_to(const char *path, size_t path_len, const void *buf, size_t len, const int *fds, int nfds);
/* A memfd (close-on-exec) named `name`, or -1. */
int weir_memfd(const char *name);
/* The inode of fd (fstat) and its access mode (fcntl F_GETFL & O_ACCMODE); 0 or -1. */
int weir_descriptor_key(int fd, uint64_t *inode, int *mode);
/* Sets or clears FD_CLOEXEC. */
int weir_set_cloexec(int fd, int on);
/* Runs argv[0] (a path) with argv, stdin and stderr on /dev/null, its stdout into out (at most cap-1 bytes, NUL
   ended); waits at most timeout_ms, then kills that child (by its pid) and reaps it. Returns the exit status
   (waitpid's), or -1 with errno. */
int weir_run_program(char *const argv[], char *out, size_t cap, int timeout_ms);

/* ---- memory.c ---- */

/* Once started, drops this process's references to clean read-only file pages (the text and read-only data of the
   binary and its libraries; MADV_DONTNEED) and pages out file-backed writable mappings without private copies
   (MADV_PAGEOUT); a mapping holding private copies, such as relocated RELRO, is never touched. The pages stay in the
   page cache, and what the process runs afterwards faults back in with the kernel's usual fault-around (it is not
   turned off). Returns the kB released, or -1. */
long weir_release_clean_file_pages(void);
/* malloc_trim(0): every arena's free pages back to the kernel (malloc.h is not in Swift's Glibc). 1 if any went back. */
int weir_malloc_trim(void);

/* ---- process.c: clocks, atomics, signals, threads ---- */

/* CLOCK_MONOTONIC in milliseconds and in microseconds. */
int64_t weir_now_ms(void);
int64_t weir_now_us(void);
/* Seconds since the epoch (wall clock), for timestamps in metrics. */
int64_t weir_wall_seconds(void);
/* Atomics on plain 64-bit words (acquire loads, release stores, relaxed adds): weir's one style, for counters shared
   between workers and for WeirSystem.AtomicWord. */
int64_t weir_atomic_add(int64_t *p, int64_t v);
int64_t weir_atomic_load(const int64_t *p);
void weir_atomic_store(int64_t *p, int64_t v);
/* *p = max(*p, floor) + v in one step (a compare-and-swap loop); returns the new value. */
int64_t weir_atomic_max_add(int64_t *p, int64_t floor, int64_t v);
/* Number of CPUs in this process's affinity mask (CPU_COUNT is a macro). */
int weir_affinity_cpus(void);
/* Per-thread setfsuid/setfsgid (raw syscalls): sockets created by this thread are owned by uid/gid, for owner match. */
int weir_set_thread_fs_ids(uint32_t uid, uint32_t gid);
/* Names the calling thread (prctl PR_SET_NAME, at most 15 bytes), as top -H and /proc/PID/task/TID/comm show it. */
void weir_name_this_thread(const char *name);
/* Blocks SIGTERM, SIGINT, SIGHUP and SIGPIPE in the calling thread (inherited by threads it creates). */
int weir_block_signals(void);
/* Waits up to timeout_ms (-1: forever) for SIGTERM, SIGINT or SIGHUP (blocked beforehand); returns the signal, 0 on
   timeout, -1 on another error (EINTR). */
int weir_wait_signal(int timeout_ms);
/* A non-blocking signalfd for SIGTERM, SIGINT and SIGHUP (block them first with weir_block_signals), so one poll()
   waits for signals and descriptors together; weir_signalfd_read returns the next signal, or 0 if none is queued. */
int weir_signalfd(void);
int weir_signalfd_read(int fd);

/* ---- buildinfo.c ---- */

/* Version and git commit of this build. */
const char *weir_build_version(void);
const char *weir_build_commit(void);
#endif
