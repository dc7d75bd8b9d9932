//! `cargo xtask trace` in a real guest: the trace, the chain by layer, the flame graph.

mod common;

use common::*;

/// The seed's tcp_sendmsg trace, from our own kernel, in one command.
#[test]
fn trace_shows_tcp_sendmsg_down_to_the_device() {
    let _serial = serial();
    tiny_build();
    let work = cache().join("trace");
    std::fs::create_dir_all(&work).unwrap();
    let (raw, folded, svg) = (
        work.join("trace.txt"),
        work.join("trace.folded"),
        work.join("trace.svg"),
    );
    let mut args = on_tiny("trace");
    args.extend(["tcp_sendmsg", "--chain", "-o", raw.to_str().unwrap()]);
    args.extend([
        "--folded",
        folded.to_str().unwrap(),
        "--svg",
        svg.to_str().unwrap(),
    ]);
    args.extend(["--", "tcp-echo", "-4", "-n", "1"]);
    let out = xtask(&args);
    assert!(out.status.success(), "{}", text(&out));

    // Nested under tcp_sendmsg, in this order, each deeper than the last.
    let trace = std::fs::read_to_string(&raw).unwrap();
    assert!(trace.starts_with("# tracer: function_graph"), "{trace}");
    // A fine guest clock: on jiffies every duration is a whole number of
    // ticks (0.000 us or N000.000 us), whatever the host's load.
    // The DURATION column, wherever the options put it (TIME | CPU) TASK |
    // DURATION | FUNCTION CALLS here).
    let durations: Vec<f64> = trace
        .lines()
        .filter_map(|l| {
            l.split('|').find_map(|d| {
                d.trim()
                    .trim_start_matches(['+', '!', '#', '*', '@', '$'])
                    .trim()
                    .strip_suffix("us")
                    .and_then(|d| d.trim().parse().ok())
            })
        })
        .collect();
    assert!(durations.len() > 20, "{trace}");
    let whole_ms = durations
        .iter()
        .filter(|d| (*d * 1000.0).round() % 1_000_000.0 == 0.0)
        .count();
    assert!(
        whole_ms < durations.len(),
        "every duration is whole milliseconds: the guest runs on jiffies"
    );
    assert!(
        !text(&out).contains("the guest clocksource is"),
        "{}",
        text(&out)
    );
    let start = trace
        .find("tcp_sendmsg() {")
        .expect("an entry of tcp_sendmsg");
    let indent = |at: usize| {
        trace[..at].rsplit('\n').next().unwrap().len() + trace[at..].len()
            - trace[at..].trim_start().len()
    };
    let mut last = (start, indent(start));
    for names in [
        &["tcp_sendmsg_locked() {"][..],
        &["tcp_write_xmit() {", "tcp_push_one() {"],
        &["__tcp_transmit_skb() {"],
        &["ip_queue_xmit() {", "ip6_xmit() {"],
        &["__dev_queue_xmit() {", "dev_queue_xmit() {"],
    ] {
        let at = names
            .iter()
            .filter_map(|n| trace[last.0..].find(n).map(|i| i + last.0))
            .min();
        let at = at.unwrap_or_else(|| {
            panic!(
                "{names:?} not after line {} in the trace",
                trace[..last.0].lines().count()
            )
        });
        assert!(indent(at) > last.1, "{names:?} is nested deeper");
        last = (at, indent(at));
    }

    // The chain: one line per layer, in the order of the send path.
    assert_chain(
        &String::from_utf8_lossy(&out.stdout),
        "tcp_sendmsg",
        &["transport", "network", "device", "driver"],
        &[
            "tcp_sendmsg_locked",
            "tcp_write_xmit",
            "__tcp_transmit_skb",
            "ip_queue_xmit",
            "__dev_queue_xmit",
            "loopback_xmit",
        ],
    );

    assert!(std::fs::read_to_string(&folded)
        .unwrap()
        .lines()
        .any(|l| l.starts_with("tcp_sendmsg;tcp_sendmsg_locked;")));
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(
        svg.starts_with("<?xml") && svg.contains("tcp_sendmsg"),
        "a flame graph"
    );

    // A function that cannot be traced is named, with the nearest ones.
    let mut args = on_tiny("trace");
    args.extend(["tcp_sendmsgg", "--", "true"]);
    let out = xtask(&args);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("tcp_sendmsgg cannot be traced")
            && stderr.contains("nearest: tcp_sendmsg,"),
        "{stderr}"
    );
}

