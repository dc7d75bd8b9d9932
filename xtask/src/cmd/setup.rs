//! `cargo xtask setup`: the host tools every command needs, installed on
//! request, and the kernel tree, from the submodule or Debian's tarball.

use std::path::Path;

use anyhow::{bail, Result};

use xshell::cmd;

use crate::{
    cli,
    ctx::Ctx,
    kernel::tree::{self, KernelTree, DEBIAN_TARBALL},
    spec::host_tools,
};

impl cli::Setup {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        let exec = &ctx.exec;
        let tools = host_tools::load(&ctx.study_dir())?;
        let missing: Vec<_> = tools
            .iter()
            .filter(|t| !t.present() && !t.optional)
            .collect();
        for tool in &tools {
            let mark = match (tool.present(), tool.optional) {
                (true, _) => "ok",
                (false, true) => "optional",
                (false, false) => "MISSING",
            };
            println!(
                "{mark:>8}  {:<16} {:<28} (apt: {})",
                tool.name, tool.check, tool.package
            );
        }
        let tree_ok = KernelTree::open(&ctx.kernel_dir).is_ok();
        let mut packages: Vec<&str> = missing.iter().map(|t| t.package.as_str()).collect();
        if !tree_ok && !Path::new(DEBIAN_TARBALL).is_file() {
            packages.push("linux-source-6.12");
        }
        packages.dedup();
        if !packages.is_empty() {
            if !self.install {
                bail!(
                    "missing: {}; run `cargo xtask setup --install` (as root) or `apt-get install {}`",
                    packages.join(" "),
                    packages.join(" ")
                );
            }
            if !is_root() && !exec.dry_run {
                bail!(
                    "--install runs apt-get and needs root; run `sudo apt-get install {}`",
                    packages.join(" ")
                );
            }
            let sh = exec.sh();
            exec.run(cmd!(sh, "apt-get update -q"))?;
            exec.run(
                cmd!(
                    sh,
                    "apt-get install -y -q --no-install-recommends {packages...}"
                )
                .env("DEBIAN_FRONTEND", "noninteractive"),
            )?;
        }
        if !tree_ok {
            get_kernel_tree(ctx)?;
        }
        if !exec.dry_run {
            let tree = KernelTree::open(&ctx.kernel_dir)?;
            println!("kernel: Linux {} in {}", tree.version, tree.path.display());
        }
        println!("\nReady. Next: cargo xtask build   (or: cargo xtask build --profile tiny, a few minutes)");
        Ok(())
    }
}

/// The submodule where the network allows, else Debian's tarball.
fn get_kernel_tree(ctx: &Ctx) -> Result<()> {
    let exec = &ctx.exec;
    let default_tree = ctx.kernel_dir == ctx.root.join("kernel");
    if default_tree && ctx.root.join(".gitmodules").is_file() {
        // A bounded try: without network, git fails; never wait long for it.
        let sh = exec.sh();
        let _root = sh.push_dir(&ctx.root);
        let submodule = cmd!(
            sh,
            "timeout 120 git submodule update --init --depth 1 kernel"
        );
        let fetched = exec.dry_run || exec.status(submodule).is_ok_and(|s| s.success());
        if fetched && (exec.dry_run || KernelTree::open(&ctx.kernel_dir).is_ok()) {
            return Ok(());
        }
        eprintln!("the kernel submodule could not be fetched; using {DEBIAN_TARBALL}");
    }
    tree::unpack(exec, Path::new(DEBIAN_TARBALL), &ctx.kernel_dir, ctx.wait)
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}
