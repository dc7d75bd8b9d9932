/*
 * tun-peer: a linux-study workload whose TCP peer lives in user space.
 *
 * It creates a TUN device, gives it the local address (fd00::1/64, or
 * 198.18.0.1/24 with -4) and plays the remote host (fd00::2 or 198.18.0.2)
 * itself: the kernel's packets for the peer come out of the tun fd as raw
 * IP packets, and this program writes the peer's answers back in.  A thread
 * of its own, named "tun-peer-local", is an ordinary TCP client that
 * connects to the peer's port 9, sends COUNT x BYTES with blocking send()
 * calls, shuts down its side and waits for the peer's FIN.  So one run
 * exercises the whole real stack, transmit (tcp_sendmsg, ..., tun_net_xmit)
 * and receive (tun_get_user -> netif_receive_skb -> tcp_v{4,6}_rcv, run in
 * the main thread's write() to the tun fd), with no second machine.
 *
 * The peer is a minimal passive TCP: it answers the SYN with a SYN-ACK
 * (MSS option only, so no timestamps, SACK or window scaling), ACKs every
 * data segment at once with a fixed 65535-byte window, checks the bytes
 * (the client sends 'a'..'z' repeated), answers the FIN with FIN-ACK and
 * waits for the last ACK.  Other packets (IPv6 router solicitations, MLD
 * reports, ...) are ignored.  The tun link is lossless, so the peer never
 * retransmits; it repeats its answer when the kernel retransmits.
 *
 * Exit status 0 only if the exchange completed as scripted; otherwise one
 * line on stderr and status 1 (2 for bad arguments).  -f breaks the script
 * on purpose, to see what the kernel does then.
 *
 * Usage: tun-peer [-4] [-i NAME] [-n BYTES] [-c COUNT] [-t SECONDS] [-f FAULT] [-v]
 *
 * Needs CAP_NET_ADMIN (run as root, e.g. in `unshare -n` on a host).
 *
 * Build: gcc -static -Os -Wall -Wextra -Werror -pthread -o tun-peer tun-peer.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip6.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>
#include <linux/if_tun.h>
#include <linux/ipv6.h> /* struct in6_ifreq; after netinet/in.h, which it defers to */

#define PEER_PORT 9	     /* discard: the peer keeps nothing */
#define PEER_ISS 0x50000000u /* fixed, so runs (and traces) repeat exactly */
#define PEER_WINDOW 65535    /* no window scaling: the most a SYN-ACK can offer */
#define TUN_MTU 1500	     /* a new tun device's default */
#define MAX_BYTES (64L << 20)

enum fault { NONE, NO_SYNACK, RST, NO_FIN, NO_ACK };
static const char *const fault_names[] = { "none", "nosynack", "rst", "nofin", "noack" };

enum state { LISTEN, SYN_RCVD, ESTABLISHED, CLOSE_WAIT, LAST_ACK, CLOSED, RESET };
static const char *const state_names[] = {
	"LISTEN", "SYN_RCVD", "ESTABLISHED", "CLOSE_WAIT", "LAST_ACK", "CLOSED", "RESET"
};

/* Options. */
static int family = AF_INET6, verbose;
static const char *ifname = "tun0";
static long nbytes = 1000, count = 1, timeout_s = 10;
static enum fault fault;

/* Addresses as network-order bytes (4 or 16 used). */
static uint8_t local_addr[16], peer_addr[16];
static size_t addr_len;

/* The peer's side of the connection; only the main thread touches it. */
static struct {
	enum state state;
	uint16_t port;		 /* the client's port */
	uint32_t irs, rcv_nxt;	 /* client's initial sequence number, next expected */
	uint32_t snd_nxt;	 /* the peer's next sequence number */
	long bytes, data_segs;	 /* payload received in order */
	long segs_in, segs_out;	 /* TCP segments read from / written to the tun */
	long dups, ignored;	 /* retransmitted segments; non-matching packets */
	uint32_t seen_end;	 /* the end of the sequence space the client sent */
} peer;

/* What the client thread is doing, for the timeout message. */
static _Atomic(const char *) local_step = "not started";
static atomic_long local_sends;

