/*
 * tcp-echo for FreeBSD: the linux-study workload that drives tcp_output()
 * (sendto(2) -> sosend -> tcp_usr_send -> tcp_output -> ip_output ->
 * looutput -> if_simloop), with the options and output of
 * study/guest/tcp-echo.c.
 *
 * For IPv4 (127.0.0.1) and then IPv6 (::1) it listens on an ephemeral
 * loopback port, connects to itself, sends COUNT messages of SIZE bytes,
 * has an echo server send them back and checks the echo.  Linux's version
 * runs the echo server in a thread; without libthr the server here is a
 * forked child, so a breakpoint tells the two sides apart by pid, not by
 * thread name.
 *
 * Usage: tcp-echo [-4|-6] [-n COUNT] [-s SIZE] [-d MS]
 */
#include "rt.h"

#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <netinet/in.h>

#define MAX_SIZE 65536

static long count = 3, size = 1000, delay_ms;

static __attribute__((noreturn)) void die(const char *name, const char *what, long err)
{
	struct out o = { .len = 0 };
	put_s(&o, "tcp-echo: ");
	put_s(&o, name);
	put_s(&o, ": ");
	put_s(&o, what);
	if (err) {
		put_s(&o, ": errno ");
		put_n(&o, -err);
	}
	put_s(&o, "\n");
	flush(&o, 2);
	sys_exit(1);
}

static __attribute__((noreturn)) void usage(void)
{
	struct out o = { .len = 0 };
	put_s(&o, "usage: tcp-echo [-4|-6] [-n COUNT] [-s SIZE] [-d MS]\n"
		  "  -4        IPv4 only (127.0.0.1)\n"
		  "  -6        IPv6 only (::1)\n"
		  "  -n COUNT  messages per family (default 3)\n"
		  "  -s SIZE   bytes per message, 1..65536 (default 1000)\n"
		  "  -d MS     delay before each send in milliseconds (default 0)\n");
	flush(&o, 2);
	sys_exit(2);
}

static long number(const char *what, const char *s, long min, long max)
{
	long v = s ? parse_num(s, min, max) : -1;
	if (v < 0) {
		struct out o = { .len = 0 };
		put_s(&o, "tcp-echo: invalid ");
		put_s(&o, what);
		put_s(&o, " '");
		put_s(&o, s ? s : "");
		put_s(&o, "' (must be ");
		put_n(&o, min);
		put_s(&o, "..");
		put_n(&o, max);
		put_s(&o, ")\n");
		flush(&o, 2);
		sys_exit(2);
	}
	return v;
}

static void send_all(long fd, const char *buf, long len, const char *who)
{
	while (len > 0) {
		long n = sys6(SYS_sendto, fd, (long)buf, len, MSG_NOSIGNAL, 0, 0);
		if (n == -EINTR)
			continue;
		if (n < 0)
			die(who, "send", n);
		buf += n;
		len -= n;
	}
}

/* Reads exactly len bytes; returns 0 on EOF before the first byte. */
static long recv_all(long fd, char *buf, long len, const char *who)
{
	long got = 0;
	while (got < len) {
		long n = sys6(SYS_recvfrom, fd, (long)(buf + got), len - got, 0, 0, 0);
		if (n == -EINTR)
			continue;
		if (n < 0)
			die(who, "recv", n);
		if (n == 0) {
			if (got == 0)
				return 0;
			die(who, "connection closed in the middle of a message", 0);
		}
		got += n;
	}
	return got;
}

/* Message i: a "[tcp-echo msg i/count] " header, then a-z repeated, '\n' last. */
static void fill(char *buf, long i)
{
	struct out h = { .len = 0 };
	put_s(&h, "[tcp-echo msg ");
	put_n(&h, i + 1);
	put_s(&h, "/");
	put_n(&h, count);
	put_s(&h, "] ");
	for (long k = 0; k < size; k++)
		buf[k] = k < (long)h.len ? h.buf[k] : 'a' + (k - h.len) % 26;
	if (size > (long)h.len)
		buf[size - 1] = '\n';
}

/* Echoes everything from one accepted connection until the peer's EOF. */
static __attribute__((noreturn)) void echo_server(long lfd, const char *name)
{
	static char buf[MAX_SIZE];
	long fd;
	while ((fd = sys(SYS_accept, lfd, 0, 0)) == -EINTR)
		;
	if (fd < 0)
		die(name, "echo: accept", fd);
	for (;;) {
		long n = sys6(SYS_recvfrom, fd, (long)buf, sizeof buf, 0, 0, 0);
		if (n == -EINTR)
			continue;
		if (n < 0)
			die(name, "echo: recv", n);
		if (n == 0)
			break;
		send_all(fd, buf, n, name);
	}
	sys(SYS_close, fd, 0, 0);
	sys_exit(0);
}

