/* Load generator and servers for scripts/stress.sh (`make stress`). Runs inside throwaway network namespaces only.
 *
 *   load server PORT ADDR...          epoll server speaking the protocol below; checks every byte it receives.
 *                                     SIGTERM/SIGINT: prints its summary line and exits.
 *   load blackhole PORT ADDR...       accepts and never reads (an upstream that stopped reading).
 *   load client [options] TARGET...   keeps --conns connections busy with a mix of kinds (below), checks every byte
 *                                     it receives; prints one summary line (key=value). TARGET is ADDR:PORT or
 *                                     [V6]:PORT; slot i uses target i % count.
 *   load probe HOST PORT PATH INTERVAL_MS SECONDS
 *                                     GET PATH every INTERVAL_MS (HTTP/1.0, a new connection each time) and prints
 *                                     n, failures, latency percentiles, the slowest, and how many took > 100 ms.
 *   load get HOST PORT PATH           one GET: prints the status line's code, a newline, then the body.
 *   load rusage CMD ARG...            runs CMD, prints "wall_ms=.. maxrss_kb=.. status=.." on stderr.
 *
 * Protocol: the client sends a 72-byte header, then `up` payload bytes; the server sends `down` payload bytes. Both
 * payloads are a pseudo-random stream, byte i of stream s is a function of (s, i), so each end checks every byte it
 * receives against what must have been sent and counts the bytes that differ (corrupt_bytes). The header names the
 * client's own address and port; a server that sees exactly that peer counts the connection as direct (it did not
 * go through the proxy, whose upstream has another source). Kinds:
 *   bulk   both directions at once, sizes from the header; each side half-closes after its last byte.
 *   rr     `rounds` request/replies: the client sends `req` bytes, the server answers `resp` bytes once a whole
 *          request is in; the client thinks 0..--think-ms between rounds.
 *   idle   rr with --idle-ms of silence between rounds (long-lived, mostly idle connections).
 *   rstc   the client sends part of `up`, then resets (SO_LINGER 0): the server must see a reset or a short stream.
 *   rsts   the server sends `cut` bytes of `down`, then resets: the client must see a reset (ECONNRESET).
 * Client options: --conns N, --seconds S (0: until SIGTERM; then no new connections, open ones finish within
 * --grace S, idle ones without their pauses), --mix bulk=W,rr=W,idle=W,rstc=W,rsts=W (weights per 100 slots),
 * --bulk-max BYTES, --idle-ms MS, --think-ms MS, --rounds-max N, --rounds N (exactly N rounds, rr and idle),
 * --once (every slot runs one connection only), --up BYTES --down BYTES (fixed bulk sizes), --connect-timeout-ms MS, --deadline-s S (a connection that has not
 * finished by then counts as stalled), --retry-ms MS (pause of a slot after a failure), --events (one line per
 * finished connection), --progress S (a progress line every S seconds), --seed N.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAGIC 0x31545357u /* "WST1" */
enum { K_BULK = 1, K_RR, K_IDLE, K_RSTC, K_RSTS, K_COUNT };
static const char *kind_name[] = {"?", "bulk", "rr", "idle", "rstc", "rsts"};

struct hdr {
    uint32_t magic;
    uint8_t kind, pad[3];
    uint32_t req, resp, rounds, cut;
    uint64_t seed, up, down;
    /* the client's own end of its connection (getsockname): if the server sees that same address and port as its
     * peer, the connection reached it directly, not through the proxy */
    uint8_t caddr[16];
    uint16_t cport, cfamily;
    uint32_t pad2;
};

static volatile sig_atomic_t stop_flag;
static void on_stop(int s) { (void)s; stop_flag = 1; }

static double mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static long long wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the payload stream ---- */

static inline uint64_t mix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Bytes [off, off+n) of stream `seed`. */
static void gen(uint64_t seed, uint64_t off, unsigned char *out, size_t n) {
    uint64_t w = off >> 3;
    size_t skip = off & 7, done = 0;
    while (done < n) {
        uint64_t v = mix64(seed ^ (w * 0xd6e8feb86659fd93ull));
        unsigned char b[8];
        memcpy(b, &v, 8);
        size_t take = 8 - skip;
        if (take > n - done) take = n - done;
        memcpy(out + done, b + skip, take);
        done += take;
        skip = 0;
        w++;
    }
}

static unsigned char expect_buf[1 << 16];
/* Number of bytes in buf that differ from stream `seed` at `off`. */
static uint64_t check(uint64_t seed, uint64_t off, const unsigned char *buf, size_t n) {
    uint64_t bad = 0;
    while (n > 0) {
        size_t m = n < sizeof(expect_buf) ? n : sizeof(expect_buf);
        gen(seed, off, expect_buf, m);
        if (memcmp(expect_buf, buf, m) != 0)
            for (size_t i = 0; i < m; i++) bad += expect_buf[i] != buf[i];
        buf += m;
        off += m;
        n -= m;
    }
    return bad;
}

static uint64_t down_seed(uint64_t seed) { return mix64(seed ^ 0x5555aaaa5555aaaaull); }

/* ---- sockets ---- */

