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

import json
import os
import re
import socket
import tomllib

import gdb


def body_address(name):
    """The first address of FUNC whose line differs from its opening line."""
    try:
        start = int(gdb.parse_and_eval("(unsigned long)&" + name))
    except gdb.error as e:
        hint = ""
        if StudyModules.pending is not None:
            hint = "; module symbols are not loaded yet: they load at the first stop"
        raise gdb.GdbError("study-break: no function %s (%s%s)" % (name, e, hint))
    return _body_from(start, name)


def _body_from(start, name):
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


def body_addresses(name):
    """body_address of every out-of-line copy of FUNC: a static function
(FreeBSD's tcp_output is a static inline in tcp_var.h, at -O0 one copy per
file that calls it) has one per unit, and `&FUNC` names only one."""
    first = body_address(name)
    starts = set()
    try:
        statics = gdb.lookup_static_symbols(name)
    except (AttributeError, gdb.error):
        statics = []
    for sym in statics:
        if sym.addr_class == gdb.SYMBOL_LOC_BLOCK:
            starts.add(int(sym.value().address))
    addrs = {first}
    for start in starts:
        addrs.add(_body_from(start, name))
    return sorted(addrs)


def current_comm():
    """The running task's name, through Linux's own gdb scripts, or on
FreeBSD the current thread's (the pcpu at %gs's base); None without
either."""
    for expr in ("$lx_current().comm",
                 "((struct pcpu *)$gs_base)->pc_curthread->td_name"):
        try:
            return gdb.parse_and_eval(expr).string()
        except gdb.error:
            continue
    return None


class TaskBreakpoint(gdb.Breakpoint):
    """Stops only in tasks named COMM: the command's own path, not a kernel
thread's through the same function."""

    def __init__(self, spec, kind, comm):
        super().__init__(spec, type=kind)
        self.comm = comm
        self.warned = False

    def stop(self):
        comm = current_comm()
        if comm is None:
            if not self.warned:
                gdb.write("study-break: no $lx_current() (CONFIG_GDB_SCRIPTS): stopping in any task\n")
                self.warned = True
            return True
        return comm == self.comm


class StudyBreak(gdb.Command):
    """study-break [-h] [-c COMM] FUNC: break at FUNC's first line after the
prologue, in each out-of-line copy of it ($study_break_first is the first
breakpoint made, $bpnum the last). -h uses a hardware breakpoint (needed under KVM before the kernel
maps itself); -c stops only in tasks named COMM."""

    def __init__(self):
        super().__init__("study-break", gdb.COMMAND_BREAKPOINTS, gdb.COMPLETE_SYMBOL)

    def invoke(self, arg, from_tty):
        args = gdb.string_to_argv(arg)
        hardware = "-h" in args
        args = [a for a in args if a != "-h"]
        comm = None
        if "-c" in args:
            at = args.index("-c")
            if at + 1 >= len(args):
                raise gdb.GdbError("usage: study-break [-h] [-c COMM] FUNC")
            comm = args[at + 1]
            del args[at:at + 2]
        if len(args) != 1:
            raise gdb.GdbError("usage: study-break [-h] [-c COMM] FUNC")
        kind = gdb.BP_HARDWARE_BREAKPOINT if hardware else gdb.BP_BREAKPOINT
        made = []
        for addr in body_addresses(args[0]):
            if comm is None:
                made.append(gdb.Breakpoint("*0x%x" % addr, type=kind))
            else:
                made.append(TaskBreakpoint("*0x%x" % addr, kind, comm))
        # One breakpoint a copy: `commands $study_break_first-$bpnum` gives
        # them all the same commands.
        gdb.set_convenience_variable("study_break_first", made[0].number)


StudyBreak()


# ---------------------------------------------------------------------------
# study-safe CMD: run a helper command; report a failure instead of raising.
#
# Why: gdb abandons the rest of a sourced file at the first command that
# fails. The session file `cargo xtask gdb` writes sets breakpoints, sources
# the user's -x scripts and continues after its helpers; one failing helper
# (the kernel's lx-symbols reading memory while the CPU still sits at the
# reset vector under QEMU -S) used to drop all of that silently.


