//! The same study on two more architectures, each in a cached `tiny` build
//! of its own under target/kernel-test/: User-Mode Linux (the kernel is a
//! host process: no QEMU) and arm64 (cross-built, QEMU's virt machine under
//! TCG, an initramfs of arm64 programs). The arm64 tests are ignored by
//! default: its first build takes about 15 minutes on 2 cores, more than
//! `.ci/run` can spend; `cargo test --test arch -- --include-ignored` runs
//! them (as GitHub's arm64 entries run the same steps).
//!
//! The UML tests are skipped, with the reason printed and counted as
//! ignored, on a host whose XSAVE area is larger than the tree's UML hands
//! ptrace (an Intel Xeon with AMX): the tool itself says so, in the line
//! `config --arch um` stops with. libtest decides what is ignored when the
//! binary is compiled; this harness (libtest-mimic) decides when it runs.
//! That verdict is itself tested (`uml_verdict_agrees_with_cpuid`): this
//! file reads the host's XSAVE size from CPUID and the tree's constant
//! from its source, so a broken probe fails instead of ignoring the rest.

mod common;

use std::path::PathBuf;

use common::{reverse::*, *};
use libtest_mimic::{Arguments, Trial};

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

/// UML runs as a host process: the guest's status comes back, and neither
/// a process nor UML's run directory is left behind.
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

/// UML has no function_graph: one line says so and where to trace, before
/// anything is built or booted.
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

