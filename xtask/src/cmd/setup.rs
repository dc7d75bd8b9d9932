//! `cargo xtask setup`: the host tools of study/host-tools.toml (the host's
//! architecture's, --arch's, and what `cargo test` needs), installed on
//! request, and the kernel tree, from the submodule or Debian's tarball.

use anyhow::{bail, Result};

use crate::{
    cli,
    ctx::Ctx,
    install,
    kernel::{tree, uml_host},
    study::{
        arch::Arch,
        host_tools::{self, Selection, Source, Tool},
    },
};

impl cli::Setup {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        let debian = std::fs::read_to_string("/etc/os-release")
            .is_ok_and(|text| host_tools::is_debian(&text));
        let host = Arch::host();
        let mut arches = vec![host];
        if ctx.arch_name != host {
            arches.push(ctx.arch_name.as_str());
        }
        let all = host_tools::for_compiler(
            host_tools::load(&ctx.study_dir())?,
            self.cc.unwrap_or_default(),
        );
        let sel = Selection { arches, debian };
        let tools: Vec<&Tool> = all.iter().filter(|t| t.wanted(&sel)).collect();
        if self.list_packages {
            println!(
                "{}",
                host_tools::apt_packages(tools.iter().copied()).join(" ")
            );
            return Ok(());
        }
        // What `cargo xtask build` needs on this host is not optional: the
        // default profile's linker (lld on x86_64) and compiler.
        let default = ctx.profiles()?.get(None)?.clone();
        let cc = self.cc.unwrap_or(default.cc);
        let groups = default.linker_for(&ctx.arch_name).tool_groups(cc);
        let optional = |t: &Tool| t.optional_beyond(&groups);
        let root = ctx.root.as_path();
        for tool in &tools {
            let mark = match (tool.present(root), optional(tool)) {
                (true, _) => "ok",
                (false, true) => "optional",
                (false, false) => "MISSING",
            };
            let from = match tool.source() {
                Source::Apt(p) => format!("apt: {p}"),
                Source::Pip(p) => format!("pip: {p}"),
                Source::Deb(p) => format!("apt-get download: {p}"),
                Source::Cargo(p) => format!("cargo install: {p}"),
            };
            println!("{mark:>8}  {:<18} {:<36} ({from})", tool.name, tool.check);
        }
        if !debian {
            let skipped: Vec<&str> = all
                .iter()
                .filter(|t| t.debian_only)
                .filter_map(|t| t.package.as_deref())
                .collect();
            println!("not Debian: skipped {} (Debian only)", skipped.join(", "));
        }
        let missing: Vec<&Tool> = tools.iter().copied().filter(|t| !t.present(root)).collect();
        if self.install && !missing.is_empty() {
            install::install(ctx, &missing)?;
        } else if self.install {
            println!(
                "install: nothing to install, all {} tools are here",
                tools.len()
            );
        } else if missing.iter().any(|t| !optional(t)) {
            bail!("{}", install::hint("missing", &missing));
        } else if !missing.is_empty() {
            println!(
                "{}",
                install::hint("optional, and `cargo test` needs them", &missing)
            );
        }
        if let Some(tree) = install::kernel_tree(ctx)? {
            println!(
                "kernel: Linux {} in {}, from {}",
                tree.version,
                tree.path.display(),
                tree::origin(&ctx.exec, &tree, root)
            );
            if let Some(uml) = ctx.arch()?.uml {
                println!(
                    "{}",
                    uml_host::report(&tree.path, &tree.version, &uml.host_fp)
                );
            }
        }
        println!("\nReady. Next: cargo xtask build   (or: cargo xtask build --profile tiny, a few minutes)");
        Ok(())
    }
}