def _describe(e):
    kind = type(e).__name__
    return "%s: %s" % (kind, e) if kind not in ("error", "GdbError") else str(e)


def run_safely(command, from_tty=False, who="study-safe"):
    """Run a gdb command; on failure print why and return False."""
    try:
        gdb.execute(command, from_tty)
        return True
    except KeyboardInterrupt:
        raise
    except Exception as e:  # gdb.error, gdb.MemoryError, a helper's own bug
        gdb.write("%s: `%s` failed (%s); going on\n" % (who, command, _describe(e)),
                  gdb.STDERR)
        return False


class StudySafe(gdb.Command):
    """study-safe CMD: run CMD; if it fails, print the error and go on.
In a sourced file a failing command stops the rest of the file; behind
study-safe it does not."""

    def __init__(self):
        super().__init__("study-safe", gdb.COMMAND_SUPPORT, gdb.COMPLETE_COMMAND)

    def invoke(self, arg, from_tty):
        if not arg.strip():
            raise gdb.GdbError("usage: study-safe CMD")
        run_safely(arg, from_tty)


StudySafe()


# ---------------------------------------------------------------------------
# study-release-on-continue PATH: let the guest's held command start.
#
# Under `debug` the kernel boots while gdb reads vmlinux, and the guest's init
# holds the command until PATH exists (study.hold on the kernel command
# line). gdb creates it at the first continue, with the breakpoints in: the
# session script's `continue`, or one typed after a failing line ended the
# script. The guest is stopped while gdb is, so it cannot see PATH before
# the breakpoints are inserted.


class StudyReleaseOnContinue(gdb.Command):
    """study-release-on-continue PATH: create PATH when the guest first
continues, which starts the command the guest's init holds."""

    def __init__(self):
        super().__init__("study-release-on-continue", gdb.COMMAND_RUNNING,
                         gdb.COMPLETE_FILENAME)

    def invoke(self, arg, from_tty):
        path = arg.strip()
        if not path:
            raise gdb.GdbError("usage: study-release-on-continue PATH")

        def on_continue(event):
            gdb.events.cont.disconnect(on_continue)
            try:
                with open(path, "w"):
                    pass
            except OSError as e:
                gdb.write("study-release-on-continue: cannot create %s (%s): the "
                          "guest's command stays held\n" % (path, e), gdb.STDERR)

        gdb.events.cont.connect(on_continue)


StudyReleaseOnContinue()


# ---------------------------------------------------------------------------
# study-modules [DIR...]: the kernel's lx-symbols, once the kernel is up.
#
# lx-symbols reloads vmlinux, walks the kernel's `modules` list and loads each
# module's .ko from DIR (and gdb's working directory), then sets its own
# breakpoint on do_init_module to follow later loads. Under `run --wait-gdb`
# gdb connects while the CPU is at the reset vector with paging off: the list
# head at 0xffffffff8... cannot be read, and lx-symbols raises
# gdb.MemoryError. So: run it now if kernel memory is readable (gdb attached
# to a running kernel), else once, at the first stop where it is. No module
# can have loaded before that stop goes unseen: lx-symbols walks the list
# then, and its breakpoint follows every later load.


def kernel_memory_readable():
    """True when the guest's kernel mapping can be read (not at reset)."""
    for name in ("modules", "linux_banner", "init_task"):
        try:
            addr = int(gdb.parse_and_eval("(unsigned long)&" + name))
        except gdb.error:
            continue
        try:
            gdb.selected_inferior().read_memory(addr, 8)
            return True
        except (gdb.MemoryError, gdb.error):
            return False
    return False


