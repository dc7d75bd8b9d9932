/*
 * study-init: PID 1 of a linux-study guest.
 *
 * The kernel boots with the host's root filesystem mounted read-only over
 * virtio-9p and `init=/path/to/study-init`.  This program mounts the usual
 * pseudo and scratch filesystems, brings up loopback, runs one job (or an
 * interactive shell), reports the job's exit status in the host's status
 * folder, ends the console's output with a line of its own and reboots,
 * which makes QEMU (-no-reboot) exit.
 *
 * Kernel command line parameters (space separated, "double quotes" allowed):
 *   study.job=PATH   job file: NUL-separated fields, field 0 = working
 *                    directory, fields 1.. = argv (at least one field).
 *   study.env=PATH   optional: NUL-separated KEY=VALUE entries added to
 *                    (and overriding) the child's environment.
 *   study.cwd=DIR    working directory of the interactive shell (no job).
 *   study.keep=PATH  a host path under /tmp, /run, /root or /var that must
 *                    stay visible over the tmpfs mounted there (the
 *                    repository); one word per path, repeated for several.
 *
 * A value with a space is written key="a b": the kernel and this parser
 * both take it as one word and drop the quotes.  Commas are not special.
 *   study.term=TERM  value of TERM (default "linux").
 *   study.hold=PATH  start the job only once PATH exists: gdb creates it
 *                    when its breakpoints are in, so it can read vmlinux
 *                    while the kernel boots instead of before.
 *   study.status=9p:TAG | study.status=hostfs:PATH
 *                    the host's status folder (xtask/src/guest/status.rs):
 *                    mounted before the job starts, its "status" file opened
 *                    and the folder unmounted, so that the job cannot write
 *                    it nor see it.  It holds "token" (the host's) and,
 *                    optionally, "linger" (the host's: keep the guest up
 *                    after the job until the host stops it).
 *   study.port=DEV   no job file: the command comes over the serial port DEV
 *                    (`run --snapshot`, xtask/src/guest/snapshot.rs).  Once
 *                    set up, init prints "study-init: waiting for a command
 *                    on DEV" and reads "LEN\n" then LEN bytes: NUL-separated
 *                    token, working directory and argv.  The host saves the
 *                    guest there and restores it for each command.  After
 *                    the command, "status TOKEN N\n" goes back on DEV, then
 *                    the end line with TOKEN on the console.
 *   study.verbose    print what is being run and optional-mount failures.
 *
 * Without study.job, /bin/sh -i runs on the console.  Either way the exit
 * status N is the exit code or 128+signal; 125 means study-init itself could
 * not start the job.  With study.status, N goes to the status file ("N\n"),
 * then "<<<linux-study end TOKEN>>>" is printed on the console: the job's
 * output is everything before it (a job printing that line would need the
 * token, which it cannot read).  Without, N is printed on stderr.
 *
 * Build: gcc -static -Os -Wall -Wextra -Werror -o study-init init.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define SETUP_FAILED 125

static int verbose;

/* Reads a whole file into a NUL-terminated malloc'd buffer. */
static char *read_file(const char *path, size_t *lenp)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap + 1);
	for (;;) {
		if (!buf)
			break;
		if (len == cap) {
			char *nbuf = realloc(buf, 2 * cap + 1);
			if (!nbuf) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nbuf;
			cap *= 2;
		}
		ssize_t n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = errno;
			free(buf);
			buf = NULL;
			errno = err;
			break;
		}
		if (n == 0) {
			buf[len] = '\0';
			*lenp = len;
			break;
		}
		len += n;
	}
	int err = errno;
	close(fd);
	errno = err;
	if (!buf && errno == 0)
		errno = ENOMEM;
	return buf;
}

/*
 * Splits buf[0..len) at NUL bytes into a NULL-terminated array of pointers
 * into buf (which must have buf[len] == '\0').  A trailing NUL ends the last
 * field rather than starting an empty one; empty fields elsewhere are kept
 * (an empty argv element is legitimate).
 */
