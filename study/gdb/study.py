# linux-study's gdb commands, loaded by `cargo xtask gdb`.
#
# study-break FUNC: a breakpoint on FUNC's first line after the prologue.
#
# Why: with CONFIG_FUNCTION_TRACER an -O0 function starts with
# `endbr64; call __fentry__` before `push %rbp; mov %rsp,%rbp`. An -O0 unit
# has no location lists, gdb's prologue analysis stops at the fentry call,
# and `break FUNC` stops before the arguments are stored: `info args` then
# prints garbage with no warning. The line table knows better: the first
# address of a line after the function's opening line is past the prologue.

import gdb


def body_address(name):
    """The first address of FUNC whose line differs from its opening line."""
    try:
        start = int(gdb.parse_and_eval("(unsigned long)&" + name))
    except gdb.error as e:
        raise gdb.GdbError("study-break: no function %s (%s)" % (name, e))
    block = gdb.block_for_pc(start)
    while block is not None and block.function is None:
        block = block.superblock
    if block is None:
        raise gdb.GdbError("study-break: no debug info for %s" % name)
    end = block.end
    sal = gdb.find_pc_line(start)
    if sal.symtab is None:
        return start
    opening = sal.line
    rows = [r for r in sal.symtab.linetable() if start < r.pc < end and r.line > 0]
    rows.sort(key=lambda r: r.pc)
    for row in rows:
        if row.line != opening:
            return row.pc
    return start


class StudyBreak(gdb.Command):
    """study-break [-h] FUNC: break at FUNC's first line after the prologue.
-h uses a hardware breakpoint (needed under KVM before the kernel maps itself)."""

    def __init__(self):
        super().__init__("study-break", gdb.COMMAND_BREAKPOINTS, gdb.COMPLETE_SYMBOL)

    def invoke(self, arg, from_tty):
        args = gdb.string_to_argv(arg)
        hardware = "-h" in args
        names = [a for a in args if a != "-h"]
        if len(names) != 1:
            raise gdb.GdbError("usage: study-break [-h] FUNC")
        addr = body_address(names[0])
        kind = gdb.BP_HARDWARE_BREAKPOINT if hardware else gdb.BP_BREAKPOINT
        gdb.Breakpoint("*0x%x" % addr, type=kind)


StudyBreak()
