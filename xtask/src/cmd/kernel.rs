//! `cargo xtask kernel`: print the tree's version, or fill the tree from a
//! release tarball.

use anyhow::{bail, Result};

use crate::{
    cli,
    ctx::Ctx,
    kernel::tree::{unpack, KernelTree},
};

impl cli::Kernel {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        let (exec, kernel_dir) = (&ctx.exec, ctx.kernel_dir.as_path());
        let Some(tarball) = self.tarball else {
            let tree = KernelTree::open(kernel_dir)?;
            println!("Linux {} in {}", tree.version, tree.path.display());
            return Ok(());
        };
        if let Ok(tree) = KernelTree::open(kernel_dir) {
            println!(
                "Linux {} already in {}; remove it to unpack another",
                tree.version,
                tree.path.display()
            );
            return Ok(());
        }
        if !tarball.is_file() {
            bail!(
                "no tarball at {}: for Debian's, run `apt-get install linux-source-6.12`",
                tarball.display()
            );
        }
        unpack(exec, &tarball, kernel_dir, ctx.wait)?;
        if exec.dry_run {
            return Ok(());
        }
        let tree = KernelTree::open(kernel_dir)?;
        println!("Linux {} in {}", tree.version, tree.path.display());
        Ok(())
    }
}
