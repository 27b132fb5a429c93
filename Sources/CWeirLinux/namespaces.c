/* Network namespaces: open, check, enter (for good or for one call, see NetworkNamespace.Handle) and probe. */
#include "CWeirLinux.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/nsfs.h>

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

/* The probe's thread: enters the namespace and ends, taking the namespace with it. */
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

int weir_netns_fd_check(int fd) {
    int type = ioctl(fd, NS_GET_NSTYPE);
    if (type == CLONE_NEWNET) return 0;
    if (type >= 0 || errno == ENOTTY) errno = EINVAL;
    return -1;
}

int weir_socket_in_netns(int netns_fd, int home_fd, int family) {
    if (setns(netns_fd, CLONE_NEWNET) != 0) return -1;
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int e = errno;
    if (setns(home_fd, CLONE_NEWNET) != 0) abort();
    errno = e;
    return fd;
}