static void die(const char *fmt, ...)
{
	va_list ap;
	fflush(stdout);
	fputs("tun-peer: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	/* Either thread may fail; _exit ends both without racing on exit(). */
	_exit(1);
}

static void usage(FILE *out, int status)
{
	fprintf(out,
		"usage: tun-peer [-4] [-i NAME] [-n BYTES] [-c COUNT] [-t SECONDS] [-f FAULT] [-v]\n"
		"  -4          IPv4 198.18.0.1 -> 198.18.0.2 (default IPv6 fd00::1 -> fd00::2)\n"
		"  -i NAME     TUN device name (default tun0)\n"
		"  -n BYTES    bytes per send(), 1..%ld (default 1000)\n"
		"  -c COUNT    number of send() calls (default 1)\n"
		"  -t SECONDS  give up after this long (default 10)\n"
		"  -f FAULT    misbehave on purpose: nosynack (never answer the SYN),\n"
		"              rst (reset on the first data), nofin (never send the FIN),\n"
		"              noack (never ACK data: it stays in flight, the socket\n"
		"              ESTABLISHED, until -t, then exit 0)\n"
		"  -v          print every TCP segment crossing the device\n",
		MAX_BYTES);
	exit(status);
}

/* Bad arguments get one line, not the whole usage. */
static void bad_usage(const char *fmt, ...)
{
	va_list ap;
	fputs("tun-peer: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("; see tun-peer -h\n", stderr);
	exit(2);
}

static long parse_num(const char *what, const char *s, long min, long max)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		bad_usage("invalid %s '%s' (must be %ld..%ld)", what, s, min, max);
	return v;
}

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "[fd00::1]:port" or "198.18.0.1:port". */
static const char *addr_str(const uint8_t *addr, unsigned port, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];
	inet_ntop(family, addr, ip, sizeof(ip));
	snprintf(buf, len, family == AF_INET6 ? "[%s]:%u" : "%s:%u", ip, port);
	return buf;
}

/* ---- Device setup ---- */

static int open_tun(void)
{
	int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		/* devtmpfs normally has it; a bare /dev may not. */
		mkdir("/dev/net", 0755);
		if (mknod("/dev/net/tun", S_IFCHR | 0600, makedev(10, 200)) < 0)
			die("mknod /dev/net/tun: %s", strerror(errno));
		fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	}
	if (fd < 0)
		die("open /dev/net/tun: %s%s", strerror(errno),
		    errno == ENODEV ? " (kernel without CONFIG_TUN?)" : "");

	/* IFF_NO_PI: each read/write is exactly one IP packet, no header. */
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
	strcpy(ifr.ifr_name, ifname);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0)
		die("TUNSETIFF %s: %s", ifname, strerror(errno));
	return fd;
}

static void ifreq_ioctl(int sock, unsigned long req, const char *what, struct ifreq *ifr)
{
	strcpy(ifr->ifr_name, ifname);
	if (ioctl(sock, req, ifr) < 0)
		die("%s %s: %s", what, ifname, strerror(errno));
}

static void set_ipv4_addr(int sock, unsigned long req, const char *what, const char *addr)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
	sin->sin_family = AF_INET;
	inet_pton(AF_INET, addr, &sin->sin_addr);
	ifreq_ioctl(sock, req, what, &ifr);
}

/*
 * A fresh IPv6 address stays "tentative" (unusable as a source, so connect()
 * fails with EADDRNOTAVAIL) until the addrconf work item has run, even with
 * DAD off; /proc/net/if_inet6 shows the flag (IFA_F_TENTATIVE 0x40).
 */
static void wait_ipv6_ready(long deadline)
{
	char want[33];
	for (int i = 0; i < 16; i++)
		sprintf(want + 2 * i, "%02x", local_addr[i]);
	for (;;) {
		FILE *f = fopen("/proc/net/if_inet6", "re");
		if (!f)
			die("cannot read /proc/net/if_inet6: %s (is /proc mounted?)",
			    strerror(errno));
		char hex[33];
		unsigned idx, plen, scope, flags;
		int found = 0, tentative = 0;
		while (fscanf(f, "%32s %x %x %x %x %*s", hex, &idx, &plen, &scope, &flags) == 5)
			if (strcmp(hex, want) == 0) {
				found = 1;
				tentative = flags & 0x40;
			}
		fclose(f);
		if (!found)
			die("fd00::1 vanished from %s", ifname);
		if (!tentative)
			return;
		if (now_ms() > deadline)
			die("timeout: the address on %s stays tentative", ifname);
		usleep(10000);
	}
}

