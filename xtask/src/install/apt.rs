//! apt's part of an install: packages installed as root, and a guest
//! architecture's (or another suite's) package fetched with `apt-get
//! download` and unpacked aside. Every apt-get runs with its status on
//! standard output (`-o APT::Status-Fd=1`, util::apt_status), read by one
//! display: fetching (apt's percent of the bytes, the file it is at), then
//! dpkg (apt's percent of its steps, what it does to which package).

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use xshell::{cmd, Cmd};

use super::step;
use crate::{
    ctx::Ctx,
    study::host_tools,
    util::{
        apt_sources,
        apt_status::{self, Kind, Status},
        exec::{describe, which, Exec},
        progress::{Progress, Shown},
    },
};

/// Installs the apt packages `apt`, as root.
pub fn install(ctx: &Ctx, apt: &[&str]) -> Result<()> {
    if apt.is_empty() {
        return Ok(());
    }
    let exec = &ctx.exec;
    let sh = exec.sh();
    exec.require_root(&format!(
        "--install runs apt-get and needs root; run `sudo apt-get install {}`",
        apt.join(" ")
    ))?;
    apt_get(
        ctx,
        "apt-get update",
        cmd!(sh, "apt-get update -q -o APT::Status-Fd=1"),
    )?;
    apt_get(
        ctx,
        "apt-get install",
        cmd!(
            sh,
            "apt-get install -y -q -o APT::Status-Fd=1 --no-install-recommends {apt...}"
        ),
    )?;
    // ccache's masquerade directory links only the compilers it saw at its
    // own install: a clang-19 installed later would go uncached.
    if which("update-ccache-symlinks").is_some() {
        exec.run(cmd!(sh, "update-ccache-symlinks"))?;
    }
    Ok(())
}

/// Runs `cmd`, an apt-get with `-o APT::Status-Fd=1`, as the step `what`:
/// its status lines move the display, and everything it writes goes to
/// target/setup/WHAT.log (`apt-get-install.log`).
fn apt_get(ctx: &Ctx, what: &str, cmd: Cmd<'_>) -> Result<()> {
    let progress = Progress::new(what, "", Some(100), Shown::detect());
    let log = step::log(&ctx.root, &what.replace(' ', "-"));
    let cmd = cmd.env("DEBIAN_FRONTEND", "noninteractive");
    step::run(&ctx.exec, cmd, &log, progress, |progress, line| {
        if let Some(status) = apt_status::parse(line) {
            show(progress, &status);
        }
    })
}

/// The fetching's and dpkg's percents are two scales, each from 0: a new
/// phase starts the count, and its pace (from its first line), again.
fn show(progress: &mut Progress, status: &Status) {
    let (phase, current) = match status.kind {
        Kind::Download => (
            "fetching",
            apt_status::file_count(&status.what)
                .map_or(status.what.clone(), |(n, of)| format!("file {n} of {of}")),
        ),
        Kind::Package => ("unpacking and setting up", status.what.clone()),
        Kind::Error | Kind::Conffile => return,
    };
    progress.set(|s| {
        if s.phase.as_deref() != Some(phase) {
            s.phase = Some(phase.to_string());
            s.first_at = None;
        }
        s.current = current;
    });
    progress.at(status.percent as u64);
}

/// A package of another architecture, for a guest: `apt-get download`
/// and `dpkg-deb -x` into its own directory, so the host's package of the
/// same name stays (installing `busybox-static:arm64` would replace the
/// host's busybox). apt learns the architecture first, once.
pub fn unpack_deb(ctx: &Ctx, deb: &str) -> Result<()> {
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
        apt_get(
            ctx,
            "apt-get update",
            cmd!(sh, "apt-get update -q -o APT::Status-Fd=1"),
        )?;
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
        let fetch = cmd!(
            sh,
            "apt-get download -q -o APT::Status-Fd=1 {private...} {deb}"
        );
        apt_get(ctx, "apt-get download", fetch)?;
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
    let fetch = cmd!(sh, "apt-get update -q -o APT::Status-Fd=1 {update...}");
    apt_get(ctx, &format!("apt-get update {suite}"), fetch)?;
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
#[cfg(test)]
mod tests {
    use super::*;

    /// apt's real status stream of a reinstall (util::apt_status's sample):
    /// the fetching's 100 % does not carry into dpkg's count, which starts
    /// from its own first line and ends where apt's last line says, on the
    /// package's state.
    #[test]
    fn fetching_then_dpkg_each_count_from_nothing() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data/apt/reinstall-bc.status");
        let text = std::fs::read_to_string(path).unwrap();
        let mut progress = Progress::new("apt-get install", "", Some(100), Shown::Off);
        let mut phases = Vec::new();
        for status in text.lines().filter_map(apt_status::parse) {
            show(&mut progress, &status);
            let s = progress.state();
            if phases.last() != s.phase.as_ref() {
                phases.push(s.phase.clone().unwrap());
                // A new phase is at its first line's percent.
                assert_eq!(s.done, status.percent as u64, "{status:?}");
            }
        }
        assert_eq!(phases, ["fetching", "unpacking and setting up"]);
        let s = progress.state();
        assert_eq!((s.done, s.current.as_str()), (80, "Installed bc (amd64)"));
    }

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
