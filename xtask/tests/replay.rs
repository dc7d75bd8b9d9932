//! `record` and `replay` on `tiny`: one run of tcp-echo recorded by QEMU,
//! then replayed, plain and under gdb, with real reverse execution. The
//! expectations come from the same runs: the recording's own console, the
//! way forward of each session (each reverse-next lands on a line and the
//! values seen there), a forward watchpoint on a fresh replay, and a second
//! replay of the same recording. Ignored, with the reason, on a host whose
//! QEMU cannot run backwards (`setup --install` unpacks one that can).

mod common;

use std::{
    path::{Path, PathBuf},
    process::Output,
};

use common::{reverse::*, *};
use libtest_mimic::{Arguments, Trial};

const COMMAND: [&str; 4] = ["tcp-echo", "-4", "-n", "1"];
const NAME: &str = "test-replay";
const STEPS: usize = 4;

/// A QEMU that reverses, as the README's setup leaves it: the host's, or
/// the one `setup --install` unpacks; found by asking each its version.
fn qemu_that_reverses() -> Option<String> {
    let unpacked = repo().join("target/debs/qemu-system-x86_amd64/usr/bin/qemu-system-x86_64");
    [
        "qemu-system-x86_64".to_string(),
        unpacked.display().to_string(),
    ]
    .into_iter()
    .find(|q| {
        let out = std::process::Command::new(q).arg("--version").output();
        let Ok(out) = out else { return false };
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let major = text
            .split("version ")
            .nth(1)
            .and_then(|v| v.split('.').next())
            .and_then(|m| m.parse::<u32>().ok());
        major.is_some_and(|m| m >= 10)
    })
}

fn recordings() -> PathBuf {
    cache().join("build-tiny/.study/record")
}

/// Records tcp-echo once (the tests share it).
fn recorded() -> &'static Output {
    static ONCE: std::sync::OnceLock<Output> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        tiny_build();
        let mut args = on_tiny("record");
        args.extend(["--name", NAME, "--"]);
        args.extend(COMMAND);
        let out = xtask(&args);
        assert!(out.status.success(), "{}", text(&out));
        out
    })
}

fn replay(extra: &[&str]) -> Output {
    let mut args = on_tiny("replay");
    args.push(NAME);
    args.extend(extra);
    let out = xtask(&args);
    assert!(out.status.success(), "{}", text(&out));
    out
}

/// The line tcp-echo prints: its port is the kernel's pick, so the same
/// line is the same run.
fn echo_line(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with("tcp-echo:"))
        .unwrap_or_else(|| panic!("no tcp-echo line:\n{}", text(out)))
        .to_string()
}

fn plain_replay_prints_the_recorded_console() {
    let recorded = recorded();
    for file in [
        "replay.bin",
        "snapshots.qcow2",
        "initramfs.cpio",
        "build-id",
        "command",
        "exit",
    ] {
        assert!(recordings().join(NAME).join(file).is_file(), "{file}");
    }
    // The recording boots with the arch file's `[replay] cmdline` (the
    // words that skip the boot's calibration loops), after the run's own.
    let arch = repo().join(format!("study/arch/{}.toml", std::env::consts::ARCH));
    let arch: toml::Table = toml::from_str(&std::fs::read_to_string(arch).unwrap()).unwrap();
    let cmdline = std::fs::read_to_string(recordings().join(NAME).join("cmdline")).unwrap();
    let words = arch["replay"].get("cmdline").and_then(|w| w.as_array());
    for word in words.into_iter().flatten() {
        let word = word.as_str().unwrap();
        assert!(
            cmdline.split_whitespace().any(|w| w == word),
            "{word} is not in the recording's command line: {cmdline}"
        );
    }
    let replayed = replay(&[]);
    assert_eq!(echo_line(&replayed), echo_line(recorded));
    assert!(text(&replayed).contains("exited with status 0, as recorded"));
}

/// Where a watchpoint on `tp->write_seq` stopped: (line, old, new).
fn watch_stop(out: &Output) -> (usize, u64, u64) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let re = regex::Regex::new(
        r"Old value = (\d+)\nNew value = (\d+)\n(?:.*\n)*?.*at \S*net/ipv4/tcp\.c:(\d+)",
    )
    .unwrap();
    let c = re
        .captures(&stdout)
        .unwrap_or_else(|| panic!("the watchpoint did not stop:\n{}", text(out)));
    (
        c[3].parse().unwrap(),
        c[1].parse().unwrap(),
        c[2].parse().unwrap(),
    )
}

