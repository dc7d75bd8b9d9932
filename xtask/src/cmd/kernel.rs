//! `cargo xtask kernel`: print the tree's version and where it came from,
//! or fill the tree from a release tarball.

use anyhow::{bail, Result};

use crate::{
    cli,
    ctx::Ctx,
    kernel::tree::{self, unpack, KernelTree},
};

impl cli::Kernel {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        let (exec, kernel_dir) = (&ctx.exec, ctx.kernel_dir.as_path());
        let Some(tarball) = self.tarball else {
            let tree = KernelTree::open(kernel_dir)?;
            describe(ctx, &tree, "");
            return Ok(());
        };
        if let Ok(tree) = KernelTree::open(kernel_dir) {
            describe(ctx, &tree, "; remove it to unpack another");
            return Ok(());
        }
        if !tarball.is_file() {
            let package =
                tree::debian_package(&tarball).unwrap_or_else(|| "linux-source-6.12".to_string());
            bail!(
                "no tarball at {}: for Debian's, run `apt-get install {package}`",
                tarball.display()
            );
        }
        if let Some(tree) = unpack(exec, &tarball, kernel_dir, ctx.wait)? {
            describe(ctx, &tree, "");
        }
        Ok(())
    }
}

/// `Linux V in DIR, from ORIGIN`, and the pin note when V is not the pin.
fn describe(ctx: &Ctx, tree: &KernelTree, tail: &str) {
    println!(
        "Linux {} in {}, from {}{tail}",
        tree.version,
        tree.path.display(),
        tree::origin(&ctx.exec, tree, &ctx.root)
    );
    if let Some(note) = tree::pin_note(&tree.version) {
        println!("{note}");
    }
}