static char **split_fields(char *buf, size_t len, size_t *countp)
{
	size_t count = 0;
	for (size_t i = 0; i < len; i++)
		if (buf[i] == '\0')
			count++;
	if (len > 0 && buf[len - 1] != '\0')
		count++;
	char **fields = calloc(count + 1, sizeof(*fields));
	if (!fields)
		return NULL;
	char *p = buf;
	for (size_t i = 0; i < count; i++) {
		fields[i] = p;
		p += strlen(p) + 1;
	}
	*countp = count;
	return fields;
}

/*
 * Splits the kernel command line in place into words, like the kernel's
 * next_arg(): words are separated by whitespace, double quotes group
 * (and are removed).  Returns a NULL-terminated array.
 */
static char **split_cmdline(char *s)
{
	size_t cap = 16, n = 0;
	char **words = malloc(cap * sizeof(*words));
	while (words) {
		while (*s == ' ' || *s == '\t' || *s == '\n')
			s++;
		if (!*s)
			break;
		if (n + 2 > cap) {
			char **nwords = realloc(words, 2 * cap * sizeof(*words));
			if (!nwords) {
				free(words);
				return NULL;
			}
			words = nwords;
			cap *= 2;
		}
		char *out = s;
		words[n++] = out;
		int quoted = 0;
		for (; *s && (quoted || (*s != ' ' && *s != '\t' && *s != '\n')); s++) {
			if (*s == '"')
				quoted = !quoted;
			else
				*out++ = *s;
		}
		if (*s)
			s++;
		*out = '\0';
	}
	if (words)
		words[n] = NULL;
	return words;
}

/*
 * Looks up `key` among the words: returns the value of the last "key=VALUE",
 * "" for a bare "key", NULL if absent.
 */
static const char *cmdline_get(char **words, const char *key)
{
	const char *val = NULL;
	size_t klen = strlen(key);
	for (; words && *words; words++) {
		if (strncmp(*words, key, klen) != 0)
			continue;
		if ((*words)[klen] == '=')
			val = *words + klen + 1;
		else if ((*words)[klen] == '\0')
			val = "";
	}
	return val;
}

/* Returns 0 or the errno of a failed mount; EBUSY means already mounted. */
static int do_mount(const char *src, const char *dir, const char *type,
		    unsigned long flags, const char *data)
{
	if (mount(src, dir, type, flags, data) == 0 || errno == EBUSY)
		return 0;
	return errno;
}

static void optional_mount(const char *src, const char *dir, const char *type,
			   unsigned long flags, const char *data)
{
	int err = do_mount(src, dir, type, flags, data);
	if (err && verbose)
		fprintf(stderr, "study-init: mount %s on %s: %s\n", type, dir,
			strerror(err));
}

static void warn_mount(const char *type, const char *dir, int err)
{
	if (err)
		fprintf(stderr, "study-init: warning: cannot mount %s on %s: %s\n",
			type, dir, strerror(err));
}

/* Gives init a stdin/stdout/stderr if the kernel found no /dev/console. */
static void setup_console(void)
{
	if (fcntl(0, F_GETFD) >= 0)
		return;
	int fd = open("/dev/console", O_RDWR | O_NOCTTY);
	if (fd < 0)
		return;
	for (int i = 0; i < 3; i++)
		if (fd != i)
			dup2(fd, i);
	if (fd > 2)
		close(fd);
}

static void mount_filesystems(void)
{
	const unsigned long nsd = MS_NOSUID | MS_NODEV;

	/* /dev first: without it there may be no console to warn on. */
	int dev_err = do_mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
	setup_console();
	warn_mount("devtmpfs", "/dev", dev_err);
	warn_mount("proc", "/proc", do_mount("proc", "/proc", "proc", nsd | MS_NOEXEC, NULL));
	warn_mount("sysfs", "/sys", do_mount("sysfs", "/sys", "sysfs", nsd | MS_NOEXEC, NULL));
}

/* mkdir -p, for mount points inside a fresh tmpfs. */
static void mkdir_p(const char *path)
{
	char buf[4096];
	if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
		return;
	for (char *p = buf + 1; *p; p++) {
		if (*p == '/') {
			*p = '\0';
			mkdir(buf, 0755);
			*p = '/';
		}
	}
	mkdir(buf, 0755);
}

