/* Benchmark helper for scripts/bench.sh (namespaces only).
 *   pingpong server PORT ADDR            epoll echo server, any number of connections
 *   pingpong rr HOST PORT SECONDS        one connection, 1 KiB ping-pong; prints "rtt_p50_us=.. rtt_p99_us=.. n=.."
 *   pingpong hold HOST PORT N            opens N connections, one 1 KiB round trip each, prints HELD, sleeps
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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
        qsort(rtt, n, sizeof(double), cmp);
        printf("rtt_p50_us=%.1f rtt_p99_us=%.1f n=%zu\n", rtt[n / 2], rtt[n * 99 / 100], n);
        return 0;
    }
    if (!strcmp(argv[1], "hold")) {
        int count = atoi(argv[4]);
        for (int i = 0; i < count; i++) roundtrip(dial(argv[2], atoi(argv[3])), buf);
        printf("HELD %d\n", count);
        fflush(stdout);
        pause();
    }
    return 2;
}
