"""One TCP socket: its state, sequence space, congestion window, RTT and
queues, with each skb's length and sequence numbers (TCP_SKB_CB)."""

import time

from drgn import cast
from drgn.helpers.linux.rbtree import rbtree_inorder_for_each_entry
from drgn.helpers.linux.tcp import sk_tcpstate

from sockets import task_sockets

IPPROTO_TCP = 6


def tcp_state(sk):
    """"ESTABLISHED", "SYN_SENT", ...: the kernel's TCP_* name."""
    return sk_tcpstate(sk).format_(type_name=False).replace("TCP_", "")


def _cb(skb):
    return cast("struct tcp_skb_cb *", skb.cb)


def _skb_row(skb):
    cb = _cb(skb)
    return {
        "skb": skb.value_(),
        "len": skb.len.value_(),
        "seq": cb.seq.value_(),
        "end_seq": cb.end_seq.value_(),
    }


def skb_list(head):
    """The skbs of a `struct sk_buff_head`, in order."""
    skb = head.next
    end = head.address_of_().value_()
    while skb.value_() != end:
        yield skb
        skb = skb.next


def tcp_state_of(sk):
    """A dict of what a student asks of a TCP socket. Sequence numbers are
    the kernel's own (absolute); `in_flight` is snd_nxt - snd_una."""
    tp = cast("struct tcp_sock *", sk)
    snd_una, snd_nxt = tp.snd_una.value_(), tp.snd_nxt.value_()
    # The retransmit queue holds what was sent and is not yet acked; the
    # write queue what is not sent yet.
    rtx = [_skb_row(s) for s in rbtree_inorder_for_each_entry(
        "struct sk_buff", sk.tcp_rtx_queue.address_of_(), "rbnode")]
    return {
        "sk": sk.value_(),
        "state": tcp_state(sk),
        "snd_una": snd_una,
        "snd_nxt": snd_nxt,
        "in_flight": (snd_nxt - snd_una) & 0xFFFFFFFF,
        "rcv_nxt": tp.rcv_nxt.value_(),
        # Segments sent and not acked: what `ss -ti` calls unacked.
        "packets_out": tp.packets_out.value_(),
        "cwnd": tp.snd_cwnd.value_(),
        "ssthresh": tp.snd_ssthresh.value_(),
        # srtt_us holds eight times the smoothed RTT (tcp_rtt_estimator).
        "srtt_us": tp.srtt_us.value_() >> 3,
        "rtx_queue": rtx,
        "write_queue": [_skb_row(s) for s in skb_list(sk.sk_write_queue)],
        "receive_queue": [_skb_row(s) for s in skb_list(sk.sk_receive_queue)],
    }


def tcp_socket(prog, who, state=None, wait=0.0):
    """The first TCP socket of the task `who` (pid or name), in `state`
    ("ESTABLISHED", ...) when given. With `wait`, polls that many seconds
    for it to appear: drgn often starts before the command has connected.
    Returns the `struct sock *`, or None."""
    deadline = time.monotonic() + wait
    while True:
        for _task, _fd, _sock, sk in task_sockets(prog, who):
            if sk.sk_protocol.value_() == IPPROTO_TCP and (
                    state is None or tcp_state(sk) == state):
                return sk
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.2)


def print_tcp(sk):
    s = tcp_state_of(sk)
    print("sk %#x %s" % (s["sk"], s["state"]))
    print("  snd_una %u snd_nxt %u (in flight %u) rcv_nxt %u" % (
        s["snd_una"], s["snd_nxt"], s["in_flight"], s["rcv_nxt"]))
    print("  cwnd %u ssthresh %u srtt %u us" % (s["cwnd"], s["ssthresh"], s["srtt_us"]))
    for name in ("rtx_queue", "write_queue", "receive_queue"):
        rows = s[name]
        print("  %s: %d skbs, %d bytes" % (name, len(rows), sum(r["len"] for r in rows)))
        for r in rows:
            print("    skb %#x len %u seq %u..%u" % (r["skb"], r["len"], r["seq"], r["end_seq"]))