/*
 * A tmpfs over DIR hides the host's files below it: a repository under /tmp
 * or /root would vanish with its job file, guest programs and working
 * directory. The `keep` paths (study.keep=, comma-separated) below DIR are
 * bound aside on /dev first and moved back on top of the tmpfs.
 */
static void tmpfs_keeping(const char *dir, const char *mode, char **keep)
{
	enum { MAX_KEEP = 8 };
	const char *kept[MAX_KEEP];
	char aside[MAX_KEEP][32];
	size_t n = 0, dlen = strlen(dir);

	for (size_t i = 0; keep && keep[i] && n < MAX_KEEP; i++) {
		if (strncmp(keep[i], dir, dlen) != 0 || keep[i][dlen] != '/')
			continue;
		snprintf(aside[n], sizeof aside[n], "/dev/.study-keep%zu", n);
		mkdir(aside[n], 0755);
		if (mount(keep[i], aside[n], NULL, MS_BIND | MS_REC, NULL) == 0)
			kept[n++] = keep[i];
		else
			fprintf(stderr, "study-init: warning: cannot keep %s visible: %s\n",
				keep[i], strerror(errno));
	}
	optional_mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV, mode);
	for (size_t i = 0; i < n; i++) {
		mkdir_p(kept[i]);
		if (mount(aside[i], kept[i], NULL, MS_MOVE, NULL) != 0)
			fprintf(stderr, "study-init: warning: cannot keep %s visible: %s\n",
				kept[i], strerror(errno));
		rmdir(aside[i]);
	}
}

/* Every "key=VALUE" word's value, in order, as a NULL-terminated list. */
static char **cmdline_get_all(char **words, const char *key)
{
	static char *list[9];
	size_t n = 0, klen = strlen(key);
	for (; words && *words && n < 8; words++)
		if (strncmp(*words, key, klen) == 0 && (*words)[klen] == '=')
			list[n++] = *words + klen + 1;
	list[n] = NULL;
	return list;
}

static void mount_optional(char **keep)
{
	const unsigned long nsd = MS_NOSUID | MS_NODEV;

	optional_mount("debugfs", "/sys/kernel/debug", "debugfs", nsd | MS_NOEXEC, NULL);
	optional_mount("tracefs", "/sys/kernel/tracing", "tracefs", nsd | MS_NOEXEC, NULL);
	tmpfs_keeping("/tmp", "mode=1777", keep);
	tmpfs_keeping("/run", "mode=0755", keep);
	tmpfs_keeping("/root", "mode=0700", keep);
	tmpfs_keeping("/var", "mode=0755", keep);

	mkdir("/dev/pts", 0755);
	optional_mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
		       "mode=0620,ptmxmode=0666");
	mkdir("/dev/shm", 01777);
	optional_mount("tmpfs", "/dev/shm", "tmpfs", nsd, "mode=1777");

	/* devtmpfs lacks these; bash process substitution needs /dev/fd. */
	symlink("/proc/self/fd", "/dev/fd");
	symlink("/proc/self/fd/0", "/dev/stdin");
	symlink("/proc/self/fd/1", "/dev/stdout");
	symlink("/proc/self/fd/2", "/dev/stderr");

	/* The tmpfs hides the host's /var; recreate what programs expect. */
	if (mkdir("/var/tmp", 01777) == 0)
		chmod("/var/tmp", 01777);
	mkdir("/var/log", 0755);
	symlink("/run", "/var/run");
	symlink("/run/lock", "/var/lock");
	mkdir("/run/lock", 0755);
}

static void loopback_up(void)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fprintf(stderr, "study-init: warning: AF_INET socket: %s (lo stays down)\n",
			strerror(errno));
		return;
	}
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) {
		fprintf(stderr, "study-init: warning: SIOCGIFFLAGS lo: %s\n", strerror(errno));
	} else if (!(ifr.ifr_flags & IFF_UP)) {
		ifr.ifr_flags |= IFF_UP;
		if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
			fprintf(stderr, "study-init: warning: SIOCSIFFLAGS lo: %s\n",
				strerror(errno));
	}
	close(fd);
}

