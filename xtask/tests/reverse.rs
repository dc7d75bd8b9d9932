//! `debug --record` on `tiny`: gdb's process record from the first stop,
//! with real reverse execution. The expectations come from the same
//! session's way forward (each reverse-next must land on the line and the
//! values seen there going forward), from a forward watchpoint in a run of
//! its own, and from the tree's source line.

mod common;

use std::path::PathBuf;

use common::*;

const COMMAND: [&str; 4] = ["tcp-echo", "-4", "-n", "1"];
const STEPS: usize = 6;

/// A gdb command that goes forward STEPS source lines, one instruction at a
/// time, and back by reverse-next, printing one JSON line per stop: the
/// address, the line and `info locals`, which the test compares; sourced
/// with -x, before the first stop. (gdb 13 may stop twice on a line whose
/// declarations have a line-table row each: at the last row, then at the
/// line's start; so the way back is compared address by address.)
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

Walk()
"#;

fn walk_script() -> PathBuf {
    let path = cache().join("reverse-walk.py");
    std::fs::write(&path, WALK).unwrap();
    path
}

fn debug(extra: &[&str]) -> std::process::Output {
    let mut args = on_tiny("debug");
    args.push("--no-build");
    args.extend(extra);
    args.push("--");
    args.extend(COMMAND);
    xtask(&args)
}

#[test]
fn reverse_next_retraces_the_lines_and_values_of_the_way_forward() {
    let _serial = serial();
    tiny_build();
    let script = walk_script();
    let steps = STEPS.to_string();
    let walk = format!("test-walk {steps}");
    let out = debug(&[
        "--record",
        "-b",
        "tcp_sendmsg_locked",
        "-x",
        script.to_str().unwrap(),
        "--batch",
        &walk,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let stops: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("WALK "))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let forward: Vec<&serde_json::Value> = stops.iter().filter(|s| s["dir"] == "forward").collect();
    let back: Vec<&serde_json::Value> = stops.iter().filter(|s| s["dir"] == "back").collect();
    let line = |s: &serde_json::Value| s["line"].as_i64().unwrap();
    let mut forward_lines: Vec<i64> = forward.iter().map(|s| line(s)).collect();
    forward_lines.dedup();
    assert_eq!(forward_lines.len(), STEPS + 1, "{}", text(&out));
    assert!(!back.is_empty(), "{}", text(&out));
    // Each stop on the way back is an address the way forward passed, with
    // the values it had there.
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
    // Line by line, back to the start: the lines never go forward again,
    // each line left behind is visited, and the last stop is the first one.
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
        (0..STEPS).rev().collect::<Vec<_>>(),
        "the way back skipped a line: {back_lines:?} against {forward_lines:?}"
    );
    assert_eq!(back.last().unwrap()["pc"], forward[0]["pc"]);
}

/// Where a watchpoint on `tp->write_seq` stops: (line, source text).
fn watch_stop(stdout: &str) -> (usize, String) {
    let at = regex::Regex::new(r"at \S*net/ipv4/tcp\.c:(\d+)\n(\d+)\t(.*)").unwrap();
    let rest = &stdout[stdout.find("Old value").expect("the watchpoint stopped")..];
    let c = at.captures(rest).expect("a stop in tcp.c");
    (c[1].parse().unwrap(), c[3].to_string())
}

#[test]
fn a_watchpoint_run_backwards_stops_at_the_write_a_forward_one_stops_after() {
    let _serial = serial();
    tiny_build();
    // Backwards: from tcp_push, who last wrote tp->write_seq?
    let back = debug(&[
        "--record",
        "-b",
        "tcp_sendmsg_locked",
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
    ]);
    assert!(back.status.success(), "{}", text(&back));
    let (line, source) = watch_stop(&String::from_utf8_lossy(&back.stdout));
    // The line is the tree's, and it writes the field.
    let tcp_c = std::fs::read_to_string(kernel().join("net/ipv4/tcp.c")).unwrap();
    assert_eq!(tcp_c.lines().nth(line - 1).unwrap().trim(), source.trim());
    assert!(source.contains("write_seq"), "{source}");

    // Forwards, in a run of its own without recording: a hardware
    // watchpoint set once tp is assigned stops on the line after the write.
    let forward = debug(&[
        "-b",
        "tcp_sendmsg_locked",
        "--batch",
        "next",
        "--batch",
        "watch -l tp->write_seq",
        "--batch",
        "continue",
    ]);
    assert!(forward.status.success(), "{}", text(&forward));
    let stdout = String::from_utf8_lossy(&forward.stdout);
    let (after, _) = watch_stop(&stdout);
    assert!(
        after >= line && after - line <= 2,
        "the forward watchpoint stopped at {after}, the backward one at the write on {line}:\n{stdout}"
    );
}

#[test]
fn record_is_refused_in_one_line_without_a_stop_or_off_x86_64() {
    let no_break = debug(&["--record"]);
    assert!(!no_break.status.success());
    let said = text(&no_break);
    assert!(said.contains("-b FUNC"), "{said}");
    assert!(!said.contains("$ qemu-system"), "nothing boots:\n{said}");

    let dir = cache().join("build-um-record-refused");
    let (tree, _) = &*TINY;
    let um = xtask(&[
        "--arch",
        "um",
        "debug",
        "--profile",
        "tiny",
        "--kernel",
        tree,
        "--build-dir",
        dir.to_str().unwrap(),
        "--record",
        "-b",
        "tcp_sendmsg_locked",
        "--",
        "true",
    ]);
    assert!(!um.status.success());
    let said = text(&um);
    assert_eq!(
        said.lines().filter(|l| l.starts_with("error")).count(),
        1,
        "{said}"
    );
    assert!(said.contains("study/arch/um.toml"), "{said}");
    assert!(!dir.exists(), "the refusal wrote {}", dir.display());
}
