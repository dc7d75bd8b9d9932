//! Off the happy path, on the cached `tiny` build: two commands on one
//! build directory, a run or a build killed by a signal, a debugger that
//! never comes, a working directory with a space and a comma.

mod common;

use std::{os::unix::process::ExitStatusExt, process::Command};

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

    let mut build = on_tiny("build");
    build.push("--no-wait");
    let out = xtask(&build);
    assert!(!out.status.success());
    // Refused before anything ran: the executor echoes every command it
    // starts (`$ make ...`), and none is there.
    assert_eq!(
        echoed_commands(&out),
        Vec::<String>::new(),
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

    // No debugger came: the guest is bounded all the same, and the line
    // says by what.
    let out = finish(holder, "run --wait-gdb --attach-timeout 10");
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
    let out = xtask(&strs(&run_args(
        &[&gdb, "--wait-gdb", "--attach-timeout", "3"],
        &["true"],
    )));
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
        // The job and env files, the QMP socket and the status folder,
        // while it runs: QEMU may be up before the socket is.
        let all_there = || {
            let names = leftovers(pid);
            names.len() == 4
                && ["job-", "env-", "qmp-", "status-"]
                    .iter()
                    .all(|kind| names.iter().any(|n| n.starts_with(kind)))
        };
        assert!(
            wait_until(60, all_there),
            "job and env files, QMP socket and status folder while it runs: {:?}",
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

/// Sources every `tiny` build compiles, each a second or more of work, in
/// directories of their own: touched, they give the killed build below
/// something to be stopped in the middle of.
const TOUCHED: [&str; 6] = [
    "kernel/sched/core.c",
    "kernel/fork.c",
    "mm/memory.c",
    "fs/namei.c",
    "net/ipv4/tcp.c",
    "net/core/dev.c",
];

/// Item 2 (and issue 34, item 3): a build stopped by SIGTERM in the middle
/// of its compiles stops make and everything it started, leaves no
/// temporary file of ours and no partial object (each object it left is a
/// whole ELF file with its `.cmd` and its `.dwo`), and the next build
/// compiles exactly the objects the killed one did not finish.
#[test]
fn a_killed_build_leaves_no_make_and_the_next_build_resumes() {
    use std::io::BufRead;
    let _serial = serial();
    ensure_tiny();
    let dir = cache().join("build-tiny");
    let objects: Vec<String> = TOUCHED.iter().map(|s| s.replace(".c", ".o")).collect();
    for object in &objects {
        assert!(dir.join(object).is_file(), "tiny builds {object}");
    }
    let touched_at = std::time::SystemTime::now();
    for source in TOUCHED {
        std::fs::File::options()
            .write(true)
            .open(kernel().join(source))
            .unwrap()
            .set_modified(touched_at)
            .unwrap();
    }
    let tag = unique_tag("kill-build");
    // Without ccache, whose hits could finish every object before the
    // signal lands: each is gcc's work of a second or more. (Through
    // ccache's masquerade the command lines are the same either way.)
    // -v: make's own lines on standard output, as they come.
    let mut args = on_tiny("build");
    args.insert(0, "-v");
    args.extend(["--cache", "none"]);
    let mut child = spawn_tagged(&args, &repo(), &tag);
    let pid = child.id();
    // make prints a target's lines once its recipe is done (Kbuild's
    // --output-sync): the first `CC` line means one object is made and
    // the others are under way.
    let (lines, first_cc) = {
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in std::io::BufReader::new(stdout).lines() {
                let line = line.unwrap();
                if line.starts_with("  CC      ") {
                    let _ = tx.send(());
                }
                lines.push(line);
            }
            lines
        });
        let first_cc = rx.recv_timeout(std::time::Duration::from_secs(600));
        (reader, first_cc)
    };
    assert!(first_cc.is_ok(), "no CC line from the build");
    signal(pid, "TERM");
    let out = finish(child, "build, then SIGTERM");
    let printed = lines.join().unwrap();
    eprintln!("{}", printed.join("\n"));
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

    // What the kill left: each touched object made again, whole, or not
    // made again (the old one, older than its source, or none).
    let mut unfinished = Vec::new();
    for object in &objects {
        match made_since(&dir, object, touched_at) {
            Made::Whole => {}
            Made::Not => unfinished.push(object.clone()),
            Made::Partly(why) => panic!("the kill left {object} partly made: {why}"),
        }
    }
    assert!(
        !unfinished.is_empty(),
        "every touched object was made before the kill: nothing was stopped"
    );

    // The next build compiles exactly those, and leaves each whole.
    let out = build_with(None);
    assert!(out.status.success(), "{}", text(&out));
    let mut compiled = compiled_objects(&out);
    compiled.sort();
    unfinished.sort();
    assert_eq!(compiled, unfinished);
    for object in &objects {
        assert!(
            matches!(made_since(&dir, object, touched_at), Made::Whole),
            "{object} after the next build"
        );
    }
}

/// How far a build got with one object since `since`.
enum Made {
    /// A whole ELF object, newer than `since`, with its `.cmd` (and its
    /// `.dwo`, split DWARF being on in tiny) as new.
    Whole,
    /// Not made since: the older object, or none.
    Not,
    /// Anything else, and why.
    Partly(String),
}

fn made_since(dir: &std::path::Path, object: &str, since: std::time::SystemTime) -> Made {
    let path = dir.join(object);
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let cmd = path.with_file_name(format!(".{name}.cmd"));
    let dwo = path.with_extension("dwo");
    let newer = |p: &std::path::Path| {
        p.metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t >= since)
    };
    if !path.exists() || !newer(&path) {
        return Made::Not;
    }
    let bytes = std::fs::read(&path).unwrap();
    if let Err(e) = object::File::parse(&*bytes) {
        return Made::Partly(format!("{} bytes, not an ELF object: {e}", bytes.len()));
    }
    if !newer(&cmd) {
        return Made::Partly(format!("{} is not from the same build", cmd.display()));
    }
    let dwo_bytes = std::fs::read(&dwo).unwrap_or_default();
    if object::File::parse(&*dwo_bytes).is_err() {
        return Made::Partly(format!("{} is missing or not ELF", dwo.display()));
    }
    Made::Whole
}