/* Replaces the environment the kernel gave init with the child's one. */
static int setup_env(const char *term, const char *env_path)
{
	clearenv();
	setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 1);
	setenv("HOME", "/root", 1);
	setenv("TERM", term && *term ? term : "linux", 1);
	if (!env_path)
		return 0;

	size_t len, n;
	char *buf = read_file(env_path, &len);
	if (!buf) {
		fprintf(stderr, "study-init: cannot read env file %s: %s\n", env_path,
			strerror(errno));
		return -1;
	}
	char **entries = split_fields(buf, len, &n);
	if (!entries) {
		fprintf(stderr, "study-init: out of memory\n");
		return -1;
	}
	/* The buffer is never freed: putenv() keeps pointers into it. */
	for (size_t i = 0; i < n; i++) {
		if (!strchr(entries[i], '=') || entries[i][0] == '=') {
			if (entries[i][0])
				fprintf(stderr, "study-init: ignoring env entry '%s'\n",
					entries[i]);
			continue;
		}
		putenv(entries[i]);
	}
	free(entries);
	return 0;
}

/*
 * Kernel times (ftrace durations and timestamps, CLOCK_MONOTONIC) come from
 * the current clocksource.  When it is jiffies or refined-jiffies, which is
 * what a TCG guest whose TSC could not be calibrated falls back to, they
 * move in whole ticks (1 ms at HZ=1000, 4 ms at HZ=250): say so once.
 * See study/notes/guest-clock.md.
 */
static void warn_coarse_clock(void)
{
	static int warned;
	size_t len;
	char *cs = read_file("/sys/devices/system/clocksource/clocksource0/current_clocksource",
			     &len);
	if (!cs)
		return;
	cs[strcspn(cs, "\n")] = '\0';
	if (!warned && strstr(cs, "jiffies")) {
		fprintf(stderr, "study-init: warning: the guest clocksource is %s: kernel times "
			"(ftrace durations, timestamps) move in whole ticks\n", cs);
		warned = 1;
	}
	free(cs);
}

