//! `follow` on `tiny`, in a build directory of its own (the cached `tiny`
//! stays as its profile says): the path of one run at -O0 through a layer
//! of rules, rebuilt with the fallback, and each frame from the entry from
//! user space to the stop counted before and after, by the tool and by
//! gdb's own `bt full`: every row a frame of gdb's, and values still
//! absent explained by a move the build recorded or study/ knows.

mod common;

use common::*;

const FUNCTION: &str = "tcp_sendmsg";
const COMMAND: [&str; 4] = ["tcp-echo", "-4", "-n", "1"];

fn on_follow_dir(command: &'static str) -> Vec<&'static str> {
    let dir: &'static str = Box::leak(
        cache()
            .join("build-tiny-follow")
            .display()
            .to_string()
            .into_boxed_str(),
    );
    let tree: &'static str = Box::leak(kernel().display().to_string().into_boxed_str());
    on_build(command, tree, dir)
}

/// One row of `follow`'s table: function, before, after, where it stands.
fn rows(stdout: &str) -> Vec<Row> {
    stdout
        .lines()
        .skip_while(|l| !l.starts_with("#    function"))
        .skip(1)
        .filter(|l| l.starts_with('#'))
        .map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let number = |i: usize| words.get(i).and_then(|w| w.parse().ok());
            let rest = if number(3).is_some() {
                words.get(4..).unwrap_or_default().join(" ")
            } else {
                words[2..].join(" ")
            };
            (words[1].to_string(), number(2), number(3), rest)
        })
        .collect()
}

/// One frame of gdb's own `bt full` at FUNC.
struct GdbFrame {
    function: String,
    /// Its arguments that read `<optimized out>` on the frame's own line.
    optimized_out: usize,
    /// Its source file as gdb names it, when gdb names one.
    file: Option<String>,
}

/// gdb's `bt full`, frame by frame. The last frame's name carries the
/// study's note (`entry_SYSCALL_64 [the entry from user space: ...]`).
fn gdb_frames(stdout: &str) -> Vec<GdbFrame> {
    let frame = regex::Regex::new(
        r"^#\d+\s+(?:0x[0-9a-f]+ in )?(\S+)(?: \[[^\]]*\])? \((.*)\)(?: at (\S+):\d+)?",
    )
    .unwrap();
    stdout
        .lines()
        .filter_map(|l| frame.captures(l))
        .map(|c| GdbFrame {
            function: c[1].to_string(),
            optimized_out: c[2].matches("<optimized out>").count(),
            file: c.get(3).map(|m| m.as_str().to_string()),
        })
        .collect()
}

/// The reason a row gives for values still absent, read back from where
/// the table says it comes from: a move recorded in the build directory
/// (`-STEP: fallback FROM→TO: REASON`, .study/fallbacks.toml) or one known
/// in study/fallback.toml (`-STEP: known FROM→TO (study/fallback.toml):
/// WHY`, for this tree's release and gcc), of the frame's own object,
/// which gdb's file names. Anything else is no reason.
fn reason_is_recorded(why: &str, object: &str, fallbacks: &str) -> bool {
    let Some((step, said)) = why.strip_prefix('-').and_then(|w| w.split_once(": ")) else {
        return false;
    };
    if let Some(rest) = said.strip_prefix("fallback ") {
        let Some((moved, reason)) = rest.split_once(": ") else {
            return false;
        };
        let Some((from, to)) = moved.split_once('→') else {
            return false;
        };
        let table: toml::Table = toml::from_str(fallbacks).unwrap_or_default();
        let record = table
            .get("object")
            .and_then(|o| o.get(object))
            .and_then(|o| o.get(from));
        let field = |k: &str| record.and_then(|r| r.get(k)).and_then(|v| v.as_str());
        return to == step
            && field("from") == Some(from)
            && field("to") == Some(to)
            && field("reason") == Some(reason);
    }
    if let Some(rest) = said.strip_prefix("known ") {
        let Some((moved, why)) = rest.split_once(" (study/fallback.toml): ") else {
            return false;
        };
        let Some((from, to)) = moved.split_once('→') else {
            return false;
        };
        return to == step && known_move(object, from) == Some((to.to_string(), why.to_string()));
    }
    false
}