/// The command lines the executor echoed (`$ make ...`): what ran.
fn echoed_commands(out: &std::process::Output) -> Vec<String> {
    text(out)
        .lines()
        .filter(|l| l.starts_with("$ "))
        .map(String::from)
        .collect()
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

/// Issue 34, item 0: a compile that fails at a rule's level must not leave
/// the last build's object without its split DWARF. gcc removes what it was
/// writing, the `.dwo` among them, but an object it never assembled keeps
/// the last build's `.o`, and its `.cmd` that build's command: once the
/// ladder lands the object back on that command, Kbuild finds the old `.o`
/// current and makes no `.dwo`. Made on purpose, in a build directory of
/// its own: a plain rule puts mm/mlock.c at -O0, where static_cpu_has()'s
/// asm operand is no constant (study/fallback.toml, asm-constant-at-O0),
/// so it climbs to -Og, where a min() signedness assert sends it on to
/// Og-nocheck: the step, and so the command, the known data gives it under
/// the shipped rules (`[known."6.12".gcc-12.x86_64]`). Then the shipped
/// rules again. Every step must leave the object with its `.dwo`, and
/// `opt-report --check` must read the build.
#[test]
fn a_failed_compile_leaves_no_object_without_its_split_dwarf() {
    const SOURCE: &str = "mm/mlock.c";
    const OBJECT: &str = "mm/mlock.o";
    let _serial = serial();
    let dir = cache().join("build-tiny-dwo");
    let on_dir = |command: &'static str| -> Vec<&'static str> {
        let tree: &'static str = Box::leak(kernel().display().to_string().into_boxed_str());
        let dir: &'static str = Box::leak(dir.display().to_string().into_boxed_str());
        on_build(command, tree, dir)
    };
    let build = |profiles: Option<&std::path::Path>| {
        let mut args = on_dir("build");
        if let Some(p) = profiles {
            args.extend(["--profiles", p.to_str().unwrap()]);
        }
        let out = xtask(&args);
        assert!(out.status.success(), "{}", text(&out));
    };
    let dwo = dir.join("mm/mlock.dwo");
    let saved_command = || {
        let cmd = std::fs::read_to_string(dir.join("mm/.mlock.o.cmd")).unwrap();
        cmd.lines().next().unwrap().to_string()
    };

    // The shipped rules: the object and its .dwo, from one compile (made
    // again here, whatever an earlier run of this test left).
    for leftover in ["mm/mlock.o", "mm/mlock.dwo", "mm/.mlock.o.cmd"] {
        let _ = std::fs::remove_file(dir.join(leftover));
    }
    build(None);
    // What an earlier run recorded under the throw-away rule would apply
    // again at no cost (and what other builds of tiny learned is where this
    // directory started): start without it.
    forget_move(&dir, OBJECT, "O0");
    assert!(dwo.is_file(), "split DWARF is on in tiny: {dwo:?}");
    let first_command = saved_command();

    // The rule: mm/mlock.c fails at -O0 and climbs the ladder.
    let shipped = shipped_profiles();
    let rule = shipped.replace(
        "\"net/ipv4\" = { level = \"O0\", strict = true }\n",
        &format!("\"net/ipv4\" = {{ level = \"O0\", strict = true }}\n\"{SOURCE}\" = \"O0\"\n"),
    );
    assert_ne!(rule, shipped);
    let profiles = cache().join("dwo-o0/study.toml");
    std::fs::create_dir_all(profiles.parent().unwrap()).unwrap();
    std::fs::write(&profiles, rule).unwrap();
    build(Some(&profiles));
    let fallbacks = std::fs::read_to_string(dir.join(".study/fallbacks.toml")).unwrap();
    let table: toml::Table = toml::from_str(&fallbacks).unwrap();
    let moved = &table["object"][OBJECT]["O0"];
    assert_eq!(moved["from"].as_str(), Some("O0"), "{fallbacks}");
    // The case the issue found: the ladder ends on the first build's own
    // command, which Kbuild compares with the old object's `.cmd`.
    assert_eq!(
        saved_command(),
        first_command,
        "{OBJECT} landed at {} with another command than the shipped rules' own",
        moved["to"]
    );
    assert!(dwo.is_file(), "{OBJECT} moved up without its .dwo");

    // The shipped rules again: nothing to move, and every object readable.
    build(None);
    forget_move(&dir, OBJECT, "O0");
    assert!(dwo.is_file(), "{OBJECT} is back without its .dwo");
    let mut check = on_dir("opt-report");
    check.push("--check");
    let out = xtask(&check);
    assert!(out.status.success(), "{}", text(&out));
}

/// Removes what a throw-away rule at `rule` recorded for `object` in a
/// build directory, so that the next build finds it as the shipped rules
/// leave it.
fn forget_move(dir: &std::path::Path, object: &str, rule: &str) {
    let path = dir.join(".study/fallbacks.toml");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return;
    };
    let mut records: toml::Table = toml::from_str(&text).unwrap();
    let entry = records
        .get_mut("object")
        .and_then(|o| o.as_table_mut())
        .and_then(|o| o.get_mut(object))
        .and_then(|o| o.as_table_mut());
    if let Some(entry) = entry {
        entry.remove(rule);
    }
    std::fs::write(&path, toml::to_string(&records).unwrap()).unwrap();
}