struct target {
    struct sockaddr_storage addr;
    socklen_t len;
};

static int parse_addr(const char *text, int port, struct sockaddr_storage *ss, socklen_t *len) {
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, text, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(port);
        *len = sizeof(*a4);
        return 0;
    }
    if (inet_pton(AF_INET6, text, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(port);
        *len = sizeof(*a6);
        return 0;
    }
    return -1;
}

/* ADDR:PORT or [V6]:PORT */
static int parse_target(const char *text, struct target *t) {
    char host[128];
    const char *colon;
    if (text[0] == '[') {
        const char *end = strchr(text, ']');
        if (!end || end[1] != ':' || end - text - 1 >= (long)sizeof(host)) return -1;
        memcpy(host, text + 1, end - text - 1);
        host[end - text - 1] = 0;
        colon = end + 1;
    } else {
        colon = strrchr(text, ':');
        if (!colon || colon - text >= (long)sizeof(host)) return -1;
        memcpy(host, text, colon - text);
        host[colon - text] = 0;
    }
    return parse_addr(host, atoi(colon + 1), &t->addr, &t->len);
}

static void set_linger_reset(int fd) {
    struct linger l = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
}

static int listen_on(const char *addr, int port) {
    struct sockaddr_storage ss;
    socklen_t len;
    if (parse_addr(addr, port, &ss, &len)) { fprintf(stderr, "load: bad address %s\n", addr); exit(2); }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ss.ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, len) || listen(fd, 4096)) {
        fprintf(stderr, "load: listen %s:%d: %s\n", addr, port, strerror(errno));
        exit(1);
    }
    return fd;
}

static void raise_nofile(void) {
    struct rlimit r;
    if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
        r.rlim_cur = r.rlim_max;
        setrlimit(RLIMIT_NOFILE, &r);
    }
}

static unsigned char io_buf[1 << 16];

/* ---- server ---- */

struct sconn {
    int fd;
    int state; /* 0 reading header, 1 running */
    unsigned char hbuf[sizeof(struct hdr)];
    size_t hlen;
    struct hdr h;
    uint64_t recv, sent;
    int rd_eof, wr_shut, want_out;
};

static struct {
    uint64_t conns, ok, expected_resets, unexpected, corrupt, bytes_checked, bad_header, extra, no_header, direct;
} S;

static int sep;

