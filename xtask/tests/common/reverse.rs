//! What the tests of reverse execution share (reverse.rs: gdb's process
//! record under `debug --record`; replay.rs: QEMU's record and replay):
//! the walk forward and back that gdb runs, the check that the way back
//! retraces the way forward, and the refusal of a UML build.

use std::process::Output;

use serde_json::Value;

use super::{cache, on_build, text, xtask, TINY};

/// A gdb command, `test-walk LINES`, that goes forward LINES source lines,
/// one instruction at a time, and back by reverse-next, printing one JSON
/// line per stop: the direction, the address, the line and `info locals`,
/// which the tests compare; sourced with -x, before the first stop. (gdb
/// 13 may stop twice on a line whose declarations have a line-table row
/// each: at the last row, then at the line's start; so the way back is
/// compared address by address.)
const WALK: &str = r#"
import json
import gdb

def here(direction):
    frame = gdb.selected_frame()
    stop = {
        "dir": direction,
        "function": frame.name(),
        "line": frame.find_sal().line,
        "pc": frame.pc(),
        "locals": gdb.execute("info locals", to_string=True),
    }
    print("WALK " + json.dumps(stop))
    return stop

class Walk(gdb.Command):
    def __init__(self):
        super().__init__("test-walk", gdb.COMMAND_USER)

    def invoke(self, arg, from_tty):
        lines = int(arg)
        # Forward one instruction at a time, so that every address the way
        # back can stop at has its values on record, until the source line
        # changed LINES times.
        forward = [here("forward")]
        changes = 0
        while changes < lines and len(forward) < 400:
            gdb.execute("stepi", to_string=True)
            forward.append(here("forward"))
            if forward[-1]["line"] != forward[-2]["line"]:
                changes += 1
        # Back by source lines to where it started.
        for _ in range(3 * lines):
            gdb.execute("reverse-next", to_string=True)
            if here("back")["pc"] == forward[0]["pc"]:
                break
"#;

/// gdb's commands that, from a stop in tcp_sendmsg_locked, run a
/// watchpoint backwards: from tcp_push, who last wrote tp->write_seq?
pub const WATCH_BACK: [&str; 10] = [
    "--batch",
    "break tcp_push",
    "--batch",
    "continue",
    "--batch",
    "up",
    "--batch",
    "watch -l tp->write_seq",
    "--batch",
    "reverse-continue",
];

/// The flags of a forward watchpoint on the socket's write_seq, set at the
/// stop in tcp_sendmsg_locked: it stops after the write that [`WATCH_BACK`]
/// stops at. It reads the field through `sk` (a tcp_sock starts with its
/// sock), not through `tp`, which is assigned only after a `next`: and a
/// `next` from the breakpoint's own address has been seen to report the
/// same breakpoint again without moving (TCG, once in a few dozen runs),
/// which left the watchpoint on whatever the stack held.
pub const WATCH_FORWARD: [&str; 6] = [
    "-b",
    "tcp_sendmsg_locked",
    "--batch",
    "watch -l ((struct tcp_sock *)sk)->write_seq",
    "--batch",
    "continue",
];

/// The flags of `debug` or `replay` that stop in tcp_sendmsg_locked and
/// walk `steps` lines there and back: the walk written into the test cache
/// as `name`, with `then` (Python lines of `invoke`, indented eight spaces)
/// run after the way back.
pub fn walk_flags(name: &str, then: &str, steps: usize) -> Vec<String> {
    let path = cache().join(name);
    std::fs::write(&path, format!("{WALK}{then}\nWalk()\n")).unwrap();
    [
        "-b",
        "tcp_sendmsg_locked",
        "-x",
        path.to_str().unwrap(),
        "--batch",
        &format!("test-walk {steps}"),
    ]
    .map(String::from)
    .to_vec()
}

/// The stops the walk printed, in order.
pub fn walk_stops(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("WALK "))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The stops of one direction (`forward`, `back`, or what a script's
/// `then` named).
pub fn stops_of<'a>(stops: &'a [Value], direction: &str) -> Vec<&'a Value> {
    stops.iter().filter(|s| s["dir"] == direction).collect()
}

/// The walk went forward `steps` lines, and the way back retraced it: each
/// stop is an address the way forward passed, with the function, line and
/// values it had there; the lines never go forward again, each line left
/// behind is visited, and the last stop is the first one. `out` is the
/// session's, shown on failure.
pub fn assert_retraced(stops: &[Value], steps: usize, out: &Output) {
    let (forward, back) = (stops_of(stops, "forward"), stops_of(stops, "back"));
    let line = |s: &Value| s["line"].as_i64().unwrap();
    let mut forward_lines: Vec<i64> = forward.iter().map(|s| line(s)).collect();
    forward_lines.dedup();
    assert_eq!(forward_lines.len(), steps + 1, "{}", text(out));
    assert!(!back.is_empty(), "{}", text(out));
    for stop in &back {
        let seen = forward
            .iter()
            .find(|f| f["pc"] == stop["pc"])
            .unwrap_or_else(|| {
                panic!("reverse-next stopped where the way forward never was: {stop}")
            });
        assert_eq!(stop["function"], seen["function"]);
        assert_eq!(stop["line"], seen["line"]);
        assert_eq!(
            stop["locals"],
            seen["locals"],
            "back at line {}, the locals differ from the way forward",
            line(stop)
        );
    }
    let back_lines: Vec<i64> = back.iter().map(|s| line(s)).collect();
    let mut order: Vec<usize> = back_lines
        .iter()
        .map(|l| forward_lines.iter().position(|f| f == l).unwrap())
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] >= w[1]),
        "the way back went forward: {back_lines:?} against {forward_lines:?}"
    );
    order.dedup();
    assert_eq!(
        order,
        (0..steps).rev().collect::<Vec<_>>(),
        "the way back skipped a line: {back_lines:?} against {forward_lines:?}"
    );
    assert_eq!(back.last().unwrap()["pc"], forward[0]["pc"]);
}

/// `cargo xtask --arch um COMMAND` for `tiny` in the build directory
/// `dir` of the test cache, with `extra`: refused, as UML has no reverse
/// execution, and `dir` not made. What it printed.
pub fn refused_on_um(command: &str, dir: &str, extra: &[&str]) -> Output {
    let dir = cache().join(dir);
    let (tree, _) = &*TINY;
    let mut args = vec!["--arch", "um"];
    args.extend(on_build(command, tree, dir.to_str().unwrap()));
    args.extend(extra);
    let out = xtask(&args);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(!dir.exists(), "the refusal wrote {}", dir.display());
    out
}

/// The walk's `then` that, after the way back (gdb's record), hands over
/// to QEMU (study-record-stop) for one reverse-stepi: checked by
/// [`assert_handed_over`].
pub const HAND_OVER_TO_QEMU: &str = r#"        gdb.execute("study-record-stop", to_string=True)
        here("end")
        gdb.execute("reverse-stepi", to_string=True)
        here("qemu")
"#;

/// study-record-stop went to the end of gdb's log, the guest's own moment,
/// and QEMU's reverse-stepi from there to the instruction before it, with
/// the values the way forward saw there.
pub fn assert_handed_over(stops: &[Value], out: &Output) {
    let forward = stops_of(stops, "forward");
    let end = stops_of(stops, "end")[0];
    assert_eq!(end["pc"], forward.last().unwrap()["pc"], "{}", text(out));
    let qemu = stops_of(stops, "qemu")[0];
    let before = &forward[forward.len() - 2];
    assert_eq!(qemu["pc"], before["pc"], "{}", text(out));
    assert_eq!(qemu["locals"], before["locals"], "{}", text(out));
}