/// Issue 12, item 5: an ftrace glob reaches ftrace as written, even from a
/// directory holding a file it would match as a shell glob; a name that is
/// no ftrace name is refused in one line before anything boots.
#[test]
fn a_glob_is_ftraces_and_a_shell_word_is_refused() {
    let _serial = serial();
    tiny_build();
    let mut args = on_tiny("trace");
    args.extend(["tcp_sendmsg; reboot -f", "--", "true"]);
    let out = xtask(&args);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Nothing ran: the executor echoes every command it starts (`$ ...`),
    // and QEMU's is not among them; the one line below is all there is.
    assert!(!stderr.contains("qemu-system"), "a guest booted: {stderr}");
    assert_eq!(
        stderr,
        "error: cannot trace \"tcp_sendmsg; reboot -f\": give a function name or glob of letters, \
         digits, _ . * ? (tcp_send*); :mod:MODULE needs --tracer function\n"
    );

    let work = std::env::temp_dir().join(format!("linux-study-glob-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("tcp_send_not_a_function"), "").unwrap();
    let raw = work.join("trace.txt");
    let mut args = on_tiny("trace");
    args.extend(["tcp_send*", "--accel", "tcg", "-o", raw.to_str().unwrap()]);
    args.extend(["--", "tcp-echo", "-4", "-n", "1"]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(&args)
        .current_dir(&work)
        .output()
        .unwrap();
    let trace = std::fs::read_to_string(&raw).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&work);
    assert!(out.status.success(), "{}", text(&out));
    for name in ["tcp_sendmsg() {", "tcp_sendmsg_locked() {"] {
        assert!(trace.contains(name), "{name} in the trace of tcp_send*");
    }
}

/// The seed's own chain, through a TUN device: tun-peer plays the remote
/// TCP end over IPv6, and the chain reaches the driver, tun_net_xmit, with
/// the qdisc's step on the way.
#[test]
fn trace_over_tun_is_the_seeds_chain() {
    let _serial = serial();
    tiny_build();
    let mut args = on_tiny("trace");
    args.extend(["tcp_sendmsg", "--chain", "--", "tun-peer"]);
    let out = xtask(&args);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let chain = chain_lines(&stdout, "tcp_sendmsg");
    let line = |layer: &str| -> Vec<String> {
        let l = chain
            .iter()
            .find(|l| l.split_whitespace().next() == Some(layer))
            .unwrap_or_else(|| panic!("no {layer} layer:\n{stdout}"));
        l.split_whitespace()
            .skip(1)
            .filter(|w| {
                w.chars()
                    .next()
                    .is_some_and(|c| c.is_alphabetic() || c == '_')
            })
            .map(String::from)
            .collect()
    };
    let in_order = |names: &[String], want: &[&str]| {
        let at: Vec<usize> = want
            .iter()
            .map(|w| {
                names
                    .iter()
                    .position(|n| n == w)
                    .unwrap_or_else(|| panic!("{w} not in {names:?}"))
            })
            .collect();
        assert!(
            at.windows(2).all(|p| p[0] < p[1]),
            "{want:?} out of order in {names:?}"
        );
    };
    let layers: Vec<&str> = chain
        .iter()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        layers,
        ["transport", "network", "device", "driver"],
        "{stdout}"
    );
    in_order(
        &line("transport"),
        &[
            "tcp_sendmsg",
            "tcp_sendmsg_locked",
            "tcp_write_xmit",
            "__tcp_transmit_skb",
        ],
    );
    let network = line("network");
    assert_eq!(network[0], "inet6_csk_xmit", "{network:?}");
    in_order(
        &network,
        &[
            "inet6_csk_xmit",
            "ip6_xmit",
            "ip6_output",
            "ip6_finish_output2",
        ],
    );
    let device = line("device");
    assert!(device[0].starts_with("neigh_"), "{device:?}");
    // A TUN device gets the default qdisc (pfifo_fast, built in even
    // without NET_SCHED), unlike loopback's noqueue: the chain shows it.
    in_order(
        &device,
        &[
            "__dev_queue_xmit",
            "sch_direct_xmit",
            "dev_hard_start_xmit",
            "xmit_one",
        ],
    );
    assert_eq!(line("driver"), ["tun_net_xmit"], "{stdout}");
}

/// A build directory under /tmp, which the guest's tmpfs covers: the
/// trace's own script is found there with the host's root and with an
/// initramfs (the root a foreign architecture always boots).
#[test]
fn a_build_directory_under_tmp_traces_on_either_root() {
    let _serial = serial();
    tiny_build();
    let link = std::env::temp_dir().join(format!("linux-study-build-{}", std::process::id()));
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&TINY.1, &link).unwrap();
    let dir: &'static str = Box::leak(link.display().to_string().into_boxed_str());
    for root in [&[][..], &["--initramfs"]] {
        let mut args = on_build("trace", &TINY.0, dir);
        args.extend(root);
        args.extend(["tcp_sendmsg", "--chain", "--", "tcp-echo", "-4", "-n", "1"]);
        let out = xtask(&args);
        assert!(out.status.success(), "{root:?}: {}", text(&out));
        assert!(
            chain_lines(&String::from_utf8_lossy(&out.stdout), "tcp_sendmsg").len() > 2,
            "{root:?}: {}",
            text(&out)
        );
    }
    std::fs::remove_file(&link).unwrap();
}