static void srv_mod(struct sconn *c, int out) {
    if (c->want_out == out) return;
    c->want_out = out;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | (out ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(sep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* "addr:port" of a socket's peer (remote) or own address, for the diagnostic lines. */
static const char *sock_name(int fd, int remote, char *buf, size_t len) {
    struct sockaddr_storage a;
    socklen_t al = sizeof(a);
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if ((remote ? getpeername(fd, (struct sockaddr *)&a, &al) : getsockname(fd, (struct sockaddr *)&a, &al)) == 0) {
        if (a.ss_family == AF_INET) {
            inet_ntop(AF_INET, &((struct sockaddr_in *)&a)->sin_addr, ip, sizeof(ip));
            port = ntohs(((struct sockaddr_in *)&a)->sin_port);
        } else if (a.ss_family == AF_INET6) {
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&a)->sin6_addr, ip, sizeof(ip));
            port = ntohs(((struct sockaddr_in6 *)&a)->sin6_port);
        }
    }
    snprintf(buf, len, "%s:%d", ip, port);
    return buf;
}

/* The first failures of a run, one line each on stderr (the log), to find them in the agent's log and a capture. */
#define DIAGNOSED_MAX 20
static int diagnosed;

static void srv_close(struct sconn *c, int outcome) {
    /* outcome: 1 ok, 2 expected reset, 3 closed before a whole header came (the client decides whether that was
     * a failure: it sees it too), 0 unexpected */
    if (outcome == 1) S.ok++;
    else if (outcome == 2) S.expected_resets++;
    else if (outcome == 3) S.no_header++;
    else {
        S.unexpected++;
        if (diagnosed++ < DIAGNOSED_MAX) {
            char peer[80];
            fprintf(stderr, "unexpected t_ms=%lld peer=%s kind=%d up=%llu recv=%llu down=%llu sent=%llu last_errno=%s\n",
                    (long long)(mono() * 1000), sock_name(c->fd, 1, peer, sizeof(peer)), c->h.kind,
                    (unsigned long long)c->h.up, (unsigned long long)c->recv, (unsigned long long)c->h.down,
                    (unsigned long long)c->sent, errno ? strerrorname_np(errno) : "0");
        }
    }
    close(c->fd);
    free(c);
}

/* How many down bytes the server may have sent by now. */
static uint64_t srv_allowed(struct sconn *c) {
    if (c->h.kind == K_RR || c->h.kind == K_IDLE) {
        if (c->h.req == 0) return c->h.down;
        uint64_t k = c->recv / c->h.req;
        uint64_t a = k * c->h.resp;
        return a < c->h.down ? a : c->h.down;
    }
    if (c->h.kind == K_RSTS) return c->h.cut < c->h.down ? c->h.cut : c->h.down;
    return c->h.down;
}

/* At most this many reads and writes for one connection per event: epoll is level-triggered, so the rest waits
 * for the next round and one fast connection never starves the others (which the proxy would then close as idle). */
#define ROUNDS_PER_EVENT 8

static void srv_io(struct sconn *c) {
    for (int round = 0; round < ROUNDS_PER_EVENT; round++) {
        int progress = 0;
        if (c->state == 0) {
            ssize_t n = read(c->fd, c->hbuf + c->hlen, sizeof(c->hbuf) - c->hlen);
            if (n > 0) {
                c->hlen += n;
                if (c->hlen == sizeof(c->hbuf)) {
                    memcpy(&c->h, c->hbuf, sizeof(c->h));
                    if (c->h.magic != MAGIC || c->h.kind == 0 || c->h.kind >= K_COUNT) {
                        S.bad_header++;
                        srv_close(c, 0);
                        return;
                    }
                    c->state = 1;
                    struct sockaddr_storage peer;
                    socklen_t pl = sizeof(peer);
                    if (getpeername(c->fd, (struct sockaddr *)&peer, &pl) == 0 && peer.ss_family == c->h.cfamily) {
                        const struct sockaddr_in *p4 = (const struct sockaddr_in *)&peer;
                        const struct sockaddr_in6 *p6 = (const struct sockaddr_in6 *)&peer;
                        int same = peer.ss_family == AF_INET
                            ? p4->sin_port == c->h.cport && !memcmp(&p4->sin_addr, c->h.caddr, 4)
                            : p6->sin6_port == c->h.cport && !memcmp(&p6->sin6_addr, c->h.caddr, 16);
                        if (same) S.direct++;
                    }
                }
                continue;
            }
            if (n < 0 && errno == EAGAIN) return;
            srv_close(c, 3);
            return;
        }
        /* read */
        if (!c->rd_eof) {
            ssize_t n = read(c->fd, io_buf, sizeof(io_buf));
            if (n > 0) {
                uint64_t room = c->recv < c->h.up ? c->h.up - c->recv : 0;
                uint64_t ok = (uint64_t)n < room ? (uint64_t)n : room;
                S.corrupt += check(c->h.seed, c->recv, io_buf, ok);
                S.bytes_checked += ok;
                if ((uint64_t)n > room) { S.extra += n - room; S.corrupt += n - room; }
                c->recv += n;
                progress = 1;
            } else if (n == 0) {
                c->rd_eof = 1;
                if (c->recv < c->h.up) {
                    srv_close(c, c->h.kind == K_RSTC ? 2 : 0);
                    return;
                }
                progress = 1;
            } else if (errno != EAGAIN) {
                int expected = c->h.kind == K_RSTC && (errno == ECONNRESET || errno == EPIPE);
                srv_close(c, expected ? 2 : 0);
                return;
            }
        }
        /* write */
        uint64_t allowed = srv_allowed(c);
        if (c->sent < allowed) {
            uint64_t want = allowed - c->sent;
            size_t m = want < sizeof(io_buf) ? want : sizeof(io_buf);
            gen(down_seed(c->h.seed), c->sent, io_buf, m);
            ssize_t n = send(c->fd, io_buf, m, MSG_NOSIGNAL);
            if (n > 0) {
                c->sent += n;
                progress = 1;
            } else if (n < 0 && errno != EAGAIN) {
                int expected = c->h.kind == K_RSTC && (errno == ECONNRESET || errno == EPIPE);
                srv_close(c, expected ? 2 : 0);
                return;
            }
        }
        if (c->h.kind == K_RSTS && c->sent >= allowed) {
            set_linger_reset(c->fd);
            srv_close(c, 2);
            return;
        }
        if (c->sent == c->h.down && !c->wr_shut && c->h.kind != K_RSTS &&
            (c->h.kind == K_BULK || c->recv >= c->h.up)) {
            shutdown(c->fd, SHUT_WR);
            c->wr_shut = 1;
        }
        if (c->rd_eof && c->wr_shut) { srv_close(c, 1); return; }
        srv_mod(c, c->sent < srv_allowed(c));
        if (!progress) return;
    }
}

static int cmd_server(int argc, char **argv, int blackhole) {
    if (argc < 2) return 2;
    raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_stop};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    int port = atoi(argv[0]);
    sep = epoll_create1(EPOLL_CLOEXEC);
    int nl = argc - 1, ls[16];
    for (int i = 0; i < nl && i < 16; i++) {
        ls[i] = listen_on(argv[1 + i], port);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
        ev.data.u64 = (uint64_t)i + 1; /* small: a listener */
        epoll_ctl(sep, EPOLL_CTL_ADD, ls[i], &ev);
    }
    printf("READY\n");
    fflush(stdout);
    struct epoll_event evs[64];
    while (!stop_flag) {
        int n = epoll_wait(sep, evs, 64, 200);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.u64 <= 16) {
                int l = ls[evs[i].data.u64 - 1], fd;
                while ((fd = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    S.conns++;
                    if (blackhole) continue; /* held, never read, never closed */
                    int one = 1;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    struct sconn *c = calloc(1, sizeof(*c));
                    c->fd = fd;
                    c->want_out = 0;
                    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
                    epoll_ctl(sep, EPOLL_CTL_ADD, fd, &ev);
                    srv_io(c);
                }
                continue;
            }
            srv_io(evs[i].data.ptr);
        }
    }
    printf("server conns=%llu ok=%llu expected_resets=%llu unexpected=%llu corrupt_bytes=%llu bytes_checked=%llu "
           "bad_header=%llu extra_bytes=%llu no_header=%llu direct=%llu\n",
           (unsigned long long)S.conns, (unsigned long long)S.ok, (unsigned long long)S.expected_resets,
           (unsigned long long)S.unexpected, (unsigned long long)S.corrupt, (unsigned long long)S.bytes_checked,
           (unsigned long long)S.bad_header, (unsigned long long)S.extra, (unsigned long long)S.no_header,
           (unsigned long long)S.direct);
    fflush(stdout);
    return 0;
}

