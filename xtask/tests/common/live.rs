//! What the drgn tests share across architectures: drgn's code for a
//! live TCP socket under `tun-peer -f noack`, and reading back what it and
//! the guest printed.

use std::path::{Path, PathBuf};

use super::{text, xtask};

/// drgn's code: waits for tun-peer's ESTABLISHED socket, then until its
/// sequence space stops moving (the first flight leaves at once; with no
/// ACK, retransmissions resend and never send more), prints it, and holds
/// the guest for `sys.argv[1]` seconds so the guest's own report can run.
pub const LIVE_SOCKET: &str = r#"
import json, sys, time
sk = tcp_socket(prog, "tun-peer-local", state="ESTABLISHED", wait=180)
if sk is None:
    sys.exit("no ESTABLISHED TCP socket of tun-peer-local")
last = None
while True:
    s = tcp_state_of(sk)
    now = (s["snd_una"], s["snd_nxt"], s["packets_out"])
    if now == last and s["in_flight"] > 0:
        break
    last = now
    time.sleep(1)
keys = ("state", "in_flight", "packets_out", "snd_una", "snd_nxt", "cwnd")
out = {k: s[k] for k in keys}
out["write_queue_bytes"] = sum(r["len"] for r in s["write_queue"])
print("DRGN " + json.dumps(out))
sys.stdout.flush()
time.sleep(float(sys.argv[1]))
"#;

/// drgn's code for a vmcore: the frame of `function` on the stack of the
/// task on CPU 0, and its `size`.
pub const SIZE_AT_STOP: &str = r#"
from drgn.helpers.linux.sched import cpu_curr
for f in prog.stack_trace(cpu_curr(prog, 0)):
    if f.name == "tcp_sendmsg_locked":
        print("DRGN " + str(f["size"].value_()))
"#;

/// The JSON that the code printed after "DRGN ".
pub fn drgn_json(output: &std::process::Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("DRGN "))
        .unwrap_or_else(|| panic!("drgn printed no DRGN line:\n{}", text(output)));
    serde_json::from_str(line).unwrap()
}

/// The console file of the guest a command booted, from its stderr.
pub fn console_of(output: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let path = stderr
        .lines()
        .find_map(|l| l.strip_prefix("guest console: "))
        .and_then(|l| l.split(" (").next())
        .unwrap_or_else(|| panic!("no guest console named:\n{stderr}"));
    std::fs::read_to_string(PathBuf::from(path)).unwrap()
}

/// The bytes of sequence space tun-peer's peer saw and never acked, from
/// its last line under -f noack.
pub fn peer_in_flight(console: &str) -> u64 {
    let line = console
        .lines()
        .find(|l| l.starts_with("tun-peer: noack:"))
        .unwrap_or_else(|| panic!("tun-peer printed no noack line:\n{console}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words
        .iter()
        .position(|w| *w == "bytes")
        .expect("N bytes of sequence space");
    words[at - 1].parse().unwrap()
}

/// `ss -tin`'s numbers for the one ESTABLISHED socket.
pub struct Ss {
    /// Segments sent and not acked (tcpi_unacked: packets_out).
    pub unacked: u64,
    pub bytes_sent: u64,
    pub bytes_retrans: u64,
    /// Bytes in the write queue, not sent yet.
    pub notsent: u64,
}

pub fn ss_numbers(console: &str) -> Ss {
    let mut lines = console.lines();
    lines
        .by_ref()
        .find(|l| l.starts_with("ESTAB"))
        .unwrap_or_else(|| panic!("ss showed no ESTAB socket:\n{console}"));
    let info = lines.next().expect("ss -i's line under the socket");
    // ss leaves a field out when it is 0.
    let field = |name: &str| -> u64 {
        info.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .map_or(0, |v| v.parse().unwrap())
    };
    Ss {
        unacked: field("unacked:"),
        bytes_sent: field("bytes_sent:"),
        bytes_retrans: field("bytes_retrans:"),
        notsent: field("notsent:"),
    }
}

/// `debug` on the build that `debug` (its argv so far) names, stopped in
/// tcp_sendmsg_locked while tcp-echo sends `size` bytes: gdb prints `size`
/// and writes a vmcore to `core` with `study-dump`. What gdb printed.
pub fn size_at_stop_with_dump(debug: Vec<&str>, core: &Path, size: &str) -> String {
    let dump_line = format!("study-dump {}", core.display());
    let stop: [&str; 13] = [
        "-b",
        "tcp_sendmsg_locked",
        "--batch",
        "print size",
        "--batch",
        &dump_line,
        "--",
        "tcp-echo",
        "-4",
        "-n",
        "1",
        "-s",
        size,
    ];
    let args: Vec<&str> = debug.into_iter().chain(stop).collect();
    let out = xtask(&args);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("$1 = "))
        .unwrap_or_else(|| panic!("gdb printed no size:\n{stdout}"))
        .to_string()
}
