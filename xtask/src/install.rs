//! Installing what study/host-tools.toml lists: apt packages as root, pip
//! packages into the project's venv, crates with `cargo install` beside
//! them, a guest architecture's packages unpacked aside, and the kernel
//! tree (the submodule, else Debian's tarball). It uses `kernel`, `study`
//! and `util`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use xshell::cmd;

use crate::{
    ctx::Ctx,
    kernel::tree::{self, KernelTree, DEBIAN_TARBALL},
    study::host_tools::{self, Tool, PIP_VENV},
    util::{
        apt_sources,
        exec::{describe, which, Exec},
    },
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
    let (Some(dir), Some((name, arch, suite))) =
        (host_tools::deb_dir(deb), host_tools::deb_parts(deb))
    else {
        bail!("deb = \"{deb}\" needs the form NAME:ARCH or NAME:ARCH/SUITE");
    };
    let native = answer(exec, cmd!(sh, "dpkg --print-architecture"))?;
    let known = answer(exec, cmd!(sh, "dpkg --print-foreign-architectures"))?;
    if native.trim() != arch && !known.lines().any(|a| a.trim() == arch) {
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
    let private = match suite {
        Some(suite) => suite_apt_options(ctx, suite)?,
        None => Vec::new(),
    };
    {
        let _in = sh.push_dir(&download);
        exec.run(cmd!(sh, "apt-get download -q {private...} {deb}"))?;
    }
    // A dry run downloaded nothing: the name it would find.
    let file = exec
        .check(|| downloaded(&download, name, arch).map(Some))?
        .unwrap_or_else(|| download.join(format!("{name}_VERSION_{arch}.deb")));
    exec.run(cmd!(sh, "dpkg-deb -x {file} {partial}"))?;
    exec.remove_all(&dest)?;
    exec.rename(&partial, &dest)?;
    exec.check(|| {
        println!("unpacked {deb} into {}", dest.display());
        Ok(())
    })
}

/// apt options that make another suite of the host's archive (bookworm-
/// backports beside bookworm) known to one apt-get, through a source list
/// and package lists of the project's own under target/debs/apt/: the
/// host's apt configuration is not touched, and a host that already has
/// the suite in its sources works the same.
fn suite_apt_options(ctx: &Ctx, suite: &str) -> Result<Vec<String>> {
    let exec = &ctx.exec;
    let mut sources = Vec::new();
    let parts = std::fs::read_dir("/etc/apt/sources.list.d")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "list" || x == "sources"));
    for path in std::iter::once(PathBuf::from("/etc/apt/sources.list")).chain(parts) {
        if let Ok(text) = std::fs::read_to_string(&path) {
            sources.push(text);
        }
    }
    let Some(line) = apt_sources::line_for_suite(suite, &sources) else {
        bail!(
            "no apt source in /etc/apt serves {}, whose {suite} suite `setup` would fetch: add \
             the Debian archive to apt's sources",
            suite.split('-').next().unwrap_or(suite)
        );
    };
    let dir = ctx.root.join(host_tools::DEB_DIR).join("apt");
    let list = dir.join(format!("{suite}.list"));
    let lists = dir.join("lists");
    exec.create_dir_all(&lists.join("partial"))?;
    exec.write(&list, format!("{line}\n"))?;
    let options: Vec<String> = [
        format!("Dir::Etc::SourceList={}", list.display()),
        format!("Dir::Etc::SourceParts={}", dir.join("none").display()),
        format!("Dir::State::Lists={}", lists.display()),
        // The host's package caches stay the host's.
        "Dir::Cache::pkgcache=".to_string(),
        "Dir::Cache::srcpkgcache=".to_string(),
    ]
    .into_iter()
    .flat_map(|o| ["-o".to_string(), o])
    .collect();
    let sh = exec.sh();
    let update = &options;
    exec.run(cmd!(sh, "apt-get update -q {update...}"))?;
    Ok(options)
}

/// What a read-only query printed; its failure is an error of one line
/// with the command and the first line it wrote to stderr, not an empty
/// answer.
fn answer(exec: &Exec, cmd: xshell::Cmd<'_>) -> Result<String> {
    let text = cmd.to_string();
    let output = exec.query(cmd)?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let why = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        bail!("`{text}` failed ({}): {why}", describe(output.status));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The newest `NAME_VERSION_ARCH.deb` that `apt-get download` left in
/// `dir`; none there is an error that names the directory.
fn downloaded(dir: &Path, name: &str, arch: &str) -> Result<PathBuf> {
    let prefix = format!("{name}_");
    let suffix = format!("_{arch}.deb");
    let entries = std::fs::read_dir(dir)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", dir.display()))?;
    let mut found = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", dir.display()))?
            .path();
        let matches = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(&suffix));
        if matches {
            found.push(path);
        }
    }
    found.into_iter().max().ok_or_else(|| {
        anyhow::anyhow!(
            "`apt-get download {name}:{arch}` left no {prefix}*{suffix} in {}; run it there by hand to see why",
            dir.display()
        )
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
        // Not fatal: the tarball is the fallback, and the line below says
        // why it is used.
        let fetched = match exec.status(submodule) {
            Ok(status) if status.success() => Ok(()),
            Ok(status) => Err(describe(status)),
            Err(e) => Err(format!("{e:#}")),
        };
        let tree = exec.check(|| Ok(Some(KernelTree::open(&ctx.kernel_dir).ok())))?;
        match tree {
            // A dry run, which ran no git.
            None => return Ok(None),
            Some(Some(tree)) if fetched.is_ok() => return Ok(Some(tree)),
            Some(_) => eprintln!(
                "the kernel submodule could not be fetched (`git submodule update`: {}); using {DEBIAN_TARBALL}",
                fetched.err().unwrap_or_else(|| "no tree in it".into())
            ),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_query_is_one_line_not_an_empty_answer() {
        let exec = Exec::new(false, false).unwrap();
        let sh = exec.sh();
        let error = answer(&exec, cmd!(sh, "ls /nonexistent-xtask-query")).unwrap_err();
        let line = format!("{error:#}");
        assert!(
            line.starts_with("`ls /nonexistent-xtask-query` failed (exit status 2): ls: ")
                && line.contains("/nonexistent-xtask-query")
                && !line.contains('\n'),
            "{line}"
        );
        assert_eq!(answer(&exec, cmd!(sh, "echo amd64")).unwrap(), "amd64\n");
    }

    #[test]
    fn a_download_that_left_no_package_says_where_it_looked() {
        let dir = std::env::temp_dir().join(format!("xtask-deb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let error = downloaded(&dir, "busybox-static", "arm64").unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "`apt-get download busybox-static:arm64` left no busybox-static_*_arm64.deb in {}; run it there by hand to see why",
                dir.display()
            )
        );
        for version in ["1.35", "1.36"] {
            let deb = dir.join(format!("busybox-static_{version}_arm64.deb"));
            std::fs::write(deb, "").unwrap();
        }
        let found = downloaded(&dir, "busybox-static", "arm64");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(found.unwrap(), dir.join("busybox-static_1.36_arm64.deb"));
        let missing = downloaded(&dir, "busybox-static", "arm64").unwrap_err();
        assert!(missing.to_string().starts_with("cannot read "), "{missing}");
    }
}