type Row = (String, Option<usize>, Option<usize>, String);

/// The table against gdb's `bt full` at the same stop (`bt`), the build
/// directory's records (`fallbacks`) and the tree's prefix in gdb's file
/// names: every row is a frame of gdb's, in order; a clean row has no
/// argument `<optimized out>` in gdb's; a row with values still absent
/// names the recorded or known move of its frame's object.
fn rows_agree_with_gdb(table: &[Row], bt: &str, fallbacks: &str, tree: &str) -> Result<(), String> {
    let frames = gdb_frames(bt);
    let mut from = 0;
    for (function, _, after, why) in table {
        let Some(at) = frames[from..].iter().position(|f| &f.function == function) else {
            return Err(format!(
                "{function}: a row of the table that gdb's bt full does not show"
            ));
        };
        let frame = &frames[from + at];
        from += at + 1;
        if why == "the entry from user space" {
            continue;
        }
        let after = after.ok_or_else(|| format!("{function}: no count"))?;
        if after == 0 {
            if frame.optimized_out != 0 {
                return Err(format!(
                    "gdb reads an argument of {function} <optimized out>"
                ));
            }
            continue;
        }
        let file = frame.file.as_deref().unwrap_or("?");
        let object = format!(
            "{}.o",
            file.strip_prefix(tree)
                .unwrap_or(file)
                .strip_suffix(".c")
                .unwrap_or(file)
        );
        if !reason_is_recorded(why, &object, fallbacks) {
            return Err(format!(
                "{function} ({file}): {after} <optimized out>, and no move recorded for \
                 {object} says why: `{why}`"
            ));
        }
    }
    Ok(())
}

/// The checker finds what it is for: a row gdb does not show, a row
/// whose values are absent at its rule's level (the tool's old "its
/// rule's level" and its new "no move explains it"), a reason the record
/// does not hold; and takes a reason the record holds.
#[test]
fn the_check_against_gdb_finds_what_is_wrong() {
    let bt = "#0  tcp_sendmsg (sk=0x1, msg=0x2, size=1000) at /k/net/ipv4/tcp.c:1355\n\
              #1  0xffffffff81679801 in do_syscall_x64 (nr=<optimized out>, regs=0x3) at /k/arch/x86/entry/common.c:47\n\
              #2  0xffffffff818000a9 in entry_SYSCALL_64 [the entry from user space: the kernel's stack ends here] () at /k/arch/x86/entry/entry_64.S:121\n";
    let fallbacks = "[object.\"arch/x86/entry/common.o\".O0]\nfrom = \"O0\"\nto = \"Og\"\nreason = \"asm-constant-at-O0: x\"\n";
    let row = |f: &str, after: usize, why: &str| {
        (f.to_string(), Some(after), Some(after), why.to_string())
    };
    let entry = (
        "entry_SYSCALL_64".to_string(),
        None,
        None,
        "the entry from user space".to_string(),
    );
    let table = |why: &str| {
        vec![
            row("tcp_sendmsg", 0, ""),
            row("do_syscall_x64", 1, why),
            entry.clone(),
        ]
    };
    let check = |t: &[Row]| rows_agree_with_gdb(t, bt, fallbacks, "/k/");
    assert_eq!(
        check(&table("-Og: fallback O0→Og: asm-constant-at-O0: x")),
        Ok(())
    );
    for why in [
        "-Og: its rule's level",
        "-O0, its rule's level: no recorded or known move explains it",
        "-Og: fallback O0→Og: another reason",
        "-O2: fallback O0→Og: asm-constant-at-O0: x",
    ] {
        assert!(check(&table(why)).is_err(), "{why}");
    }
    let missing = vec![
        row("tcp_sendmsg", 0, ""),
        row("x64_sys_call", 0, ""),
        entry.clone(),
    ];
    assert!(check(&missing).unwrap_err().contains("x64_sys_call: a row"));
    let clean = vec![
        row("tcp_sendmsg", 0, ""),
        row("do_syscall_x64", 0, ""),
        entry,
    ];
    assert!(check(&clean).is_err(), "gdb reads nr <optimized out>");
}

