/*
 * study-init for FreeBSD: PID 1 of a linux-study FreeBSD guest.
 *
 * The kernel boots from QEMU's -kernel (PVH) with its root a host folder
 * over virtio-9p (vfs.root.mountfrom=p9fs:TAG, read-only) that holds only
 * this program and the guest programs, in /bin, and the empty /dev and
 * /status.  The kernel mounts devfs on /dev itself.  This program brings up
 * lo0, runs one command, reports its exit status in the host's status
 * folder, ends the console's output with a line of its own and powers off,
 * which ends QEMU.
 *
 * What it is told comes from the kernel environment (kenv(2)), which QEMU's
 * -append fills through the PVH start info: FreeBSD splits that line at
 * spaces, tabs and commas and keeps at most 127 bytes of each word, with no
 * quoting, so every value here is %XX-encoded by the host (xtask's
 * guest::freebsd_guest) and decoded below:
 *   study.argv.N=WORD  the command's words, N = 0, 1, ...; a word with no
 *                      '/' is looked for in /bin.
 *   study.status=p9fs:TAG
 *                      the host's status folder (xtask/src/guest/status.rs),
 *                      mounted on /status before the command starts; it holds
 *                      "token" (the host's) and, optionally, "linger" (the
 *                      host's: stay up after the command until the host
 *                      stops the guest), and gets "status" ("N\n").
 *                      Unlike Linux's init it stays mounted: p9fs has no
 *                      detached mount, and a forced unmount would revoke the
 *                      status file init keeps open.
 *   study.verbose      print what is being run.
 *
 * The status N is the exit code or 128+signal; 125 means study-init itself
 * could not start the command.  After the status is written,
 * "<<<linux-study end TOKEN>>>" goes to the console.
 */
#include "rt.h"

#include <sys/ioccom.h>
#include <sys/kenv.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/sockio.h>
#include <sys/uio.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/in_var.h>

#define MAX_ARGS 64
#define START_FAILED 125

static void say(const char *a, const char *b, long err)
{
	struct out o = { .len = 0 };
	put_s(&o, "study-init: ");
	put_s(&o, a);
	put_s(&o, b);
	if (err) {
		put_s(&o, ": errno ");
		put_n(&o, -err);
	}
	put_s(&o, "\n");
	flush(&o, 2);
}

/* The kenv value of `name`, %XX-decoded into buf; 0 when it is not set. */
static int kenv_get(const char *name, char *buf, int len)
{
	long n = sys6(SYS_kenv, KENV_GET, (long)name, (long)buf, len, 0, 0);
	if (n < 0)
		return 0;
	char *w = buf;
	for (const char *r = buf; *r; r++, w++) {
		int hi, lo;
#define HEX(c) ((c) >= '0' && (c) <= '9' ? (c) - '0' : (c) >= 'a' && (c) <= 'f' ? (c) - 'a' + 10 : (c) >= 'A' && (c) <= 'F' ? (c) - 'A' + 10 : -1)
		if (r[0] == '%' && (hi = HEX(r[1])) >= 0 && (lo = HEX(r[2])) >= 0) {
			*w = (char)(hi * 16 + lo);
			r += 2;
		} else {
			*w = *r;
		}
	}
	*w = '\0';
	return 1;
}

/* lo0 gets 127.0.0.1/8 and IFF_UP, as ifconfig(8) would do (SIOCAIFADDR,
 * then SIOCSIFFLAGS); the kernel adds ::1 itself when lo0 comes up. */
static void loopback_up(void)
{
	long s = sys(SYS_socket, AF_INET, SOCK_DGRAM, 0);
	if (s < 0) {
		say("socket for lo0", "", s);
		return;
	}
	struct in_aliasreq ifra;
	memset(&ifra, 0, sizeof ifra);
	memcpy(ifra.ifra_name, "lo0", 4);
	ifra.ifra_addr.sin_len = sizeof(struct sockaddr_in);
	ifra.ifra_addr.sin_family = AF_INET;
	ifra.ifra_addr.sin_addr.s_addr = __builtin_bswap32(0x7f000001);
	ifra.ifra_mask.sin_len = sizeof(struct sockaddr_in);
	ifra.ifra_mask.sin_family = AF_INET;
	ifra.ifra_mask.sin_addr.s_addr = __builtin_bswap32(0xff000000);
	long err = sys(SYS_ioctl, s, SIOCAIFADDR, &ifra);
	if (err < 0)
		say("lo0: SIOCAIFADDR 127.0.0.1", "", err);
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	memcpy(ifr.ifr_name, "lo0", 4);
	err = sys(SYS_ioctl, s, SIOCGIFFLAGS, &ifr);
	ifr.ifr_flags |= IFF_UP;
	if (err == 0)
		err = sys(SYS_ioctl, s, SIOCSIFFLAGS, &ifr);
	if (err < 0)
		say("lo0: IFF_UP", "", err);
	sys(SYS_close, s, 0, 0);
}

/* nmount(2)'s name/value pairs, each value NUL-terminated. */
static long mount_p9fs(const char *tag, const char *path)
{
	struct iovec iov[6] = {
		{ "fstype", 7 }, { "p9fs", 5 },
		{ "fspath", 7 }, { (void *)path, str_len(path) + 1 },
		{ "from", 5 }, { (void *)tag, str_len(tag) + 1 },
	};
	return sys(SYS_nmount, iov, 6, 0);
}

