//! `debug --record` on `tiny`: gdb's process record from the first stop,
//! with real reverse execution. The expectations come from the same
//! session's way forward (each reverse-next must land on the line and the
//! values seen there going forward), from a forward watchpoint in a run of
//! its own, and from the tree's source line.

mod common;

use common::{reverse::*, *};

const COMMAND: [&str; 4] = ["tcp-echo", "-4", "-n", "1"];
const STEPS: usize = 6;

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
    let walk = walk_flags("reverse-walk.py", "", STEPS);
    let walk: Vec<&str> = walk.iter().map(String::as_str).collect();
    let out = debug(&[&["--record"][..], &walk].concat());
    assert!(out.status.success(), "{}", text(&out));
    assert_retraced(&walk_stops(&out), STEPS, &out);
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
    let back = debug(&[&["--record", "-b", "tcp_sendmsg_locked"][..], &WATCH_BACK].concat());
    assert!(back.status.success(), "{}", text(&back));
    let (line, source) = watch_stop(&String::from_utf8_lossy(&back.stdout));
    // The line is the tree's, and it writes the field.
    let tcp_c = std::fs::read_to_string(kernel().join("net/ipv4/tcp.c")).unwrap();
    assert_eq!(tcp_c.lines().nth(line - 1).unwrap().trim(), source.trim());
    assert!(source.contains("write_seq"), "{source}");

    // Forwards, in a run of its own without recording: a hardware
    // watchpoint set at the first stop stops on the line after the write.
    let forward = debug(&WATCH_FORWARD);
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

    let um = refused_on_um(
        "debug",
        "build-um-record-refused",
        &["--record", "-b", "tcp_sendmsg_locked", "--", "true"],
    );
    let said = text(&um);
    assert_eq!(
        said.lines().filter(|l| l.starts_with("error")).count(),
        1,
        "{said}"
    );
    assert!(said.contains("study/arch/um.toml"), "{said}");
}
