//! `run --snapshot` on `tiny`: a guest restored where init waits for a
//! command gives what a booted run gives (the program's output lines, its
//! exit status, a failing one's too), a second run restores instead of
//! booting (the tool says so, and the console lacks init's boot-time
//! line), and a snapshot whose build ID record is not this vmlinux's is
//! made again with the line saying why. The expectations come from a
//! booted `run` of the same command, from vmlinux's own build ID (readelf)
//! and from init's source; nothing is timed.

mod common;

use std::{path::PathBuf, process::Output};

use common::*;

const ECHO: [&str; 4] = ["tcp-echo", "-4", "-n", "1"];

fn snapshot_dir() -> PathBuf {
    cache().join("build-tiny/.study/snapshot")
}

fn snapshot_run(command: &[&str]) -> Output {
    run_tiny(&["--snapshot"], command)
}

/// The command's own lines on stdout, the kernel's pick of port masked:
/// two guests need not pick the same one.
fn program_lines(out: &Output) -> Vec<String> {
    let port = regex::Regex::new(r":\d+ ").unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| port.replace_all(l, ":PORT ").into_owned())
        .collect()
}

/// What init prints once per boot before it waits on its port
/// (study/guest/init.c, read_port_job).
const WAITING: &str = "study-init: waiting for a command on";

fn restored(out: &Output) -> bool {
    let stderr = String::from_utf8_lossy(&out.stderr);
    stderr.contains("run --snapshot: restoring ") && !stderr.contains("booting once")
}

#[test]
fn a_snapshot_run_gives_the_status_and_output_of_a_booted_run() {
    let _serial = serial();
    tiny_build();
    let booted = run_tiny(&[], &ECHO);
    assert!(booted.status.success(), "{}", text(&booted));
    let snapped = snapshot_run(&ECHO);
    assert_eq!(
        snapped.status.code(),
        booted.status.code(),
        "{}",
        text(&snapped)
    );
    let lines = program_lines(&booted);
    assert!(lines.iter().any(|l| l.contains("echo ok")), "{lines:?}");
    assert_eq!(program_lines(&snapped), lines, "{}", text(&snapped));

    // A bad flag: tcp-echo's own usage error, the same status both ways.
    let bad = ["tcp-echo", "-n", "0"];
    let booted = run_tiny(&[], &bad);
    let snapped = snapshot_run(&bad);
    assert_ne!(booted.status.code(), Some(0), "{}", text(&booted));
    assert_eq!(
        snapped.status.code(),
        booted.status.code(),
        "{}",
        text(&snapped)
    );
    assert!(restored(&snapped), "{}", text(&snapped));
    assert!(
        text(&snapped).contains("tcp-echo: invalid"),
        "{}",
        text(&snapped)
    );
}

#[test]
fn a_second_snapshot_run_restores_and_a_stale_one_is_made_again() {
    let _serial = serial();
    tiny_build();
    let first = snapshot_run(&["true"]);
    assert!(first.status.success(), "{}", text(&first));
    let second = snapshot_run(&["true"]);
    assert!(second.status.success(), "{}", text(&second));
    assert!(restored(&second), "{}", text(&second));
    // A booted guest's init prints it; a restored one has printed it
    // before it was saved.
    assert!(!text(&second).contains(WAITING), "{}", text(&second));

    // A build ID record that is not vmlinux's: the snapshot is made again.
    let real = build_id();
    let record = snapshot_dir().join("build-id");
    assert_eq!(std::fs::read_to_string(&record).unwrap().trim(), real);
    std::fs::write(&record, "0123abcd\n").unwrap();
    let remade = snapshot_run(&["false"]);
    assert_eq!(remade.status.code(), Some(1), "{}", text(&remade));
    let said = format!(
        "run --snapshot: no snapshot to restore (it is of another vmlinux (build ID 0123abcd, \
         now {real})): booting once to make one"
    );
    assert!(text(&remade).contains(&said), "{}", text(&remade));
    assert_eq!(std::fs::read_to_string(&record).unwrap().trim(), real);
}

/// vmlinux's GNU build ID as readelf prints it.
fn build_id() -> String {
    let vmlinux = cache().join("build-tiny/vmlinux");
    let out = std::process::Command::new("readelf")
        .args(["-n", vmlinux.to_str().unwrap()])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.trim().strip_prefix("Build ID: ").map(str::to_string))
        .expect("vmlinux has a build ID note")
}

/// One line each, before any boot, with nothing written: a command the
/// initramfs lacks (the line names the guest programs that
/// study/guest/programs.toml lists), UML and arm64.
#[test]
fn refusals_are_one_line_and_write_nothing() {
    let _serial = serial();
    tiny_build();
    let out = snapshot_run(&["nosuch-program"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let errors: Vec<String> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("error:"))
        .map(String::from)
        .collect();
    assert_eq!(errors.len(), 1, "{}", text(&out));
    assert!(errors[0].contains("nosuch-program is not in the snapshot's initramfs"));
    let programs = std::fs::read_to_string(repo().join("study/guest/programs.toml")).unwrap();
    for name in programs
        .lines()
        .filter_map(|l| l.trim().strip_prefix("name = "))
        .map(|n| n.trim_matches('"'))
        .filter(|n| *n != "study-init")
    {
        assert!(errors[0].contains(name), "{name}: {}", errors[0]);
    }
    for (arch, why) in [
        ("um", "UML runs no QEMU"),
        ("arm64", "study/arch/arm64.toml names no command-port"),
    ] {
        let dir =
            std::env::temp_dir().join(format!("snapshot-refused-{arch}-{}", std::process::id()));
        let (tree, _) = &*TINY;
        let mut args = vec!["--arch", arch];
        args.extend(on_build("run", tree, dir.to_str().unwrap()));
        args.extend(["--snapshot", "--", "true"]);
        let out = xtask(&args);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(why), "{stderr}");
        assert!(!dir.exists(), "{} was written", dir.display());
    }
}
