//! `cargo xtask setup`: the host tools of study/host-tools.toml (the host's
//! architecture's, --arch's, and what `cargo test` needs), installed on
//! request, and the kernel tree, from the submodule or Debian's tarball.

use std::path::Path;

use anyhow::{bail, Result};

use xshell::cmd;

use crate::{
    cli,
    ctx::Ctx,
    kernel::{
        tree::{self, KernelTree, DEBIAN_TARBALL},
        uml_host,
    },
    study::{
        arch::Arch,
        host_tools::{self, Selection, Source, Tool, PIP_VENV},
    },
    util::exec::which,
};

impl cli::Setup {
    pub fn run(self, ctx: &Ctx) -> Result<()> {
        let exec = &ctx.exec;
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
        let root = ctx.root.as_path();
        for tool in &tools {
            let mark = match (tool.present(root), tool.optional) {
                (true, _) => "ok",
                (false, true) => "optional",
                (false, false) => "MISSING",
            };
            let from = match tool.source() {
                Source::Apt(p) => format!("apt: {p}"),
                Source::Pip(p) => format!("pip: {p}"),
                Source::Deb(p) => format!("apt-get download: {p}"),
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
        if !missing.is_empty() {
            let apt = host_tools::apt_packages(missing.iter().copied());
            let pip = host_tools::pip_packages(missing.iter().copied());
            let debs = host_tools::deb_packages(missing.iter().copied());
            if self.install {
                install(ctx, &apt, &pip)?;
                for deb in debs {
                    unpack_deb(ctx, deb)?;
                }
                let still: Vec<&str> = missing
                    .iter()
                    .filter(|t| !exec.dry_run && !t.present(root))
                    .map(|t| t.check.as_str())
                    .collect();
                if !still.is_empty() {
                    bail!("installed, yet still missing: {}", still.join(", "));
                }
            } else if missing.iter().any(|t| !t.optional) {
                bail!("{}", install_hint("missing", &apt, &pip));
            } else {
                println!(
                    "{}",
                    install_hint("optional, and `cargo test` needs them", &apt, &pip)
                );
            }
        }
        let tree_ok = KernelTree::open(&ctx.kernel_dir).is_ok();
        if !tree_ok {
            get_kernel_tree(ctx)?;
        }
        if !exec.dry_run {
            let tree = KernelTree::open(&ctx.kernel_dir)?;
            println!(
                "kernel: Linux {} in {}, from {}",
                tree.version,
                tree.path.display(),
                tree::origin(exec, &tree, root)
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

fn install_hint(what: &str, apt: &[&str], pip: &[&str]) -> String {
    let mut how = vec!["`cargo xtask setup --install` (as root)".to_string()];
    if !apt.is_empty() {
        how.push(format!("`apt-get install {}`", apt.join(" ")));
    }
    if !pip.is_empty() {
        how.push(format!(
            "`python3 -m venv {PIP_VENV} && {PIP_VENV}/bin/pip install {}`",
            pip.join(" ")
        ));
    }
    let packages: Vec<&str> = apt.iter().chain(pip).copied().collect();
    format!("{what}: {}; run {}", packages.join(" "), how.join(", or "))
}

/// apt-get as root for the Debian packages; pip into the venv for the rest.
fn install(ctx: &Ctx, apt: &[&str], pip: &[&str]) -> Result<()> {
    let exec = &ctx.exec;
    let sh = exec.sh();
    if !apt.is_empty() {
        if !is_root() && !exec.dry_run {
            bail!(
                "--install runs apt-get and needs root; run `sudo apt-get install {}`",
                apt.join(" ")
            );
        }
        exec.run(cmd!(sh, "apt-get update -q"))?;
        exec.run(
            cmd!(sh, "apt-get install -y -q --no-install-recommends {apt...}")
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
        // ccache's masquerade directory links only the compilers it saw at
        // its own install: a clang-19 installed later would go uncached.
        if which("update-ccache-symlinks").is_some() || exec.dry_run {
            exec.run(cmd!(sh, "update-ccache-symlinks"))?;
        }
    }
    if !pip.is_empty() {
        let venv = ctx.root.join(PIP_VENV);
        let pip_bin = venv.join("bin/pip");
        if !pip_bin.is_file() {
            exec.run(cmd!(sh, "python3 -m venv {venv}"))?;
        }
        exec.run(cmd!(sh, "{pip_bin} install -q {pip...}"))?;
    }
    Ok(())
}

/// A package of another architecture, for a guest: `apt-get download`
/// and `dpkg-deb -x` into its own directory, so the host's package of the
/// same name stays (installing `busybox-static:arm64` would replace the
/// host's busybox). apt learns the architecture first, once.
fn unpack_deb(ctx: &Ctx, deb: &str) -> Result<()> {
    let exec = &ctx.exec;
    let sh = exec.sh();
    let (Some(dir), Some((name, arch))) = (host_tools::deb_dir(deb), deb.split_once(':')) else {
        bail!("deb = \"{deb}\" needs the form NAME:ARCH");
    };
    let known = exec.query(cmd!(sh, "dpkg --print-foreign-architectures"))?;
    if !String::from_utf8_lossy(&known.stdout)
        .lines()
        .any(|a| a.trim() == arch)
    {
        if !is_root() && !exec.dry_run {
            bail!(
                "apt does not know {arch} packages yet ({deb}): run `sudo dpkg --add-architecture {arch} && sudo apt-get update`, or this as root"
            );
        }
        exec.run(cmd!(sh, "dpkg --add-architecture {arch}"))?;
        exec.run(cmd!(sh, "apt-get update -q"))?;
    }
    let download = ctx.root.join(host_tools::DEB_DIR).join("download");
    let dest = ctx.root.join(&dir);
    let partial = ctx.root.join(format!("{dir}.partial"));
    if !exec.dry_run {
        std::fs::create_dir_all(&download)?;
        let _ = std::fs::remove_dir_all(&partial);
    }
    {
        let _in = sh.push_dir(&download);
        exec.run(cmd!(sh, "apt-get download -q {deb}"))?;
    }
    let prefix = format!("{name}_");
    let suffix = format!("_{arch}.deb");
    let file = std::fs::read_dir(&download)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(&suffix))
        })
        .max()
        .unwrap_or_else(|| download.join(format!("{name}_VERSION_{arch}.deb")));
    exec.run(cmd!(sh, "dpkg-deb -x {file} {partial}"))?;
    if !exec.dry_run {
        let _ = std::fs::remove_dir_all(&dest);
        std::fs::rename(&partial, &dest)?;
        println!("unpacked {deb} into {}", dest.display());
    }
    Ok(())
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
    if !exec.dry_run && !Path::new(DEBIAN_TARBALL).is_file() {
        bail!(
            "no kernel tree in {} and no {DEBIAN_TARBALL} (Debian's linux-source-6.12): \
             `git submodule update --init --depth 1 kernel` where the network allows, or \
             --kernel DIR for a tree of your own (6.1 or later)",
            ctx.kernel_dir.display()
        );
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
