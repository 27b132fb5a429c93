/* The process and its threads: clocks, atomics on plain words, signals, CPU affinity, per-thread credentials and
   names. */
#include "CWeirLinux.h"
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>

int64_t weir_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t weir_now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t weir_wall_seconds(void) { return (int64_t)time(NULL); }

int64_t weir_atomic_add(int64_t *p, int64_t v) { return __atomic_add_fetch(p, v, __ATOMIC_RELAXED); }
int64_t weir_atomic_load(const int64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
void weir_atomic_store(int64_t *p, int64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

int64_t weir_atomic_max_add(int64_t *p, int64_t floor, int64_t v) {
    int64_t old = __atomic_load_n(p, __ATOMIC_RELAXED), next;
    do {
        next = (old > floor ? old : floor) + v;
    } while (!__atomic_compare_exchange_n(p, &old, next, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    return next;
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

int weir_wait_signal(int timeout_ms) {
    sigset_t set = control_signals();
    struct timespec ts = { timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L };
    int sig = sigtimedwait(&set, NULL, timeout_ms < 0 ? NULL : &ts);
    if (sig < 0) return errno == EAGAIN ? 0 : -1;
    return sig;
}

int weir_signalfd(void) {
    sigset_t set = control_signals();
    return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

int weir_signalfd_read(int fd) {
    struct signalfd_siginfo info;
    ssize_t n = read(fd, &info, sizeof info);
    return n == (ssize_t)sizeof info ? (int)info.ssi_signo : 0;
}

#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <time.h>

extern char **environ;

int weir_run_program(char *const argv[], char *out, size_t cap, int timeout_ms) {
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) != 0) return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pipefd[1]);
    if (rc != 0) { close(pipefd[0]); errno = rc; return -1; }
    size_t used = 0;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    int timed_out = 0;
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        long elapsed = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (elapsed >= timeout_ms) { timed_out = 1; break; }
        struct pollfd p = { pipefd[0], POLLIN, 0 };
        int n = poll(&p, 1, (int)(timeout_ms - elapsed));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) { timed_out = n == 0; break; }
        char chunk[512];
        ssize_t r = read(pipefd[0], chunk, sizeof chunk);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        for (ssize_t i = 0; i < r && used + 1 < cap; i++) out[used++] = chunk[i];
    }
    if (cap > 0) out[used] = 0;
    close(pipefd[0]);
    if (timed_out) kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (timed_out) { errno = ETIMEDOUT; return -1; }
    return status;
}
