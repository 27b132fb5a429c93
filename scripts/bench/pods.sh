#!/usr/bin/env bash
# Pod mode benchmark (issue 19): one `weir run --pod-mode` agent serving 10, 100 and 250 pod network namespaces,
# against the sidecar model (one `weir proxy`, then one HAProxy, per pod namespace), in one run. Part of `make bench`
# (scripts/bench.sh), or alone:
#
#     WEIR=/path/weir bash scripts/bench/pods.sh OUTDIR        # writes OUTDIR/pods.tsv
#
# Everything runs in network namespaces made here and always deleted (trap): a "node" namespace holding the agent,
# a bridge (198.18.0.1/15) and the upstreams (nginx, iperf3); one namespace per pod (198.19.x.y, a veth to the
# bridge); one more for the host-mode comparison. Only processes started here are ever signalled, by their pids.
#
# For each number of pods (BENCH_POD_STEPS, default "10 100 250"), fresh pod namespaces and a fresh agent:
#  - ADD: each pod attached by the CNI plugin run as a runtime runs it (the `weir` binary with no arguments, the CNI
#    environment, the network config on stdin); the wall time around each exec, and the agent's own `took_us`.
#  - memory of the agent (VmRSS, RssAnon from /proc/PID/status, Rss and Pss from smaps_rollup): 1 s after it is
#    ready with no pod, 1 s after the last ADD, and 1 s after a load phase through every pod: BENCH_POD_LOAD_CONNS
#    (8) concurrent outbound connections per pod (GET of 128 KiB from the node's nginx) and as many inbound ones
#    (32 KiB answers from the pod's application, which must see every one of them from 127.0.0.6). The binary's
#    page cache is dropped before the agent starts, and before the `weir proxy` sidecars do (cold_binary).
#  - at BENCH_POD_COST_AT (the first step): the agent's CPU per new connection (wrk, `Connection: close`) and per
#    GB (iperf3, one stream) through one pod, against `weir run` in host mode capturing its own namespace, in
#    BENCH_POD_ROUNDS (5) interleaved rounds of BENCH_POD_SECONDS (2) each.
#  - at BENCH_POD_FAIR_AT (100): pod B's connect-to-first-byte latency through the agent (a connection every
#    BENCH_POD_LAT_GAP_US, 2000), idle, while pod A storms
#    new connections at --max-connections-per-pod (BENCH_POD_CEILING, 64; wrk with twice that many connections),
#    and, as a control, while pod C runs the same storm uncaptured (as the proxy UID: the CPU contention alone,
#    no agent work). Then the agent is restarted with --max-connection-rate-per-pod (BENCH_POD_RATE, 1000; 0 skips
#    this) and pod B measured again, idle and while pod A storms, and the agent restarted without it.
#  - at BENCH_POD_RESTART_AT (100 250): kill -9 of the agent and a new one at once; the time from its start until
#    GET /pods says every pod is up, while a client connects into pod 1's application every 2 ms: connections the
#    application saw from anything but 127.0.0.6 went around the capture. Also how long the stale-entry sweep that
#    follows took (the agent's `pods_swept`).
#  - the sidecar model: the agent stopped (the pods' tables persist), one `weir proxy` per pod namespace, then one
#    HAProxy per pod namespace (listeners 15001 and 15006, one worker/thread each, the smallest sidecar), each
#    after the same load phase: the sums of VmRSS, RssAnon and Pss of the N processes.
#
# Raw samples: OUTDIR/pods.tsv, rows of (pods, target, metric, value); repeated rows are samples (ADD latencies,
# rounds). A measure that saw nothing (no pod up, no connection through a pod) fails the run. BENCH_POD_SMAPS=PREFIX
# also keeps the agent's /proc/PID/smaps at each memory reading, as PREFIX-PODS-TARGET-WHEN (where its pages are).
set -euo pipefail
cd "$(dirname "$0")/../.."

OUT=${1:?usage: WEIR=/path/to/weir bash scripts/bench/pods.sh OUTDIR}
WEIR=${WEIR:-.build/dist/weir}
STEPS=${BENCH_POD_STEPS:-10 100 250}
COST_AT=${BENCH_POD_COST_AT:-${STEPS%% *}}
FAIR_AT=${BENCH_POD_FAIR_AT:-100}
RESTART_AT=${BENCH_POD_RESTART_AT:-100 250}
CEILING=${BENCH_POD_CEILING:-64}
RATE=${BENCH_POD_RATE:-1000}   # --max-connection-rate-per-pod of the fairness' second agent (0: none)
LAT_GAP_US=${BENCH_POD_LAT_GAP_US:-2000}   # pod B starts a connection every 2 ms (500/s, under RATE)
SECS=${BENCH_POD_SECONDS:-2}
ROUNDS=${BENCH_POD_ROUNDS:-5}
LOAD_CONNS=${BENCH_POD_LOAD_CONNS:-8}
SIDECARS=${BENCH_POD_SIDECARS:-1}   # 0: no sidecar model (quicker runs while developing)

[ -x "$WEIR" ] || { echo "pods: $WEIR missing (WEIR=/path/to/weir)" >&2; exit 1; }
WEIR=$(realpath "$WEIR")
mkdir -p "$OUT"
TSV=$(realpath "$OUT")/pods.tsv
: > "$TSV"
TAG=$$
NODE=wbnode-$TAG
HOSTNS=wbhost-$TAG
WORK=$(mktemp -d /tmp/wb-pods.XXXXXX)
ADMIN=127.0.0.1:15020
NODE_IP=198.18.0.1
pids=()