class StudyModules(gdb.Command):
    """study-modules [DIR...]: load module symbols with lx-symbols DIR...
now when kernel memory is readable, otherwise at the first stop where it is.
Never raises: a failure is reported and the session goes on."""

    pending = None  # the lx-symbols command line waiting for a stop

    def __init__(self):
        super().__init__("study-modules", gdb.COMMAND_FILES, gdb.COMPLETE_FILENAME)

    def invoke(self, arg, from_tty):
        command = ("lx-symbols " + arg).strip()
        try:
            gdb.execute("help lx-symbols", to_string=True)
        except gdb.error:
            gdb.write("study-modules: no lx-symbols (vmlinux-gdb.py not loaded); "
                      "module symbols will not be loaded\n", gdb.STDERR)
            return
        if kernel_memory_readable():
            run_safely(command, from_tty, "study-modules")
            return
        if StudyModules.pending is None:
            gdb.events.stop.connect(StudyModules.on_stop)
        StudyModules.pending = command
        gdb.write("study-modules: the kernel is not up yet (kernel memory is "
                  "unreadable): `%s` will run at the first stop\n" % command)

    @staticmethod
    def on_stop(event):
        command = StudyModules.pending
        if command is None or not kernel_memory_readable():
            return
        gdb.events.stop.disconnect(StudyModules.on_stop)
        StudyModules.pending = None
        # lx-symbols reloads vmlinux: inside a stop that drops the frame's
        # symbols for the breakpoint's own commands (`study-frame` then
        # printed `?? ()`). With no module loaded there is nothing to load.
        if not modules_loaded():
            gdb.write("study-modules: no module is loaded yet; after loading "
                      "one, run `%s`\n" % command)
            return
        gdb.write("study-modules: %s\n" % command)
        run_safely(command, False, "study-modules")


def modules_loaded():
    """True unless the kernel's module list is known to be empty."""
    try:
        head = gdb.parse_and_eval("modules")
        return int(head["next"]) != int(head.address)
    except gdb.error:
        return True


StudyModules()


# ---------------------------------------------------------------------------
# study-locals / study-args / study-frame: `info locals` and `info args`,
# with the temporaries that macros declare set apart.
#
# Why: even at -O0 `info locals` in tcp_push shows a dozen
# `pao_ID__ = <optimized out>`, `pto_val__ = <optimized out>`... They are the
# variables of arch/x86/include/asm/percpu.h's percpu_add_op/percpu_to_op,
# expanded once per `case` of __pcpu_size_call's `switch (sizeof(var))` and
# in `if (0) { typeof(var) pao_tmp__; ... }` type checks. gcc drops those
# dead branches at every level (its CFG cleanup folds constant conditions),
# so the variables never get a stack slot and their lexical blocks get no
# address range; gdb reads a range-less block as part of the enclosing one,
# so they surface at function scope at every pc. They have no value to
# show: nothing is optimized out. study/notes/percpu-temporaries.md has the
# evidence. These commands print the real variables like gdb does and sum
# the macro temporaries up in one line.

_source_lines = {}


def _declaring_line(sym):
    """The source text of the line gdb gives as SYM's declaration, or None."""
    symtab = sym.symtab
    if symtab is None or not sym.line:
        return None
    path = symtab.fullname()
    lines = _source_lines.get(path)
    if lines is None:
        try:
            with open(path, errors="replace") as f:
                lines = f.read().split("\n")
        except OSError:
            lines = []
        _source_lines[path] = lines
    if sym.line > len(lines):
        return None
    return lines[sym.line - 1]


def is_macro_temporary(sym):
    """Declared by a macro body, not by the code on its declaration line.

gcc gives a variable declared inside a macro the file and line of the macro's
expansion, so the name is not in that line's text (`pto_val__` on the line
`NET_INC_STATS(...)`). Without the source, fall back to the kernel's naming
convention for macro locals: a trailing `__`."""
    text = _declaring_line(sym)
    if text is None:
        return sym.name.endswith("__")
    return re.search(r"(?<![A-Za-z0-9_])%s(?![A-Za-z0-9_])" % re.escape(sym.name),
                     text) is None


def frame_symbols(frame, want_args, want_locals):
    """(symbol, is_argument) in gdb's order: innermost block outwards."""
    try:
        block = frame.block()
    except RuntimeError:
        raise gdb.GdbError("no symbol table info for this frame")
    out = []
    while block is not None:
        for sym in block:
            if sym.is_argument:
                if want_args:
                    out.append((sym, True))
            elif sym.is_variable and want_locals:
                out.append((sym, False))
        if block.function is not None:
            break
        block = block.superblock
    return out


