/* Round trips over one TCP connection, as an RPC client, an HTTP keep-alive client or a TLS
 * handshake makes them: both ends set TCP_NODELAY and write each 8-byte message as two small
 * writes, so a path that holds back a small write (Nagle, MSG_MORE, a cork) shows as a stall.
 *
 *   roundtrip serve PORT            answers every connection until killed
 *   roundtrip ask ADDRESS PORT COUNT [NAME:PORT]
 *       makes COUNT round trips and prints each one's time in microseconds, one a line (exit 1
 *       when it cannot connect within 10 s, 2 on a short or wrong reply); with NAME:PORT,
 *       ADDRESS:PORT is an HTTP proxy asked to CONNECT there first
 *
 * Used by the end-to-end tests (tests/network.rs) and bench/latency.sh, built static so that it
 * runs in a busybox image. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { HALF = 4, MESSAGE = 2 * HALF };

static int nodelay(int s) {
    int on = 1;
    return setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
}

/* Reads exactly n bytes; 0 when the peer closed first. */
static int read_all(int s, char *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(s, buf + got, n - got);
        if (r <= 0) return 0;
        got += (size_t)r;
    }
    return 1;
}

/* One message as two writes of HALF bytes each. */
static int write_halves(int s, const char *message) {
    return write(s, message, HALF) == HALF && write(s, message + HALF, HALF) == HALF;
}

static void answer(int c) {
    char buf[MESSAGE];
    nodelay(c);
    while (read_all(c, buf, MESSAGE)) {
        buf[0] = 'R';
        if (!write_halves(c, buf)) break;
    }
    close(c);
}

static int serve(int port) {
    int s = socket(AF_INET, SOCK_STREAM, 0), on = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 64) != 0) {
        perror("roundtrip serve");
        return 1;
    }
    signal(SIGCHLD, SIG_IGN);
    for (;;) {
        int c = accept(s, NULL, NULL);
        if (c < 0) continue;
        if (fork() == 0) {
            close(s);
            answer(c);
            _exit(0);
        }
        close(c);
    }
}

static long long now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

/* Connects to ADDR:PORT (an IPv4 literal), retrying for 10 s: a published port or a server
 * just started may not answer at once. With a target (NAME:PORT), ADDR:PORT is an HTTP proxy
 * asked to CONNECT there first, as pip or mvn do with https_proxy. */
static int open_connection(const char *address, int port, const char *target) {
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    if (inet_pton(AF_INET, address, &a.sin_addr) != 1) {
        fprintf(stderr, "roundtrip: %s is not an IPv4 address\n", address);
        return -1;
    }
    long long deadline = now_us() + 10000000;
    int s = -1;
    while (s < 0 && now_us() < deadline) {
        s = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
            close(s);
            s = -1;
            usleep(20000);
        }
    }
    if (s < 0) {
        fprintf(stderr, "roundtrip: cannot connect to %s:%d\n", address, port);
        return -1;
    }
    nodelay(s);
    if (target) {
        char request[512], head[4096];
        int n = snprintf(request, sizeof request, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target);
        if (write(s, request, n) != n) return -1;
        size_t got = 0;
        /* The proxy's answer ends with an empty line; nothing follows it before we speak. */
        while (got < sizeof head - 1 && (got < 4 || memcmp(head + got - 4, "\r\n\r\n", 4) != 0)) {
            ssize_t r = read(s, head + got, 1);
            if (r <= 0) break;
            got += (size_t)r;
        }
        head[got] = 0;
        if (strncmp(head, "HTTP/1.1 200", 12) != 0 && strncmp(head, "HTTP/1.0 200", 12) != 0) {
            fprintf(stderr, "roundtrip: the proxy refused CONNECT %s: %s\n", target, head);
            return -1;
        }
    }
    return s;
}

static int ask(const char *address, int port, int count, const char *target) {
    int s = open_connection(address, port, target);
    if (s < 0) return 1;
    for (int i = 0; i < count; i++) {
        char message[MESSAGE], reply[MESSAGE];
        snprintf(message, sizeof message, "Q%06d", i % 1000000);
        long long start = now_us();
        if (!write_halves(s, message) || !read_all(s, reply, MESSAGE) || reply[0] != 'R' ||
            memcmp(reply + 1, message + 1, MESSAGE - 1) != 0) {
            fprintf(stderr, "roundtrip: a short or wrong reply to message %d\n", i);
            return 2;
        }
        printf("%lld\n", now_us() - start);
    }
    close(s);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "serve") == 0) return serve(atoi(argv[2]));
    if ((argc == 5 || argc == 6) && strcmp(argv[1], "ask") == 0)
        return ask(argv[2], atoi(argv[3]), atoi(argv[4]), argc == 6 ? argv[5] : NULL);
    fprintf(stderr, "usage: roundtrip serve PORT | roundtrip ask ADDRESS PORT COUNT [NAME:PORT]\n");
    return 64;
}
