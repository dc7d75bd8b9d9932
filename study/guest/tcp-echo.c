/*
 * tcp-echo: a linux-study workload that drives tcp_sendmsg().
 *
 * For IPv4 (127.0.0.1) and then IPv6 (::1) it listens on an ephemeral
 * loopback port, connects to itself, sends COUNT messages of SIZE bytes
 * with send() (__sys_sendto -> sock_sendmsg -> inet{,6}_sendmsg ->
 * tcp_sendmsg), has an echo thread send them back and checks the echo.
 * The echo thread is named "tcp-echo-srv", so a breakpoint can tell its
 * tcp_sendmsg calls from the client's by current->comm.
 *
 * Usage: tcp-echo [-4|-6] [-n COUNT] [-s SIZE] [-d MS]
 *
 * Build: gcc -static -Os -Wall -Wextra -Werror -pthread -o tcp-echo tcp-echo.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SIZE 65536

static long count = 3, size = 1000, delay_ms;

static void die(const char *fmt, ...)
{
	va_list ap;
	fflush(stdout);
	fputs("tcp-echo: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	/* Either thread may fail; _exit ends both without racing on exit(). */
	_exit(1);
}

static void usage(void)
{
	fprintf(stderr, "usage: tcp-echo [-4|-6] [-n COUNT] [-s SIZE] [-d MS]\n"
		"  -4        IPv4 only (127.0.0.1)\n"
		"  -6        IPv6 only (::1)\n"
		"  -n COUNT  messages per family (default 3)\n"
		"  -s SIZE   bytes per message, 1..%d (default 1000)\n"
		"  -d MS     delay before each send in milliseconds (default 0)\n",
		MAX_SIZE);
	exit(2);
}

static long parse_num(const char *what, const char *s, long min, long max)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max) {
		fprintf(stderr, "tcp-echo: invalid %s '%s' (must be %ld..%ld)\n", what, s,
			min, max);
		exit(2);
	}
	return v;
}

static void send_all(int fd, const char *buf, size_t len, const char *who)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("%s: send: %s", who, strerror(errno));
		buf += n;
		len -= n;
	}
}

/* Reads exactly len bytes; returns 0 on EOF before the first byte. */
static size_t recv_all(int fd, char *buf, size_t len, const char *who)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = recv(fd, buf + got, len - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("%s: recv: %s", who, strerror(errno));
		if (n == 0) {
			if (got == 0)
				return 0;
			die("%s: connection closed after %zu of %zu bytes", who, got, len);
		}
		got += n;
	}
	return got;
}

/* Message i: a "[tcp-echo msg i/count] " header, then a-z repeated, '\n' last. */
static void fill(char *buf, long i)
{
	char hdr[64];
	int h = snprintf(hdr, sizeof(hdr), "[tcp-echo msg %ld/%ld] ", i + 1, count);
	for (long k = 0; k < size; k++)
		buf[k] = k < h ? hdr[k] : 'a' + (k - h) % 26;
	if (size > h)
		buf[size - 1] = '\n';
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

struct server {
	int listen_fd;
	const char *name;
};

/* Echoes everything from one accepted connection until the peer's EOF. */
static void *echo_server(void *arg)
{
	struct server *srv = arg;
	static char buf[MAX_SIZE];
	char who[32];
	snprintf(who, sizeof(who), "%s echo", srv->name);

	pthread_setname_np(pthread_self(), "tcp-echo-srv");
	int fd;
	while ((fd = accept(srv->listen_fd, NULL, NULL)) < 0)
		if (errno != EINTR)
			die("%s: accept: %s", who, strerror(errno));
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("%s: recv: %s", who, strerror(errno));
		if (n == 0)
			break;
		send_all(fd, buf, n, who);
	}
	close(fd);
	return NULL;
}

static void run(int family)
{
	const char *name = family == AF_INET ? "ipv4" : "ipv6";
	struct sockaddr_storage ss;
	socklen_t alen;
	memset(&ss, 0, sizeof(ss));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		alen = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = in6addr_loopback;
		alen = sizeof(*sin6);
	}

	int lfd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		die("%s: socket: %s", name, strerror(errno));
	if (bind(lfd, (struct sockaddr *)&ss, alen) < 0)
		die("%s: bind to loopback: %s (is lo up?)", name, strerror(errno));
	if (listen(lfd, 1) < 0)
		die("%s: listen: %s", name, strerror(errno));
	if (getsockname(lfd, (struct sockaddr *)&ss, &alen) < 0)
		die("%s: getsockname: %s", name, strerror(errno));

	char addr[INET6_ADDRSTRLEN + 16], ip[INET6_ADDRSTRLEN];
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
		snprintf(addr, sizeof(addr), "%s:%u", ip, ntohs(sin->sin_port));
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
		snprintf(addr, sizeof(addr), "[%s]:%u", ip, ntohs(sin6->sin6_port));
	}

	struct server srv = { lfd, name };
	pthread_t thread;
	int err = pthread_create(&thread, NULL, echo_server, &srv);
	if (err)
		die("%s: pthread_create: %s", name, strerror(err));

	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("%s: socket: %s", name, strerror(errno));
	while (connect(fd, (struct sockaddr *)&ss, alen) < 0)
		if (errno != EINTR)
			die("%s: connect to %s: %s%s", name, addr, strerror(errno),
			    errno == ENETUNREACH ? " (is lo up?)" : "");

	static char msg[MAX_SIZE], echo[MAX_SIZE];
	for (long i = 0; i < count; i++) {
		fill(msg, i);
		if (delay_ms > 0) {
			fprintf(stderr, "tcp-echo: %s: pid %d: send %ld/%ld in %ld ms\n",
				name, (int)getpid(), i + 1, count, delay_ms);
			sleep_ms(delay_ms);
		}
		send_all(fd, msg, size, name);
		if (!recv_all(fd, echo, size, name))
			die("%s: connection closed before echo of message %ld", name, i + 1);
		if (memcmp(msg, echo, size) != 0) {
			long k = 0;
			while (msg[k] == echo[k])
				k++;
			die("%s: echo of message %ld differs at byte %ld", name, i + 1, k);
		}
	}

	/* Half-close; the echo side then sees EOF, closes, and we see EOF. */
	if (shutdown(fd, SHUT_WR) < 0)
		die("%s: shutdown: %s", name, strerror(errno));
	if (recv_all(fd, echo, 1, name))
		die("%s: unexpected data after the echo", name);
	if ((err = pthread_join(thread, NULL)))
		die("%s: pthread_join: %s", name, strerror(err));
	close(fd);
	close(lfd);

	printf("tcp-echo: %s %s sent %ld x %ld bytes, echo ok\n", name, addr, count, size);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	int v4 = 0, v6 = 0, opt;
	while ((opt = getopt(argc, argv, "46n:s:d:h")) != -1) {
		switch (opt) {
		case '4': v4 = 1; break;
		case '6': v6 = 1; break;
		case 'n': count = parse_num("count", optarg, 1, 1000000); break;
		case 's': size = parse_num("size", optarg, 1, MAX_SIZE); break;
		case 'd': delay_ms = parse_num("delay", optarg, 0, 3600000); break;
		default: usage();
		}
	}
	if (optind < argc)
		usage();
	if (!v4 && !v6)
		v4 = v6 = 1;
	if (v4)
		run(AF_INET);
	if (v6)
		run(AF_INET6);
	return 0;
}
