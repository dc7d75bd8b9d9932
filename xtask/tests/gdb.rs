//! Real gdb on a real guest: stops after the prologue with every variable readable.

mod common;

use std::process::Command;

use common::*;

/// The end-to-end debugging session the README promises: break in
/// tcp_sendmsg, walk down to tcp_write_xmit, and see every argument and
/// local with its real value.
#[test]
fn gdb_sees_every_variable_from_tcp_sendmsg_down() {
    let _serial = serial();
    tiny_build();
    let port = free_port().to_string();
    let gdb_flag = format!("--gdb={port}");
    let guest = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(on_tiny("run"))
        .args([
            gdb_flag.as_str(),
            "--wait-gdb",
            "--timeout",
            "600",
            "--",
            "tcp-echo",
            "-4",
            "-n",
            "1",
            "-s",
            "1000",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the gdb stub never listened"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let batch = [
        "bt",
        "echo ==sendmsg-args==\\n",
        "info args",
        "study-break tcp_sendmsg_locked",
        "study-break tcp_write_xmit",
        "finish",
        "echo ==locked==\\n",
        "info args",
        "info locals",
        "echo ==end-locked==\\n",
        "continue",
        "echo ==xmit==\\n",
        "info args",
        "info locals",
        "echo ==end-xmit==\\n",
    ];
    let mut args = on_tiny("gdb");
    args.extend(["--port", port.as_str(), "-b", "tcp_sendmsg"]);
    for cmd in batch {
        args.extend(["--batch", cmd]);
    }
    let out = xtask(&args);
    let gdb = text(&out);
    let guest_out = guest.wait_with_output().unwrap();
    assert_eq!(
        guest_out.status.code(),
        Some(0),
        "guest: {}\n{}",
        text(&guest_out),
        gdb
    );

    let bt = &gdb[..gdb.find("==sendmsg-args==").expect("the first stop")];
    assert!(bt.contains("tcp_sendmsg ("), "{bt}");
    assert!(
        bt.contains("inet_sendmsg") || bt.contains("inet6_sendmsg"),
        "{bt}"
    );
    assert!(bt.contains("sock_sendmsg"), "{bt}");
    assert!(bt.contains("__sys_sendto"), "{bt}");

    let section =
        |from: &str, to: &str| gdb[gdb.find(from).unwrap()..gdb.find(to).unwrap()].to_string();
    let sendmsg = section("==sendmsg-args==", "==locked==");
    assert!(sendmsg.contains("size = 1000"), "{sendmsg}");
    let sk = sendmsg
        .lines()
        .find_map(|l| l.strip_prefix("sk = "))
        .expect("sk")
        .to_string();
    assert!(sk.starts_with("0xffff"), "sk is a kernel pointer: {sk}");

    let locked = section("==locked==", "==end-locked==");
    let xmit = section("==xmit==", "==end-xmit==");
    for (name, part) in [("tcp_sendmsg_locked", &locked), ("tcp_write_xmit", &xmit)] {
        assert!(!part.contains("<optimized out>"), "{name}: {part}");
        assert!(
            part.contains(&format!("sk = {sk}")),
            "{name} has the same sk: {part}"
        );
        assert!(
            part.lines().count() > 5,
            "{name} shows its variables: {part}"
        );
    }
    assert!(locked.contains("size = 1000"), "{locked}");
    assert!(gdb.contains("Breakpoint 2, tcp_sendmsg_locked"), "{gdb}");
}

#[test]
fn a_busy_gdb_port_is_a_clear_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut args = on_tiny("run");
    let flag = format!("--gdb={port}");
    args.extend(["--dry-run", flag.as_str(), "--", "true"]);
    let out = xtask(&args);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("gdb port 127.0.0.1:{port} is not free"))
            && stderr.contains("--gdb=PORT"),
        "{stderr}"
    );
}

