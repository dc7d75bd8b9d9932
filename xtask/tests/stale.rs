//! "Nothing changed" without make's walk, on the cached `tiny` build: the
//! edit loop's commands (`run --build`, `debug`) skip make when every
//! object is newer than the inputs Kbuild recorded for it, and make agrees;
//! an edited source, an edited header and a newer `.config` each send the
//! next command to make, naming why.

mod common;

use std::{path::Path, time::SystemTime};

use common::*;

fn run_build(verbose: bool) -> std::process::Output {
    let mut args = on_tiny("run");
    if verbose {
        args.insert(0, "-v");
    }
    args.extend(["--build", "--", "true"]);
    let out = xtask(&args);
    assert!(out.status.success(), "{}", text(&out));
    out
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ran_make(out: &std::process::Output) -> bool {
    stderr(out)
        .lines()
        .any(|l| l.starts_with("$ ") && l.contains(" make -C "))
}

fn mtime(path: &Path) -> SystemTime {
    path.metadata().unwrap().modified().unwrap()
}

fn touch(path: &Path) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(SystemTime::now())
        .unwrap();
}

/// Skipped when nothing changed, and make, asked anyway, finds nothing to
/// do either: no object compiled, vmlinux not relinked.
#[test]
fn nothing_changed_skips_make_and_make_agrees() {
    let _serial = serial();
    let dir = tiny_build();
    let out = run_build(false);
    assert!(
        stderr(&out).contains("nothing changed since the last build"),
        "{}",
        text(&out)
    );
    assert!(!ran_make(&out), "{}", text(&out));
    let vmlinux = mtime(&dir.join("vmlinux"));
    let out = xtask(&on_tiny("build"));
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(": 0 objects compiled"),
        "{}",
        text(&out)
    );
    assert_eq!(
        mtime(&dir.join("vmlinux")),
        vmlinux,
        "make relinked vmlinux"
    );
}

/// A source, a header it includes and `.config`: each newer than the
/// build sends the next `run --build` to make, which says why (-v) and
/// rebuilds; the run after that skips make again.
#[test]
fn an_edit_sends_the_next_command_to_make() {
    let _serial = serial();
    let dir = tiny_build();
    let tree = kernel();
    let cases = [
        (tree.join("net/ipv4/tcp.c"), "net/ipv4/tcp.o"),
        (tree.join("include/net/tcp.h"), ""),
        (dir.join(".config"), ""),
    ];
    for (edited, object) in cases {
        // mtimes are compared, and a fast host builds within a tick.
        std::thread::sleep(std::time::Duration::from_millis(20));
        touch(&edited);
        let out = run_build(true);
        let why = stderr(&out);
        let name = edited.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            why.lines()
                .any(|l| l.starts_with("make runs: ") && l.contains(&name)),
            "{}",
            text(&out)
        );
        assert!(ran_make(&out), "{}", text(&out));
        if !object.is_empty() {
            assert!(
                compiled_objects(&out).iter().any(|o| o == object),
                "{object} not compiled: {}",
                text(&out)
            );
        }
        let again = run_build(false);
        assert!(
            stderr(&again).contains("nothing changed since the last build"),
            "after {}: {}",
            edited.display(),
            text(&again)
        );
    }
}