static void setup_device(long deadline)
{
	int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sock < 0)
		die("AF_INET socket: %s", strerror(errno));

	if (family == AF_INET) {
		/* On a point-to-point device SIOCSIFADDR makes a /32; the netmask
		 * then adds the on-link 198.18.0.0/24 route to the peer. */
		set_ipv4_addr(sock, SIOCSIFADDR, "SIOCSIFADDR", "198.18.0.1");
		set_ipv4_addr(sock, SIOCSIFNETMASK, "SIOCSIFNETMASK", "255.255.255.0");
	} else {
		/* tun is IFF_NOARP, which already skips DAD; saying so here too
		 * keeps connect() from waiting should that ever change.  Best
		 * effort: without /proc the NOARP rule still holds. */
		char path[64];
		snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/%s/accept_dad", ifname);
		int fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd >= 0) {
			if (write(fd, "0", 1) != 1 && verbose)
				fprintf(stderr, "tun-peer: %s: %s\n", path, strerror(errno));
			close(fd);
		}
	}

	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	ifreq_ioctl(sock, SIOCGIFFLAGS, "SIOCGIFFLAGS", &ifr);
	ifr.ifr_flags |= IFF_UP;
	ifreq_ioctl(sock, SIOCSIFFLAGS, "SIOCSIFFLAGS", &ifr);

	if (family == AF_INET6) {
		ifreq_ioctl(sock, SIOCGIFINDEX, "SIOCGIFINDEX", &ifr);
		int sock6 = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (sock6 < 0)
			die("AF_INET6 socket: %s%s", strerror(errno),
			    errno == EAFNOSUPPORT ? " (kernel without IPv6? try -4)" : "");
		/* A /64 prefix adds the on-link route fd00::/64 to the peer. */
		struct in6_ifreq ifr6;
		memset(&ifr6, 0, sizeof(ifr6));
		memcpy(&ifr6.ifr6_addr, local_addr, 16);
		ifr6.ifr6_prefixlen = 64;
		ifr6.ifr6_ifindex = ifr.ifr_ifindex;
		if (ioctl(sock6, SIOCSIFADDR, &ifr6) < 0)
			die("SIOCSIFADDR fd00::1/64 on %s: %s", ifname, strerror(errno));
		close(sock6);
		wait_ipv6_ready(deadline);
	}
	close(sock);
}

/* ---- The client: an ordinary blocking TCP socket ---- */

static int done_pipe[2];

/* Byte k of the stream is 'a' + k % 26, so the peer can check order. */
static void fill(char *buf, long len, long offset)
{
	for (long k = 0; k < len; k++)
		buf[k] = 'a' + (offset + k) % 26;
}

static void *client(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "tun-peer-local");
	struct sockaddr_storage ss;
	socklen_t alen;
	memset(&ss, 0, sizeof(ss));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		sin->sin_family = AF_INET;
		sin->sin_port = htons(PEER_PORT);
		memcpy(&sin->sin_addr, peer_addr, 4);
		alen = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(PEER_PORT);
		memcpy(&sin6->sin6_addr, peer_addr, 16);
		alen = sizeof(*sin6);
	}

	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("local: socket: %s", strerror(errno));
	local_step = "connect()";
	while (connect(fd, (struct sockaddr *)&ss, alen) < 0)
		if (errno != EINTR)
			die("local: connect: %s", strerror(errno));

	char *buf = malloc(nbytes);
	if (!buf)
		die("local: out of memory");
	local_step = "send()";
	for (long i = 0; i < count; i++) {
		fill(buf, nbytes, i * nbytes);
		for (long off = 0; off < nbytes;) {
			ssize_t n = send(fd, buf + off, nbytes - off, MSG_NOSIGNAL);
			local_sends++;
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				die("local: send: %s", strerror(errno));
			off += n;
		}
	}
	free(buf);

	/* Under noack nothing is acked: the socket stays ESTABLISHED, its data
	 * in flight, until the main thread ends the run at -t. */
	while (fault == NO_ACK) {
		local_step = "holding its data in flight (noack)";
		pause();
	}

	/* Our FIN goes after the data; the peer's FIN shows up as EOF. */
	local_step = "shutdown()";
	if (shutdown(fd, SHUT_WR) < 0) {
		/* ENOTCONN after a RST: the reason waits in SO_ERROR. */
		int err = errno, soerr = 0;
		socklen_t len = sizeof(soerr);
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
		die("local: shutdown: %s%s%s", strerror(err), soerr ? ", after " : "",
		    soerr ? strerror(soerr) : "");
	}
	local_step = "recv() waiting for the peer's FIN";
	char c;
	ssize_t n;
	while ((n = recv(fd, &c, 1, 0)) < 0 && errno == EINTR)
		;
	if (n < 0)
		die("local: recv: %s", strerror(errno));
	if (n > 0)
		die("local: unexpected data from the peer");
	close(fd);
	local_step = "done";
	if (write(done_pipe[1], "", 1) != 1)
		die("local: write to pipe: %s", strerror(errno));
	return NULL;
}

