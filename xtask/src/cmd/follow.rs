//! `cargo xtask follow FUNC -- CMD`: the source files of the path one run
//! of CMD took, from the entry from user space through FUNC down to the
//! driver, at -O0 in a layer of the build directory's profile; rebuilt
//! with the usual fallback, and each frame's `<optimized out>` counted
//! before and after, and a frame reached through a pointer says through
//! which member (the call graph's indirect site at its caller's line).
//! `follow --clear` removes the layer (the next build puts the files back
//! at the profile's levels).

use std::collections::BTreeSet;

use anyhow::{bail, Result};

use crate::{
    builder::{self, fallback, BuildRequest},
    cli,
    ctx::{Ctx, Prepared},
    follow::{self, Frame},
    kernel::kbuild,
    util::lock::Access,
};

impl cli::Follow {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        let p = Prepared::new(ctx, &self.target.to_target())?;
        let _lock = p.lock(ctx, Access::Exclusive)?;
        let layer = p.state().follow();
        if self.clear {
            ctx.exec.remove_all(&layer)?;
            // The overrides written anew: the image is then older than
            // them, so the next build, run, debug or trace builds first.
            let p = Prepared::new(ctx, &self.target.to_target())?;
            ctx.exec.write(
                &kbuild::overrides_path(&p.build_dir),
                fallback::overrides_text(&p)?,
            )?;
            eprintln!(
                "follow: {} removed; the next build puts its files back at the profile's levels",
                layer.display()
            );
            return Ok(());
        }
        let (Some(function), false) = (&self.function, self.command.is_empty()) else {
            bail!("give the function and the command: `follow FUNC -- CMD`");
        };
        builder::build(ctx, &p, &BuildRequest::default_for_run())?;
        let Some(before) = follow::frames_at(ctx, &p, function, &self.command)? else {
            return Ok(());
        };
        let Some(below) = follow::traced_below(ctx, &p, function, &self.command)? else {
            return Ok(());
        };
        let mut functions: BTreeSet<String> = below;
        functions.extend(before.iter().map(|f| f.function.clone()));
        let mut files = follow::files_to_follow(ctx, &p, &functions, &before)?;
        // An earlier follow's files stay: the layer grows, run by run.
        // Prepared read them into the profile's rules, each from the layer.
        let earlier: BTreeSet<String> = p
            .profile
            .rules
            .rules
            .iter()
            .filter(|r| r.origin.file == layer)
            .map(|r| r.path.clone())
            .collect();
        files.extend(earlier.iter().cloned());
        eprintln!(
            "follow: {} function(s) on the path; {} file(s) to build at -O0",
            functions.len(),
            files.len()
        );
        ctx.exec.write(
            &layer,
            follow::layer_text(function, &self.command, &files, !earlier.is_empty()),
        )?;
        let p = Prepared::new(ctx, &self.target.to_target())?;
        builder::build(ctx, &p, &BuildRequest::default_for_run())?;
        let Some(after) = follow::frames_at(ctx, &p, function, &self.command)? else {
            return Ok(());
        };
        let through = follow::reached_through(ctx, &p, &after)?;
        print!("{}", table(&p, &before, &after, &through)?);
        Ok(())
    }
}

/// Frame by frame, `<optimized out>` before and after, and for a frame
/// that still has some, where its object stands and why: the move that
/// put it there, recorded in the build directory or known in
/// study/fallback.toml. A frame at its rule's level with values absent
/// has no such reason, and the table says that, not a reason.
fn table(
    p: &Prepared,
    before: &[Frame],
    after: &[Frame],
    through: &[Option<String>],
) -> Result<String> {
    let recorded = fallback::RecordedFallbacks::load(&p.build_dir)?;
    let placement = fallback::placement(p, &recorded);
    let mut out = format!(
        "{:<4} {:<28} {:>6} {:>6}  where it stands\n",
        "#", "function", "before", "after"
    );
    for (i, frame) in after.iter().enumerate() {
        let was = before
            .iter()
            .find(|b| b.function == frame.function)
            .map_or("-".to_string(), |b| b.optimized_out.len().to_string());
        if let Some(note) = &frame.entry {
            let what = note.split(':').next().unwrap_or(note);
            out += &format!(
                "#{i:<3} {:<28} {:>6} {:>6}  {what}\n",
                frame.function, "", ""
            );
            continue;
        }
        let why = where_it_stands(frame, &p.tree.path, |o| placement.step_for(o));
        out += &format!(
            "#{i:<3} {:<28} {was:>6} {:>6}  {why}\n",
            frame.function,
            frame.optimized_out.len()
        );
        if let Some(Some(member)) = through.get(i) {
            out += &format!("       ↑ reached through {member}\n");
        }
    }
    Ok(out)
}

/// A frame's last column: nothing when every value reads; else its
/// object's step and the move that put it there (`step_for`: the
/// placement's answer), or that no move explains it.
fn where_it_stands(
    frame: &Frame,
    tree: &std::path::Path,
    step_for: impl Fn(&str) -> (String, Option<String>),
) -> String {
    let file = frame.source(tree);
    match file.strip_suffix(".c") {
        _ if frame.optimized_out.is_empty() => String::new(),
        Some(stem) => match step_for(&format!("{stem}.o")) {
            (step, Some(why)) => format!("-{step}: {why}"),
            (step, None) => {
                format!("-{step}, its rule's level: no recorded or known move explains it")
            }
        },
        None => format!("{file}: not a C file of its own"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame with values absent names the move of its object; at its
    /// rule's level, with no move, it says so and gives no reason.
    #[test]
    fn a_frame_with_values_absent_names_a_move_or_says_there_is_none() {
        let tree = std::path::Path::new("/k");
        let frame = |absent: &[&str]| Frame {
            function: "do_syscall_64".into(),
            location: "/k/arch/x86/entry/common.c:47".into(),
            variables: 4,
            optimized_out: absent.iter().map(|s| s.to_string()).collect(),
            entry: None,
        };
        let moved = |_: &str| ("Og".to_string(), Some("fallback O0→Og: asm".to_string()));
        let unmoved = |_: &str| ("O0".to_string(), None);
        assert_eq!(where_it_stands(&frame(&[]), tree, unmoved), "");
        assert_eq!(
            where_it_stands(&frame(&["nr"]), tree, moved),
            "-Og: fallback O0→Og: asm"
        );
        assert_eq!(
            where_it_stands(&frame(&["nr"]), tree, unmoved),
            "-O0, its rule's level: no recorded or known move explains it"
        );
    }
}