fn walk_session() -> Output {
    let walk = walk_flags("replay-walk.py", HAND_OVER_TO_QEMU, STEPS);
    let walk: Vec<&str> = walk.iter().map(String::as_str).collect();
    replay(&[&walk[..], &["--batch", "study-record"], &WATCH_BACK].concat())
}

fn reverse_steps_retrace_the_way_forward_and_two_replays_agree() {
    recorded();
    let first = walk_session();
    let all = walk_stops(&first);
    assert_retraced(&all, STEPS, &first);
    assert_handed_over(&all, &first);
    // The watchpoint run backwards: the line the tree has, writing the field.
    let (at, old, new) = watch_stop(&first);
    let tcp_c = std::fs::read_to_string(kernel().join("net/ipv4/tcp.c")).unwrap();
    assert!(tcp_c.lines().nth(at - 1).unwrap().contains("write_seq"));

    // A second replay: the same stops, values and write.
    let second = walk_session();
    assert_eq!(walk_stops(&second), all);
    assert_eq!(watch_stop(&second), (at, old, new));

    // A forward watchpoint on a fresh replay, set at the stop in
    // tcp_sendmsg_locked: it stops after the same write, the values swapped.
    let forward = replay(&[&["--qemu-reverse"][..], &WATCH_FORWARD].concat());
    let (after, f_old, f_new) = watch_stop(&forward);
    assert_eq!((f_old, f_new), (new, old), "{}", text(&forward));
    assert!(after >= at && after - at <= 2, "{after} against {at}");
}

/// One error line, naming the input, and nothing written.
fn refused(out: &Output, says: &str) {
    assert!(!out.status.success());
    let said = text(out);
    let errors: Vec<&str> = said.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "{said}");
    assert!(errors[0].contains(says), "{said}");
    assert!(!said.contains("$ /"), "nothing ran:\n{said}");
}

fn listing(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        out.push(e.path());
        if e.path().is_dir() {
            out.extend(listing(&e.path()));
        }
    }
    out.sort();
    out
}

fn bad_inputs_are_refused_in_one_line_with_nothing_written() {
    recorded();
    let source = recordings().join(NAME);
    // Another vmlinux's: its build ID differs.
    let other = recordings().join("test-other-vmlinux");
    let missing = recordings().join("test-missing-file");
    for dir in [&other, &missing] {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).unwrap();
        for e in std::fs::read_dir(&source).unwrap().flatten() {
            std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
        }
    }
    std::fs::write(other.join("build-id"), "0123456789abcdef\n").unwrap();
    std::fs::remove_file(missing.join("snapshots.qcow2")).unwrap();
    // Only the recordings: other runs of the shared build come and go.
    let before = listing(&recordings());
    let mut args = on_tiny("replay");
    args.push("test-other-vmlinux");
    refused(&xtask(&args), "of another vmlinux");
    let mut args = on_tiny("replay");
    args.push("test-missing-file");
    refused(&xtask(&args), "lacks");
    // A host program only a 9p root has.
    let mut args = on_tiny("record");
    args.extend(["--name", "test-9p", "--", "/usr/bin/true"]);
    refused(&xtask(&args), "9p");
    assert_eq!(listing(&recordings()), before, "a refusal wrote");
    std::fs::remove_dir_all(&other).unwrap();
    std::fs::remove_dir_all(&missing).unwrap();
    // UML runs no QEMU.
    let um = refused_on_um("record", "build-um-replay-refused", &["--", "true"]);
    refused(&um, "UML runs no QEMU");
}

fn main() {
    let args = Arguments::from_args();
    let qemu = qemu_that_reverses();
    if qemu.is_none() {
        eprintln!(
            "skipped: no QEMU 10 or later (Debian 12's 7.2 and Ubuntu 24.04's 8.2 are older): \
             `cargo xtask setup --install` unpacks bookworm-backports' 10.0.2"
        );
    }
    let trial = |name: &'static str, f: fn()| {
        Trial::test(name, move || {
            std::panic::catch_unwind(|| {
                let _serial = serial();
                f()
            })
            .map_err(|e| failed(&e))
        })
        .with_ignored_flag(qemu.is_none())
    };
    let trials = vec![
        trial(
            "plain_replay_prints_the_recorded_console",
            plain_replay_prints_the_recorded_console,
        ),
        trial(
            "reverse_steps_retrace_the_way_forward_and_two_replays_agree",
            reverse_steps_retrace_the_way_forward_and_two_replays_agree,
        ),
        trial(
            "bad_inputs_are_refused_in_one_line_with_nothing_written",
            bad_inputs_are_refused_in_one_line_with_nothing_written,
        ),
    ];
    libtest_mimic::run(&args, trials).exit();
}
