//! `cargo xtask config`: the profile's fragment in the kernel tree, the
//! build directory's `.config`, the optimization overrides, and the proof
//! that every requested option landed; with `--clangd`, the build clangd
//! follows.

use anyhow::Result;

use crate::{
    builder::{self, configure, fallback},
    cli,
    ctx::{clangd, Ctx, Prepared},
    util::lock::Access,
};

impl cli::Config {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        let prepared = Prepared::new(ctx, &self.target.to_target())?;
        if self.show_overrides && prepared.freebsd.is_some() {
            print!("{}", builder::freebsd::overrides_text(ctx, &prepared)?);
            return Ok(());
        }
        if self.show_overrides {
            print!("{}", fallback::overrides_text(&prepared)?);
            return Ok(());
        }
        let _lock = prepared.lock(ctx, Access::Exclusive)?;
        if prepared.freebsd.is_some() {
            return builder::freebsd::configure(ctx, &prepared);
        }
        configure::configure(ctx, &prepared, self.force)?;
        if self.clangd {
            let followed = clangd::refresh(ctx, &prepared, true)?;
            if let Some(line) = followed.line(&prepared, true) {
                eprintln!("{line}");
            }
        }
        Ok(())
    }
}