/* ---- The peer: raw packets on the tun fd ---- */

/* Ones' complement sum of big-endian 16-bit words (RFC 1071). */
static uint32_t sum16(uint32_t sum, const void *data, size_t len)
{
	const uint8_t *p = data;
	for (; len > 1; p += 2, len -= 2)
		sum += p[0] << 8 | p[1];
	if (len)
		sum += p[0] << 8;
	return sum;
}

static uint16_t fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return ~sum & 0xffff;
}

/* TCP checksum over the IPv4 or IPv6 pseudo-header and the segment. */
static uint16_t tcp_csum(const uint8_t *src, const uint8_t *dst, const void *seg, size_t len)
{
	uint32_t sum = sum16(0, src, addr_len);
	sum = sum16(sum, dst, addr_len);
	sum += IPPROTO_TCP + len;
	return fold(sum16(sum, seg, len));
}

static void print_seg(const char *dir, const struct tcphdr *th, size_t len)
{
	static const char names[] = "FSRPAU";
	char flags[8], *p = flags;
	for (int i = 0; i < 6; i++)
		if (th->th_flags & (1 << i))
			*p++ = names[i];
	*p = '\0';
	fprintf(stderr, "tun-peer: %s [%s] seq %u ack %u win %u len %zu\n", dir, flags,
		ntohl(th->th_seq), ntohl(th->th_ack), ntohs(th->th_win), len);
}

/* Sends one segment from the peer, seq = snd_nxt, acking rcv_nxt. */
static void send_seg(int tun, uint8_t flags)
{
	uint8_t pkt[64] __attribute__((aligned(4)));
	size_t iplen = family == AF_INET ? sizeof(struct iphdr) : sizeof(struct ip6_hdr);
	size_t tcplen = sizeof(struct tcphdr) + (flags & TH_SYN ? 4 : 0);
	memset(pkt, 0, sizeof(pkt));

	struct tcphdr *th = (struct tcphdr *)(pkt + iplen);
	th->th_sport = htons(PEER_PORT);
	th->th_dport = htons(peer.port);
	th->th_seq = htonl(peer.snd_nxt);
	th->th_ack = flags & TH_ACK ? htonl(peer.rcv_nxt) : 0;
	th->th_off = tcplen / 4;
	th->th_flags = flags;
	th->th_win = htons(PEER_WINDOW);
	if (flags & TH_SYN) {
		/* Without an MSS option the kernel would assume 536 bytes. */
		unsigned mss = TUN_MTU - iplen - sizeof(struct tcphdr);
		uint8_t *opt = (uint8_t *)(th + 1);
		opt[0] = TCPOPT_MAXSEG;
		opt[1] = TCPOLEN_MAXSEG;
		opt[2] = mss >> 8;
		opt[3] = mss & 0xff;
	}
	th->th_sum = htons(tcp_csum(peer_addr, local_addr, th, tcplen));

	if (family == AF_INET) {
		struct iphdr *ip = (struct iphdr *)pkt;
		ip->version = 4;
		ip->ihl = 5;
		ip->tot_len = htons(iplen + tcplen);
		ip->frag_off = htons(IP_DF);
		ip->ttl = 64;
		ip->protocol = IPPROTO_TCP;
		memcpy(&ip->saddr, peer_addr, 4);
		memcpy(&ip->daddr, local_addr, 4);
		ip->check = htons(fold(sum16(0, ip, iplen)));
	} else {
		struct ip6_hdr *ip6 = (struct ip6_hdr *)pkt;
		ip6->ip6_flow = htonl(6u << 28);
		ip6->ip6_plen = htons(tcplen);
		ip6->ip6_nxt = IPPROTO_TCP;
		ip6->ip6_hlim = 64;
		memcpy(&ip6->ip6_src, peer_addr, 16);
		memcpy(&ip6->ip6_dst, local_addr, 16);
	}

	if (verbose)
		print_seg("peer ->", th, 0);
	ssize_t n = write(tun, pkt, iplen + tcplen);
	if (n != (ssize_t)(iplen + tcplen))
		die("write to %s: %s", ifname, n < 0 ? strerror(errno) : "short write");
	peer.segs_out++;
	if (flags & (TH_SYN | TH_FIN))
		peer.snd_nxt++;
}

