"""A net_device: its flags, MTU and counters, its qdiscs with their queue
lengths and backlogs, and each CPU's receive backlog (softnet_data)."""

from drgn.helpers.linux.cpumask import for_each_online_cpu
from drgn.helpers.linux.net import netdev_for_each_tx_queue, netdev_get_by_name
from drgn.helpers.linux.percpu import per_cpu

IFF_UP = 0x1


def _qdisc(q):
    return {
        "qdisc": q.value_(),
        "kind": q.ops.id.string_().decode(),
        "qlen": q.q.qlen.value_(),
        "backlog": q.qstats.backlog.value_(),
        "drops": q.qstats.drops.value_(),
    }


def netdev_state(prog, name):
    """A dict for the device called `name` in the initial network namespace,
    or None when there is none."""
    dev = netdev_get_by_name(prog, name)
    if not dev:
        return None
    return {
        "dev": dev.value_(),
        "name": dev.name.string_().decode(),
        "ifindex": dev.ifindex.value_(),
        "up": bool(dev.flags.value_() & IFF_UP),
        "mtu": dev.mtu.value_(),
        "tx_queue_len": dev.tx_queue_len.value_(),
        "root_qdisc": _qdisc(dev.qdisc),
        "tx_queues": [_qdisc(txq.qdisc) for txq in netdev_for_each_tx_queue(dev)],
        "rx_backlog": {
            cpu: per_cpu(prog["softnet_data"], cpu).input_pkt_queue.qlen.value_()
            for cpu in for_each_online_cpu(prog)
        },
    }


def print_netdev(prog, name):
    s = netdev_state(prog, name)
    if s is None:
        print("no device %r in init_net" % name)
        return
    print("%s (ifindex %d) %s mtu %d txqueuelen %d dev %#x" % (
        s["name"], s["ifindex"], "UP" if s["up"] else "DOWN", s["mtu"], s["tx_queue_len"],
        s["dev"]))
    q = s["root_qdisc"]
    print("  root qdisc %s: %d packets queued, %d bytes backlog, %d drops" % (
        q["kind"], q["qlen"], q["backlog"], q["drops"]))
    for i, q in enumerate(s["tx_queues"]):
        print("  tx queue %d: qdisc %s, %d packets, %d bytes backlog" % (
            i, q["kind"], q["qlen"], q["backlog"]))
    for cpu, qlen in s["rx_backlog"].items():
        print("  cpu %d receive backlog: %d packets" % (cpu, qlen))