/* ---- client ---- */

enum { O_OK, O_RESET, O_REFUSED, O_CONNECT_TIMEOUT, O_EOF_SHORT, O_STALLED, O_ERROR, O_UNFINISHED, O_RST_AS_FIN,
       O_COUNT };
static const char *outcome_name[] = {"ok", "reset", "refused", "connect_timeout", "eof_short", "stalled", "error",
                                     "unfinished", "rst_as_fin"};

struct cconn {
    int fd, slot, kind, connected, wr_shut, rd_eof, want_out, active;
    struct hdr h;
    size_t hsent;
    uint64_t sent, recv, cut_up;
    double started, next_send_at, deadline, connect_deadline;
    int err;
};

static struct {
    int conns, once, events, seconds, grace, retry_ms, connect_timeout_ms, deadline_s, idle_ms, think_ms;
    int rounds_max, rounds_fixed, progress;
    uint64_t bulk_max, fixed_up, fixed_down;
    int weights[K_COUNT];
    int ntargets;
    struct target targets[16];
    uint64_t seed;
} opt = {.conns = 100, .grace = 60, .retry_ms = 10, .connect_timeout_ms = 10000, .deadline_s = 300,
         .idle_ms = 3000, .think_ms = 20, .rounds_max = 50, .bulk_max = 16 << 20, .seed = 1};

static struct {
    uint64_t started, by[K_COUNT][O_COUNT], corrupt, bytes_checked, bytes_sent, extra;
    long long first_fail_ms, last_fail_ms;
} C;

static int cep;
static uint64_t rng_state;
static uint64_t rnd(void) { return mix64(rng_state++); }
static uint64_t rnd_range(uint64_t lo, uint64_t hi) { return hi <= lo ? lo : lo + rnd() % (hi - lo + 1); }

static int slot_kind(int slot) {
    int total = 0;
    for (int k = 1; k < K_COUNT; k++) total += opt.weights[k];
    if (total == 0) return K_RR;
    int x = (slot * 37) % total; /* spread kinds over the slots */
    for (int k = 1; k < K_COUNT; k++) {
        if (x < opt.weights[k]) return k;
        x -= opt.weights[k];
    }
    return K_RR;
}

static uint64_t log_uniform(uint64_t lo, uint64_t hi) {
    double a = __builtin_log((double)lo), b = __builtin_log((double)hi);
    double u = (double)(rnd() >> 11) / (double)(1ull << 53);
    return (uint64_t)__builtin_exp(a + (b - a) * u);
}

static struct cconn **slots;
static int stopping;
static double stop_at;