def show_value(sym, frame):
    """(text, optimized_out) for SYM in FRAME, as `info locals` prints it."""
    try:
        value = sym.value(frame)
        if value.is_optimized_out:
            return "<optimized out>", True
        return value.format_string(), False
    except gdb.error as e:
        return "<error: %s>" % e, False


def _counted(names):
    counts = {}
    for n in names:
        counts[n] = counts.get(n, 0) + 1
    return ", ".join("%s x%d" % (n, c) if c > 1 else n for n, c in counts.items())


def print_frame_vars(frame, want_args, want_locals, who):
    """Print the frame's variables like `info args`/`info locals`, then one
summary line with the macro temporaries set apart."""
    rows = frame_symbols(frame, want_args, want_locals)
    if not rows:
        gdb.write("No %s.\n" % ("locals" if want_locals else "arguments"))
        return []
    real = 0
    real_out = []
    temps_live, temps_here, temps_dead = [], [], []
    for sym, is_arg in rows:
        text, optimized_out = show_value(sym, frame)
        if not is_arg and is_macro_temporary(sym):
            if not optimized_out:
                temps_live.append("%s=%s" % (sym.name, text))
            elif sym.addr_class == gdb.SYMBOL_LOC_OPTIMIZED_OUT:
                temps_dead.append(sym.name)  # no DW_AT_location at all
            else:
                temps_here.append(sym.name)  # a location, but not at this pc
            continue
        real += 1
        if optimized_out:
            real_out.append(sym.name)
        gdb.write("%s = %s\n" % (sym.name, text))
    noun = "local" if want_locals else "argument"
    summary = "%s: %d %s%s, %d <optimized out>%s" % (
        who, real, noun, "" if real == 1 else "s", len(real_out),
        (" (" + ", ".join(real_out) + ")") if real_out else "")
    parts = []
    if temps_live:
        parts.append("in scope: " + ", ".join(temps_live))
    if temps_here:
        parts.append("%d optimized out here: %s" % (len(temps_here), _counted(temps_here)))
    if temps_dead:
        parts.append("%d never compiled (dead macro branches, no location): %s"
                     % (len(temps_dead), _counted(temps_dead)))
    if parts:
        summary += "; macro temporaries: " + "; ".join(parts)
    gdb.write(summary + "\n")
    return real_out


