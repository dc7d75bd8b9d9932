//! `cargo xtask completions SHELL`: the completion script, generated from
//! the command line's clap types, on stdout.

use anyhow::Result;

use crate::{cli, ctx::Ctx};

impl cli::Completions {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        // Without the profile names the script still completes the rest.
        let profiles: Vec<String> = match ctx.profiles() {
            Ok(p) => p.profiles.into_keys().collect(),
            Err(e) => {
                eprintln!("completions: --profile will offer no names: {e:#}");
                Vec::new()
            }
        };
        print!("{}", cli::completions::script(self.shell, &profiles));
        Ok(())
    }
}
