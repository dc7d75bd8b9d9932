//! Installing what study/host-tools.toml lists: apt packages as root, pip
//! packages into the project's venv, crates with `cargo install` beside
//! them, a guest architecture's packages unpacked aside, and the kernel
//! tree (the submodule, else Debian's tarball). It uses `kernel`, `study`
//! and `util`.

use std::path::Path;

use anyhow::{bail, Result};
use xshell::cmd;

use crate::{
    ctx::Ctx,
    kernel::tree::{self, KernelTree, DEBIAN_TARBALL},
    study::host_tools::{self, Tool, PIP_VENV},
    util::exec::which,
};

/// Installs `missing`, every source in turn, then checks that each is
/// there.
pub fn install(ctx: &Ctx, missing: &[&Tool]) -> Result<()> {
    let apt = host_tools::apt_packages(missing.iter().copied());
    let pip = host_tools::pip_packages(missing.iter().copied());
    install_apt(ctx, &apt)?;
    install_pip(ctx, &pip)?;
    for tool in host_tools::cargo_tools(missing.iter().copied()) {
        let args = host_tools::cargo_install_args(tool, &ctx.root.join(PIP_VENV));
        eprintln!("building {} from crates.io (about two minutes)", tool.name);
        ctx.exec.run(ctx.exec.sh().cmd("cargo").args(&args))?;
    }
    for deb in host_tools::deb_packages(missing.iter().copied()) {
        unpack_deb(ctx, deb)?;
    }
    ctx.exec.check(|| {
        let still: Vec<&str> = missing
            .iter()
            .filter(|t| !t.present(&ctx.root))
            .map(|t| t.check.as_str())
            .collect();
        if !still.is_empty() {
            bail!("installed, yet still missing: {}", still.join(", "));
        }
        Ok(())
    })
}

/// The line that says how to install `missing` by hand.
pub fn hint(what: &str, missing: &[&Tool]) -> String {
    let mut how = vec!["`cargo xtask setup --install` (as root)".to_string()];
    how.extend(host_tools::install_commands(missing.iter().copied()));
    let packages: Vec<&str> = host_tools::apt_packages(missing.iter().copied())
        .into_iter()
        .chain(host_tools::pip_packages(missing.iter().copied()))
        .chain(
            host_tools::cargo_tools(missing.iter().copied())
                .into_iter()
                .map(|t| t.name.as_str()),
        )
        .collect();
    format!("{what}: {}; run {}", packages.join(" "), how.join(", or "))
}

fn install_apt(ctx: &Ctx, apt: &[&str]) -> Result<()> {
    if apt.is_empty() {
        return Ok(());
    }
    let exec = &ctx.exec;
    let sh = exec.sh();
    exec.require_root(&format!(
        "--install runs apt-get and needs root; run `sudo apt-get install {}`",
        apt.join(" ")
    ))?;
    exec.run(cmd!(sh, "apt-get update -q"))?;
    exec.run(
        cmd!(sh, "apt-get install -y -q --no-install-recommends {apt...}")
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    // ccache's masquerade directory links only the compilers it saw at its
    // own install: a clang-19 installed later would go uncached.
    if which("update-ccache-symlinks").is_some() {
        exec.run(cmd!(sh, "update-ccache-symlinks"))?;
    }
    Ok(())
}

fn install_pip(ctx: &Ctx, pip: &[&str]) -> Result<()> {
    if pip.is_empty() {
        return Ok(());
    }
    let exec = &ctx.exec;
    let sh = exec.sh();
    let venv = ctx.root.join(PIP_VENV);
    let pip_bin = venv.join("bin/pip");
    if !pip_bin.is_file() {
        exec.run(cmd!(sh, "python3 -m venv {venv}"))?;
    }
    exec.run(cmd!(sh, "{pip_bin} install -q {pip...}"))
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
        exec.require_root(&format!(
            "apt does not know {arch} packages yet ({deb}): run `sudo dpkg --add-architecture {arch} && sudo apt-get update`, or this as root"
        ))?;
        exec.run(cmd!(sh, "dpkg --add-architecture {arch}"))?;
        exec.run(cmd!(sh, "apt-get update -q"))?;
    }
    let download = ctx.root.join(host_tools::DEB_DIR).join("download");
    let dest = ctx.root.join(&dir);
    let partial = ctx.root.join(format!("{dir}.partial"));
    exec.create_dir_all(&download)?;
    exec.remove_all(&partial)?;
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
    exec.remove_all(&dest)?;
    exec.rename(&partial, &dest)?;
    exec.check(|| {
        println!("unpacked {deb} into {}", dest.display());
        Ok(())
    })
}

/// The kernel tree: the submodule where the network allows, else
/// Debian's tarball. `None`: a dry run, which fetched nothing.
pub fn kernel_tree(ctx: &Ctx) -> Result<Option<KernelTree>> {
    if let Ok(tree) = KernelTree::open(&ctx.kernel_dir) {
        return Ok(Some(tree));
    }
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
        let fetched = exec.status(submodule).is_ok_and(|s| s.success());
        let tree = exec.check(|| Ok(Some(KernelTree::open(&ctx.kernel_dir).ok())))?;
        match tree {
            // A dry run, which ran no git.
            None => return Ok(None),
            Some(Some(tree)) if fetched => return Ok(Some(tree)),
            Some(_) => {
                eprintln!("the kernel submodule could not be fetched; using {DEBIAN_TARBALL}")
            }
        }
    }
    exec.check(|| {
        if !Path::new(DEBIAN_TARBALL).is_file() {
            bail!(
                "no kernel tree in {} and no {DEBIAN_TARBALL} (Debian's linux-source-6.12): \
                 `git submodule update --init --depth 1 kernel` where the network allows, or \
                 --kernel DIR for a tree of your own (6.1 or later)",
                ctx.kernel_dir.display()
            );
        }
        Ok(())
    })?;
    tree::unpack(exec, Path::new(DEBIAN_TARBALL), &ctx.kernel_dir, ctx.wait)
}