static pid_t spawn(const char *cwd, char **argv, int interactive)
{
	if (chdir(cwd) < 0) {
		fprintf(stderr, "study-init: cannot chdir to %s: %s (using /)\n", cwd,
			strerror(errno));
		if (chdir("/") < 0)
			fprintf(stderr, "study-init: cannot chdir to /: %s\n", strerror(errno));
	}
	if (verbose) {
		fprintf(stderr, "study-init: running:");
		for (char **a = argv; *a; a++)
			fprintf(stderr, " %s", *a);
		fprintf(stderr, "\n");
	}
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "study-init: fork: %s\n", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		if (interactive) {
			/* Become a session leader owning the console, so ^C works. */
			setsid();
			if (ioctl(0, TIOCSCTTY, 1) < 0)
				fprintf(stderr, "study-init: TIOCSCTTY: %s\n", strerror(errno));
		}
		execvp(argv[0], argv);
		fprintf(stderr, "study-init: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	return pid;
}

static double seconds_now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/*
 * Waits until `path` exists.  Its directory is the host's, over 9p, which
 * caches no negative lookup, so each stat asks the host.  The wait is
 * printed: `bench loop` takes it out of the boot's time.
 */
static void hold_until(const char *path)
{
	double start = seconds_now();
	const struct timespec tick = { 0, 2 * 1000 * 1000 };
	struct stat st;
	while (stat(path, &st) < 0) {
		if (errno != ENOENT) {
			fprintf(stderr, "study-init: cannot wait for %s: %s; not holding the job\n",
				path, strerror(errno));
			return;
		}
		nanosleep(&tick, NULL);
	}
	fprintf(stderr, "study-init: held the job %.3f s for gdb\n",
		seconds_now() - start);
}

/*
 * Where the exit status goes: a file in the host's status folder, opened
 * before the job starts, on a mount the job never sees (detached at once;
 * the open descriptors keep it alive).
 */
struct report {
	int status;		/* the folder's "status" file */
	int port;		/* or the serial port the command came on */
	int linger;
	char token[80];
};

#define STATUS_MOUNT "/dev/.study-status"

static void open_report(const char *spec, struct report *r)
{
	r->status = -1;
	r->linger = 0;
	r->token[0] = '\0';
	if (!spec || !*spec)
		return;
	const char *type, *src, *data;
	if (strncmp(spec, "9p:", 3) == 0) {
		type = "9p";
		src = spec + 3;
		data = "trans=virtio,version=9p2000.L";
	} else if (strncmp(spec, "hostfs:", 7) == 0) {
		type = "hostfs";
		src = "none";
		data = spec + 7;
	} else {
		fprintf(stderr, "study-init: study.status=%s: expected 9p:TAG or hostfs:PATH\n",
			spec);
		return;
	}
	mkdir(STATUS_MOUNT, 0700);
	if (mount(src, STATUS_MOUNT, type, MS_NOSUID | MS_NODEV | MS_NOEXEC, data) < 0) {
		fprintf(stderr, "study-init: cannot mount the status folder (%s %s): %s\n",
			type, spec, strerror(errno));
		rmdir(STATUS_MOUNT);
		return;
	}
	int dir = open(STATUS_MOUNT, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir >= 0) {
		int fd = openat(dir, "token", O_RDONLY | O_CLOEXEC);
		ssize_t n = fd < 0 ? -1 : read(fd, r->token, sizeof(r->token) - 1);
		r->token[n > 0 ? n : 0] = '\0';
		r->token[strcspn(r->token, "\n")] = '\0';
		if (fd >= 0)
			close(fd);
		r->linger = faccessat(dir, "linger", F_OK, 0) == 0;
		r->status = openat(dir, "status", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
				   0644);
		close(dir);
	}
	if (r->status < 0)
		fprintf(stderr, "study-init: cannot open the status file in %s: %s\n", spec,
			strerror(errno));
	if (umount2(STATUS_MOUNT, MNT_DETACH) < 0)
		fprintf(stderr, "study-init: warning: cannot detach the status folder: %s\n",
			strerror(errno));
	rmdir(STATUS_MOUNT);
}

/* Writes the status, then ends the console's output: in that order, so the
 * host has the status once it sees the end line. */
static void report_status(struct report *r, int status)
{
	fflush(stdout);
	if (r->port >= 0) {
		char line[128];
		int len = snprintf(line, sizeof line, "status %s %d\n", r->token, status);
		if (write(r->port, line, len) != len || tcdrain(r->port) < 0)
			fprintf(stderr, "study-init: cannot send the exit status: %s\n",
				strerror(errno));
		printf("\n<<<linux-study end %s>>>\n", r->token);
		fflush(stdout);
		return;
	}
	if (r->status < 0) {
		fprintf(stderr, "study-init: exit status %d\n", status);
		return;
	}
	char line[16];
	int len = snprintf(line, sizeof line, "%d\n", status);
	if (write(r->status, line, len) != len || fsync(r->status) < 0 ||
	    close(r->status) < 0)
		fprintf(stderr, "study-init: cannot write the exit status: %s\n",
			strerror(errno));
	printf("\n<<<linux-study end %s>>>\n", r->token);
	fflush(stdout);
}

/* Keeps the guest up, for a host that reads its memory, until stopped. */
static void linger(void)
{
	for (;;)
		pause();
}

/* Reaps every child (orphans get reparented to us) until `child` is done. */
static int wait_for(pid_t child)
{
	for (;;) {
		int st;
		pid_t pid = wait(&st);
		if (pid < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "study-init: wait: %s\n", strerror(errno));
			return SETUP_FAILED;
		}
		if (pid != child)
			continue;
		if (WIFEXITED(st))
			return WEXITSTATUS(st);
		if (WIFSIGNALED(st))
			return 128 + WTERMSIG(st);
	}
}

/* Reads exactly len bytes, or fails. */
static int read_all(int fd, char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = read(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= n;
	}
	return 0;
}

/*
 * The command from the serial port `dev`, raw (no echo, no line editing):
 * "LEN\n", then LEN bytes of NUL-separated fields (token, cwd, argv).
 * Returns the fields; the port stays open in r->port for the status.
 */
