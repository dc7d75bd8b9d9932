/*
 * rt.h: the little runtime of linux-study's FreeBSD guest programs.
 *
 * The guest has no FreeBSD userland (no libc.a, no crt1.o: building them is
 * buildworld, hours on 2 cores), so the programs are freestanding: this
 * header gives them _start, raw system calls through `syscall`, and the few
 * string and output helpers they use.  The constants and structures come
 * from the FreeBSD tree being studied (sys/ and include/, on the compile
 * line), never from copies here.
 *
 * FreeBSD's amd64 system call: number in %rax, arguments in %rdi, %rsi,
 * %rdx, %r10, %r8, %r9; on error the carry flag is set and %rax holds the
 * errno.  sys() returns -errno on error.
 */
#ifndef STUDY_RT_H
#define STUDY_RT_H

#include <sys/types.h>
#include <sys/syscall.h>
#include <sys/errno.h>
#include <sys/fcntl.h>

static long sys6(long n, long a, long b, long c, long d, long e, long f)
{
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	unsigned char failed;
	__asm__ volatile("syscall; setc %1"
			 : "+a"(n), "=r"(failed), "+D"(a), "+S"(b), "+d"(c), "+r"(r10),
			   "+r"(r8), "+r"(r9)
			 :
			 : "rcx", "r11", "memory", "cc");
	return failed ? -n : n;
}
#define sys(n, a, b, c) sys6((n), (long)(a), (long)(b), (long)(c), 0, 0, 0)

/* The compiler may call these even in freestanding code. */
void *memset(void *d, int c, unsigned long n)
{
	unsigned char *p = d;
	while (n--)
		*p++ = (unsigned char)c;
	return d;
}
void *memcpy(void *d, const void *s, unsigned long n)
{
	unsigned char *p = d;
	const unsigned char *q = s;
	while (n--)
		*p++ = *q++;
	return d;
}
int memcmp(const void *a, const void *b, unsigned long n)
{
	const unsigned char *p = a, *q = b;
	for (; n; n--, p++, q++)
		if (*p != *q)
			return *p - *q;
	return 0;
}
static inline unsigned long str_len(const char *s)
{
	unsigned long n = 0;
	while (s[n])
		n++;
	return n;
}

static __attribute__((noreturn)) void sys_exit(int code)
{
	sys(SYS_exit, code, 0, 0);
	for (;;)
		;
}

/* Output: one write per call, so lines of two processes do not mix. */
struct out {
	char buf[512];
	unsigned long len;
};
static void put_s(struct out *o, const char *s)
{
	while (*s && o->len < sizeof(o->buf))
		o->buf[o->len++] = *s++;
}
static void put_n(struct out *o, long v)
{
	char t[24];
	int i = 0;
	unsigned long u = v < 0 ? -(unsigned long)v : (unsigned long)v;
	do
		t[i++] = '0' + u % 10;
	while (u /= 10);
	if (v < 0)
		t[i++] = '-';
	while (i && o->len < sizeof(o->buf))
		o->buf[o->len++] = t[--i];
}
static void flush(struct out *o, int fd)
{
	sys(SYS_write, fd, o->buf, o->len);
	o->len = 0;
}

/* Decimal in [min, max], or -1. */
static inline long parse_num(const char *s, long min, long max)
{
	long v = 0;
	if (!*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > max)
			return -1;
		v = v * 10 + (*s - '0');
	}
	return v < min || v > max ? -1 : v;
}

int main(int argc, char **argv, char **envp);

/*
 * FreeBSD's exec_setregs() points %rdi at argc, then argv, NULL, envp
 * (%rsp may be 8 bytes below it, for alignment): crt1's _start reads %rdi.
 */
__attribute__((used)) static void start_c(long *sp)
{
	int argc = (int)sp[0];
	char **argv = (char **)(sp + 1);
	sys_exit(main(argc, argv, argv + argc + 1));
}
__asm__(".text\n.globl _start\n_start:\n"
	"\tand $-16, %rsp\n\tcall start_c\n\thlt\n");

#endif