#[test]
fn follow_puts_the_whole_path_at_o0_and_each_frame_says_why_if_not() {
    let _serial = serial();
    tiny_build();
    let mut args = on_follow_dir("follow");
    args.push(FUNCTION);
    args.push("--");
    args.extend(COMMAND);
    let out = xtask(&args);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let table = rows(&stdout);
    assert!(!table.is_empty(), "no table:\n{}", text(&out));
    assert_eq!(table[0].0, FUNCTION, "frame #0 is the stop");
    let last = table.last().unwrap();
    assert_eq!(
        last.3, "the entry from user space",
        "the stack ends at the entry:\n{stdout}"
    );

    // The layer: a rule file of this directory, shown with the overrides.
    let layer = cache().join("build-tiny-follow/.study/follow.toml");
    let rules = std::fs::read_to_string(&layer).unwrap();
    let first = rules
        .lines()
        .find(|l| l.ends_with("= \"O0\""))
        .expect("a rule");
    let file = first.split('"').nth(1).unwrap();
    let mut show = on_follow_dir("config");
    show.push("--show-overrides");
    let shown = xtask(&show);
    assert!(shown.status.success(), "{}", text(&shown));
    assert!(
        String::from_utf8_lossy(&shown.stdout).contains("follow.toml"),
        "the overrides name the layer:\n{}",
        text(&shown)
    );

    // gdb's own reading of the same stop, frame by frame: every row of the
    // table is a frame of gdb's, in the same order; no argument of a frame
    // the table counts as clean reads <optimized out>; and a frame with
    // values still absent names the recorded or known move of its object
    // (the object of the file gdb names), read back from that record.
    let mut debug = on_follow_dir("debug");
    debug.extend(["--no-build", "-b", FUNCTION, "--batch", "bt full", "--"]);
    debug.extend(COMMAND);
    let bt = xtask(&debug);
    assert!(bt.status.success(), "{}", text(&bt));
    let fallbacks =
        std::fs::read_to_string(cache().join("build-tiny-follow/.study/fallbacks.toml"))
            .unwrap_or_default();
    // As the build names it: resolved, should the cache be a symlink.
    let tree = format!("{}/", kernel().canonicalize().unwrap().display());
    if let Err(why) = rows_agree_with_gdb(
        &table,
        &String::from_utf8_lossy(&bt.stdout),
        &fallbacks,
        &tree,
    ) {
        panic!("{why}\n{stdout}\n{}\n{fallbacks}", text(&bt));
    }
    assert!(
        !String::from_utf8_lossy(&bt.stdout).contains("fixed_percpu_data ()"),
        "the backtrace went on into user space"
    );

    let mut clear = on_follow_dir("follow");
    clear.push("--clear");
    let cleared = xtask(&clear);
    assert!(cleared.status.success(), "{}", text(&cleared));
    assert!(!layer.exists(), "follow --clear left {}", layer.display());
    // The next build puts the layer's files back at the profile's level.
    let mut build = on_follow_dir("build");
    build.push("-v");
    let rebuilt = xtask(&build);
    assert!(rebuilt.status.success(), "{}", text(&rebuilt));
    let object = file.replace(".c", ".o");
    assert!(
        compiled_objects(&rebuilt).contains(&object),
        "{object} was not rebuilt after --clear:\n{}",
        text(&rebuilt)
    );
}
