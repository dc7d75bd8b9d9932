//! `cargo xtask opt-report`: the -O level each object really got, and how
//! much of its state gdb can see, from the DWARF; `--check` fails on any
//! object whose level differs from its rule.

use anyhow::{bail, Result};

use crate::{
    analysis::opt_report::{collect, render_dirs, render_files, ObjectReport},
    cli,
    ctx::{Ctx, Prepared},
    util::lock::Access,
};

impl cli::OptReport {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        let p = Prepared::new(ctx, &self.target.to_target())?;
        if !p.debug_image().is_file() && !p.build_dir.join(".config").is_file() {
            bail!(
                "{} is not built: run `cargo xtask build --profile {}`",
                p.build_dir.display(),
                p.profile.name
            );
        }
        let _lock = p.lock(ctx, Access::Shared)?;
        let reports = collect(&p, &self.paths)?;
        if reports.is_empty() {
            bail!(
                "no compiled kernel objects under {} match {:?}",
                p.build_dir.display(),
                self.paths
            );
        }
        if self.json {
            println!("{}", serde_json::to_string_pretty(&reports)?);
        } else if self.files {
            print!("{}", render_files(&reports));
        } else {
            print!("{}", render_dirs(&reports));
        }
        let mismatched: Vec<&ObjectReport> = reports.iter().filter(|r| r.mismatched()).collect();
        for r in &mismatched {
            if let Some(e) = &r.dwarf_error {
                eprintln!("{}: unreadable, so unproven: {e}", r.object);
                continue;
            }
            let level = r.actual.as_deref().or(r.command_level.as_deref());
            eprintln!(
                "{}: built at -{}, its rule says -{} ({}){}",
                r.object,
                level.unwrap_or("?"),
                r.expected,
                r.expected_step,
                if r.ruled {
                    ""
                } else {
                    "; no line of its own Makefile sets that level"
                }
            );
        }
        if self.check && !mismatched.is_empty() {
            let unreadable = mismatched
                .iter()
                .filter(|r| r.dwarf_error.is_some())
                .count();
            bail!(
                "{} object(s) differ from their rule, {unreadable} of them unreadable",
                mismatched.len()
            );
        }
        if self.check {
            let own = reports.iter().filter(|r| r.own_flags).count();
            eprintln!(
                "opt-report --check: {} objects at the level their rule says; {own} set their own level in their Makefile (--files names the line)",
                reports.len() - own
            );
        }
        Ok(())
    }
}
