"""Every blocked task's stack, with every frame's arguments and locals as
drgn reads them from the DWARF: a value, or `<absent>` where the compiler
kept none for that point of the code (an -Og or -O2 frame)."""

import os
import time
import tomllib

from drgn import FaultError, ObjectAbsentError
from drgn.helpers.linux.pid import for_each_task
from drgn.helpers.linux.sched import task_state_to_char

from sockets import _matches

COMPOUND = ("struct", "union", "class", "array")


def _stack_ends():
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                           "stack-ends.toml"), "rb") as f:
        ends = tomllib.load(f)
    return set(ends["user-entry"]) | set(ends["kernel-thread"])


# Frames below these are user space (a PC that is not the kernel's).
STACK_ENDS = _stack_ends()


def _value(obj):
    """A short text of one variable: scalars and pointers whole, aggregates
    by type and address."""
    if obj.absent_:
        return None
    try:
        kind = obj.type_.unaliased_kind().name.lower()
        if kind in COMPOUND:
            address = obj.address_
            where = " at %#x" % address if address is not None else ""
            return "(%s)%s" % (obj.type_.type_name(), where)
        return obj.format_(dereference=False, symbolize=True)
    except (FaultError, ObjectAbsentError, ValueError) as e:
        return "<unreadable: %s>" % e


def frame_variables(frame):
    """[(name, text or None when absent)] for one frame's arguments and locals."""
    rows = []
    for name in frame.locals():
        try:
            obj = frame[name]
        except (KeyError, ValueError, LookupError):
            continue
        if obj.type_.kind.name.lower() == "function":
            continue
        rows.append((name, _value(obj)))
    return rows


def blocked_tasks(prog, who=None, states="DS"):
    """The tasks in one of `states` (D: uninterruptible, S: sleeping), or
    only those matching `who` (pid or name), with their frames:
    [(task, [(frame, [(name, text)])])]."""
    out = []
    for task in for_each_task(prog):
        if who is not None and not _matches(task, who):
            continue
        if task_state_to_char(task) not in states:
            continue
        frames = []
        for frame in prog.stack_trace(task):
            frames.append((frame, frame_variables(frame)))
            if frame.name in STACK_ENDS:
                break
        out.append((task, frames))
    return out


def print_blocked(prog, who=None, states="DS"):
    """Prints each blocked task's stack with every frame's variables, and a
    count of the absent ones."""
    total = absent = 0
    for task, frames in blocked_tasks(prog, who, states):
        print("%d %s [%s]" % (task.pid.value_(), task.comm.string_().decode(),
                              task_state_to_char(task)))
        for i, (frame, rows) in enumerate(frames):
            try:
                file, line, _col = frame.source()
                where = "%s:%d" % (file, line)
            except LookupError:
                where = "?"
            gone = sum(1 for _, text in rows if text is None)
            print("  #%d %s%s (%s): %d variables, %d absent" % (
                i, frame.name or "??", " [inline]" if frame.is_inline else "", where,
                len(rows), gone))
            for name, text in rows:
                print("      %s = %s" % (name, "<absent>" if text is None else text))
            total += len(rows)
            absent += gone
    print("blocked: %d variables, %d absent" % (total, absent))


def blocked_in(prog, who, function, wait=0.0):
    """The first task matching `who` that is blocked with `function` on its
    stack, as (task, frames); with `wait`, polls that many seconds for it
    (drgn often starts before the command blocks). None when there is none."""
    deadline = time.monotonic() + wait
    while True:
        for task, frames in blocked_tasks(prog, who):
            if any(frame.name == function for frame, _ in frames):
                return task, frames
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.2)
