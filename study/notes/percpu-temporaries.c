/* The shape of arch/x86/include/asm/percpu.h percpu_add_op/percpu_to_op under
 * include/linux/percpu-defs.h __pcpu_size_call, for study/notes/percpu-temporaries.md:
 *   gcc -O0 -g percpu-temporaries.c -o /tmp/pt && gdb -batch -ex "break bump" -ex run -ex "info locals" /tmp/pt
 * shows 12 `<optimized out>` temporaries (3 dead sizeof cases x 4 macro variables). */
typedef unsigned char u8; typedef unsigned short u16; typedef unsigned int u32; typedef unsigned long long u64;
#define __pcpu_type_1 u8
#define __pcpu_type_2 u16
#define __pcpu_type_4 u32
#define __pcpu_type_8 u64
#define __pcpu_cast_1(val) ((u8)(((unsigned long) val) & 0xff))
#define __pcpu_cast_2(val) ((u16)(((unsigned long) val) & 0xffff))
#define __pcpu_cast_4(val) ((u32)(((unsigned long) val) & 0xffffffff))
#define __pcpu_cast_8(val) ((u64)(val))
#define __pcpu_reg_imm_1(x) "qi" (x)
#define __pcpu_reg_imm_2(x) "ri" (x)
#define __pcpu_reg_imm_4(x) "ri" (x)
#define __pcpu_reg_imm_8(x) "re" (x)
#define percpu_unary_op(size, op, _var) ({ asm volatile(op "q %[var]" : [var] "+m" (_var)); })
#define percpu_binary_op(size, op, _var, _val)				\
do {									\
	__pcpu_type_##size pto_val__ = __pcpu_cast_##size(_val);	\
	if (0) {							\
		typeof(_var) pto_tmp__;					\
		pto_tmp__ = (_val);					\
		(void)pto_tmp__;					\
	}								\
	asm volatile(op " %[val], %[var]" : [var] "+m" (_var)		\
	    : [val] __pcpu_reg_imm_##size(pto_val__));			\
} while (0)
#define percpu_add_op(size, var, val)					\
do {									\
	const int pao_ID__ = (__builtin_constant_p(val) &&		\
			      ((val) == 1 || (val) == -1)) ?		\
				(int)(val) : 0;				\
	if (0) {							\
		typeof(var) pao_tmp__;					\
		pao_tmp__ = (val);					\
		(void)pao_tmp__;					\
	}								\
	if (pao_ID__ == 1)						\
		percpu_unary_op(size, "inc", var);			\
	else if (pao_ID__ == -1)					\
		percpu_unary_op(size, "dec", var);			\
	else								\
		percpu_binary_op(size, "add", var, val);		\
} while (0)
#define add_1(v, x) percpu_add_op(1, v, x)
#define add_2(v, x) percpu_add_op(2, v, x)
#define add_4(v, x) percpu_add_op(4, v, x)
#define add_8(v, x) percpu_add_op(8, v, x)
#ifdef SINGLE
#define size_call(stem, variable, ...) stem##8(variable, __VA_ARGS__)
#else
#define size_call(stem, variable, ...)					\
do {									\
	switch(sizeof(variable)) {					\
		case 1: stem##1(variable, __VA_ARGS__);break;		\
		case 2: stem##2(variable, __VA_ARGS__);break;		\
		case 4: stem##4(variable, __VA_ARGS__);break;		\
		case 8: stem##8(variable, __VA_ARGS__);break;		\
	}								\
} while (0)
#endif
unsigned long counter;
int bump(int n)
{
	int real = n * 2;
	size_call(add_, counter, 1);   /* this_cpu_inc shape */
	return real;
}
int main(void) { return bump(3); }