cleanup() {
  local p ns
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
  for ns in $(ip netns list | awk -v t="^wb(pod|node|host)-$TAG(-|\$)" '$1 ~ t {print $1}'); do
    # Anything still in our namespaces was started here (a client left by an interrupted measure).
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

die() { echo "pods: $*" >&2; exit 1; }
rec() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$TSV"; }   # pods target metric value
# Runs a command in one of our namespaces. Started in the background, write nsenter out instead: a function would
# put a subshell between $! and the process.
in_ns() { local ns=$1; shift; nsenter --net="/run/netns/$ns" "$@"; }
calc() { python3 -c "print($1)"; }
now_us() { local t=$EPOCHREALTIME; echo "${t/./}"; }
pod_ns() { echo "wbpod-$TAG-$1"; }
pod_ip() { local k=$(($1 - 1)); echo "198.19.$((k / 250)).$((k % 250 + 1))"; }
# Stops one process started here and reaps it; it leaves the list, so no later cleanup can hit a reused pid.
stop_pid() {
  local p keep=()
  kill "${2:--TERM}" "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  pids=("${keep[@]}")
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }   # user + system of all threads, 1/100 s
# VmRSS RssAnon Rss Pss (KiB), summed over the pids given.
mem_of() {
  local p status=() rollup=()
  for p in "$@"; do status+=("/proc/$p/status"); rollup+=("/proc/$p/smaps_rollup"); done
  awk '$1 == "VmRSS:" {r += $2} $1 == "RssAnon:" {a += $2} END {printf "%d %d", r, a}' "${status[@]}"
  awk '$1 == "Rss:" {r += $2} $1 == "Pss:" {p += $2} END {printf " %d %d\n", r, p}' "${rollup[@]}"
}
rec_mem() { # pods target prefix pid...
  local n=$1 t=$2 k=$3 m; shift 3
  read -r -a m <<<"$(mem_of "$@")"
  rec "$n" "$t" "${k}_rss" "${m[0]}"; rec "$n" "$t" "${k}_rss_anon" "${m[1]}"
  rec "$n" "$t" "${k}_smaps_rss" "${m[2]}"; rec "$n" "$t" "${k}_pss" "${m[3]}"
  [ -n "${BENCH_POD_SMAPS:-}" ] && [ $# = 1 ] && cat "/proc/$1/smaps" >"$BENCH_POD_SMAPS-$n-$t-$k" || true
}
http_get() { in_ns "$NODE" curl -s -m 2 "http://$ADMIN$1"; }
# Drops the weir binary's pages from the page cache (none is mapped: no weir process runs), as on a node after a
# reboot, so that every start reads it back the same way. What a page fault maps depends on how the file got into
# the page cache: run straight after the build wrote it, the agent mapped 0.8 to 1.7 MB more of its code than from the
# same binary read back (its Pss varied by that much between runs; BENCHMARKS.md, "The binary's page cache").
cold_binary() { sync "$WEIR"; dd if="$WEIR" iflag=nocache count=0 status=none; }

gcc -O2 -Wall -o "$WORK/podtool" -x c - <<'PODTOOL'
/* The pod benchmark's clients and application (scripts/bench/pods.sh; namespaces only). A TARGET is NETNS@IP:
 * the client's sockets are made inside the network namespace NETNS (a path; "-" for the caller's own).
 *   podtool app PORT BYTES NETNS...      one process, one listener on PORT in each namespace; answers every
 *                                        connection with BYTES of body and closes. Counts peers: from 127.0.0.6
 *                                        (handed over by a capturing proxy) or not. SIGUSR1 prints
 *                                        "counts captured=N uncaptured=M" and resets; SIGTERM prints and exits.
 *   podtool load PORT CONNS PATH TARGET...  per target in turn: CONNS connections at once, each one HTTP/1.0
 *                                        GET PATH read to the end; prints "ok= failed= bytes= targets_ok= targets="
 *   podtool probe TARGET PORT GAP_US      connects again and again (one GET each) until SIGTERM, then prints
 *                                        "attempts= ok= refused= reset= timeout= other="
 *   podtool lat TARGET PORT SECONDS GAP_US  one connection after another (GET /), each started GAP_US after the
 *                                        one before (or at once if that took longer); prints percentiles (us) of
 *                                        the connect and of connect to the first byte of the answer
 *   podtool waitpods IP PORT N START_US TIMEOUT_S   polls GET /pods until N pods say "state": "up"; prints
 *                                        "up_ms=" (from START_US, wall clock in us) and "polls="; exit 1 on timeout
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t got_usr1, got_term;
static void on_signal(int s) { if (s == SIGUSR1) got_usr1 = 1; else got_term = 1; }
static void signals(void) {
    struct sigaction sa = {.sa_handler = on_signal};   /* no SA_RESTART: blocking calls return EINTR */
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static double mono_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int home = -1;   /* the caller's own network namespace */

/* Enters the namespace of TARGET (NETNS@IP) and returns the IP part; exits on a namespace that cannot be entered. */
static const char *enter(const char *target) {
    static char path[512];
    const char *at = strrchr(target, '@');
    if (!at || (size_t)(at - target) >= sizeof(path)) { fprintf(stderr, "podtool: bad target %s\n", target); exit(2); }
    memcpy(path, target, at - target);
    path[at - target] = 0;
    if (home < 0) home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    int fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : dup(home);
    if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) { fprintf(stderr, "podtool: setns %s: %m\n", path); exit(1); }
    close(fd);
    return at + 1;
}

static void leave(void) {
    if (home >= 0 && setns(home, CLONE_NEWNET) != 0) { perror("podtool: setns back"); exit(1); }
}

/* A socket connecting to ip:port with timeouts on connect, send and receive; -errno on failure. */
static int dial(const char *ip, int port, int timeout_ms) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) { fprintf(stderr, "podtool: bad address %s\n", ip); exit(2); }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0) return -errno;
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        int e = errno;
        close(fd);
        return -(e == EINPROGRESS ? ETIMEDOUT : e);
    }
    return fd;
}

