//! Off the happy path, on the cached `tiny` build: two commands on one
//! build directory, a run or a build killed by a signal, a debugger that
//! never comes, a working directory with a space and a comma.

mod common;

use std::{
    os::unix::process::ExitStatusExt,
    process::Command,
    time::{Duration, Instant},
};

use common::*;

/// The cached build, current (one build a test binary: the runs below
/// must not stop to build, which their time bounds do not allow for).
fn ensure_tiny() {
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        tiny_build();
    });
}

fn run_args(extra: &[&str], command: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = on_tiny("run").iter().map(|s| s.to_string()).collect();
    args.extend(["--accel", "tcg"].map(String::from));
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push("--".into());
    args.extend(command.iter().map(|s| s.to_string()));
    args
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// Item 1 and 3 of issue 12: a guest waiting for gdb holds the build
/// directory shared; a build is refused with --no-wait (one line, naming
/// the holder), a reader shares it, a `config` waits and says for whom;
/// and the guest, which no debugger attaches to, is killed at its
/// --attach-timeout with a line that says so.
#[test]
fn a_second_command_waits_for_the_build_directory_or_refuses() {
    let _serial = serial();
    ensure_tiny();
    let port = free_port();
    let gdb = format!("--gdb={port}");
    let tag = unique_tag("lock");
    let started = Instant::now();
    let holder = spawn_tagged(
        &strs(&run_args(
            &[&gdb, "--wait-gdb", "--attach-timeout", "10"],
            &["true"],
        )),
        &repo(),
        &tag,
    );
    let holder_pid = holder.id();
    // Listening on the stub means QEMU is up, so the lock is held. (A
    // connection would count as a debugger: only try to bind.)
    assert!(
        wait_until(60, || std::net::TcpListener::bind(("127.0.0.1", port))
            .is_err()),
        "the gdb stub never listened"
    );

    let before = Instant::now();
    let mut build = on_tiny("build");
    build.push("--no-wait");
    let out = xtask(&build);
    assert!(!out.status.success());
    assert!(
        before.elapsed() < Duration::from_secs(10),
        "refused at once"
    );
    // One line, beside the note a tree other than the submodule's pin gets.
    let stderr: String = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.starts_with("note: "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let dir = &TINY.1;
    assert!(
        stderr.starts_with(&format!(
            "error: build directory {dir} is in use by pid {holder_pid} (`xtask run --profile tiny"
        )) && stderr
            .trim_end()
            .ends_with("rerun without --no-wait to wait for it"),
        "{stderr}"
    );

    // A reader shares the directory with the guest.
    let mut report = on_tiny("opt-report");
    report.extend(["--no-wait", "net/ipv4/tcp.o"]);
    let out = xtask(&report);
    assert!(out.status.success(), "{}", text(&out));

    // A writer waits for the guest, says for whom, then does its work.
    let out = xtask(&on_tiny("config"));
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("is in use by pid {holder_pid} (`xtask run"))
            && stderr.contains("waiting for it (--no-wait refuses instead)"),
        "{stderr}"
    );

    // No debugger came: the guest is bounded all the same.
    let out = finish(holder, "run --wait-gdb --attach-timeout 10");
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "bounded by --attach-timeout"
    );
    assert_eq!(out.status.code(), Some(125), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "error: no debugger attached to 127.0.0.1:{port} within 10 s (--attach-timeout); \
             QEMU was killed: start `cargo xtask gdb --port {port}` while the guest waits"
        )),
        "{stderr}"
    );
    assert!(wait_until(10, || tagged(&tag).is_empty()));
}

/// Item 3 on its own, as the issue states it: `--wait-gdb` and no gdb is a
/// failure within seconds, not a hang.
#[test]
fn a_guest_waiting_for_a_debugger_that_never_comes_is_killed() {
    let _serial = serial();
    ensure_tiny();
    let port = free_port().to_string();
    let gdb = format!("--gdb={port}");
    let start = Instant::now();
    let out = xtask(&strs(&run_args(
        &[&gdb, "--wait-gdb", "--attach-timeout", "3"],
        &["true"],
    )));
    assert!(start.elapsed() < Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(125));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "no debugger attached to 127.0.0.1:{port} within 3 s (--attach-timeout)"
        )),
        "{stderr}"
    );
}