class StudyLocals(gdb.Command):
    """study-locals: info locals, with macro temporaries summed up in one line.
Prints each real local as `info locals` does, then one line: how many real
locals there are, which are <optimized out>, and the temporaries declared
inside macros (percpu ops, min/max, guards): those in scope with their value,
and those from branches gcc never compiled (no location, nothing to show)."""

    def __init__(self):
        super().__init__("study-locals", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        print_frame_vars(gdb.selected_frame(), False, True, "study-locals")


class StudyArgs(gdb.Command):
    """study-args: info args, then how many are <optimized out>."""

    def __init__(self):
        super().__init__("study-args", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        print_frame_vars(gdb.selected_frame(), True, False, "study-args")


class StudyFrame(gdb.Command):
    """study-frame: the frame line, its arguments and its locals (study-locals)."""

    def __init__(self):
        super().__init__("study-frame", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        gdb.execute("frame", from_tty)
        frame = gdb.selected_frame()
        print_frame_vars(frame, True, False, "args")
        print_frame_vars(frame, False, True, "locals")


class StudyReadable(gdb.Command):
    """study-readable: study-frame, then an error if any real argument or
local is <optimized out> (macro temporaries apart), so that a batch session
(`cargo xtask debug --batch study-readable`, a CI step) fails on it."""

    def __init__(self):
        super().__init__("study-readable", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        gdb.execute("frame", from_tty)
        frame = gdb.selected_frame()
        out = print_frame_vars(frame, True, False, "args")
        out += print_frame_vars(frame, False, True, "locals")
        if out:
            raise gdb.GdbError("study-readable: %s: <optimized out>: %s"
                               % (frame.name(), ", ".join(out)))
        gdb.write("study-readable: %s: every argument and local has a value\n"
                  % frame.name())


# Where a kernel stack begins: the entry from user space (a system call),
# or a kernel thread's first frame. Below it gdb reads the user's registers
# as if they were kernel frames (`0x4df400 in ?? ()`, `fixed_percpu_data`).
def _stack_ends():
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                           "stack-ends.toml"), "rb") as f:
        ends = tomllib.load(f)
    return tuple(ends["user-entry"]), tuple(ends["kernel-thread"])


USER_ONLY_ENTRIES, KTHREAD_ENTRIES = _stack_ends()
USER_ENTRIES = USER_ONLY_ENTRIES + KTHREAD_ENTRIES
USER_ENTRY_NOTE = "[the entry from user space: the kernel's stack ends here]"
KTHREAD_NOTE = "[a kernel thread's first frame: its stack ends here]"


def _entry_note(name):
    return KTHREAD_NOTE if name in KTHREAD_ENTRIES else USER_ENTRY_NOTE


def _frame_name(frame):
    try:
        return frame.name() or ""
    except gdb.error:
        return ""


class EndAtUserEntry:
    """A frame filter: a kernel backtrace ends at the entry from user space,
and says so on that frame's line."""

    def __init__(self):
        self.name = "study-user-entry"
        self.priority = 100
        self.enabled = True
        gdb.frame_filters[self.name] = self

    def filter(self, frames):
        from gdb.FrameDecorator import FrameDecorator

        class Last(FrameDecorator):
            def function(self):
                name = _frame_name(self.inferior_frame())
                return "%s %s" % (name, _entry_note(name))

        for decorated in frames:
            if _frame_name(decorated.inferior_frame()) in USER_ENTRIES:
                yield Last(decorated)
                return
            yield decorated


class StudyBacktrace(gdb.Command):
    """study-bt: one line per frame from the selected one up to the entry from
user space: the function, its file:line, and how many of its real arguments
and locals are <optimized out> (macro temporaries apart), named."""

    def __init__(self):
        super().__init__("study-bt", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        frame = gdb.selected_frame()
        level = 0
        while frame is not None:
            name = _frame_name(frame)
            sal = frame.find_sal()
            where = "%s:%d" % (sal.symtab.filename, sal.line) if sal.symtab else "?"
            if name in USER_ENTRIES:
                gdb.write("study-bt #%d %s %s %s\n" % (level, name, where, _entry_note(name)))
                return
            try:
                rows = frame_symbols(frame, True, True)
            except gdb.GdbError:
                rows = []
            real, out = 0, []
            for sym, is_arg in rows:
                if not is_arg and is_macro_temporary(sym):
                    continue
                real += 1
                if show_value(sym, frame)[1]:
                    out.append(sym.name)
            gdb.write("study-bt #%d %s %s: %d variables, %d <optimized out>%s\n" % (
                level, name or "??", where, real, len(out),
                (" (" + ", ".join(out) + ")") if out else ""))
            frame = frame.older()
            level += 1
        gdb.write("study-bt: no entry from user space on this stack\n")


StudyLocals()
StudyArgs()
StudyFrame()
StudyReadable()
StudyBacktrace()
EndAtUserEntry()


# ---- study-dump: a vmcore of the guest at this stop, through QEMU's QMP ----

def _qmp_request(sock_file, command, arguments=None):
    request = {"execute": command}
    if arguments is not None:
        request["arguments"] = arguments
    sock_file.write((json.dumps(request) + "\n").encode())
    sock_file.flush()
    while True:
        line = sock_file.readline()
        if not line:
            raise gdb.GdbError("study-dump: QMP closed the connection")
        reply = json.loads(line)
        if "return" in reply:
            return reply["return"]
        if "error" in reply:
            raise gdb.GdbError("study-dump: QMP %s: %s" % (command, reply["error"].get("desc")))


def _qmp_session(path, timeout):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    f = s.makefile("rwb")
    try:
        greeting = json.loads(f.readline())
    except socket.timeout:
        s.close()
        raise gdb.GdbError("study-dump: %s does not answer (is drgn attached to it?)" % path)
    if "QMP" not in greeting:
        raise gdb.GdbError("study-dump: %s: not a QMP greeting" % path)
    _qmp_request(f, "qmp_capabilities")
    return s, f


def _guest_sockets():
    """The QMP sockets of the build directory of the vmlinux gdb has loaded."""
    vmlinux = gdb.current_progspace().filename
    if not vmlinux:
        raise gdb.GdbError("study-dump: no vmlinux loaded")
    run_dir = os.path.join(os.path.dirname(vmlinux), ".study", "run")
    try:
        names = sorted(n for n in os.listdir(run_dir) if n.startswith("qmp-"))
    except FileNotFoundError:
        names = []
    return run_dir, [os.path.join(run_dir, n) for n in names]


def _our_guest():
    """The QMP socket of the QEMU whose gdb stub this gdb is connected to:
    the one whose "gdb" chardev has our connection's port."""
    run_dir, sockets = _guest_sockets()
    conn = gdb.selected_inferior().connection
    details = getattr(conn, "details", None) or ""
    found = []
    for path in sockets:
        try:
            s, f = _qmp_session(path, 5)
        except OSError:
            continue
        try:
            chardevs = _qmp_request(f, "query-chardev")
        finally:
            s.close()
        stubs = [c.get("filename", "") for c in chardevs if c.get("label") == "gdb"]
        found.append(path)
        if details and any(details in name for name in stubs):
            return path
    if len(found) == 1:
        return found[0]
    raise gdb.GdbError(
        "study-dump: no QMP socket in %s answers for this gdb's stub (%s); boot the guest with "
        "`cargo xtask debug` or `run --gdb`, which open one" % (run_dir, details or "not connected"))


class StudyDump(gdb.Command):
    """study-dump FILE: write a vmcore of the guest as it stands at this stop
(QMP dump-guest-memory: ELF, with the guest's VMCOREINFO), for
`cargo xtask drgn --core FILE`. FILE appears only once it is whole."""

    def __init__(self):
        super().__init__("study-dump", gdb.COMMAND_DATA, gdb.COMPLETE_FILENAME)

    def invoke(self, arg, from_tty):
        path = arg.strip()
        if not path:
            raise gdb.GdbError("usage: study-dump FILE")
        path = os.path.abspath(os.path.expanduser(path))
        if not os.path.isdir(os.path.dirname(path)):
            raise gdb.GdbError("study-dump: %s: no such folder" % os.path.dirname(path))
        qmp = _our_guest()
        partial = os.path.join(os.path.dirname(path),
                               ".%s.partial-%d" % (os.path.basename(path), os.getpid()))
        s, f = _qmp_session(qmp, 600)
        try:
            _qmp_request(f, "dump-guest-memory",
                         {"paging": False, "protocol": "file:" + partial})
            os.replace(partial, path)
        finally:
            s.close()
            if os.path.exists(partial):
                os.unlink(partial)
        gdb.write("study-dump: %s (%d MiB), through %s\n" % (
            path, os.path.getsize(path) >> 20, qmp))


StudyDump()


# ---------------------------------------------------------------------------
# study-record: gdb's own process record from this stop on, so that
# reverse-step, reverse-next, reverse-finish and a watchpoint run backwards
# answer at once, back to where study-record was typed.
#
# Why the reconnect: gdb has process record for x86_64 only in its Linux ABI
# (amd64_linux_init_abi), and that ABI sets itself up only when the target
# description carries the feature org.gnu.gdb.i386.linux (orig_rax). QEMU's
# stub describes the CPU in one feature, org.gnu.gdb.i386.core, so `record
# full` says "the current architecture doesn't support record function",
# whatever `set osabi` says. The description gdb got from QEMU, plus that
# feature, read from a file before `target remote`, gives the same register
# layout (orig_rax comes last, and QEMU never sends it) with the Linux ABI.
# The guest stays stopped across the reconnect: QEMU's stub keeps the VM
# stopped when its client goes, and stops it again when one connects.
#
# What gdb cannot record stops the recording with "Process record does not
# support instruction": on x86_64 the kernel's stac/clac around every user
# copy (SMAP), which `debug --record` avoids by giving the guest a CPU
# without SMAP (the kernel then patches them out at boot).

LINUX_FEATURE = """  <feature name="org.gnu.gdb.i386.linux">
    <reg name="orig_rax" bitsize="64" type="int" regnum="%d"/>
  </feature>
"""


def with_linux_feature(xml):
    """QEMU's target description with the Linux feature added, or None when
    it has it already; the new register numbered after the last one."""
    if "org.gnu.gdb.i386.linux" in xml:
        return None
    start = xml.find("<?xml")
    end = xml.rfind("</target>")
    if start < 0 or end < 0:
        raise gdb.GdbError("study-record: the target description gdb holds is "
                           "not XML: %r" % xml[:80])
    numbers = [int(n) for n in re.findall(r'regnum="(\d+)"', xml)]
    regnum = max(numbers) + 1 if numbers else 0
    return xml[start:end] + LINUX_FEATURE % regnum + "</target>\n"


class StudyRecord(gdb.Command):
    """study-record: record from this stop on (gdb's `record full`), so that
reverse-step, reverse-next, reverse-finish, reverse-continue and watchpoints
run backwards answer at once, back to this stop. Forward execution is slower
while recording (gdb steps each instruction); `record stop` ends it."""

    def __init__(self):
        super().__init__("study-record", gdb.COMMAND_RUNNING)

    def invoke(self, arg, from_tty):
        inferior = gdb.selected_inferior()
        connection = inferior.connection
        if connection is None or connection.type != "remote":
            raise gdb.GdbError("study-record: gdb is not connected to a guest's "
                               "stub (`cargo xtask debug` or `gdb` connects it)")
        arch = gdb.selected_frame().architecture().name()
        if arch == "i386:x86-64":
            xml = gdb.execute("maint print xml-tdesc", to_string=True)
            described = with_linux_feature(xml)
            if described is not None:
                path = os.path.join(os.environ.get("TMPDIR", "/tmp"),
                                    "study-tdesc-%d.xml" % os.getpid())
                with open(path + ".tmp", "w") as f:
                    f.write(described)
                os.replace(path + ".tmp", path)
                address = connection.details
                gdb.execute("disconnect", to_string=True)
                gdb.execute("set tdesc filename " + path)
                gdb.execute("set osabi GNU/Linux")
                gdb.execute("target remote " + address, to_string=True)
        # A hardware watchpoint is the CPU's: replaying gdb's log backwards
        # never triggers it. A software one is checked by gdb at each
        # recorded instruction, which is what a watchpoint run backwards
        # needs (forward, gdb steps each instruction anyway while recording).
        gdb.execute("set can-use-hw-watchpoints 0")
        gdb.execute("record full")
        gdb.write("study-record: recording from here; reverse-next, reverse-step, "
                  "reverse-finish and `watch -l` with reverse-continue go back "
                  "to this stop\n")


StudyRecord()


class StudyRecordStop(gdb.Command):
    """study-record-stop: end gdb's recording where the guest really is.
Going backwards through gdb's log writes the old registers and memory into
the guest, whose own clock stays at the log's end: a plain `record stop`
there leaves the guest a mix of two moments, and under `replay` QEMU's
replay would run on from it. This goes to the log's end first (`record goto
end`), then stops recording; on `replay`, reverse commands then go to QEMU,
which replays from the boot (about 20 s each on tiny)."""

    def __init__(self):
        super().__init__("study-record-stop", gdb.COMMAND_RUNNING)

    def invoke(self, arg, from_tty):
        if gdb.current_recording() is None:
            raise gdb.GdbError("study-record-stop: gdb is not recording")
        gdb.execute("record goto end", to_string=True)
        gdb.execute("record stop", to_string=True)
        gdb.execute("frame")
        gdb.write("study-record-stop: back at the log's end, recording stopped\n")


StudyRecordStop()


class StudyNoReverse(gdb.Command):
    """study-no-reverse WHY: fail with WHY unless gdb's own record is on.
`replay` hooks each reverse command with it on a QEMU that cannot run
backwards: gdb's record (study-record) still answers them."""

    def __init__(self):
        super().__init__("study-no-reverse", gdb.COMMAND_RUNNING)

    def invoke(self, arg, from_tty):
        recording = gdb.current_recording()
        if recording is None or recording.method != "full":
            raise gdb.GdbError(arg)


StudyNoReverse()
