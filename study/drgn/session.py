"""The drgn session `cargo xtask drgn` starts: drgn's own globals (prog,
its Linux helpers) plus the study helpers of this folder, at a prompt or
for `-e CODE`.

drgn runs this file as its script, with `prog` set; its folder is on
PYTHONPATH, so a script of your own imports the helpers the same way:
`from tcp import tcp_socket`.
"""

import sys

import drgn
from drgn.cli import default_globals, run_interactive

import blocked
import netdev
import skb
import sockets
import tcp

# One name per helper, as the README lists them.
HELPERS = {
    "task_sockets": sockets.task_sockets,
    "print_task_sockets": sockets.print_task_sockets,
    "tcp_socket": tcp.tcp_socket,
    "tcp_state": tcp.tcp_state,
    "tcp_state_of": tcp.tcp_state_of,
    "print_tcp": tcp.print_tcp,
    "skb_summary": skb.skb_summary,
    "print_skb": skb.print_skb,
    "print_netdev": netdev.print_netdev,
    "netdev_state": netdev.netdev_state,
    "blocked_tasks": blocked.blocked_tasks,
    "print_blocked": blocked.print_blocked,
    "blocked_in": blocked.blocked_in,
}


def study_globals(globals_):
    globals_.update(HELPERS)
    return globals_


def main():
    prog = drgn.get_default_prog()
    args = sys.argv[1:]
    if not args:
        run_interactive(
            prog,
            banner_func=lambda banner: banner
            + "\n>>> # the study helpers: " + ", ".join(sorted(HELPERS)),
            globals_func=study_globals,
        )
        return
    if args[0] != "-e" or len(args) < 2:
        sys.exit("session.py: run by `cargo xtask drgn` with no arguments, or -e CODE [ARGS]")
    code = args[1]
    sys.argv = ["-e"] + args[2:]
    exec(compile(code, "<-e>", "exec"), study_globals(default_globals(prog)))


main()