/// A host whose XSAVE area is larger than the tree's constant (an Intel
/// Xeon with AMX: 11008 bytes), made on purpose through the probe's
/// override: `config`, `build` and `run` stop in the same one line, before
/// make or UML runs, and leave no build directory behind. On such a host
/// itself the override only says what it already measures.
fn um_on_a_host_with_a_larger_xsave_area_stops_in_one_line() {
    let dir = cache().join("build-tiny-um-unfit");
    let _ = std::fs::remove_dir_all(&dir);
    let tree: &'static str = Box::leak(kernel().display().to_string().into_boxed_str());
    let dir_text: &'static str = Box::leak(dir.display().to_string().into_boxed_str());
    for command in ["config", "build", "run"] {
        let mut args = on_build(command, tree, dir_text);
        args.extend(["--arch", "um"]);
        if command == "run" {
            args.extend(["--", "true"]);
        }
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(&args)
            .env("LINUX_STUDY_HOST_XSAVE_BYTES", "11008")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{command}: {stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
        assert_eq!(lines.len(), 1, "{command}: {stderr}");
        let release = release();
        for part in [
            "11008 bytes".to_string(),
            format!("Linux {release}"),
            "HOST_FP_SIZE".to_string(),
            "--arch x86_64".to_string(),
        ] {
            assert!(lines[0].contains(&part), "{command}: {part}: {stderr}");
        }
        assert!(!stderr.contains("$ make"), "{command} ran make: {stderr}");
        assert!(!dir.exists(), "{command} left {}", dir.display());
    }
}

/// function_graph on arm64: the chain by layer down to loopback's driver.
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

/// `record` and `replay` on arm64: a recording of tcp-echo replayed under
/// gdb, whose record retraces the way forward, then QEMU's reverse-stepi
/// lands on the instruction before (as tests/replay.rs checks on x86_64).
fn arm64_replay_retraces_the_way_forward() {
    let _serial = serial();
    built("arm64");
    let mut record = on("arm64", "record");
    record.extend(["--name", "test-replay", "--", "tcp-echo", "-4", "-n", "1"]);
    let out = xtask(&record);
    assert!(out.status.success(), "{}", text(&out));
    let walk = walk_flags("arm64-walk.py", HAND_OVER_TO_QEMU, 4);
    let mut replay = on("arm64", "replay");
    replay.push("test-replay");
    replay.extend(walk.iter().map(String::as_str));
    let out = xtask(&replay);
    assert!(out.status.success(), "{}", text(&out));
    let stops = walk_stops(&out);
    assert_retraced(&stops, 4, &out);
    assert_handed_over(&stops, &out);
}

/// Why UML cannot run here, in the tool's own words, or `None`: what
/// `config --arch um --dry-run` stops with on this host.
fn uml_unfit_here() -> Option<String> {
    let mut args = on("um", "config");
    args.push("--dry-run");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(&args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .find(|l| l.contains("UML cannot run processes on this host"))
        .map(|l| l.trim_start_matches("error: ").to_string())
}

/// This host's XSAVE area as the CPU says it, read here and not by the
/// tool: CPUID leaf 0xD, sub-leaf 0, EBX (the size of the area of the
/// features the kernel enabled in XCR0). `None` without XSAVE enabled by
/// the OS (CPUID.1:ECX.OSXSAVE) or without the leaf.
#[cfg(target_arch = "x86_64")]
fn cpuid_xsave_bytes() -> Option<u32> {
    use std::arch::x86_64::{__cpuid, __cpuid_count};
    if __cpuid(0).eax < 0xd || __cpuid(1).ecx & (1 << 27) == 0 {
        return None;
    }
    Some(__cpuid_count(0xd, 0).ebx)
}

#[cfg(not(target_arch = "x86_64"))]
fn cpuid_xsave_bytes() -> Option<u32> {
    None
}

/// The tree's UML FP buffer, read from the tree: the constant of
/// `DEFINE_LONGS(HOST_FP_SIZE, N)` in arch/x86/um/user-offsets.c, or
/// `None` where the tree sizes it at run time.
fn tree_fp_bytes() -> Option<u32> {
    let text =
        std::fs::read_to_string(kernel().join("arch/x86/um/user-offsets.c")).unwrap_or_default();
    let constant = regex::Regex::new(r"DEFINE_LONGS\(\s*HOST_FP_SIZE\s*,\s*(\d+)\s*\)").unwrap();
    constant.captures(&text).map(|c| c[1].parse().unwrap())
}

/// The verdict that decides whether the UML tests run (the tool's own
/// line, from `config --arch um --dry-run`) agrees with the host's XSAVE
/// size read here and the tree's constant read here: a broken probe would
/// otherwise turn every UML test into "ignored". `setup --arch um` states
/// the same size in its report line.
fn uml_verdict_agrees_with_cpuid(unfit: Option<String>) {
    let host = cpuid_xsave_bytes();
    let tree = tree_fp_bytes();
    eprintln!("uml probe: CPUID.0xD.0:EBX = {host:?} bytes; the tree's HOST_FP_SIZE = {tree:?}");
    let runs = match (host, tree) {
        (Some(host), Some(tree)) => host <= tree,
        _ => true,
    };
    match &unfit {
        None => assert!(
            runs,
            "the tool lets UML run, but this host's XSAVE area is {host:?} bytes and the \
             tree's buffer {tree:?}"
        ),
        Some(why) => {
            assert!(
                !runs,
                "the tool says UML cannot run here, but it can: {why}"
            );
            let host = host.unwrap();
            assert!(why.contains(&format!(" {host} bytes")), "{host}: {why}");
        }
    }
    let tree_dir = kernel();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "setup",
            "--arch",
            "um",
            "--kernel",
            tree_dir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("uml: "))
        .unwrap_or_else(|| panic!("setup --arch um printed no uml line:\n{}", text(&out)));
    match host {
        Some(host) => assert!(line.contains(&format!(" {host} bytes")), "{host}: {line}"),
        None => assert!(line.contains("no XSAVE"), "{line}"),
    }
    assert_eq!(line.ends_with("UML runs here"), runs, "{line}");
}

/// `callgraph` reads the architecture's own calls: the callees of
/// tcp_write_xmit are what the architecture's objdump reads in the same
/// vmlinux (UML's large-model calls through a loaded register included).
fn callgraph_reads_the_calls(arch: &'static str) {
    built(arch);
    let mut args = on(arch, "callgraph");
    args.extend(["tcp_write_xmit", "--depth", "1", "--format", "json"]);
    let out = xtask(&args);
    assert!(out.status.success(), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let edges = json["edges"].as_array().unwrap();
    let ours: std::collections::BTreeSet<String> = edges
        .iter()
        .filter(|e| e["from"] == "tcp_write_xmit" && !e["tail"].as_bool().unwrap())
        .filter_map(|e| e["to"].as_str().map(String::from))
        .collect();
    let objdump = match arch {
        "arm64" => "aarch64-linux-gnu-objdump",
        _ => "objdump",
    };
    let (theirs, indirect) =
        objdump_calls(objdump, &build_dir(arch).join("vmlinux"), "tcp_write_xmit");
    assert!(!theirs.is_empty(), "{objdump} found no call");
    assert_eq!(ours, theirs, "{arch}: the callees of tcp_write_xmit");
    let ours_indirect = edges.iter().filter(|e| e["to"].is_null()).count();
    assert_eq!(ours_indirect, indirect, "{arch}: indirect call sites");
}

/// drgn on arm64: during tun-peer the TCP helper's snd_nxt - snd_una is
/// what the peer received and never acked; a vmcore written at gdb's stop
/// in tcp_sendmsg_locked shows gdb's `size` in drgn's stack trace.
fn arm64_drgn_reads_a_live_socket_and_a_dump() {
    let _serial = serial();
    built("arm64");
    let mut args = on("arm64", "drgn");
    args.extend(["-e", common::live::LIVE_SOCKET, "20", "--"]);
    args.extend(["tun-peer", "-f", "noack", "-n", "100000", "-t", "14"]);
    let out = xtask(&args);
    assert!(out.status.success(), "{}", text(&out));
    let socket = common::live::drgn_json(&out);
    let console = common::live::console_of(&out);
    assert_eq!(socket["state"], "ESTABLISHED", "{socket}");
    let in_flight = socket["in_flight"].as_u64().unwrap();
    assert!(in_flight > 0, "{socket}");
    assert_eq!(in_flight, common::live::peer_in_flight(&console));

    let dumps = cache().join("dumps");
    std::fs::create_dir_all(&dumps).unwrap();
    let core = dumps.join("arm64-at-stop.vmcore");
    let gdb_size = common::live::size_at_stop_with_dump(on("arm64", "debug"), &core, "777");
    assert_eq!(gdb_size, "777");
    let mut args: Vec<&str> = on("arm64", "drgn");
    args.extend([
        "--core",
        core.to_str().unwrap(),
        "-e",
        common::live::SIZE_AT_STOP,
    ]);
    let out = xtask(&args);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(common::live::drgn_json(&out).to_string(), gdb_size);
    std::fs::remove_file(&core).unwrap();
}

const ARM64_SLOW: &str =
    "the arm64 cross build takes ~15 min on 2 cores: run with --include-ignored";

fn main() {
    let args = Arguments::from_args();
    let unfit = uml_unfit_here();
    if let Some(why) = &unfit {
        eprintln!("skipped: the UML tests that run UML: {why}");
    }
    let on_uml = |name, f| trial(name, f).with_ignored_flag(unfit.is_some());
    let arm64 = |name, f| {
        eprintln!("ignored: {name}: {ARM64_SLOW}");
        trial(name, f).with_ignored_flag(true)
    };
    let trials = vec![
        Trial::test("uml_verdict_agrees_with_cpuid", {
            let unfit = unfit.clone();
            move || {
                std::panic::catch_unwind(|| uml_verdict_agrees_with_cpuid(unfit))
                    .map_err(|e| failed(&e))
            }
        }),
        on_uml("um_builds_with_every_object_at_its_level", || {
            let _serial = serial();
            levels_hold("um")
        }),
        on_uml(
            "um_runs_a_command_and_leaves_nothing_behind",
            um_runs_a_command_and_leaves_nothing_behind,
        ),
        on_uml("um_gdb_stops_with_every_variable_readable", || {
            let _serial = serial();
            gdb_reads_every_variable("um")
        }),
        on_uml("um_callgraph_reads_the_large_model_calls", || {
            let _serial = serial();
            callgraph_reads_the_calls("um")
        }),
        trial(
            "um_trace_is_refused_in_one_line",
            um_trace_is_refused_in_one_line,
        ),
        trial(
            "um_on_a_host_with_a_larger_xsave_area_stops_in_one_line",
            um_on_a_host_with_a_larger_xsave_area_stops_in_one_line,
        ),
        arm64("arm64_builds_with_every_object_at_its_level", || {
            let _serial = serial();
            levels_hold("arm64")
        }),
        arm64("arm64_runs_a_command_from_its_initramfs", || {
            let _serial = serial();
            runs_and_passes_the_status_back("arm64")
        }),
        arm64("arm64_gdb_stops_with_every_variable_readable", || {
            let _serial = serial();
            gdb_reads_every_variable("arm64")
        }),
        arm64(
            "arm64_drgn_reads_a_live_socket_and_a_dump",
            arm64_drgn_reads_a_live_socket_and_a_dump,
        ),
        arm64("arm64_callgraph_reads_bl_and_blr", || {
            let _serial = serial();
            callgraph_reads_the_calls("arm64")
        }),
        arm64(
            "arm64_trace_shows_the_chain_down_to_the_driver",
            arm64_trace_shows_the_chain_down_to_the_driver,
        ),
        arm64(
            "arm64_replay_retraces_the_way_forward",
            arm64_replay_retraces_the_way_forward,
        ),
    ];
    libtest_mimic::run(&args, trials).exit();
}