/// The seed's send path, stop by stop, in one boot and one command
/// (`cargo xtask debug`, with the stub waiting from the first instruction):
/// at each function every argument and every real local has a value; the
/// compiler's macro temporaries are set apart by study-frame.
#[test]
fn debug_stops_along_the_whole_chain_with_every_variable_readable() {
    let _serial = serial();
    tiny_build();
    let chain = [
        "tcp_sendmsg",
        "tcp_sendmsg_locked",
        "tcp_push",
        "__tcp_push_pending_frames",
        "tcp_write_xmit",
        "__tcp_transmit_skb",
        "__ip_queue_xmit",
        "ip_output",
        "ip_finish_output2",
        "__dev_queue_xmit",
        "dev_hard_start_xmit",
        "xmit_one",
        "inet6_csk_xmit",
        "ip6_xmit",
        "ip6_output",
        "ip6_finish_output2",
    ];
    let stops = stops_along(&on_tiny("debug"), &chain, &["tcp-echo", "-n", "1"]);
    every_variable_readable(&chain, &stops);
}

/// The same through a TUN device (tun-peer), down to the driver.
#[test]
fn debug_stops_in_ip6_xmit_and_tun_net_xmit_over_tun() {
    let _serial = serial();
    tiny_build();
    let chain = ["ip6_xmit", "tun_net_xmit"];
    let stops = stops_along(&on_tiny("debug"), &chain, &["tun-peer"]);
    every_variable_readable(&chain, &stops);
}

/// `debug` boots the kernel while gdb reads vmlinux, and init holds the
/// command until gdb continues with its breakpoints in. Here gdb dawdles
/// 4 s before it even connects (a user gdbinit, read before the session
/// script), longer than tiny's boot to init: were the command not held,
/// tcp-echo would have sent and exited, and the guest with it, before the
/// breakpoint went in.
#[test]
fn debug_holds_the_command_until_gdb_continues() {
    let _serial = serial();
    tiny_build();
    let config = cache().join("gdb-dawdles");
    std::fs::create_dir_all(config.join("gdb")).unwrap();
    std::fs::write(
        config.join("gdb/gdbinit"),
        "python import time; time.sleep(4)\n",
    )
    .unwrap();
    let mut args = on_tiny("debug");
    args.extend([
        "--no-build",
        "-b",
        "tcp_sendmsg_locked",
        "--batch",
        "print size",
        "--",
        "tcp-echo",
        "-4",
        "-n",
        "1",
    ]);
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(&args)
        .env("XDG_CONFIG_HOME", &config)
        .output()
        .unwrap();
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("$1 = 1000"),
        "{all}"
    );
    let console = all
        .lines()
        .find_map(|l| l.strip_prefix("guest console: "))
        .and_then(|l| l.split(' ').next())
        .unwrap_or_else(|| panic!("no console named:\n{all}"));
    let console = String::from_utf8_lossy(&std::fs::read(console).unwrap()).into_owned();
    // init waited for the release file (it says so once it comes), and
    // the stop above shows the command ran only once gdb was in: no clock
    // is asked how long the wait was.
    assert!(
        console.lines().any(|l| {
            l.trim()
                .strip_prefix("study-init: held the job ")
                .and_then(|rest| rest.strip_suffix(" s for gdb"))
                .is_some_and(|secs| secs.parse::<f64>().is_ok())
        }),
        "init did not say it held the job:\n{console}"
    );
}

/// `--from-boot`: the CPU waits at the reset vector, so a breakpoint in the
/// boot itself (inet_init, an initcall) stops too.
#[test]
fn debug_from_boot_stops_in_the_boot() {
    let _serial = serial();
    tiny_build();
    let mut args = on_tiny("debug");
    args.extend([
        "--no-build",
        "--from-boot",
        "-b",
        "inet_init",
        "--batch",
        "study-frame",
        "--",
        "true",
    ]);
    let out = xtask(&args);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("Breakpoint 1, inet_init"), "{all}");
    assert!(
        !all.contains("the command starts at gdb's first continue"),
        "{all}"
    );
}
