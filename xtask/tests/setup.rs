//! `setup --install` through a pipe, as CI runs it: plain lines, and
//! none of apt's or dpkg's own output, which goes to target/setup/.
//!
//! With every tool here it installs nothing, says so, and exits 0 (ignored,
//! with the reason, on a host that lacks a tool: then it would install).
//! As root, a compiler apt has no package for (`--cc clang-99`) runs the
//! real `apt-get update` with its progress lines and done line, then the
//! real `apt-get install`, whose failure is one error that names its log
//! and shows the log's last lines, apt's own words (ignored, with the
//! reason, when not root: apt-get needs it).

mod common;

use std::{path::Path, process::Command};

use common::{kernel, repo, text, trial};
use libtest_mimic::Arguments;

/// `cargo xtask setup ARGS`, run from the checkout's root as a user runs
/// it, its output through pipes.
fn setup(args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("setup")
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap();
    eprintln!("$ cargo xtask setup {}\n{}", args.join(" "), text(&out));
    out
}

/// What plain `setup` reports missing or optional-and-absent here.
fn absent() -> Vec<String> {
    let tree = kernel();
    let out = setup(&["--kernel", tree.to_str().unwrap()]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with(" MISSING") || l.starts_with("optional"))
        .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        .collect()
}

fn with_everything_here_it_installs_nothing_and_says_so() {
    let tree = kernel();
    let out = setup(&["--install", "--kernel", tree.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let tools = stdout.lines().filter(|l| l.starts_with("      ok")).count();
    assert!(tools > 20, "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l == format!("install: nothing to install, all {tools} tools are here")),
        "{stdout}"
    );
    // No step ran: nothing was echoed, nothing shown.
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

/// The lines before the error: echoed commands, and the display's plain
/// lines, each naming its step; apt's own output is in the log.
fn an_install_apt_cannot_do_fails_in_one_error_naming_its_log() {
    let out = setup(&["--install", "--cc", "clang-99", "--kernel", "/nonexistent"]);
    assert!(!out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let (before, error) = stderr
        .split_once("error: ")
        .unwrap_or_else(|| panic!("no error line:\n{stderr}"));
    for line in before.lines() {
        assert!(
            line.starts_with("$ ") || line.starts_with("apt-get update"),
            "not an echo nor a progress line: {line:?}\n{stderr}"
        );
    }
    let update_log = "target/setup/apt-get-update.log";
    let update_ok = before.lines().any(|l| {
        l.starts_with("apt-get update: done in ")
            && l.ends_with(&format!("; its output is in {update_log}"))
    });
    // Where apt-get update fails (no network), it is the step that fails,
    // in the same form.
    let (step, log) = if update_ok {
        let fetching = before
            .lines()
            .filter(|l| l.starts_with("apt-get update, fetching: "))
            .count();
        assert!(fetching >= 1, "no progress line:\n{stderr}");
        ("apt-get install", "target/setup/apt-get-install.log")
    } else {
        ("apt-get update", update_log)
    };
    let mut lines = error.lines();
    let first = lines.next().unwrap();
    assert!(first.starts_with(&format!("`{step} ")), "{first}");
    assert!(
        first.ends_with(&format!(
            "` failed (exit status 100); its output is in {log}, which ends:"
        )),
        "{first}"
    );
    let tail: Vec<&str> = lines.collect();
    assert!(!tail.is_empty() && tail.len() <= 12, "{error}");
    // The tail is the log's end, as written by apt.
    let written = std::fs::read_to_string(repo().join(log)).unwrap();
    let last: Vec<&str> = written.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        tail.last().unwrap().trim(),
        last.last().unwrap().trim(),
        "{error}"
    );
    if update_ok {
        assert!(
            tail.iter()
                .any(|l| l.trim() == "E: Unable to locate package clang-99"),
            "{error}"
        );
    }
}

fn main() {
    let args = Arguments::from_args();
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let absent = absent();
    let mut with_everything = trial(
        "with_everything_here_it_installs_nothing_and_says_so",
        with_everything_here_it_installs_nothing_and_says_so,
    );
    if !absent.is_empty() {
        eprintln!(
            "skipped: with_everything_here_it_installs_nothing_and_says_so: this host lacks {} \
             (`cargo xtask setup --install` as root installs them)",
            absent.join("; ")
        );
        with_everything = with_everything.with_ignored_flag(true);
    }
    let mut apt = trial(
        "an_install_apt_cannot_do_fails_in_one_error_naming_its_log",
        an_install_apt_cannot_do_fails_in_one_error_naming_its_log,
    );
    if !root || !Path::new("/usr/bin/apt-get").is_file() {
        eprintln!(
            "skipped: an_install_apt_cannot_do_fails_in_one_error_naming_its_log: apt-get \
             installs as root only (run the tests as root on Debian or Ubuntu)"
        );
        apt = apt.with_ignored_flag(true);
    }
    libtest_mimic::run(&args, vec![with_everything, apt]).exit();
}