/// Item 2: a run stopped by SIGTERM (a CI time-out) takes QEMU with it and
/// removes its job and env files and its QMP socket, exiting 143; one stopped by SIGKILL, which
/// it cannot see, still takes QEMU with it (the parent-death signal), and
/// the next run removes the files it left.
#[test]
fn a_killed_run_leaves_no_qemu_and_no_files() {
    let _serial = serial();
    ensure_tiny();
    let run_dir = cache().join("build-tiny/.study/run");
    let leftovers = |pid: u32| -> Vec<String> {
        std::fs::read_dir(&run_dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(&format!("-{pid}")))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut killed = Vec::new();
    for sig in ["TERM", "KILL"] {
        let tag = unique_tag("kill-run");
        let child = spawn_tagged(&strs(&run_args(&[], &["sleep", "100"])), &repo(), &tag);
        let pid = child.id();
        assert!(
            wait_until(60, || tagged(&tag)
                .iter()
                .any(|(_, c)| c.contains("qemu-system"))),
            "QEMU never started"
        );
        // The job file is read at boot; let the guest get to the command.
        std::thread::sleep(Duration::from_secs(3));
        assert_eq!(
            leftovers(pid).len(),
            3,
            "job and env files and the QMP socket while it runs: {:?}",
            leftovers(pid)
        );
        signal(pid, sig);
        let out = finish(child, &format!("run -- sleep 100, then SIG{sig}"));
        if sig == "TERM" {
            assert_eq!(out.status.code(), Some(143), "{}", text(&out));
            assert!(
                String::from_utf8_lossy(&out.stderr).contains("stopped by SIGTERM"),
                "{}",
                text(&out)
            );
            assert_eq!(leftovers(pid), Vec::<String>::new());
        } else {
            assert_eq!(out.status.signal(), Some(9));
        }
        assert!(
            wait_until(10, || tagged(&tag).is_empty()),
            "left running after SIG{sig}: {:?}",
            tagged(&tag)
        );
        killed.push(pid);
    }
    // The next run clears what the SIGKILLed one could not.
    let out = xtask(&strs(&run_args(&[], &["true"])));
    assert!(out.status.success(), "{}", text(&out));
    for pid in killed {
        assert_eq!(leftovers(pid), Vec::<String>::new());
    }
}

/// Item 2: a build stopped by SIGTERM stops make and everything it started,
/// leaves no temporary file of ours, and the next build finds nothing to do.
#[test]
fn a_killed_build_leaves_no_make_and_the_next_build_resumes() {
    let _serial = serial();
    ensure_tiny();
    let dir = cache().join("build-tiny");
    let tag = unique_tag("kill-build");
    let child = spawn_tagged(&on_tiny("build"), &repo(), &tag);
    let pid = child.id();
    assert!(
        wait_until(60, || tagged(&tag)
            .iter()
            .any(|(p, c)| *p != pid && c.starts_with("make "))),
        "make never started"
    );
    std::thread::sleep(Duration::from_secs(2));
    signal(pid, "TERM");
    let out = finish(child, "build, then SIGTERM");
    assert_eq!(
        out.status.code(),
        Some(143),
        "stopped mid-build: {}",
        text(&out)
    );
    assert!(
        wait_until(20, || tagged(&tag).is_empty()),
        "left running: {:?}",
        tagged(&tag)
    );
    let temp: Vec<_> = walkdir::WalkDir::new(dir.join(".study"))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .map(|e| e.path().to_path_buf())
        .collect();
    assert_eq!(temp, Vec::<std::path::PathBuf>::new());
    let out = build_with(None);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(compiled_objects(&out), Vec::<String>::new());
}

/// Item 4: a working directory under /tmp (which init covers with a tmpfs
/// and must keep visible) with a space and a comma in its path.
#[test]
fn a_working_directory_with_a_space_and_a_comma_reaches_the_guest() {
    let _serial = serial();
    ensure_tiny();
    let top = std::env::temp_dir().join(format!("linux-study-paths-{}", std::process::id()));
    let dir = top.join("a b,c");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("marker"), "here\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(run_args(&[], &["sh", "-c", "cat marker && pwd"]))
        .current_dir(&dir)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&top);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("here\n{}\n", dir.display())),
        "{stdout}"
    );
}

/// Item 4: what Kbuild cannot build in is refused up front, in one line,
/// and nothing is created.
#[test]
fn a_build_directory_with_a_space_is_refused_in_one_line() {
    let top = std::env::temp_dir().join(format!("linux-study-space-{}", std::process::id()));
    let dir = top.join("my build");
    let out = config_with("tiny", &dir, &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr,
        format!(
            "error: the build directory {:?} holds ' ', which Kbuild cannot cope with; \
             use a path without it (--build-dir DIR, --kernel DIR)\n",
            dir.display().to_string()
        )
    );
    assert!(!top.exists());
}
