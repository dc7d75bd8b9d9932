//! `follow` on `tiny`, in a build directory of its own (the cached `tiny`
//! stays as its profile says): the path of one run at -O0 through a layer
//! of rules, rebuilt with the fallback, and each frame from the entry from
//! user space to the stop counted before and after, by the tool and by
//! gdb's own `bt full`.

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
fn rows(stdout: &str) -> Vec<(String, Option<usize>, Option<usize>, String)> {
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

/// gdb's `bt full` at FUNC: per frame, the arguments that read
/// `<optimized out>` on the frame's own line.
fn optimized_out_arguments(stdout: &str) -> Vec<(String, usize)> {
    let frame = regex::Regex::new(r"^#\d+\s+(?:0x[0-9a-f]+ in )?(\S+) \((.*)\)").unwrap();
    stdout
        .lines()
        .filter_map(|l| frame.captures(l))
        .map(|c| (c[1].to_string(), c[2].matches("<optimized out>").count()))
        .collect()
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
    for (function, _, after, why) in &table[..table.len() - 1] {
        let after = after.unwrap_or_else(|| panic!("{function}: no count:\n{stdout}"));
        assert!(
            after == 0 || !why.is_empty(),
            "{function}: {after} <optimized out> and no reason:\n{stdout}"
        );
    }

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

    // gdb's own reading of the same stop, frame by frame: no argument of a
    // frame the table counts as clean reads <optimized out>.
    let mut debug = on_follow_dir("debug");
    debug.extend(["--no-build", "-b", FUNCTION, "--batch", "bt full", "--"]);
    debug.extend(COMMAND);
    let bt = xtask(&debug);
    assert!(bt.status.success(), "{}", text(&bt));
    let frames = optimized_out_arguments(&String::from_utf8_lossy(&bt.stdout));
    assert!(!frames.is_empty(), "{}", text(&bt));
    for (function, _, after, _) in &table {
        if *after != Some(0) {
            continue;
        }
        if let Some((_, n)) = frames.iter().find(|(f, _)| f == function) {
            assert_eq!(*n, 0, "gdb reads an argument of {function} <optimized out>");
        }
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
