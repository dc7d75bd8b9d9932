//! A FreeBSD guest (issue 35, the run side): the tool's own FreeBSD build
//! booted through QEMU's PVH loader with its root a host folder over 9p,
//! `run -- tcp-echo` passing its status back, and gdb stopping along the
//! send path with every variable of the -O0 frames readable. The tree is
//! the user's: these tests use the one STUDY_FREEBSD_TREE names (a 15.1
//! tree, see docs/src/freebsd-run.md), and without it are ignored, with
//! that reason on a line of its own. They share the build directory of
//! tests/freebsd.rs (target/freebsd-test/build-study): `run` builds it
//! when it has no kernel yet (as for any build directory), and these tests
//! do not rebuild one that tests/freebsd.rs built.

mod common;

use std::path::PathBuf;

use common::*;
use libtest_mimic::{Arguments, Trial};

const TREE_VAR: &str = "STUDY_FREEBSD_TREE";

fn tree() -> String {
    std::env::var(TREE_VAR).expect("checked in main")
}

fn build_dir() -> PathBuf {
    repo().join("target/freebsd-test/build-study")
}

/// `cargo xtask COMMAND --kernel TREE --build-dir DIR`, leaked for the
/// `&'static str` lists the common helpers take.
fn on(command: &'static str) -> Vec<&'static str> {
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    vec![
        command,
        "--kernel",
        leak(tree()),
        "--build-dir",
        leak(build_dir().display().to_string()),
    ]
}

fn run(command: &[&str]) -> std::process::Output {
    let mut args = on("run");
    args.push("--");
    args.extend(command);
    xtask(&args)
}

/// Both families echo, the guest's status 0 is run's, and no KVM probe
/// boots first.
fn tcp_echo_exits_0() {
    let out = run(&["tcp-echo", "-n", "2"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    // The accelerator is the FreeBSD guest's data: no KVM probe, whose boot
    // would run a Linux `true` the FreeBSD root has not.
    assert!(!all.contains("probing"), "{all}");
    for family in ["ipv4 127.0.0.1:", "ipv6 [::1]:"] {
        assert!(
            all.lines()
                .any(|l| l.starts_with(&format!("tcp-echo: {family}"))
                    && l.ends_with("sent 2 x 1000 bytes, echo ok")),
            "{family}: {all}"
        );
    }
}

/// A command that fails gives run its status: tcp-echo refuses a size
/// with exit 2 (its usage), and the word reached it whole, space and all,
/// through FreeBSD's kernel environment.
fn a_failing_command_returns_its_status() {
    let out = run(&["tcp-echo", "-s", "1 2"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(
        all.contains("tcp-echo: invalid size '1 2' (must be 1..65536)"),
        "{all}"
    );
}

/// gdb stops in each function of the send path in tcp-echo's own thread,
/// every argument and local readable (the -O0 rules cover sys/netinet and
/// sys/net), counted by gdb's own study-frame.
fn gdb_stops_with_every_variable_readable() {
    let chain = ["tcp_usr_send", "tcp_output", "ip_output", "if_simloop"];
    let stops = stops_along(&on("debug"), &chain, &["tcp-echo", "-4", "-n", "1"]);
    let seen: Vec<&str> = stops.iter().map(|(n, _)| n.as_str()).collect();
    for function in chain {
        assert!(seen.contains(&function), "no stop in {function}: {seen:?}");
    }
    every_variable_readable(&chain, &stops);
}

/// What this guest mode lacks is refused in one line, before anything is
/// booted: trace reads ftrace, which a FreeBSD kernel has not; record
/// boots Linux's initramfs.
fn trace_is_refused_in_one_line() {
    for (command, args) in [
        ("trace", &["tcp_output", "--", "tcp-echo"][..]),
        ("record", &["--", "tcp-echo"][..]),
    ] {
        let mut full = on(command);
        full.extend(args.iter().copied());
        let out = xtask(&full);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{}", text(&out));
        assert_eq!(
            stderr.trim_end().lines().last().unwrap_or_default(),
            format!(
                "error: {command}: not on a FreeBSD build yet ({}); `run`, `debug` and `gdb` \
                 are (docs/src/freebsd-run.md)",
                tree()
            ),
            "{}",
            text(&out)
        );
        assert!(!stderr.contains("qemu-system"), "{stderr}");
    }
}

fn main() {
    let args = Arguments::from_args();
    let missing = std::env::var_os(TREE_VAR).is_none();
    if missing {
        eprintln!(
            "ignored: the FreeBSD guest tests: no FreeBSD tree; set {TREE_VAR} to a 15.1 tree \
             (docs/src/freebsd-run.md)"
        );
    }
    let on_tree = |name, f| trial(name, f).with_ignored_flag(missing);
    let trials: Vec<Trial> = vec![
        on_tree("freebsd_run_tcp_echo_exits_0", tcp_echo_exits_0),
        on_tree(
            "freebsd_a_failing_command_returns_its_status",
            a_failing_command_returns_its_status,
        ),
        on_tree(
            "freebsd_gdb_stops_with_every_variable_readable",
            gdb_stops_with_every_variable_readable,
        ),
        on_tree(
            "freebsd_trace_is_refused_in_one_line",
            trace_is_refused_in_one_line,
        ),
    ];
    libtest_mimic::run(&args, trials).exit();
}