static void run(int family)
{
	const char *name = family == AF_INET ? "ipv4" : "ipv6";
	union {
		struct sockaddr sa;
		struct sockaddr_in sin;
		struct sockaddr_in6 sin6;
	} ss;
	memset(&ss, 0, sizeof ss);
	socklen_t alen;
	if (family == AF_INET) {
		ss.sin.sin_len = alen = sizeof ss.sin;
		ss.sin.sin_family = AF_INET;
		ss.sin.sin_addr.s_addr = __builtin_bswap32(INADDR_LOOPBACK);
	} else {
		ss.sin6.sin6_len = alen = sizeof ss.sin6;
		ss.sin6.sin6_family = AF_INET6;
		ss.sin6.sin6_addr.s6_addr[15] = 1;
	}
	long lfd = sys(SYS_socket, family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		die(name, "socket", lfd);
	long err = sys(SYS_bind, lfd, &ss, alen);
	if (err < 0)
		die(name, "bind to loopback (is lo0 up?)", err);
	if ((err = sys(SYS_listen, lfd, 1, 0)) < 0)
		die(name, "listen", err);
	if ((err = sys(SYS_getsockname, lfd, &ss, &alen)) < 0)
		die(name, "getsockname", err);
	unsigned port = __builtin_bswap16(family == AF_INET ? ss.sin.sin_port : ss.sin6.sin6_port);

	long server = sys(SYS_fork, 0, 0, 0);
	if (server < 0)
		die(name, "fork", server);
	if (server == 0)
		echo_server(lfd, name);

	long fd = sys(SYS_socket, family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die(name, "socket", fd);
	while ((err = sys(SYS_connect, fd, &ss, alen)) == -EINTR)
		;
	if (err < 0)
		die(name, "connect to loopback", err);

	static char msg[MAX_SIZE], echo[MAX_SIZE];
	for (long i = 0; i < count; i++) {
		fill(msg, i);
		if (delay_ms > 0) {
			struct out o = { .len = 0 };
			put_s(&o, "tcp-echo: ");
			put_s(&o, name);
			put_s(&o, ": pid ");
			put_n(&o, sys(SYS_getpid, 0, 0, 0));
			put_s(&o, ": send ");
			put_n(&o, i + 1);
			put_s(&o, "/");
			put_n(&o, count);
			put_s(&o, " in ");
			put_n(&o, delay_ms);
			put_s(&o, " ms\n");
			flush(&o, 2);
			struct timespec ts = { delay_ms / 1000, (delay_ms % 1000) * 1000000L };
			while (sys(SYS_nanosleep, &ts, &ts, 0) == -EINTR)
				;
		}
		send_all(fd, msg, size, name);
		if (!recv_all(fd, echo, size, name))
			die(name, "connection closed before the echo", 0);
		if (memcmp(msg, echo, size) != 0)
			die(name, "the echo differs from the message", 0);
	}

	/* Half-close; the echo side then sees EOF, closes, and we see EOF. */
	if ((err = sys(SYS_shutdown, fd, SHUT_WR, 0)) < 0)
		die(name, "shutdown", err);
	if (recv_all(fd, echo, 1, name))
		die(name, "unexpected data after the echo", 0);
	int status = 0;
	while ((err = sys6(SYS_wait4, server, (long)&status, 0, 0, 0, 0)) == -EINTR)
		;
	if (err < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		die(name, "the echo server failed", 0);
	sys(SYS_close, fd, 0, 0);
	sys(SYS_close, lfd, 0, 0);

	struct out o = { .len = 0 };
	put_s(&o, "tcp-echo: ");
	put_s(&o, name);
	put_s(&o, family == AF_INET ? " 127.0.0.1:" : " [::1]:");
	put_n(&o, port);
	put_s(&o, " sent ");
	put_n(&o, count);
	put_s(&o, " x ");
	put_n(&o, size);
	put_s(&o, " bytes, echo ok\n");
	flush(&o, 1);
}

int main(int argc, char **argv, char **envp)
{
	(void)envp;
	int v4 = 0, v6 = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (a[0] != '-' || !a[1] || a[2])
			usage();
		switch (a[1]) {
		case '4': v4 = 1; break;
		case '6': v6 = 1; break;
		case 'n': count = number("count", argv[++i], 1, 1000000); break;
		case 's': size = number("size", argv[++i], 1, MAX_SIZE); break;
		case 'd': delay_ms = number("delay", argv[++i], 0, 3600000); break;
		default: usage();
		}
	}
	if (!v4 && !v6)
		v4 = v6 = 1;
	if (v4)
		run(AF_INET);
	if (v6)
		run(AF_INET6);
	return 0;
}