static int seq_before(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) < 0;
}

/* Takes in-order payload; returns 0 for a retransmission of old data. */
static int take_data(const uint8_t *data, size_t len, uint32_t seq)
{
	if (seq_before(peer.rcv_nxt, seq))
		return 0; /* a hole: cannot happen on tun; the dup ACK asks again */
	uint32_t skip = peer.rcv_nxt - seq;
	if (skip >= len)
		return 0;
	for (size_t k = skip; k < len; k++)
		if (data[k] != 'a' + (peer.bytes + k - skip) % 26)
			die("peer: byte %ld of the stream is wrong", peer.bytes + (long)(k - skip));
	peer.bytes += len - skip;
	peer.rcv_nxt += len - skip;
	peer.data_segs++;
	return 1;
}

/* One TCP segment for the peer: the whole server-side state machine. */
static void handle_tcp(int tun, const struct tcphdr *th, size_t seglen)
{
	size_t hlen = th->th_off * 4;
	const uint8_t *data = (const uint8_t *)th + hlen;
	size_t len = seglen - hlen;
	uint32_t seq = ntohl(th->th_seq), ack = ntohl(th->th_ack);
	uint8_t flags = th->th_flags;

	peer.segs_in++;
	if (verbose)
		print_seg("local ->", th, len);
	if (flags & TH_RST)
		die("peer: the local side sent a RST (peer in %s)", state_names[peer.state]);

	switch (peer.state) {
	case LISTEN:
		if ((flags & (TH_SYN | TH_ACK)) != TH_SYN) {
			peer.ignored++;
			return;
		}
		if (fault == NO_SYNACK)
			return;
		peer.port = ntohs(th->th_sport);
		peer.irs = seq;
		peer.rcv_nxt = seq + 1;
		peer.seen_end = seq + 1;
		peer.snd_nxt = PEER_ISS;
		send_seg(tun, TH_SYN | TH_ACK);
		peer.state = SYN_RCVD;
		return;
	case SYN_RCVD:
		if (flags & TH_SYN) {
			/* The SYN again: our SYN-ACK was slow; repeat it. */
			peer.dups++;
			peer.snd_nxt = PEER_ISS;
			send_seg(tun, TH_SYN | TH_ACK);
			return;
		}
		if (!(flags & TH_ACK) || ack != peer.snd_nxt)
			die("peer: handshake ACK %u, expected %u", ack, peer.snd_nxt);
		peer.state = ESTABLISHED;
		break;
	case RESET:
	case CLOSED:
		peer.ignored++;
		return;
	default:
		break;
	}

	uint32_t end = seq + len + !!(flags & TH_FIN);
	if (seq_before(peer.seen_end, end))
		peer.seen_end = end;
	if (fault == NO_ACK) {
		if (len > 0)
			take_data(data, len, seq);
		return;
	}
	if (len > 0) {
		if (!take_data(data, len, seq))
			peer.dups++;
		else if (fault == RST) {
			send_seg(tun, TH_RST | TH_ACK);
			peer.state = RESET;
			return;
		}
	}
	if (flags & TH_FIN) {
		if (seq + len == peer.rcv_nxt && peer.state == ESTABLISHED) {
			peer.rcv_nxt++;
			peer.state = CLOSE_WAIT;
		} else {
			peer.dups++;
		}
	}
	if (len > 0 || (flags & TH_FIN)) {
		/* Answer everything that takes sequence space; the FIN rides on
		 * the ACK of the client's FIN. */
		if (peer.state == CLOSE_WAIT && fault != NO_FIN) {
			send_seg(tun, TH_FIN | TH_ACK);
			peer.state = LAST_ACK;
		} else if (peer.state == LAST_ACK) {
			peer.snd_nxt--; /* the client missed our FIN: repeat it */
			send_seg(tun, TH_FIN | TH_ACK);
		} else {
			send_seg(tun, TH_ACK);
		}
	}
	if (peer.state == LAST_ACK && (flags & TH_ACK) && ack == peer.snd_nxt)
		peer.state = CLOSED;
}

