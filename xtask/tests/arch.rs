//! The same study on two more architectures, each in a cached `tiny` build
//! of its own under target/kernel-test/: User-Mode Linux (the kernel is a
//! host process: no QEMU) and arm64 (cross-built, QEMU's virt machine under
//! TCG, an initramfs of arm64 programs). The arm64 tests are ignored by
//! default: its first build takes about 15 minutes on 2 cores, more than
//! `.ci/run` can spend; `cargo test --test arch -- --include-ignored` runs
//! them (as GitHub's arm64 entries run the same steps).

mod common;

use std::path::PathBuf;

use common::*;

fn build_dir(arch: &str) -> PathBuf {
    cache().join(format!("build-tiny-{arch}"))
}

/// `cargo xtask COMMAND` for `tiny` on `arch`, in its cached directory.
fn on(arch: &'static str, command: &'static str) -> Vec<&'static str> {
    let tree: &'static str = Box::leak(kernel().display().to_string().into_boxed_str());
    let dir: &'static str = Box::leak(build_dir(arch).display().to_string().into_boxed_str());
    let mut args = on_build(command, tree, dir);
    args.extend(["--arch", arch]);
    args
}

fn built(arch: &'static str) {
    let out = xtask(&on(arch, "build"));
    assert!(out.status.success(), "{}", text(&out));
    let config = dot_config(&build_dir(arch));
    // The build is the architecture's: its own options landed.
    let own = match arch {
        "um" => "HOSTFS",
        "arm64" => "SERIAL_AMBA_PL011",
        _ => unreachable!(),
    };
    assert_eq!(config.get(own).map(String::as_str), Some("y"), "{arch}");
}

fn run(arch: &'static str, command: &[&str]) -> std::process::Output {
    let mut args = on(arch, "run");
    args.push("--");
    args.extend(command);
    xtask(&args)
}

/// Builds, then opt-report --check: every object at the level its rule
/// says, read back from the DWARF of this architecture's objects.
fn levels_hold(arch: &'static str) {
    built(arch);
    let out = xtask(
        &on(arch, "opt-report")
            .into_iter()
            .chain(["--check"])
            .collect::<Vec<_>>(),
    );
    assert!(out.status.success(), "{}", text(&out));
}

/// tcp-echo over IPv4 and IPv6 loopback, and a status of our choosing
/// passed back.
fn runs_and_passes_the_status_back(arch: &'static str) {
    built(arch);
    let out = run(arch, &["tcp-echo", "-n", "2"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for family in ["ipv4", "ipv6"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(&format!("tcp-echo: {family} ")) && l.ends_with("echo ok")),
            "{stdout}"
        );
    }
    let out = run(arch, &["sh", "-c", "uname -m; exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let machine = match arch {
        "um" => "x86_64",
        "arm64" => "aarch64",
        _ => unreachable!(),
    };
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l == machine),
        "{}",
        text(&out)
    );
}

/// The stops of the send path, every variable readable (the same check as
/// tests/gdb.rs on x86_64).
fn gdb_reads_every_variable(arch: &'static str) {
    built(arch);
    let chain = [
        "tcp_sendmsg_locked",
        "tcp_write_xmit",
        "__tcp_transmit_skb",
        "ip_finish_output2",
        "__dev_queue_xmit",
        "ip6_xmit",
    ];
    let stops = stops_along(&on(arch, "debug"), &chain, &["tcp-echo", "-n", "1"]);
    every_variable_readable(&chain, &stops);
    let first = &stops
        .iter()
        .find(|(n, _)| n == "tcp_sendmsg_locked")
        .unwrap()
        .1;
    assert!(first.contains("size = 1000"), "{first}");
}

#[test]
fn um_builds_with_every_object_at_its_level() {
    let _serial = serial();
    levels_hold("um");
}

/// UML runs as a host process: the guest's status comes back, and neither
/// a process nor UML's run directory is left behind.
#[test]
fn um_runs_a_command_and_leaves_nothing_behind() {
    let _serial = serial();
    runs_and_passes_the_status_back("um");
    let image = build_dir("um").join("linux").canonicalize().unwrap();
    let left: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| std::fs::read_link(e.path().join("exe")).is_ok_and(|exe| exe == image))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.is_empty(), "UML processes left: {left:?}");
    let run_dir = build_dir("um").join(".study/run");
    let dirs: Vec<_> = std::fs::read_dir(&run_dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(dirs.is_empty(), "left in {}: {dirs:?}", run_dir.display());
}

#[test]
fn um_gdb_stops_with_every_variable_readable() {
    let _serial = serial();
    gdb_reads_every_variable("um");
}

/// UML has no function_graph: one line says so and where to trace, before
/// anything is built or booted.
#[test]
fn um_trace_is_refused_in_one_line() {
    let mut args = on("um", "trace");
    args.extend(["tcp_sendmsg", "--", "true"]);
    let out = xtask(&args);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("um has no ftrace function_graph"),
        "{stderr}"
    );
    assert!(errors[0].contains("arm64 or x86_64"), "{stderr}");
    assert!(!stderr.contains("$ make"), "it built: {stderr}");
}

#[test]
#[ignore = "the arm64 cross build takes ~15 min on 2 cores: run with --include-ignored"]
fn arm64_builds_with_every_object_at_its_level() {
    let _serial = serial();
    levels_hold("arm64");
}

#[test]
#[ignore = "the arm64 cross build takes ~15 min on 2 cores: run with --include-ignored"]
fn arm64_runs_a_command_from_its_initramfs() {
    let _serial = serial();
    runs_and_passes_the_status_back("arm64");
}

#[test]
#[ignore = "the arm64 cross build takes ~15 min on 2 cores: run with --include-ignored"]
fn arm64_gdb_stops_with_every_variable_readable() {
    let _serial = serial();
    gdb_reads_every_variable("arm64");
}

/// function_graph on arm64: the chain by layer down to loopback's driver.
#[test]
#[ignore = "the arm64 cross build takes ~15 min on 2 cores: run with --include-ignored"]
fn arm64_trace_shows_the_chain_down_to_the_driver() {
    let _serial = serial();
    built("arm64");
    let mut args = on("arm64", "trace");
    args.extend(["tcp_sendmsg", "--chain", "--", "tcp-echo", "-4", "-n", "1"]);
    let out = xtask(&args);
    assert!(out.status.success(), "{}", text(&out));
    assert_chain(
        &String::from_utf8_lossy(&out.stdout),
        "tcp_sendmsg",
        &["transport", "network", "device", "driver"],
        &[
            "tcp_sendmsg_locked",
            "tcp_write_xmit",
            "ip_queue_xmit",
            "__dev_queue_xmit",
            "loopback_xmit",
        ],
    );
}