static void cli_mod(struct cconn *c, int out) {
    if (c->want_out == out) return;
    c->want_out = out;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | (out ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(cep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void cli_finish(struct cconn *c, int outcome) {
    if (outcome != O_OK) {
        long long t = wall_ms();
        if (!C.first_fail_ms) C.first_fail_ms = t;
        C.last_fail_ms = t;
    }
    C.by[c->kind][outcome]++;
    if (outcome != O_OK && diagnosed++ < DIAGNOSED_MAX && c->fd >= 0) {
        char local[80];
        fprintf(stderr, "failed t_ms=%lld local=%s kind=%s outcome=%s up=%llu sent=%llu down=%llu recv=%llu "
                "errno=%s dur_ms=%.0f\n", (long long)(mono() * 1000), sock_name(c->fd, 0, local, sizeof(local)),
                kind_name[c->kind], outcome_name[outcome], (unsigned long long)c->h.up, (unsigned long long)c->sent,
                (unsigned long long)c->h.down, (unsigned long long)c->recv, c->err ? strerrorname_np(c->err) : "0",
                (mono() - c->started) * 1000);
    }
    if (opt.events) {
        long long end = wall_ms();
        printf("ev kind=%s outcome=%s up=%llu up_sent=%llu down=%llu down_recv=%llu errno=%s start_ms=%lld "
               "end_ms=%lld dur_ms=%.0f\n",
               kind_name[c->kind], outcome_name[outcome], (unsigned long long)c->h.up,
               (unsigned long long)c->sent, (unsigned long long)c->h.down, (unsigned long long)c->recv,
               c->err ? strerrorname_np(c->err) : "0", end - (long long)((mono() - c->started) * 1000), end,
               (mono() - c->started) * 1000);
        fflush(stdout);
    }
    if (c->fd >= 0) {
        if (c->kind == K_RSTC && outcome == O_OK) set_linger_reset(c->fd);
        close(c->fd);
    }
    c->fd = -1;
    c->active = 0;
    /* The slot starts again after retry_ms when this one failed (a refused connect is instant). */
    c->next_send_at = mono() + (outcome == O_OK ? 0 : opt.retry_ms / 1000.0);
}

static void cli_start(struct cconn *c) {
    memset(&c->h, 0, sizeof(c->h));
    c->kind = slot_kind(c->slot);
    c->h.magic = MAGIC;
    c->h.kind = c->kind;
    c->h.seed = rnd();
    switch (c->kind) {
    case K_BULK:
        c->h.up = opt.fixed_up != (uint64_t)-1 ? opt.fixed_up : log_uniform(65536, opt.bulk_max);
        c->h.down = opt.fixed_down != (uint64_t)-1 ? opt.fixed_down : log_uniform(65536, opt.bulk_max);
        break;
    case K_RR:
    case K_IDLE:
        /* an idle connection has at least one pause: two rounds or more */
        c->h.rounds = opt.rounds_fixed ? (uint32_t)opt.rounds_fixed
                      : c->kind == K_IDLE ? rnd_range(2, 3 + opt.rounds_max / 5) : rnd_range(1, opt.rounds_max);
        c->h.req = rnd_range(16, 4096);
        c->h.resp = rnd_range(16, 16384);
        c->h.up = (uint64_t)c->h.rounds * c->h.req;
        c->h.down = (uint64_t)c->h.rounds * c->h.resp;
        break;
    case K_RSTC:
        c->h.up = rnd_range(1, 1 << 20);
        c->cut_up = rnd_range(0, c->h.up - 1);
        break;
    case K_RSTS:
        c->h.down = 1 << 20;
        c->h.cut = rnd_range(0, (1 << 20) - 1);
        break;
    }
    c->hsent = 0;
    c->sent = c->recv = 0;
    c->wr_shut = 0;
    c->rd_eof = 0;
    c->connected = 0;
    c->err = 0;
    c->started = mono();
    c->next_send_at = 0;
    c->connect_deadline = c->started + opt.connect_timeout_ms / 1000.0;
    c->deadline = c->started + opt.deadline_s;
    if (c->kind == K_IDLE) c->deadline += (double)c->h.rounds * opt.idle_ms / 1000.0;
    struct target *t = &opt.targets[c->slot % opt.ntargets];
    c->fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    c->active = 1;
    C.started++;
    if (c->fd < 0) { c->err = errno; cli_finish(c, O_ERROR); return; }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->want_out = 1;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLOUT, .data.ptr = c};
    epoll_ctl(cep, EPOLL_CTL_ADD, c->fd, &ev);
    if (connect(c->fd, (struct sockaddr *)&t->addr, t->len) != 0 && errno != EINPROGRESS) {
        c->err = errno;
        cli_finish(c, errno == ECONNREFUSED ? O_REFUSED : O_ERROR);
    }
}

/* Up bytes the client may have sent by now. */
static uint64_t cli_allowed(struct cconn *c, double now) {
    switch (c->kind) {
    case K_RR:
    case K_IDLE: {
        uint64_t k = c->h.resp ? c->recv / c->h.resp : c->h.rounds;
        uint64_t a = (k + 1) * c->h.req;
        if (a > c->h.up) a = c->h.up;
        /* the next request waits for the pause after the previous reply */
        if (a > c->sent && c->sent == k * c->h.req && k > 0 && now < c->next_send_at) return c->sent;
        return a;
    }
    case K_RSTC: return c->cut_up;
    default: return c->h.up;
    }
}

static int fail_outcome(int e) {
    if (e == ECONNREFUSED) return O_REFUSED;
    if (e == ECONNRESET || e == EPIPE) return O_RESET;
    return O_ERROR;
}

static void cli_io(struct cconn *c, double now) {
    if (!c->active) return;
    if (!c->connected) {
        int e = 0;
        socklen_t l = sizeof(e);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &l);
        if (e) { c->err = e; cli_finish(c, fail_outcome(e)); return; }
        struct sockaddr_storage peer;
        socklen_t pl = sizeof(peer);
        if (getpeername(c->fd, (struct sockaddr *)&peer, &pl) != 0) return; /* still connecting */
        c->connected = 1;
        struct sockaddr_storage self;
        socklen_t sl = sizeof(self);
        if (getsockname(c->fd, (struct sockaddr *)&self, &sl) == 0) {
            c->h.cfamily = self.ss_family;
            if (self.ss_family == AF_INET) {
                c->h.cport = ((struct sockaddr_in *)&self)->sin_port;
                memcpy(c->h.caddr, &((struct sockaddr_in *)&self)->sin_addr, 4);
            } else {
                c->h.cport = ((struct sockaddr_in6 *)&self)->sin6_port;
                memcpy(c->h.caddr, &((struct sockaddr_in6 *)&self)->sin6_addr, 16);
            }
        }
    }
    for (int round = 0; round < ROUNDS_PER_EVENT; round++) {
        int progress = 0;
        if (c->hsent < sizeof(c->h)) {
            ssize_t n = send(c->fd, (char *)&c->h + c->hsent, sizeof(c->h) - c->hsent, MSG_NOSIGNAL);
            if (n > 0) { c->hsent += n; progress = 1; }
            else if (errno != EAGAIN) { c->err = errno; cli_finish(c, fail_outcome(errno)); return; }
        }
        if (c->hsent == sizeof(c->h)) {
            uint64_t allowed = cli_allowed(c, now);
            if (c->sent < allowed) {
                uint64_t want = allowed - c->sent;
                size_t m = want < sizeof(io_buf) ? want : sizeof(io_buf);
                gen(c->h.seed, c->sent, io_buf, m);
                ssize_t n = send(c->fd, io_buf, m, MSG_NOSIGNAL);
                if (n > 0) { c->sent += n; C.bytes_sent += n; progress = 1; }
                else if (n < 0 && errno != EAGAIN) { c->err = errno; cli_finish(c, fail_outcome(errno)); return; }
            }
            if (c->kind == K_RSTC && c->sent >= c->cut_up) { cli_finish(c, O_OK); return; }
            if (c->sent == c->h.up && !c->wr_shut && c->kind != K_RSTC && c->kind != K_RSTS) {
                shutdown(c->fd, SHUT_WR);
                c->wr_shut = 1;
            }
        }
        if (c->rd_eof) {
            /* the server finished first (bulk): done once our own last byte and FIN are out */
            if (c->wr_shut) { cli_finish(c, O_OK); return; }
            if (!progress) break;
            continue;
        }
        ssize_t n = read(c->fd, io_buf, sizeof(io_buf));
        if (n > 0) {
            uint64_t room = c->recv < c->h.down ? c->h.down - c->recv : 0;
            uint64_t ok = (uint64_t)n < room ? (uint64_t)n : room;
            uint64_t before = c->recv;
            C.corrupt += check(down_seed(c->h.seed), c->recv, io_buf, ok);
            C.bytes_checked += ok;
            if ((uint64_t)n > room) { C.extra += n - room; C.corrupt += n - room; }
            c->recv += n;
            progress = 1;
            if ((c->kind == K_RR || c->kind == K_IDLE) && c->h.resp &&
                c->recv / c->h.resp > before / c->h.resp) {
                double pause = c->kind == K_IDLE ? opt.idle_ms / 1000.0
                                                 : (opt.think_ms ? rnd_range(0, opt.think_ms) / 1000.0 : 0);
                if (stopping) pause = 0;
                c->next_send_at = now + pause;
            }
        } else if (n == 0) {
            if (c->kind == K_RSTS) { cli_finish(c, O_RST_AS_FIN); return; }
            if (c->recv < c->h.down) { cli_finish(c, O_EOF_SHORT); return; }
            c->rd_eof = 1;
            progress = 1;
        } else if (errno != EAGAIN) {
            c->err = errno;
            if (c->kind == K_RSTS && (errno == ECONNRESET || errno == EPIPE)) { cli_finish(c, O_OK); return; }
            cli_finish(c, fail_outcome(errno));
            return;
        }
        if (!progress) break;
    }
    int out = c->hsent < sizeof(c->h) || (c->sent < cli_allowed(c, now)) || (c->sent == c->h.up && !c->wr_shut &&
                                                                              c->kind != K_RSTS && c->kind != K_RSTC);
    cli_mod(c, out);
}

static void print_client_summary(double secs) {
    uint64_t tot[O_COUNT] = {0}, ok = 0, failed = 0;
    for (int k = 1; k < K_COUNT; k++)
        for (int o = 0; o < O_COUNT; o++) tot[o] += C.by[k][o];
    ok = tot[O_OK];
    for (int o = 1; o < O_COUNT; o++) failed += tot[o];
    printf("client started=%llu ok=%llu failed=%llu corrupt_bytes=%llu bytes_checked=%llu bytes_sent=%llu "
           "extra_bytes=%llu seconds=%.1f first_fail_ms=%lld last_fail_ms=%lld",
           (unsigned long long)C.started, (unsigned long long)ok, (unsigned long long)failed,
           (unsigned long long)C.corrupt, (unsigned long long)C.bytes_checked, (unsigned long long)C.bytes_sent,
           (unsigned long long)C.extra, secs, C.first_fail_ms, C.last_fail_ms);
    for (int o = 1; o < O_COUNT; o++) printf(" %s=%llu", outcome_name[o], (unsigned long long)tot[o]);
    for (int k = 1; k < K_COUNT; k++) {
        uint64_t n = 0;
        for (int o = 0; o < O_COUNT; o++) n += C.by[k][o];
        if (n) printf(" %s=%llu/%llu", kind_name[k], (unsigned long long)C.by[k][O_OK], (unsigned long long)n);
    }
    printf("\n");
    fflush(stdout);
}

static int parse_mix(const char *s) {
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", s);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        char *eq = strchr(tok, '=');
        if (!eq) return -1;
        *eq = 0;
        int found = 0;
        for (int k = 1; k < K_COUNT; k++)
            if (!strcmp(tok, kind_name[k])) { opt.weights[k] = atoi(eq + 1); found = 1; }
        if (!found) return -1;
    }
    return 0;
}