static int send_get(int fd, const char *path) {
    char req[256];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: bench\r\n\r\n", path);
    return write(fd, req, n) == n ? 0 : -(errno ? errno : EIO);
}

/* Reads to the end: bytes, or -errno (a reset, a timeout). *first_us: when the first byte came (mono). */
static long drain(int fd, double *first_us) {
    static char buf[65536];
    long total = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n == 0) return total;
        if (n < 0) { if (errno == EINTR && !got_term) continue; return -(errno == EAGAIN ? ETIMEDOUT : errno); }
        if (total == 0 && first_us) *first_us = mono_us();
        total += n;
    }
}

static int app(int argc, char **argv) {
    int port = atoi(argv[2]);
    long bytes = atol(argv[3]);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    for (int i = 4; i < argc; i++) {
        char target[600];
        snprintf(target, sizeof(target), "%s@-", argv[i]);
        enter(target);
        int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
        setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
        if (bind(ls, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(ls, 1024) != 0) {
            fprintf(stderr, "podtool app: listen in %s: %m\n", argv[i]);
            return 1;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls};
        epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
        leave();
    }
    char head[128], *body = malloc(bytes + 1);
    memset(body, 'x', bytes);
    int hl = snprintf(head, sizeof(head), "HTTP/1.0 200 OK\r\nContent-Length: %ld\r\n\r\n", bytes);
    long captured = 0, uncaptured = 0;
    signals();
    printf("listening %d\n", argc - 4);
    fflush(stdout);
    struct epoll_event evs[64];
    for (;;) {
        if (got_usr1 || got_term) {
            printf("counts captured=%ld uncaptured=%ld\n", captured, uncaptured);
            fflush(stdout);
            captured = uncaptured = 0;
            got_usr1 = 0;
            if (got_term) return 0;
        }
        int n = epoll_wait(ep, evs, 64, 200);
        for (int i = 0; i < n; i++) {
            struct sockaddr_in peer;
            socklen_t len = sizeof(peer);
            int c;
            while ((c = accept4(evs[i].data.fd, (struct sockaddr *)&peer, &len, SOCK_CLOEXEC)) >= 0) {
                if (peer.sin_addr.s_addr == htonl(0x7f000006)) {
                    captured++;
                } else {
                    if (uncaptured++ < 20) {
                        printf("uncaptured from %s:%d\n", inet_ntoa(peer.sin_addr), ntohs(peer.sin_port));
                        fflush(stdout);
                    }
                }
                struct timeval tv = {.tv_sec = 1};
                setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
                setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
                char req[4096];
                if (read(c, req, sizeof(req)) > 0 && write(c, head, hl) == hl) {
                    for (long off = 0; off < bytes;) {
                        ssize_t w = write(c, body + off, bytes - off);
                        if (w <= 0) break;
                        off += w;
                    }
                }
                close(c);
                len = sizeof(peer);
            }
        }
    }
}

static int load(int argc, char **argv) {
    int port = atoi(argv[2]), conns = atoi(argv[3]);
    const char *path = argv[4];
    long ok = 0, failed = 0, bytes = 0;
    int targets_ok = 0, *fds = calloc(conns, sizeof(int));
    for (int t = 5; t < argc; t++) {
        const char *ip = enter(argv[t]);
        long ok_here = 0;
        for (int i = 0; i < conns; i++) {
            fds[i] = dial(ip, port, 3000);
            if (fds[i] >= 0 && send_get(fds[i], path) != 0) { close(fds[i]); fds[i] = -1; }
        }
        leave();
        for (int i = 0; i < conns; i++) {
            long got = fds[i] >= 0 ? drain(fds[i], NULL) : -1;
            if (fds[i] >= 0) close(fds[i]);
            if (got > 0) { ok_here++; bytes += got; } else { failed++; }
        }
        ok += ok_here;
        if (ok_here == conns) targets_ok++;
        else if (failed <= 5 * conns)   /* the first few failing targets, enough to see why */
            fprintf(stderr, "podtool load: %s: %ld of %d failed\n", argv[t], conns - ok_here, conns);
    }
    printf("ok=%ld failed=%ld bytes=%ld targets_ok=%d targets=%d\n", ok, failed, bytes, targets_ok, argc - 5);
    return 0;
}

static int probe(int argc, char **argv) {
    (void)argc;
    const char *ip = enter(argv[2]);
    int port = atoi(argv[3]);
    long gap = atol(argv[4]), attempts = 0, ok = 0, refused = 0, reset = 0, timeout = 0, other = 0;
    signals();
    while (!got_term) {
        attempts++;
        int fd = dial(ip, port, 1000);
        long got = fd >= 0 ? (send_get(fd, "/") == 0 ? drain(fd, NULL) : -EPIPE) : fd;
        if (fd >= 0) close(fd);
        if (got > 0) ok++;
        else if (got == -ECONNREFUSED) refused++;
        else if (got == 0 || got == -ECONNRESET || got == -EPIPE) reset++;
        else if (got == -ETIMEDOUT) timeout++;
        else if (got == -EINTR) attempts--;
        else other++;
        if (gap > 0 && !got_term) usleep(gap);
    }
    printf("attempts=%ld ok=%ld refused=%ld reset=%ld timeout=%ld other=%ld\n", attempts, ok, refused, reset, timeout,
           other);
    return 0;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p) {   /* nearest rank */
    if (n == 0) return 0;
    int k = (int)(p / 100.0 * n + 0.999999) - 1;
    return v[k < 0 ? 0 : k >= n ? n - 1 : k];
}

static int lat(int argc, char **argv) {
    (void)argc;
    const char *ip = enter(argv[2]);
    int port = atoi(argv[3]), n = 0, failed = 0, cap = 1 << 20;
    double secs = atof(argv[4]), gap = atof(argv[5]), *conn = malloc(cap * sizeof(double)),
           *first = malloc(cap * sizeof(double));
    double end = mono_us() + secs * 1e6, next = 0;
    while (mono_us() < end && n < cap) {
        double wait = next - mono_us();
        if (wait > 0) usleep((useconds_t)wait);
        double t0 = mono_us(), t2 = 0;
        next = t0 + gap;
        int fd = dial(ip, port, 3000);
        double t1 = mono_us();
        long got = fd >= 0 ? (send_get(fd, "/") == 0 ? drain(fd, &t2) : -EPIPE) : fd;
        if (fd >= 0) close(fd);
        if (got <= 0) { failed++; continue; }
        conn[n] = t1 - t0;
        first[n++] = t2 - t0;
    }
    qsort(conn, n, sizeof(double), cmp);
    qsort(first, n, sizeof(double), cmp);
    printf("n=%d failed=%d connect_p50_us=%.1f connect_p99_us=%.1f first_p50_us=%.1f first_p90_us=%.1f "
           "first_p99_us=%.1f first_max_us=%.1f\n", n, failed, pct(conn, n, 50), pct(conn, n, 99), pct(first, n, 50),
           pct(first, n, 90), pct(first, n, 99), n ? first[n - 1] : 0);
    return 0;
}

static int waitpods(int argc, char **argv) {
    (void)argc;
    const char *ip = argv[2];
    int port = atoi(argv[3]), want = atoi(argv[4]), polls = 0, up = -1;
    double start = atof(argv[5]), timeout = atof(argv[6]) * 1e6;
    static char buf[1 << 22];
    for (;;) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        double now = ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
        if (now - start > timeout) { printf("timeout up=%d polls=%d\n", up, polls); return 1; }
        polls++;
        int fd = dial(ip, port, 1000);
        if (fd >= 0) {
            const char *req = "GET /pods HTTP/1.0\r\n\r\n";
            long got = 0;
            if (write(fd, req, strlen(req)) > 0) {
                ssize_t r;
                while (got < (long)sizeof(buf) - 1 && (r = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0) got += r;
            }
            close(fd);
            buf[got] = 0;
            up = 0;
            for (char *p = buf; (p = strstr(p, "\"state\"")); p++) {   /* "state": "up", any spacing */
                char *v = p + 7;
                while (*v == ' ' || *v == ':' || *v == '\t') v++;
                if (!strncmp(v, "\"up\"", 4)) up++;
            }
            if (up >= want) {
                clock_gettime(CLOCK_REALTIME, &ts);
                printf("up_ms=%.1f polls=%d\n", (ts.tv_sec * 1e6 + ts.tv_nsec / 1e3 - start) / 1e3, polls);
                return 0;
            }
        }
        usleep(5000);
    }
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    if (argc >= 5 && !strcmp(argv[1], "app")) return app(argc, argv);
    if (argc >= 6 && !strcmp(argv[1], "load")) return load(argc, argv);
    if (argc == 5 && !strcmp(argv[1], "probe")) return probe(argc, argv);
    if (argc == 6 && !strcmp(argv[1], "lat")) return lat(argc, argv);
    if (argc == 7 && !strcmp(argv[1], "waitpods")) return waitpods(argc, argv);
    fprintf(stderr, "usage: see the comment at the top of podtool.c\n");
    return 2;
}
PODTOOL

# --- the node: a bridge for the pods' veths, nginx (HTTP upstream) and iperf3 on 198.18.0.1 -----------------------
ip netns add "$NODE"
ip -n "$NODE" -batch - <<IP
link set lo up
link add wbbr type bridge
addr add $NODE_IP/15 dev wbbr
link set wbbr up
IP
in_ns "$NODE" sysctl -qw net.ipv4.ip_local_port_range="1024 65000" net.ipv4.tcp_tw_reuse=1 net.core.somaxconn=4096
head -c $((128 * 1024)) /dev/zero | tr '\0' x > "$WORK/big"
cat > "$WORK/nginx.conf" <<NGINX
daemon off; master_process off; worker_processes 1; pid $WORK/nginx.pid; error_log stderr crit;
events { worker_connections 16384; }
http { access_log off; client_body_temp_path $WORK; proxy_temp_path $WORK; fastcgi_temp_path $WORK;
  uwsgi_temp_path $WORK; scgi_temp_path $WORK;
  server { listen $NODE_IP:80 backlog=4096; location / { return 200 "ok\n"; } location = /big { alias $WORK/big; } } }
NGINX
nsenter --net="/run/netns/$NODE" sh -c "ulimit -n 20000; exec nginx -c $WORK/nginx.conf -e stderr" & pids+=($!)
nsenter --net="/run/netns/$NODE" iperf3 -s -B "$NODE_IP" -p 5201 >/dev/null 2>&1 & pids+=($!)
listens() { in_ns "$NODE" ss -Hltn "sport = :$1" | grep -q .; }
upstreams_up() { listens 80 && listens 5201; }
for _ in $(seq 100); do upstreams_up && break; sleep 0.05; done
upstreams_up || die "nginx or iperf3 does not listen in the node namespace"

# The sidecar HAProxy: the roles of the capture ports, transparent to the original destination (SO_ORIGINAL_DST),
# inbound handed to the application from 127.0.0.6 as weir does; as the proxy UID, which the capture lets out.
cat > "$WORK/haproxy.cfg" <<HAP
global
  nbthread 1
  uid 1337
  gid 1337
  maxconn 1000
defaults
  mode tcp
  maxconn 1000
  timeout connect 5s
  timeout client 1h
  timeout server 1h
  option splice-auto
listen outbound
  bind 0.0.0.0:15001
  server orig 0.0.0.0:0
listen inbound
  bind 0.0.0.0:15006
  server orig 0.0.0.0:0 source 127.0.0.6
HAP

# --- pods -----------------------------------------------------------------------------------------------------------
make_pods() { # count: namespaces 1..count, each a veth (eth0) to the node's bridge, its address, a default route
  local n=$1 i
  for i in $(seq "$n"); do echo "netns add $(pod_ns "$i")"; done | ip -batch -
  for i in $(seq "$n"); do
    echo "link add wbv$i type veth peer name eth0 netns $(pod_ns "$i")"
    echo "link set wbv$i master wbbr up"
  done | ip -n "$NODE" -batch -
  for i in $(seq "$n"); do
    printf 'link set lo up\naddr add %s/15 dev eth0\nlink set eth0 up\nroute add default via %s\n' \
      "$(pod_ip "$i")" "$NODE_IP" | ip -n "$(pod_ns "$i")" -batch -
  done
}
del_pods() { # count
  local i
  for i in $(seq "$1"); do echo "netns del $(pod_ns "$i")"; done | ip -batch -
  # The kernel tears the namespaces down in the background; the next step's veths must not meet the old ones.
  for _ in $(seq 400); do
    [ -z "$(ip -n "$NODE" -o link show type veth)" ] && return 0
    sleep 0.05
  done
  die "the pods' veths were still in the node namespace 20 s after their namespaces were deleted"
}
targets() { # count prefix-kind: "out" (inside each pod, to the node) or "in" (from the node, to each pod)
  local i
  for i in $(seq "$1"); do
    if [ "$2" = out ]; then echo "/run/netns/$(pod_ns "$i")@$NODE_IP"; else echo "-@$(pod_ip "$i")"; fi
  done
}

# --- the agent ------------------------------------------------------------------------------------------------------
RUN=$WORK/run
AGENT_EXTRA=()   # more flags for the next start_agent (the fairness' rate ceiling)
start_agent() { # log file; sets $agent
  ulimit -Sn 20000
  nsenter --net="/run/netns/$NODE" "$WEIR" run --pod-mode --run-dir "$RUN" --state-dir "$WORK/state" -i '*' -b '*' \
    --max-connections-per-pod "$CEILING" --admin-address "$ADMIN" --drain-timeout 1s ${AGENT_EXTRA[@]+"${AGENT_EXTRA[@]}"} \
    >"$1" 2>&1 &
  agent=$!
  pids+=("$agent")
}
# Stops the agent (SIGTERM: the pods' tables stay) and starts it again with AGENT_EXTRA; back when every pod is up.
restart_agent() { # pods log
  local _
  stop_pid "$agent"
  start_agent "$2"
  for _ in $(seq 600); do
    [ "$(pods_up 2>/dev/null || echo 0)" = "$1" ] && return 0
    kill -0 "$agent" 2>/dev/null || break
    sleep 0.05
  done
  die "the agent restarted with ${AGENT_EXTRA[*]:-no extra flag} did not serve all $1 pods: $(tail -c 600 "$2")"
}
readyz() { [ "$(in_ns "$1" curl -s -o /dev/null -w '%{http_code}' -m 1 "http://$ADMIN/readyz")" = 200 ]; }
wait_ready() { # namespace pid log
  local _
  for _ in $(seq 200); do
    readyz "$1" && return 0
    kill -0 "$2" 2>/dev/null || break
    sleep 0.05
  done
  die "weir run in $1 never became ready: $(tail -c 600 "$3")"
}
cni_conf() { # the network config a runtime passes a chained plugin: weir's entry, the previous plugin's result
  printf '{"cniVersion":"1.0.0","name":"bench","type":"weir","agentSocket":"%s",' "$RUN/cni.sock"
  printf '"prevResult":{"cniVersion":"1.0.0","interfaces":[],"ips":[]}}'
}
# ADD of pods FROM..TO as a runtime does it, one after another, from the node namespace; prints "i t0 t1" (us).
add_pods() {
  local conf
  conf=$(cni_conf)
  in_ns "$NODE" bash -s "$WEIR" "$TAG" "$1" "$2" "$conf" <<'LOOP'
weir=$1 tag=$2 conf=$5
for i in $(seq "$3" "$4"); do
  t0=$EPOCHREALTIME
  out=$(CNI_COMMAND=ADD CNI_CONTAINERID="c-$i" CNI_NETNS="/run/netns/wbpod-$tag-$i" CNI_IFNAME=eth0 \
    CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME=p-$i;K8S_POD_UID=u-$i" CNI_PATH=/usr/lib/cni \
    "$weir" <<<"$conf" 2>&1) || { echo "FAIL $i $out"; exit 1; }
  t1=$EPOCHREALTIME
  echo "$i ${t0/./} ${t1/./}"
done
LOOP
}
pods_up() { http_get /pods | grep -Eo '"state": *"up"' | wc -l; }
pod_label() { echo "bench/p-$1"; }   # the metrics' pod label: K8S_POD_NAMESPACE/K8S_POD_NAME

# --- the load phase through every pod -------------------------------------------------------------------------------
# Outbound: LOAD_CONNS connections at once from inside each pod to the node's nginx (128 KiB each); inbound:
# LOAD_CONNS from the node to each pod's application (32 KiB each), which must see them all from 127.0.0.6.
app_counts() { # SIGUSR1 to the application; prints its "captured uncaptured" since the last call
  local before
  before=$(grep -c '^counts' "$WORK/app.out" || true)
  kill -USR1 "$app"
  for _ in $(seq 100); do
    [ "$(grep -c '^counts' "$WORK/app.out" || true)" -gt "$before" ] && break
    sleep 0.02
  done
  grep '^counts' "$WORK/app.out" | tail -1 | sed 's/counts captured=\([0-9]*\) uncaptured=\([0-9]*\)/\1 \2/'
}
load_phase() { # pods target
  local n=$1 t=$2 out in c to ti
  mapfile -t to < <(targets "$n" out)
  mapfile -t ti < <(targets "$n" in)
  app_counts >/dev/null
  out=$(in_ns "$NODE" "$WORK/podtool" load 80 "$LOAD_CONNS" /big "${to[@]}")
  in=$(in_ns "$NODE" "$WORK/podtool" load 8080 "$LOAD_CONNS" / "${ti[@]}")
  read -r -a c <<<"$(app_counts)"
  local ok_out ok_in
  ok_out=$(sed 's/.*targets_ok=\([0-9]*\).*/\1/' <<<"$out")
  ok_in=$(sed 's/.*targets_ok=\([0-9]*\).*/\1/' <<<"$in")
  rec "$n" "$t" load_pods_out_ok "$ok_out"
  rec "$n" "$t" load_pods_in_ok "$ok_in"
  rec "$n" "$t" load_in_uncaptured "${c[1]}"
  if [ "$ok_out" != "$n" ] || [ "$ok_in" != "$n" ] || [ "${c[1]}" != 0 ] || [ "${c[0]}" = 0 ]; then
    die "$t: the load phase did not go through every pod: outbound $out; inbound $in; the application saw" \
      "${c[0]} connections from 127.0.0.6 and ${c[1]} from elsewhere"
  fi
}

# --- per-connection cost: pod mode against host mode ----------------------------------------------------------------
cost_rounds() { # pods
  local n=$1 r t ns pid c0 out conns bytes
  ip netns add "$HOSTNS"
  ip -n "$NODE" link add wbvhost type veth peer name eth0 netns "$HOSTNS"
  ip -n "$NODE" link set wbvhost master wbbr up
  printf 'link set lo up\naddr add 198.18.255.254/15 dev eth0\nlink set eth0 up\nroute add default via %s\n' \
    "$NODE_IP" | ip -n "$HOSTNS" -batch -
  ulimit -Sn 20000
  # Its own run directory where host mode has one (its lock and sockets stay out of the node's /run/weir); a binary
  # that knows --run-dir only in pod mode refuses it in --check-config, and needs none.
  local flags=(run -i '*' -b '*' --state-dir "$WORK/state-host" --admin-address "$ADMIN" --drain-timeout 1s)
  in_ns "$HOSTNS" "$WEIR" "${flags[@]}" --run-dir "$WORK/run-host" --check-config >/dev/null 2>&1 &&
    flags+=(--run-dir "$WORK/run-host")
  nsenter --net="/run/netns/$HOSTNS" "$WEIR" "${flags[@]}" >"$WORK/host.log" 2>&1 &
  local host=$!
  pids+=("$host")
  wait_ready "$HOSTNS" "$host" "$WORK/host.log"
  in_ns "$(pod_ns 1)" sysctl -qw net.ipv4.ip_local_port_range="1024 65000" net.ipv4.tcp_tw_reuse=1
  in_ns "$HOSTNS" sysctl -qw net.ipv4.ip_local_port_range="1024 65000" net.ipv4.tcp_tw_reuse=1
  sleep 1
  for r in $(seq "$ROUNDS"); do
    for t in pod host; do
      ns=$(pod_ns 1); pid=$agent
      [ "$t" = host ] && ns=$HOSTNS && pid=$host
      echo "pods: cost round $r: $t mode" >&2
      c0=$(cpu_ticks "$pid")
      out=$(in_ns "$ns" wrk -t1 -c32 -d"${SECS}s" -H "Connection: close" "http://$NODE_IP/")
      conns=$(awk '/requests in/ {print $1}' <<<"$out")
      [ "${conns:-0}" -gt 0 ] || die "$t mode: wrk made no connection: $out"
      rec "$n" "$t" cost_conns "$conns"
      rec "$n" "$t" cpuconn_us "$(calc "($(cpu_ticks "$pid") - $c0) * 10000 / $conns")"
      c0=$(cpu_ticks "$pid")
      bytes=$(in_ns "$ns" iperf3 -c "$NODE_IP" -p 5201 -t "$SECS" -J |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["end"]["sum_received"]["bytes"])')
      [ "${bytes:-0}" -gt 0 ] || die "$t mode: iperf3 moved nothing"
      rec "$n" "$t" cost_gbytes "$(calc "$bytes / 1e9")"
      rec "$n" "$t" cpugb_s "$(calc "($(cpu_ticks "$pid") - $c0) / 100 / ($bytes / 1e9)")"
    done
  done
  stop_pid "$host"
  ip netns del "$HOSTNS"
}

# --- fairness: pod B while pod A storms at its ceiling --------------------------------------------------------------
refused_of() { # pod label [metric]: weir_pod_ceiling_pauses_total
  http_get /metrics | awk -v l="pod=\"$1\"" -v m="^${2:-weir_pod_ceiling_pauses_total}" '$0 ~ m && index($0, l) {
    v = $NF} END {print v + 0}'
}
# The agent still works through pod A's accept queue after wrk exits: wait until its counters stop moving.
settle() { # pod label
  local a b
  a=$(http_get /metrics | grep -F "pod=\"$1\"" | grep -v _active | md5sum)
  for _ in $(seq 50); do
    sleep 0.3
    b=$(http_get /metrics | grep -F "pod=\"$1\"" | grep -v _active | md5sum)
    [ "$a" = "$b" ] && return 0
    a=$b
  done
}
fairness() { # pods
  local n=$1
  for ns in "$(pod_ns 1)" "$(pod_ns 2)" "$(pod_ns 3)"; do
    in_ns "$ns" sysctl -qw net.ipv4.ip_local_port_range="1024 65000" net.ipv4.tcp_tw_reuse=1
  done
  fairness_rounds "$n" idle storm control
  # The same agent with a rate ceiling per pod too (a restart: the pod settings are the agent's flags), then back.
  if [ "$RATE" != 0 ]; then
    AGENT_EXTRA=(--max-connection-rate-per-pod "$RATE")
    restart_agent "$n" "$WORK/agent-$n-rate.log"
    fairness_rounds "$n" rate-idle rate-storm
    AGENT_EXTRA=()
    restart_agent "$n" "$WORK/agent-$n-norate.log"
  fi
}
fairness_rounds() { # pods variants...
  local n=$1 r v a b c wrk_pid r0 q0 lat; shift
  a=$(pod_ns 1); b=$(pod_ns 2); c=$(pod_ns 3)
  for r in $(seq "$ROUNDS"); do
    for v in "$@"; do
      echo "pods: fairness round $r: pod B $v" >&2
      wrk_pid=
      r0=$(refused_of "$(pod_label 1)")
      q0=$(refused_of "$(pod_label 1)" weir_pod_rate_pauses_total)
      if [ "${v#rate-}" != idle ]; then
        # The control storms from pod C, not A: a connection A's storm had reset leaves a conntrack entry (CLOSE,
        # 10 s) whose NAT binding a new connection on the same ports would inherit, redirected whatever its UID.
        local as=() from=$a
        [ "$v" = control ] && as=(setpriv --reuid 1337 --regid 1337 --clear-groups) && from=$c
        nsenter --net="/run/netns/$from" "${as[@]}" wrk -t1 -c$((2 * CEILING)) -d"$((SECS + 1))s" \
          -H "Connection: close" "http://$NODE_IP/" >"$WORK/storm.out" 2>&1 &
        wrk_pid=$!
        pids+=("$wrk_pid")
        sleep 0.5
      fi
      lat=$(in_ns "$b" "$WORK/podtool" lat "-@$NODE_IP" 80 "$SECS" "$LAT_GAP_US")
      if [ -n "$wrk_pid" ]; then
        wait "$wrk_pid" || true
        stop_pid "$wrk_pid"
        settle "$(pod_label 1)"
        rec "$n" "fair-$v" storm_requests "$(awk '/requests in/ {print $1}' "$WORK/storm.out")"
        rec "$n" "fair-$v" storm_errors "$(awk '/Socket errors/ {gsub(",", ""); e = $4 + $6 + $8 + $10}
          END {print e + 0}' "$WORK/storm.out")"
      fi
      rec "$n" "fair-$v" refused "$(calc "$(refused_of "$(pod_label 1)") - $r0")"
      rec "$n" "fair-$v" rate_pauses "$(calc "$(refused_of "$(pod_label 1)" weir_pod_rate_pauses_total) - $q0")"
      [[ $lat =~ n=([0-9]+) ]] && [ "${BASH_REMATCH[1]}" -gt 0 ] || die "fairness: pod B made no connection: $lat"
      for k in n failed connect_p50_us connect_p99_us first_p50_us first_p90_us first_p99_us first_max_us; do
        rec "$n" "fair-$v" "$k" "$(sed "s/.*\b$k=\([0-9.]*\).*/\1/" <<<"$lat")"
      done
    done
  done
}

# --- re-attach after kill -9 ----------------------------------------------------------------------------------------
restart() { # pods
  local n=$1 probe t0 up out c
  app_counts >/dev/null
  nsenter --net="/run/netns/$NODE" "$WORK/podtool" probe "-@$(pod_ip 1)" 8080 2000 >"$WORK/probe.out" 2>&1 &
  probe=$!
  pids+=("$probe")
  sleep 0.5
  stop_pid "$agent" -KILL
  t0=$(now_us)
  start_agent "$WORK/agent-$n-restart.log"
  up=$(in_ns "$NODE" "$WORK/podtool" waitpods "${ADMIN%:*}" "${ADMIN##*:}" "$n" "$t0" 30) ||
    die "after kill -9, not every pod came back up within 30 s ($up): $(tail -c 600 "$WORK/agent-$n-restart.log")"
  sleep 0.5
  stop_pid "$probe"
  out=$(cat "$WORK/probe.out")
  read -r -a c <<<"$(app_counts)"
  rec "$n" restart up_ms "$(sed 's/.*up_ms=\([0-9.]*\).*/\1/' <<<"$up")"
  rec "$n" restart polls "$(sed 's/.*polls=\([0-9]*\).*/\1/' <<<"$up")"
  for k in attempts ok refused reset timeout other; do
    rec "$n" restart "probe_$k" "$(sed "s/.*\b$k=\([0-9]*\).*/\1/" <<<"$out")"
  done
  rec "$n" restart app_captured "${c[0]}"
  rec "$n" restart app_uncaptured "${c[1]}"
  local restored
  restored=$(grep -o 'event=pods_restored attached=[0-9]* dropped=[0-9]*' "$WORK/agent-$n-restart.log" || true)
  rec "$n" restart restored "$(sed -n 's/.*attached=\([0-9]*\).*/\1/p' <<<"$restored")"
  rec "$n" restart dropped "$(sed -n 's/.*dropped=\([0-9]*\).*/\1/p' <<<"$restored")"
  # The stale-entry sweep runs after the pods are served (PodManager.sweepInBackground): its end, from its own log.
  local swept=
  for _ in $(seq 300); do
    swept=$(grep -o 'event=pods_swept pods=[0-9]* deleted=[0-9]* took_ms=[0-9]*' "$WORK/agent-$n-restart.log" || true)
    [ -n "$swept" ] && break
    sleep 0.1
  done
  [ -n "$swept" ] || die "restart: the stale-entry sweep never ended: $(tail -c 600 "$WORK/agent-$n-restart.log")"
  rec "$n" restart swept_ms "$(sed 's/.*took_ms=//' <<<"$swept")"
  rec "$n" restart swept_deleted "$(sed 's/.*deleted=\([0-9]*\).*/\1/' <<<"$swept")"
  [ "${c[0]:-0}" -gt 0 ] || die "restart: the application saw no connection at all: probe $out"
  sleep 0.5
  rec_mem "$n" restart restored "$agent"
}

# --- the sidecar model ----------------------------------------------------------------------------------------------
sidecars() { # pods target command...
  local n=$1 t=$2 i sc=() _ out to; shift 2
  mapfile -t to < <(targets "$n" out)
  [ "$1" = "$WEIR" ] && cold_binary   # as for the agent
  ulimit -Sn 4096
  for i in $(seq "$n"); do
    nsenter --net="/run/netns/$(pod_ns "$i")" "$@" >>"$WORK/$t.log" 2>&1 &
    sc+=($!)
    pids+=($!)
  done
  ulimit -Sn 20000
  # Ready when one connection goes through every pod's sidecar.
  for _ in $(seq 300); do
    out=$(in_ns "$NODE" "$WORK/podtool" load 80 1 / "${to[@]}" 2>/dev/null)
    [[ $out == *"targets_ok=$n "* ]] && break
    sleep 0.1
  done
  [[ $out == *"targets_ok=$n "* ]] || die "$t: not every sidecar serves ($out): $(tail -c 600 "$WORK/$t.log")"
  sleep 1
  rec_mem "$n" "$t" idle "${sc[@]}"
  load_phase "$n" "$t"
  sleep 1
  rec "$n" "$t" processes "${#sc[@]}"
  rec_mem "$n" "$t" load "${sc[@]}"
  for i in "${sc[@]}"; do kill "$i" 2>/dev/null || true; done
  for i in "${sc[@]}"; do stop_pid "$i"; done
}

# --- one step: N pods ----------------------------------------------------------------------------------------------
step() {
  local n=$1 lines i t0 t1 nets=()
  echo "pods: $n pods" >&2
  make_pods "$n"
  for i in $(seq "$n"); do nets+=("/run/netns/$(pod_ns "$i")"); done
  nsenter --net="/run/netns/$NODE" "$WORK/podtool" app 8080 $((32 * 1024)) "${nets[@]}" >"$WORK/app.out" 2>&1 &
  app=$!
  pids+=("$app")
  rm -rf "$RUN"
  cold_binary
  start_agent "$WORK/agent-$n.log"
  wait_ready "$NODE" "$agent" "$WORK/agent-$n.log"
  sleep 1
  rec_mem "$n" pod base "$agent"
  lines=$(add_pods 1 "$n") || die "ADD failed: $(tail -1 <<<"$lines") $(tail -c 600 "$WORK/agent-$n.log")"
  while read -r i t0 t1; do rec "$n" pod add_ms "$(calc "($t1 - $t0) / 1000")"; done <<<"$lines"
  grep -o 'event=pod_attached .*took_us=[0-9]*' "$WORK/agent-$n.log" | sed 's/.*took_us=//' |
    while read -r us; do rec "$n" pod add_agent_ms "$(calc "$us / 1000")"; done
  [ "$(pods_up)" = "$n" ] || die "GET /pods does not list $n pods up after the ADDs: $(http_get /pods | head -c 600)"
  grep -q '^listening' "$WORK/app.out" || die "the pods' application is not listening: $(cat "$WORK/app.out")"
  sleep 1
  rec_mem "$n" pod attached "$agent"
  load_phase "$n" pod
  sleep 1
  rec_mem "$n" pod load "$agent"
  [ "$n" = "$COST_AT" ] && cost_rounds "$n"
  [ "$n" = "$FAIR_AT" ] && [ "$n" -ge 3 ] && fairness "$n"
  case " $RESTART_AT " in *" $n "*) restart "$n" ;; esac
  stop_pid "$agent"
  if [ "$SIDECARS" != 0 ]; then
    echo "pods: $n sidecars: weir proxy" >&2
    sidecars "$n" sidecar-weir "$WEIR" proxy --workers 1 --max-connections 1000 --drain-timeout 1s
    echo "pods: $n sidecars: HAProxy" >&2
    sidecars "$n" sidecar-haproxy haproxy -db -f "$WORK/haproxy.cfg"
  fi
  stop_pid "$app"
  del_pods "$n"
}

{
  rec 0 meta started_epoch "$(date +%s)"
  rec 0 meta weir_version "$("$WEIR" --version 2>&1 | head -1)"
  rec 0 meta weir_binary "$(realpath --relative-to=. "$WEIR")"
  rec 0 meta haproxy_version "$(haproxy -v 2>&1 | head -1 | sed 's/ - http.*//')"
  rec 0 meta steps "$STEPS"
  rec 0 meta ceiling "$CEILING"
  rec 0 meta rate "$RATE"
  rec 0 meta lat_gap_us "$LAT_GAP_US"
  rec 0 meta seconds "$SECS"
  rec 0 meta rounds "$ROUNDS"
  rec 0 meta load_conns "$LOAD_CONNS"
  rec 0 meta load_before "$(cut -d' ' -f1-3 /proc/loadavg)"
}
if ! CNI_COMMAND=VERSION "$WEIR" </dev/null 2>/dev/null | grep -q cniVersion; then
  die "$WEIR does not answer CNI_COMMAND=VERSION: no CNI plugin in this binary"
fi
for n in $STEPS; do step "$n"; done
rec 0 meta load_after "$(cut -d' ' -f1-3 /proc/loadavg)"
rec 0 meta finished_epoch "$(date +%s)"
echo "pods: wrote $TSV" >&2