static void ignore(const uint8_t *pkt, size_t n)
{
	peer.ignored++;
	if (verbose && n >= 20)
		fprintf(stderr, "tun-peer: ignored a %zu-byte IPv%d packet, next header %u\n", n,
			pkt[0] >> 4, pkt[0] >> 4 == 6 ? pkt[6] : pkt[9]);
}

/* One packet from the device: TCP for the peer, or something to ignore. */
static void handle_packet(int tun, const uint8_t *pkt, size_t n)
{
	const uint8_t *src, *dst, *seg;
	size_t seglen;
	int version = n ? pkt[0] >> 4 : 0;

	if (family == AF_INET && version == 4 && n >= sizeof(struct iphdr)) {
		const struct iphdr *ip = (const struct iphdr *)pkt;
		size_t ihl = ip->ihl * 4, tot = ntohs(ip->tot_len);
		if (ip->protocol != IPPROTO_TCP || ihl < 20 || tot < ihl || tot > n ||
		    (ntohs(ip->frag_off) & (IP_MF | IP_OFFMASK))) {
			ignore(pkt, n);
			return;
		}
		if (fold(sum16(0, ip, ihl)) != 0)
			die("peer: IPv4 header checksum wrong");
		src = (const uint8_t *)&ip->saddr;
		dst = (const uint8_t *)&ip->daddr;
		seg = pkt + ihl;
		seglen = tot - ihl;
	} else if (family == AF_INET6 && version == 6 && n >= sizeof(struct ip6_hdr)) {
		/* MLD reports come with a hop-by-hop header, router
		 * solicitations are ICMPv6: neither has TCP next. */
		const struct ip6_hdr *ip6 = (const struct ip6_hdr *)pkt;
		seglen = ntohs(ip6->ip6_plen);
		if (ip6->ip6_nxt != IPPROTO_TCP || sizeof(*ip6) + seglen > n) {
			ignore(pkt, n);
			return;
		}
		src = (const uint8_t *)&ip6->ip6_src;
		dst = (const uint8_t *)&ip6->ip6_dst;
		seg = pkt + sizeof(*ip6);
	} else {
		ignore(pkt, n);
		return;
	}

	const struct tcphdr *th = (const struct tcphdr *)seg;
	if (memcmp(src, local_addr, addr_len) || memcmp(dst, peer_addr, addr_len) ||
	    seglen < sizeof(*th) || th->th_off * 4u < sizeof(*th) || th->th_off * 4u > seglen ||
	    ntohs(th->th_dport) != PEER_PORT ||
	    (peer.state != LISTEN && ntohs(th->th_sport) != peer.port)) {
		ignore(pkt, n);
		return;
	}
	/* tun offers no checksum offload unless TUNSETOFFLOAD asks for it,
	 * so the kernel must have filled in the real checksum. */
	if (tcp_csum(src, dst, seg, seglen) != 0)
		die("peer: TCP checksum wrong");
	handle_tcp(tun, th, seglen);
}

