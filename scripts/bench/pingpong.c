/* Benchmark helper for scripts/bench.sh (namespaces only).
 *   pingpong server PORT ADDR            epoll echo server, any number of connections
 *   pingpong rr HOST PORT SECONDS        one connection, 1 KiB ping-pong; prints
 *                                        "rtt_p50_us=.. rtt_p90_us=.. rtt_p99_us=.. rtt_p999_us=.. n=.."
 *   pingpong hold HOST PORT N[,N2,...]   opens connections, one 1 KiB round trip each, up to N in all; prints
 *                                        "HELD N" and sleeps. With a list of rising totals it prints "HELD Ni" at
 *                                        each and waits for SIGUSR1 before opening the next ones (the bench reads
 *                                        the proxy's RSS in between); after the last it sleeps until killed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int dial(const char *host, int port) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, host, &a.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) { perror("connect"); exit(1); }
    return fd;
}

static void roundtrip(int fd, char *buf) {
    if (write(fd, buf, 1024) != 1024) { perror("write"); exit(1); }
    int got = 0;
    while (got < 1024) {
        ssize_t n = read(fd, buf + got, 1024 - got);
        if (n <= 0) { perror("read"); exit(1); }
        got += n;
    }
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 4) return 2;
    if (!strcmp(argv[1], "server")) {
        int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
        setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
        inet_pton(AF_INET, argv[3], &a.sin_addr);
        if (bind(ls, (struct sockaddr *)&a, sizeof(a)) || listen(ls, 4096)) { perror("bind"); return 1; }
        int ep = epoll_create1(0);
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls}, evs[256];
        epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
        char buf[65536];
        for (;;) {
            int n = epoll_wait(ep, evs, 256, -1);
            for (int i = 0; i < n; i++) {
                int fd = evs[i].data.fd;
                if (fd == ls) {
                    int c;
                    while ((c = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                        struct epoll_event ce = {.events = EPOLLIN, .data.fd = c};
                        epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
                    }
                    continue;
                }
                ssize_t r = read(fd, buf, sizeof(buf));
                if (r <= 0) { if (r == 0 || errno != EAGAIN) close(fd); continue; }
                if (write(fd, buf, r) != r) close(fd);
            }
        }
    }
    char buf[1024];
    memset(buf, 'x', sizeof(buf));
    if (!strcmp(argv[1], "rr")) {
        int fd = dial(argv[2], atoi(argv[3]));
        double seconds = atof(argv[4]), end = now() + seconds;
        size_t cap = 1 << 22, n = 0;
        double *rtt = malloc(cap * sizeof(double));
        for (int i = 0; i < 1000; i++) roundtrip(fd, buf); /* warm up */
        while (n < cap && now() < end) {
            double t = now();
            roundtrip(fd, buf);
            rtt[n++] = (now() - t) * 1e6;
        }
        if (n == 0) { fprintf(stderr, "rr: no round trip in %s s\n", argv[4]); return 1; }
        qsort(rtt, n, sizeof(double), cmp);
        /* Nearest rank: the smallest value with at least p of the samples at or below it. */
        double p[] = {0.50, 0.90, 0.99, 0.999};
        double v[4];
        for (int i = 0; i < 4; i++) {
            size_t rank = (size_t)(p[i] * n + 0.999999);
            v[i] = rtt[(rank ? rank : 1) - 1];
        }
        printf("rtt_p50_us=%.1f rtt_p90_us=%.1f rtt_p99_us=%.1f rtt_p999_us=%.1f n=%zu\n", v[0], v[1], v[2], v[3], n);
        return 0;
    }
    if (!strcmp(argv[1], "hold")) {
        /* SIGUSR1 stays blocked, so one sent before sigwait is kept pending, not lost. */
        sigset_t usr1;
        sigemptyset(&usr1);
        sigaddset(&usr1, SIGUSR1);
        sigprocmask(SIG_BLOCK, &usr1, NULL);
        int held = 0, port = atoi(argv[3]);
        for (char *step = strtok(argv[4], ","); step; ) {
            int total = atoi(step);
            for (; held < total; held++) roundtrip(dial(argv[2], port), buf);
            printf("HELD %d\n", held);
            fflush(stdout);
            if (!(step = strtok(NULL, ","))) break;
            int sig;
            sigwait(&usr1, &sig);
        }
        for (;;) pause();
    }
    return 2;
}
