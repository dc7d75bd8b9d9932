//! What changed, without make's walk, on the cached `tiny` build: the edit
//! loop's commands (`run --build`, `debug`) skip make when every object is
//! newer than the inputs Kbuild recorded for it, and make agrees; an edited
//! source or header sends the next command to make walking only the path
//! to what changed (the fast path), whose vmlinux is the one make's full
//! walk links; a newer `.config` or an edited Makefile to make's full
//! walk. Each names why.

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

/// Whether make walked only the path to what changed.
fn took_the_fast_path(out: &std::process::Output) -> bool {
    let err = stderr(out);
    err.contains(" changed: make enters ") && !err.contains("make walks the whole tree")
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
    // What is touched, an object it must rebuild, and whether the fast
    // path covers it.
    let cases = [
        (tree.join("net/ipv4/tcp.c"), "net/ipv4/tcp.o", true),
        (
            tree.join("include/net/tcp.h"),
            "net/ipv4/tcp_output.o",
            true,
        ),
        (dir.join(".config"), "", false),
        (tree.join("net/ipv4/Makefile"), "", false),
    ];
    for (edited, object, fast) in cases {
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
        assert_eq!(
            took_the_fast_path(&out),
            fast,
            "after touching {}: {}",
            edited.display(),
            text(&out)
        );
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

/// The fast path's vmlinux is make's: after an edit that changes code, the
/// fast path builds; make, asked next, finds nothing to do; and make made
/// to do the same work itself (the source touched) links a vmlinux that is
/// byte for byte the fast path's.
#[test]
fn the_fast_path_links_what_make_links() {
    let _serial = serial();
    let dir = tiny_build();
    let tcp = kernel().join("net/ipv4/tcp.c");
    let original = std::fs::read_to_string(&tcp).unwrap();
    let restore = Restore(tcp.clone(), original.clone());
    let probe = "linux_study_fast_path_probe";
    std::fs::write(
        &tcp,
        format!("{original}\nstatic int __used {probe}(void) {{ return 1234; }}\n"),
    )
    .unwrap();
    let fast = run_build(false);
    assert!(took_the_fast_path(&fast), "{}", text(&fast));
    assert_eq!(
        compiled_objects(&fast),
        ["net/ipv4/tcp.o"],
        "{}",
        text(&fast)
    );
    let vmlinux = dir.join("vmlinux");
    let by_fast_path = std::fs::read(&vmlinux).unwrap();
    assert!(
        by_fast_path
            .windows(probe.len())
            .any(|w| w == probe.as_bytes()),
        "the edit is not in the fast path's vmlinux"
    );
    let linked = mtime(&vmlinux);
    let make = xtask(&on_tiny("build"));
    assert!(make.status.success(), "{}", text(&make));
    assert!(
        String::from_utf8_lossy(&make.stdout).contains(": 0 objects compiled"),
        "make found work after the fast path: {}",
        text(&make)
    );
    assert_eq!(
        mtime(&vmlinux),
        linked,
        "make relinked vmlinux after the fast path"
    );
    std::thread::sleep(std::time::Duration::from_millis(20));
    touch(&tcp);
    let make = xtask(&on_tiny("build"));
    assert!(make.status.success(), "{}", text(&make));
    assert_eq!(
        compiled_objects(&make),
        ["net/ipv4/tcp.o"],
        "{}",
        text(&make)
    );
    assert_ne!(mtime(&vmlinux), linked, "make did not relink vmlinux");
    let by_make = std::fs::read(&vmlinux).unwrap();
    assert!(
        by_make == by_fast_path,
        "make's vmlinux ({} bytes) differs from the fast path's ({} bytes)",
        by_make.len(),
        by_fast_path.len()
    );
    drop(restore);
    let back = run_build(false);
    assert!(took_the_fast_path(&back), "{}", text(&back));
}

/// Puts a source back as it was, also when a test fails.
struct Restore(std::path::PathBuf, String);

impl Drop for Restore {
    fn drop(&mut self) {
        if std::fs::read_to_string(&self.0).ok().as_ref() != Some(&self.1) {
            std::fs::write(&self.0, &self.1).unwrap();
        }
    }
}

/// An object of an earlier configuration that make no longer builds (its
/// input changed before the build, make left it behind) is not a change:
/// after make's full walk the next command finds nothing changed, and an
/// edit of tcp.c takes the fast path without it getting in the way.
#[test]
fn what_make_left_behind_is_no_change() {
    let _serial = serial();
    let dir = tiny_build();
    let ipv4 = dir.join("net/ipv4");
    let header = ipv4.join("study_leftover.h");
    let object = ipv4.join("study_leftover.o");
    let cmd = ipv4.join(".study_leftover.o.cmd");
    let _cleanup = Cleanup(vec![header.clone(), object.clone(), cmd.clone()]);
    std::fs::write(&object, b"").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&header, b"/* newer than its object */\n").unwrap();
    std::fs::write(
        &cmd,
        format!(
            "savedcmd_net/ipv4/study_leftover.o := gcc -c -o net/ipv4/study_leftover.o study_leftover.c\n\n\
             source_net/ipv4/study_leftover.o := {}\n\n\
             deps_net/ipv4/study_leftover.o := \\\n  {} \\\n\n\
             net/ipv4/study_leftover.o: $(deps_net/ipv4/study_leftover.o)\n",
            header.display(),
            header.display()
        ),
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let make = xtask(&on_tiny("build"));
    assert!(make.status.success(), "{}", text(&make));
    let next = run_build(true);
    assert!(
        stderr(&next).contains("nothing changed since the last build"),
        "{}",
        text(&next)
    );
    touch(&kernel().join("net/ipv4/tcp.c"));
    let edit = run_build(true);
    assert!(took_the_fast_path(&edit), "{}", text(&edit));
    assert!(!stderr(&edit).contains("study_leftover"), "{}", text(&edit));
}

/// Removes what a test put in the build directory, also when it fails.
struct Cleanup(Vec<std::path::PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A rebuild after touching tcp.c, through a pipe: the progress is plain
/// lines whose total is what the build log shows compiled before the link
/// (`1/1`), and none of make's lines reaches the output (they are in the
/// build log).
#[test]
fn a_piped_rebuild_counts_only_what_changed_in_plain_lines() {
    let _serial = serial();
    tiny_build();
    touch(&kernel().join("net/ipv4/tcp.c"));
    let out = xtask(&on_tiny("build"));
    assert!(out.status.success(), "{}", text(&out));
    let log = make_output(&out);
    let before_link: Vec<&str> = log
        .lines()
        .take_while(|l| l.trim() != "LD      vmlinux.o")
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some("CC" | "AS"), Some(o), None) if o.ends_with(".o") => Some(o),
                _ => None,
            }
        })
        .collect();
    assert_eq!(before_link, ["net/ipv4/tcp.o"], "{log}");
    let n = before_link.len();
    let err = stderr(&out);
    assert!(
        err.lines().any(|l| l.starts_with(&format!(
            "build: {n} object(s) to compile (the inputs index)"
        ))),
        "{err}"
    );
    assert!(
        err.lines().any(
            |l| l.starts_with(&format!("build: {n}/{n} objects (100%), "))
                && l.ends_with(": net/ipv4/tcp.o")
        ),
        "{err}"
    );
    assert!(
        err.lines()
            .any(|l| l.starts_with(&format!("build: {n}/{n} objects, done in "))),
        "{err}"
    );
    let printed: std::collections::BTreeSet<&str> = err
        .lines()
        .chain(std::str::from_utf8(&out.stdout).unwrap().lines())
        .collect();
    let made: Vec<&str> = log
        .lines()
        .filter(|l| !l.trim().is_empty() && printed.contains(l))
        .collect();
    assert_eq!(made, Vec::<&str>::new(), "make's lines in the output");
}