struct report {
	long status; /* the folder's "status" file, or -errno */
	char token[80];
};

static void open_report(struct report *r)
{
	char spec[128];
	r->status = -ENOENT;
	r->token[0] = '\0';
	if (!kenv_get("study.status", spec, sizeof spec))
		return;
	if (memcmp(spec, "p9fs:", 5) != 0) {
		say("study.status=", spec, 0);
		say("expected p9fs:TAG", "", 0);
		return;
	}
	long err = mount_p9fs(spec + 5, "/status");
	if (err < 0) {
		say("cannot mount the status folder ", spec, err);
		r->status = err;
		return;
	}
	long fd = sys(SYS_open, "/status/token", O_RDONLY, 0);
	long n = fd < 0 ? fd : sys(SYS_read, fd, r->token, sizeof(r->token) - 1);
	r->token[n > 0 ? n : 0] = '\0';
	for (char *p = r->token; *p; p++)
		if (*p == '\n')
			*p = '\0';
	if (fd >= 0)
		sys(SYS_close, fd, 0, 0);
	r->status = sys(SYS_open, "/status/status", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (r->status < 0)
		say("cannot open /status/status", "", r->status);
}

/* The status first, then the end line: the host has the status once it
 * sees the line. */
static void report_status(struct report *r, int status)
{
	struct out o = { .len = 0 };
	put_n(&o, status);
	put_s(&o, "\n");
	if (r->status < 0) {
		say("exit status ", o.buf, 0);
		return;
	}
	long err = sys(SYS_write, r->status, o.buf, o.len);
	if (err == (long)o.len)
		err = sys(SYS_fsync, r->status, 0, 0);
	if (err >= 0)
		err = sys(SYS_close, r->status, 0, 0);
	if (err < 0)
		say("cannot write the exit status", "", err);
	o.len = 0;
	put_s(&o, "\n<<<linux-study end ");
	put_s(&o, r->token);
	put_s(&o, ">>>\n");
	flush(&o, 1);
}

static int run(void)
{
	static char words[MAX_ARGS][128];
	static char path[160];
	char *argv[MAX_ARGS + 1];
	char name[32];
	int argc = 0;
	for (; argc < MAX_ARGS; argc++) {
		struct out o = { .len = 0 };
		put_s(&o, "study.argv.");
		put_n(&o, argc);
		o.buf[o.len] = '\0';
		memcpy(name, o.buf, o.len + 1);
		if (!kenv_get(name, words[argc], sizeof words[argc]))
			break;
		argv[argc] = words[argc];
	}
	argv[argc] = 0;
	if (argc == 0) {
		say("no command (study.argv.0)", "", 0);
		return START_FAILED;
	}
	const char *prog = argv[0];
	int slash = 0;
	for (const char *p = prog; *p; p++)
		slash |= *p == '/';
	if (!slash) {
		struct out o = { .len = 0 };
		put_s(&o, "/bin/");
		put_s(&o, prog);
		o.buf[o.len] = '\0';
		memcpy(path, o.buf, o.len + 1);
		prog = path;
	}
	char flag[8];
	if (kenv_get("study.verbose", flag, sizeof flag)) {
		struct out o = { .len = 0 };
		put_s(&o, "study-init: running:");
		for (int i = 0; i < argc; i++) {
			put_s(&o, " ");
			put_s(&o, argv[i]);
		}
		put_s(&o, "\n");
		flush(&o, 2);
	}
	static char *envp[] = { "PATH=/bin", 0 };
	long pid = sys(SYS_fork, 0, 0, 0);
	if (pid == 0) {
		long err = sys(SYS_execve, prog, argv, envp);
		say("cannot run ", prog, err);
		sys_exit(START_FAILED);
	}
	if (pid < 0) {
		say("fork", "", pid);
		return START_FAILED;
	}
	int status = 0;
	long got;
	while ((got = sys6(SYS_wait4, pid, (long)&status, 0, 0, 0, 0)) == -EINTR)
		;
	if (got < 0) {
		say("wait4", "", got);
		return START_FAILED;
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int main(int argc, char **argv, char **envp)
{
	(void)argc, (void)argv, (void)envp;
	/* PID 1 starts with no open files. */
	long fd = sys(SYS_open, "/dev/console", O_RDWR, 0);
	if (fd >= 0) {
		for (int i = 0; i < 3; i++)
			if (fd != i)
				sys(SYS_dup2, fd, i, 0);
		if (fd > 2)
			sys(SYS_close, fd, 0, 0);
	}
	loopback_up();
	struct report r;
	open_report(&r);
	report_status(&r, run());
	/* The host's "linger": the guest stays up for a reader of its memory. */
	long linger = sys(SYS_open, "/status/linger", O_RDONLY, 0);
	while (linger >= 0) {
		struct timespec t = { 3600, 0 };
		sys(SYS_nanosleep, &t, 0, 0);
	}
	/* FreeBSD waits kern.shutdown.poweroff_delay (5 s) before powering off,
	 * for disk caches; this guest has no disk. */
	static const char delay[] = "kern.shutdown.poweroff_delay";
	int zero = 0;
	sys6(SYS___sysctlbyname, (long)delay, sizeof delay - 1, 0, 0, (long)&zero, sizeof zero);
	sys(SYS_reboot, RB_POWEROFF | RB_NOSYNC, 0, 0);
	for (;;)
		sys(SYS_sched_yield, 0, 0, 0);
}