static char **read_port_job(const char *dev, struct report *r, size_t *np)
{
	int fd = open(dev, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "study-init: cannot open %s: %s\n", dev, strerror(errno));
		return NULL;
	}
	struct termios t;
	if (tcgetattr(fd, &t) == 0) {
		cfmakeraw(&t);
		tcsetattr(fd, TCSANOW, &t);
	}
	fprintf(stderr, "study-init: waiting for a command on %s\n", dev);
	size_t len = 0;
	char c;
	for (;;) {
		if (read_all(fd, &c, 1) < 0 || len > 1 << 20) {
			fprintf(stderr, "study-init: %s: no command length\n", dev);
			return NULL;
		}
		if (c == '\n')
			break;
		if (c < '0' || c > '9') {
			fprintf(stderr, "study-init: %s: bad command length\n", dev);
			return NULL;
		}
		len = len * 10 + (c - '0');
	}
	char *buf = malloc(len + 1);
	if (!buf || read_all(fd, buf, len) < 0) {
		fprintf(stderr, "study-init: %s: short command\n", dev);
		return NULL;
	}
	buf[len] = '\0';
	char **fields = split_fields(buf, len, np);
	if (!fields || *np < 3 || !fields[2][0]) {
		fprintf(stderr, "study-init: %s: expected token, cwd and argv\n", dev);
		return NULL;
	}
	r->port = fd;
	snprintf(r->token, sizeof r->token, "%s", fields[0]);
	return fields;
}

static int run(struct report *r)
{
	size_t len;
	char *cmdline = read_file("/proc/cmdline", &len);
	char **words = cmdline ? split_cmdline(cmdline) : NULL;
	if (!words)
		fprintf(stderr, "study-init: warning: cannot read /proc/cmdline: %s\n",
			strerror(errno));

	const char *v = cmdline_get(words, "study.verbose");
	verbose = v && strcmp(v, "0") != 0;
	/* First: a job that cannot start still has its 125 reported. */
	open_report(cmdline_get(words, "study.status"), r);

	mount_optional(cmdline_get_all(words, "study.keep"));
	loopback_up();

	if (setup_env(cmdline_get(words, "study.term"),
		      cmdline_get(words, "study.env")) < 0)
		return SETUP_FAILED;

	warn_coarse_clock();
	const char *job = cmdline_get(words, "study.job");
	const char *port = cmdline_get(words, "study.port");
	pid_t pid;
	if (port && *port) {
		size_t n;
		char **fields = read_port_job(port, r, &n);
		if (!fields)
			return SETUP_FAILED;
		pid = spawn(fields[1][0] ? fields[1] : "/", fields + 2, 0);
	} else if (!job || !*job) {
		const char *cwd = cmdline_get(words, "study.cwd");
		char *sh[] = { "/bin/sh", "-i", NULL };
		pid = spawn(cwd && *cwd ? cwd : "/", sh, 1);
	} else {
		size_t n;
		char *buf = read_file(job, &len);
		if (!buf) {
			fprintf(stderr, "study-init: cannot read job file %s: %s\n", job,
				strerror(errno));
			return SETUP_FAILED;
		}
		char **fields = split_fields(buf, len, &n);
		if (!fields) {
			fprintf(stderr, "study-init: out of memory\n");
			return SETUP_FAILED;
		}
		if (n < 2 || !fields[1][0]) {
			fprintf(stderr, "study-init: job file %s: expected cwd and argv\n", job);
			return SETUP_FAILED;
		}
		const char *hold = cmdline_get(words, "study.hold");
		if (hold && *hold)
			hold_until(hold);
		pid = spawn(fields[0][0] ? fields[0] : "/", fields + 1, 0);
	}
	return pid < 0 ? SETUP_FAILED : wait_for(pid);
}

int main(void)
{
	umask(022);
	mount_filesystems();
	struct report r = { .status = -1, .port = -1 };
	int status = run(&r);
	/* The clocksource can change while the job runs (the TSC watchdog). */
	warn_coarse_clock();

	report_status(&r, status);
	if (r.linger)
		linger();
	sync();
	reboot(RB_AUTOBOOT);
	for (;;)
		pause();
}
