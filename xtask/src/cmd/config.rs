//! `cargo xtask config`: the profile's fragment in the kernel tree, the
//! build directory's `.config`, the optimization overrides, and the proof
//! that every requested option landed.

use anyhow::Result;

use crate::{
    build::{configure, fallback},
    cli,
    ctx::{Ctx, Prepared},
};

impl cli::Config {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        let prepared = Prepared::new(ctx, &self.target.to_target())?;
        if self.show_overrides {
            print!("{}", fallback::overrides_text(&prepared)?);
            return Ok(());
        }
        configure::configure(ctx, &prepared, self.force)
    }
}
