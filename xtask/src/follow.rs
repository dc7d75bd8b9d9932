//! The whole path at -O0: what one run of a command went through, from the
//! entry from user space down to the driver, and the source files of it as
//! -O0 rules in a layer of the build directory's profile
//! (`.study/follow.toml`). The path above FUNC is gdb's stack at a stop in
//! FUNC (`study-bt`); the path below it, function_graph's trace of FUNC;
//! each function's file, the call graph's index. It uses `analysis`,
//! `guest`, `ctx`, `study` and `util`; the caller builds.

use std::{collections::BTreeSet, time::Duration};

use anyhow::{bail, Result};

use crate::{
    analysis::{
        callgraph::{self, sites::Sites},
        ftrace::Trace,
    },
    ctx::{Ctx, Prepared},
    guest::{
        gdb_session::batch_at_stop,
        trace_script::TraceSetup,
        tracing::{self, TraceRequest},
    },
    study::{callgraph_rules::CallgraphRules, opt_rules::Level},
};

/// One frame of `study-bt`: the function, where, and its real variables
/// that read `<optimized out>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub function: String,
    pub location: String,
    pub variables: usize,
    pub optimized_out: Vec<String>,
    /// Where the kernel's stack ends (the entry from user space, or a
    /// kernel thread's first frame): gdb's note on it.
    pub entry: Option<String>,
}

impl Frame {
    /// The frame's source file, tree-relative when it is in `tree`.
    pub fn source<'a>(&'a self, tree: &std::path::Path) -> &'a str {
        let file = self.location.rsplit_once(':').map_or("", |(f, _)| f);
        let prefix = format!("{}/", tree.display());
        file.strip_prefix(prefix.as_str()).unwrap_or(file)
    }
}

/// For each frame, how its caller (the frame above) reached it through a
/// pointer, if it did: the member of the call graph's indirect site at the
/// caller's line.
pub fn reached_through(ctx: &Ctx, p: &Prepared, frames: &[Frame]) -> Result<Vec<Option<String>>> {
    let rules = CallgraphRules::load(&ctx.study_dir())?;
    let index = callgraph::index_of(&ctx.exec, p, &rules)?;
    let sites = Sites::new(&index, p.tree.path.clone());
    Ok(frames
        .iter()
        .enumerate()
        .map(|(i, frame)| {
            let caller = frames.get(i + 1).filter(|c| c.entry.is_none())?;
            let (file, line) = caller.location.rsplit_once(':')?;
            sites.reached_through(&caller.function, file, line.parse().ok()?, &frame.function)
        })
        .collect())
}

/// `study-bt`'s lines, frame #0 first.
pub fn parse_frames(gdb_output: &str) -> Vec<Frame> {
    let line = regex::Regex::new(
        r"^study-bt #\d+ (\S+) (\S+?)(?:: (\d+) variables, \d+ <optimized out>(?: \((.*)\))?| \[(.*: [a-z' ]*stack ends here)\])$",
    )
    .expect("a valid regex");
    gdb_output
        .lines()
        .filter_map(|l| {
            let c = line.captures(l)?;
            Some(Frame {
                function: c[1].to_string(),
                location: c[2].to_string(),
                variables: c.get(3).map_or(0, |m| m.as_str().parse().unwrap_or(0)),
                optimized_out: c.get(4).map_or(Vec::new(), |m| {
                    m.as_str().split(", ").map(String::from).collect()
                }),
                entry: c.get(5).map(|m| m.as_str().to_string()),
            })
        })
        .collect()
}

/// Boots `argv` with the stub waiting, stops in `function`, and reads
/// `study-bt` there; `None` under a dry run.
pub fn frames_at(
    ctx: &Ctx,
    p: &Prepared,
    function: &str,
    argv: &[String],
) -> Result<Option<Vec<Frame>>> {
    let Some(text) = batch_at_stop(ctx, p, function, argv, &["study-bt".to_string()])? else {
        return Ok(None);
    };
    let frames = parse_frames(&text);
    if frames.is_empty() {
        bail!("gdb never stopped in {function} with the stack read (study-bt):\n{text}");
    }
    Ok(Some(frames))
}