static uint64_t parse_size(const char *s) {
    char *end;
    double v = strtod(s, &end);
    if (*end == 'K' || *end == 'k') v *= 1024;
    else if (*end == 'M' || *end == 'm') v *= 1024 * 1024;
    else if (*end == 'G' || *end == 'g') v *= 1024.0 * 1024 * 1024;
    return (uint64_t)v;
}

static int cmd_client(int argc, char **argv) {
    opt.fixed_up = opt.fixed_down = (uint64_t)-1;
    opt.weights[K_RR] = 1;
    int i = 0, mix_given = 0;
    for (; i < argc && argv[i][0] == '-' && argv[i][1] == '-'; i++) {
        const char *o = argv[i] + 2;
        const char *v = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(o, "once")) { opt.once = 1; continue; }
        if (!strcmp(o, "events")) { opt.events = 1; continue; }
        i++;
        if (!strcmp(o, "conns")) opt.conns = atoi(v);
        else if (!strcmp(o, "seconds")) opt.seconds = atoi(v);
        else if (!strcmp(o, "grace")) opt.grace = atoi(v);
        else if (!strcmp(o, "mix")) {
            memset(opt.weights, 0, sizeof(opt.weights));
            if (parse_mix(v)) { fprintf(stderr, "load: bad --mix %s\n", v); return 2; }
            mix_given = 1;
        } else if (!strcmp(o, "bulk-max")) opt.bulk_max = parse_size(v);
        else if (!strcmp(o, "up")) opt.fixed_up = parse_size(v);
        else if (!strcmp(o, "down")) opt.fixed_down = parse_size(v);
        else if (!strcmp(o, "idle-ms")) opt.idle_ms = atoi(v);
        else if (!strcmp(o, "think-ms")) opt.think_ms = atoi(v);
        else if (!strcmp(o, "rounds-max")) opt.rounds_max = atoi(v);
        else if (!strcmp(o, "rounds")) opt.rounds_fixed = atoi(v);
        else if (!strcmp(o, "retry-ms")) opt.retry_ms = atoi(v);
        else if (!strcmp(o, "connect-timeout-ms")) opt.connect_timeout_ms = atoi(v);
        else if (!strcmp(o, "deadline-s")) opt.deadline_s = atoi(v);
        else if (!strcmp(o, "progress")) opt.progress = atoi(v);
        else if (!strcmp(o, "seed")) opt.seed = strtoull(v, NULL, 10);
        else { fprintf(stderr, "load: unknown option --%s\n", o); return 2; }
    }
    (void)mix_given;
    for (; i < argc && opt.ntargets < 16; i++)
        if (parse_target(argv[i], &opt.targets[opt.ntargets++])) { fprintf(stderr, "load: bad target %s\n", argv[i]); return 2; }
    if (opt.ntargets == 0) { fprintf(stderr, "load: no target\n"); return 2; }
    raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_stop};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    rng_state = opt.seed * 0x9e3779b97f4a7c15ull + getpid();
    cep = epoll_create1(EPOLL_CLOEXEC);
    slots = calloc(opt.conns, sizeof(*slots));
    double t0 = mono(), next_scan = 0, next_progress = t0 + opt.progress;
    for (int s = 0; s < opt.conns; s++) {
        slots[s] = calloc(1, sizeof(struct cconn));
        slots[s]->slot = s;
        slots[s]->fd = -1;
        cli_start(slots[s]);
    }
    /* 64 events per turn at most: the pauses of idle connections are timers, checked after each turn */
    struct epoll_event evs[64];
    int launched_once = 1;
    for (;;) {
        int n = epoll_wait(cep, evs, 64, 5);
        double now = mono();
        for (int e = 0; e < n; e++) cli_io(evs[e].data.ptr, now);
        if (!stopping && (stop_flag || (opt.seconds > 0 && now - t0 >= opt.seconds))) {
            stopping = 1;
            stop_at = now;
            /* idle connections finish without their pauses */
            for (int s = 0; s < opt.conns; s++)
                if (slots[s]->active && slots[s]->next_send_at > now) slots[s]->next_send_at = now;
        }
        if (now >= next_scan) {
            next_scan = now + 0.005;
            int open = 0;
            for (int s = 0; s < opt.conns; s++) {
                struct cconn *c = slots[s];
                if (c->active) {
                    open++;
                    if (!c->connected && now >= c->connect_deadline) { cli_finish(c, O_CONNECT_TIMEOUT); continue; }
                    if (now >= c->deadline) { cli_finish(c, O_STALLED); continue; }
                    if (stopping && now - stop_at > opt.grace) { cli_finish(c, O_UNFINISHED); continue; }
                    if (c->connected && c->next_send_at > 0 && now >= c->next_send_at) {
                        c->next_send_at = 0;
                        cli_io(c, now);
                    }
                } else if (!stopping && !opt.once && now >= c->next_send_at) {
                    cli_start(c);
                    open++;
                }
            }
            if (opt.once && launched_once && open == 0) break;
            if (stopping && open == 0) break;
        }
        if (opt.progress && now >= next_progress) {
            next_progress = now + opt.progress;
            fprintf(stderr, "progress t=%.0f ", now - t0);
            uint64_t ok = 0, failed = 0;
            for (int k = 1; k < K_COUNT; k++) {
                ok += C.by[k][O_OK];
                for (int o = 1; o < O_COUNT; o++) failed += C.by[k][o];
            }
            fprintf(stderr, "ok=%llu failed=%llu corrupt=%llu checked=%llu\n", (unsigned long long)ok,
                    (unsigned long long)failed, (unsigned long long)C.corrupt, (unsigned long long)C.bytes_checked);
        }
    }
    print_client_summary(mono() - t0);
    return 0;
}

