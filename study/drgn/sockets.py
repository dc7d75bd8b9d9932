"""The sockets of a task, found by pid or by name (its `comm`, the name
`ps` and `/proc/PID/comm` show; a thread has its own)."""

from drgn import cast
from drgn.helpers.linux.fs import for_each_file
from drgn.helpers.linux.pid import for_each_task


def _matches(task, who):
    if isinstance(who, int):
        return task.pid.value_() == who or task.tgid.value_() == who
    return task.comm.string_().decode(errors="replace") == who


def tasks(prog, who):
    """The tasks named `who` (a str) or with pid or thread-group id `who`."""
    return [t for t in for_each_task(prog) if _matches(t, who)]


def task_sockets(prog, who):
    """(task, fd, struct socket *, struct sock *) for each socket that a task
    matching `who` has open. Threads share their files: a socket appears once
    per thread-group."""
    socket_fops = prog["socket_file_ops"].address_of_()
    seen = set()
    found = []
    for task in tasks(prog, who):
        group = task.tgid.value_()
        for fd, file in for_each_file(task):
            if file.f_op != socket_fops or (group, fd) in seen:
                continue
            seen.add((group, fd))
            sock = cast("struct socket *", file.private_data)
            found.append((task, fd, sock, sock.sk))
    return found


def family_name(sk):
    family = sk.__sk_common.skc_family.value_()
    return {1: "unix", 2: "inet", 10: "inet6", 16: "netlink", 17: "packet"}.get(
        family, str(family))


def print_task_sockets(prog, who):
    """One line per socket of `who`: fd, family, type, protocol, state."""
    from tcp import tcp_state

    rows = task_sockets(prog, who)
    if not rows:
        print("no sockets for %r" % (who,))
    for task, fd, sock, sk in rows:
        proto = sk.sk_protocol.value_()
        state = tcp_state(sk) if proto == 6 else str(sk.__sk_common.skc_state.value_())
        print("%d %s fd %d: %s protocol %d, %s, sk %#x" % (
            task.pid.value_(), task.comm.string_().decode(), fd, family_name(sk), proto,
            state, sk.value_()))
