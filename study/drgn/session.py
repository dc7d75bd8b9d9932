"""The drgn session `cargo xtask drgn` starts: drgn's own globals (prog,
its Linux helpers) plus the study helpers of this folder, at a prompt, for
`-e CODE`, or for a script.

drgn runs this file as its script, with `prog` set. Its folder is on
PYTHONPATH, so a script run by plain `drgn` imports the helpers itself:
`from tcp import tcp_socket`.
"""

import os
import runpy
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
    if args[0] == "-e":
        if len(args) < 2:
            sys.exit("session.py: -e needs CODE")
        sys.argv = ["-e"] + args[2:]
        exec(compile(args[1], "<-e>", "exec"), study_globals(default_globals(prog)))
        return
    # A script: run as drgn runs one, with the helpers among its globals.
    sys.argv = args
    sys.path.insert(0, os.path.dirname(os.path.abspath(args[0])))
    runpy.run_path(args[0], init_globals=study_globals(default_globals(prog)),
                   run_name="__main__")

main()