int main(int argc, char **argv)
{
	int opt;
	while ((opt = getopt(argc, argv, ":4i:n:c:t:f:vh")) != -1) {
		switch (opt) {
		case '4': family = AF_INET; break;
		case 'i':
			if (!*optarg || strlen(optarg) >= IFNAMSIZ || strchr(optarg, '/'))
				bad_usage("invalid device name '%s'", optarg);
			ifname = optarg;
			break;
		case 'n': nbytes = parse_num("byte count", optarg, 1, MAX_BYTES); break;
		case 'c': count = parse_num("send count", optarg, 1, 1000000); break;
		case 't': timeout_s = parse_num("timeout", optarg, 1, 3600); break;
		case 'f':
			for (fault = NONE + 1; fault <= NO_ACK; fault++)
				if (strcmp(optarg, fault_names[fault]) == 0)
					break;
			if (fault > NO_ACK)
				bad_usage("unknown fault '%s' (nosynack, rst, nofin or noack)", optarg);
			break;
		case 'v': verbose = 1; break;
		case 'h': usage(stdout, 0); break;
		case ':': bad_usage("option -%c needs an argument", optopt); break;
		default: bad_usage("unknown option -%c", optopt);
		}
	}
	if (optind < argc)
		bad_usage("unexpected argument '%s'", argv[optind]);

	addr_len = family == AF_INET ? 4 : 16;
	inet_pton(family, family == AF_INET ? "198.18.0.1" : "fd00::1", local_addr);
	inet_pton(family, family == AF_INET ? "198.18.0.2" : "fd00::2", peer_addr);

	long start = now_ms(), deadline = start + timeout_s * 1000;
	int tun = open_tun();
	setup_device(deadline);

	if (pipe2(done_pipe, O_CLOEXEC) < 0)
		die("pipe: %s", strerror(errno));
	pthread_t thread;
	int err = pthread_create(&thread, NULL, client, NULL);
	if (err)
		die("pthread_create: %s", strerror(err));

	/* The peer's loop: until both sides are closed, or the time is up. */
	static uint8_t pkt[65536 + 64] __attribute__((aligned(8)));
	int local_done = 0;
	while (!(local_done && peer.state == CLOSED)) {
		long left = deadline - now_ms();
		if (left <= 0 && fault == NO_ACK) {
			/* What the local side must hold unacked: its snd_nxt - snd_una. */
			printf("tun-peer: noack: no FIN from the local side, peer %s, %u bytes of sequence space in flight "
			       "(%ld data bytes arrived, none acked) after %ld s\n",
			       state_names[peer.state], peer.seen_end - (peer.irs + 1), peer.bytes,
			       timeout_s);
			fflush(stdout);
			_exit(0);
		}
		if (left <= 0)
			die("timeout after %ld s: peer in %s, local in %s, %ld of %ld bytes arrived",
			    timeout_s, state_names[peer.state], (const char *)local_step,
			    peer.bytes, nbytes * count);
		struct pollfd pfd[2] = { { tun, POLLIN, 0 }, { done_pipe[0], POLLIN, 0 } };
		if (poll(pfd, 2, left) < 0 && errno != EINTR)
			die("poll: %s", strerror(errno));
		if (pfd[1].revents)
			local_done = 1;
		if (!pfd[0].revents)
			continue;
		ssize_t n;
		while ((n = read(tun, pkt, sizeof(pkt))) > 0)
			handle_packet(tun, pkt, n);
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			die("read from %s: %s", ifname, strerror(errno));
	}
	pthread_join(thread, NULL);
	if (peer.bytes != nbytes * count)
		die("peer got %ld of %ld bytes", peer.bytes, nbytes * count);

	char from[64], to[64];
	printf("tun-peer: %s %s -> %s on %s: %ld bytes in %ld send() calls; peer got "
	       "%ld data segments, %ld segments in, %ld out, %ld repeated, %ld other "
	       "packets ignored; clean close in %ld ms\n",
	       family == AF_INET ? "ipv4" : "ipv6",
	       addr_str(local_addr, peer.port, from, sizeof(from)),
	       addr_str(peer_addr, PEER_PORT, to, sizeof(to)), ifname, peer.bytes,
	       (long)local_sends, peer.data_segs, peer.segs_in, peer.segs_out, peer.dups,
	       peer.ignored, now_ms() - start);
	return 0;
}