/* ---- admin probes ---- */

static int http_get(const char *host, int port, const char *path, char *body, size_t cap, double timeout) {
    struct sockaddr_storage ss;
    socklen_t len;
    if (parse_addr(host, port, &ss, &len)) return -1;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {(time_t)timeout, (suseconds_t)((timeout - (time_t)timeout) * 1e6)};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&ss, len) != 0) { close(fd); return -1; }
    char req[512];
    int rl = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, host);
    if (write(fd, req, rl) != rl) { close(fd); return -1; }
    size_t got = 0;
    static char resp[1 << 22];
    for (;;) {
        ssize_t n = read(fd, resp + got, sizeof(resp) - 1 - got);
        if (n <= 0) break;
        got += n;
        if (got >= sizeof(resp) - 1) break;
    }
    close(fd);
    resp[got] = 0;
    int status = 0;
    if (sscanf(resp, "HTTP/%*s %d", &status) != 1) return -1;
    if (body) {
        char *b = strstr(resp, "\r\n\r\n");
        snprintf(body, cap, "%s", b ? b + 4 : "");
    }
    return status;
}

static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int cmd_probe(int argc, char **argv) {
    if (argc < 5) return 2;
    const char *host = argv[0], *path = argv[2];
    int port = atoi(argv[1]), interval = atoi(argv[3]);
    double seconds = atof(argv[4]), end = mono() + seconds;
    struct sigaction sa = {.sa_handler = on_stop};
    sigaction(SIGTERM, &sa, NULL);
    size_t cap = 1 << 20, n = 0, fails = 0, over = 0;
    double *lat = malloc(cap * sizeof(double)), worst = 0;
    long long worst_at = 0;
    while (mono() < end && !stop_flag && n < cap) {
        double t = mono();
        int status = http_get(host, port, path, NULL, 0, 1.0);
        double ms = (mono() - t) * 1000;
        if (status != 200) fails++;
        lat[n++] = ms;
        if (ms > 100) over++;
        if (ms > worst) { worst = ms; worst_at = wall_ms(); }
        double next = t + interval / 1000.0;
        double wait = next - mono();
        if (wait > 0) usleep((useconds_t)(wait * 1e6));
    }
    qsort(lat, n, sizeof(double), cmpd);
    printf("probe n=%zu failed=%zu over_100ms=%zu p50_ms=%.2f p99_ms=%.2f max_ms=%.2f max_at_ms=%lld\n", n, fails,
           over, n ? lat[n / 2] : 0, n ? lat[n * 99 / 100] : 0, worst, worst_at);
    return 0;
}

