/*
 * LD_PRELOAD shim: set TCP_NODELAY on every socket a server accepts.
 *
 * Garage 2.5.0 leaves Nagle's algorithm on for accepted S3 connections, so small GET responses
 * wait for the client's delayed ACK (~40 ms per request on loopback). Tests and benchmarks start
 * Garage with this shim preloaded to measure hoard, not that stall.
 *
 * Build: gcc -shared -fPIC -O2 -o scripts/tcp_nodelay_shim.so scripts/tcp_nodelay_shim.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

typedef int (*accept_fn)(int, struct sockaddr *, socklen_t *);
typedef int (*accept4_fn)(int, struct sockaddr *, socklen_t *, int);

static accept_fn real_accept;
static accept4_fn real_accept4;

/* Resolved once at load time, before the program starts any thread. */
__attribute__((constructor)) static void resolve_real_functions(void) {
    real_accept = (accept_fn)dlsym(RTLD_NEXT, "accept");
    real_accept4 = (accept4_fn)dlsym(RTLD_NEXT, "accept4");
}

/* Fails harmlessly (EOPNOTSUPP) on sockets that are not TCP, such as Unix sockets. */
static int set_nodelay(int fd) {
    if (fd >= 0) {
        int saved = errno, one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        errno = saved;
    }
    return fd;
}

int accept(int sockfd, struct sockaddr *addr, socklen_t *addrlen) {
    if (!real_accept) {
        errno = ENOSYS;
        return -1;
    }
    return set_nodelay(real_accept(sockfd, addr, addrlen));
}

int accept4(int sockfd, struct sockaddr *addr, socklen_t *addrlen, int flags) {
    if (!real_accept4) {
        errno = ENOSYS;
        return -1;
    }
    return set_nodelay(real_accept4(sockfd, addr, addrlen, flags));
}
