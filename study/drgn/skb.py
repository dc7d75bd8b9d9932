"""One skb: its lengths, the headers it has set (with the IP and TCP
fields read from them), and its page fragments."""

import ipaddress

from drgn import Object
from drgn.helpers.linux.net import skb_shinfo

# skb->*_header when unset (skb_header_was_set(): ~0U of a u16).
UNSET = 0xFFFF


def _bytes(prog, address, size):
    return prog.read(address, size)


def skb_summary(skb):
    """A dict: lengths, header offsets, decoded IP/TCP headers when set, frags."""
    prog = skb.prog_
    head = skb.head.value_()
    out = {
        "skb": skb.value_(),
        "len": skb.len.value_(),
        "data_len": skb.data_len.value_(),
        "headroom": skb.data.value_() - head,
        "protocol": skb.protocol.value_(),
    }
    for name in ("mac_header", "network_header", "transport_header"):
        value = getattr(skb, name).value_()
        out[name] = None if value == UNSET else value
    if out["network_header"] is not None:
        ip = _bytes(prog, head + out["network_header"], 40)
        version = ip[0] >> 4
        if version == 4:
            out["ip"] = {"version": 4, "src": str(ipaddress.IPv4Address(ip[12:16])),
                         "dst": str(ipaddress.IPv4Address(ip[16:20])), "protocol": ip[9]}
        elif version == 6:
            out["ip"] = {"version": 6, "src": str(ipaddress.IPv6Address(ip[8:24])),
                         "dst": str(ipaddress.IPv6Address(ip[24:40])), "protocol": ip[6]}
    if out["transport_header"] is not None and out.get("ip", {}).get("protocol") == 6:
        th = _bytes(prog, head + out["transport_header"], 20)
        out["tcp"] = {
            "sport": int.from_bytes(th[0:2], "big"),
            "dport": int.from_bytes(th[2:4], "big"),
            "seq": int.from_bytes(th[4:8], "big"),
            "ack": int.from_bytes(th[8:12], "big"),
            "flags": "".join(f for bit, f in zip(range(5, -1, -1), "UAPRSF")
                             if th[13] >> bit & 1),
            "window": int.from_bytes(th[14:16], "big"),
        }
    shinfo = skb_shinfo(skb)
    frags = []
    for i in range(shinfo.nr_frags.value_()):
        frag = shinfo.frags[i]
        frags.append({"len": frag.len.value_(), "offset": frag.offset.value_()})
    out["frags"] = frags
    out["gso_segs"] = shinfo.gso_segs.value_()
    return out


def print_skb(skb):
    if not isinstance(skb, Object):
        raise TypeError("print_skb takes a struct sk_buff * Object")
    s = skb_summary(skb)
    print("skb %#x len %u (data_len %u) headroom %u protocol %#06x" % (
        s["skb"], s["len"], s["data_len"], s["headroom"], s["protocol"]))
    print("  headers: mac %s network %s transport %s" % (
        s["mac_header"], s["network_header"], s["transport_header"]))
    if "ip" in s:
        print("  IPv%(version)d %(src)s -> %(dst)s protocol %(protocol)d" % s["ip"])
    if "tcp" in s:
        print("  TCP %(sport)d -> %(dport)d seq %(seq)u ack %(ack)u [%(flags)s] win %(window)u"
              % s["tcp"])
    for i, f in enumerate(s["frags"]):
        print("  frag %d: len %u offset %u" % (i, f["len"], f["offset"]))