/// The functions one run of `argv` called below `function`.
pub fn traced_below(
    ctx: &Ctx,
    p: &Prepared,
    function: &str,
    argv: &[String],
) -> Result<Option<BTreeSet<String>>> {
    tracing::require_ftrace(ctx, p)?;
    let request = TraceRequest {
        setup: TraceSetup::graph_below(function),
        command: argv,
        accel: crate::guest::kvm::AccelChoice::Auto,
        timeout: Duration::from_secs(600),
        initramfs: false,
    };
    let Some(run) = tracing::trace_command(ctx, p, &request)? else {
        return Ok(None);
    };
    let trace = Trace::parse(&run.trace_text()?);
    // An interrupt's calls are not the path.
    Ok(Some(
        trace
            .calls()
            .filter(|c| !c.in_irq)
            .map(|c| crate::analysis::ftrace::base_name(&c.name).to_string())
            .collect(),
    ))
}

/// The C files of the path that the profile's rules build above -O0: the
/// rules `follow` writes. Each function's file comes from the call
/// graph's index, and each frame's own file from gdb (a function inlined
/// into its caller has no symbol of its own).
pub fn files_to_follow(
    ctx: &Ctx,
    p: &Prepared,
    functions: &BTreeSet<String>,
    frames: &[Frame],
) -> Result<BTreeSet<String>> {
    let rules = CallgraphRules::load(&ctx.study_dir())?;
    let index = callgraph::index_of(&ctx.exec, p, &rules)?;
    let of_functions = index
        .functions
        .iter()
        .filter(|f| functions.contains(&f.name))
        .map(|f| index.file(f.file).to_string());
    let of_frames = frames
        .iter()
        .filter(|f| f.entry.is_none())
        .map(|f| f.source(&p.tree.path).to_string());
    Ok(of_functions
        .chain(of_frames)
        .filter(|file| file.ends_with(".c") && !file.starts_with('/'))
        .filter(|file| p.profile.rules.level_for(file) != Level::O0)
        .collect())
}

/// `.study/follow.toml`'s text: each file at -O0, with the run it came
/// from.
pub fn layer_text(
    function: &str,
    argv: &[String],
    files: &BTreeSet<String>,
    with_earlier: bool,
) -> String {
    let earlier = if with_earlier {
        " (with the files of\n# earlier `follow` runs)"
    } else {
        ""
    };
    let mut text = format!(
        "# Written by `cargo xtask follow {function} -- {}`: the source files of\n\
         # the path that run took{earlier}, at -O0 in this build directory only.\n\
         # `cargo xtask follow --clear` removes it.\n\n[optimization.paths]\n",
        argv.join(" ")
    );
    for file in files {
        text += &format!("\"{file}\" = \"O0\"\n");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn study_bt_lines_become_frames() {
        let out = "noise\n\
            study-bt #0 tcp_sendmsg_locked /k/net/ipv4/tcp.c:1054: 16 variables, 0 <optimized out>\n\
            study-bt #1 do_syscall_x64 /k/arch/x86/entry/common.c:47: 4 variables, 3 <optimized out> (unr, nr, unr)\n\
            study-bt #2 entry_SYSCALL_64 /k/arch/x86/entry/entry_64.S:121 [the entry from user space: the kernel's stack ends here]\n";
        let frames = parse_frames(out);
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0].optimized_out, Vec::<String>::new());
        assert_eq!(frames[1].function, "do_syscall_x64");
        assert_eq!(frames[1].variables, 4);
        assert_eq!(frames[1].optimized_out, ["unr", "nr", "unr"]);
        assert_eq!(
            frames[2].entry.as_deref(),
            Some("the entry from user space: the kernel's stack ends here")
        );
        assert_eq!(frames[2].location, "/k/arch/x86/entry/entry_64.S:121");
        assert_eq!(
            frames[1].source(std::path::Path::new("/k")),
            "arch/x86/entry/common.c"
        );
    }

    #[test]
    fn the_layer_is_rules_the_profile_reader_takes() {
        let files = BTreeSet::from(["arch/x86/entry/common.c".to_string()]);
        let text = layer_text("tcp_sendmsg", &["tcp-echo".into()], &files, true);
        let rules =
            crate::study::profile::layer_rules(std::path::Path::new("follow.toml"), &text).unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].path, "arch/x86/entry/common.c");
        assert_eq!(rules[0].level, Level::O0);
    }
}