static int cmd_get(int argc, char **argv) {
    if (argc < 3) return 2;
    static char body[1 << 22];
    int status = http_get(argv[0], atoi(argv[1]), argv[2], body, sizeof(body), 3.0);
    printf("%d\n%s", status, body);
    return status > 0 ? 0 : 1;
}

static int cmd_rusage(int argc, char **argv) {
    if (argc < 1) return 2;
    double t = mono();
    pid_t p = fork();
    if (p == 0) {
        execvp(argv[0], argv);
        _exit(127);
    }
    int status;
    struct rusage ru;
    wait4(p, &status, 0, &ru);
    fprintf(stderr, "wall_ms=%.0f maxrss_kb=%ld status=%d\n", (mono() - t) * 1000, ru.ru_maxrss,
            WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2) return 2;
    if (!strcmp(argv[1], "server")) return cmd_server(argc - 2, argv + 2, 0);
    if (!strcmp(argv[1], "blackhole")) return cmd_server(argc - 2, argv + 2, 1);
    if (!strcmp(argv[1], "client")) return cmd_client(argc - 2, argv + 2);
    if (!strcmp(argv[1], "probe")) return cmd_probe(argc - 2, argv + 2);
    if (!strcmp(argv[1], "get")) return cmd_get(argc - 2, argv + 2);
    if (!strcmp(argv[1], "rusage")) return cmd_rusage(argc - 2, argv + 2);
    fprintf(stderr, "load: unknown command %s\n", argv[1]);
    return 2;
}
