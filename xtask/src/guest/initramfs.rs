//! A busybox initramfs, for a guest that cannot run the host's programs
//! (another architecture) or where a 9p root is not possible: Debian's
//! static busybox for the guest's architecture with its applets, our init
//! as /init, the guest programs in /bin, the files the command needs, and
//! the job, packed with `cpio -H newc`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use xshell::cmd;

use crate::{
    ctx::{project_root, Prepared},
    guest::programs::GuestPrograms,
    util::{
        exec::{describe, Exec},
        supervise::TempPath,
    },
};

/// The host's busybox; its applet list names the links for any
/// architecture's busybox of the same Debian version (the host cannot run
/// another architecture's to ask it).
const BUSYBOX: &str = "/bin/busybox";

/// What goes into an initramfs besides busybox.
pub struct Contents<'a> {
    pub programs: &'a GuestPrograms,
    /// init's job and environment files.
    pub job: &'a [u8],
    pub env: &'a [u8],
    /// Host files the command reads, at the same path in the guest.
    pub files: &'a [PathBuf],
}

/// What the guest can run from an initramfs: the guest programs (not
/// init) and busybox's applets, in that order.
pub fn commands(exec: &Exec, programs: &GuestPrograms) -> Result<Vec<String>> {
    let mut names: Vec<String> = programs.commands().map(String::from).collect();
    if Path::new(BUSYBOX).is_file() {
        names.extend(applets(exec, Path::new(BUSYBOX))?);
    }
    Ok(names)
}

/// A fingerprint of what an initramfs of `c` is packed from (busybox, init,
/// the programs, the job, the environment and the files), FNV-1a over
/// their bytes: the cpio itself differs at each packing (file times), so a
/// kept guest (`run --snapshot`) asks this whether it is still the same.
pub fn fingerprint(p: &Prepared, c: &Contents) -> Result<String> {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes.iter().chain(&(bytes.len() as u64).to_le_bytes()) {
            hash = (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    // Each file under the name the guest sees: the programs' host folder
    // (cargo's build-script output) moves when xtask is rebuilt.
    let mut files = vec![(busybox_of(p)?, "/bin/busybox".into())];
    files.extend(
        c.programs
            .names
            .iter()
            .map(|n| (c.programs.dir.join(n), format!("/bin/{n}"))),
    );
    files.extend(c.files.iter().map(|f| (f.clone(), f.display().to_string())));
    for (file, inside) in &files {
        feed(inside.as_bytes());
        feed(&std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?);
    }
    feed(c.job);
    feed(c.env);
    Ok(format!("{hash:016x}"))
}

/// The static busybox for `p`'s architecture.
fn busybox_of(p: &Prepared) -> Result<PathBuf> {
    Ok(match p.arch.cross()? {
        Some(cross) => project_root().join(&cross.busybox),
        None => PathBuf::from(BUSYBOX),
    })
}

/// Packs an initramfs and returns its path, and its directory, removed
/// when dropped (none under a dry run, which packs nothing).
pub fn build(exec: &Exec, p: &Prepared, c: &Contents) -> Result<(PathBuf, Option<TempPath>)> {
    if !Path::new(BUSYBOX).is_file() {
        bail!("the initramfs needs {BUSYBOX}: run `apt-get install busybox-static`");
    }
    let busybox = busybox_of(p)?;
    if !busybox.is_file() {
        bail!(
            "no busybox for {} at {}: run `cargo xtask setup --install --arch {}`",
            p.arch.name,
            busybox.display(),
            p.arch.name
        );
    }
    // One directory a run: two runs at once must not pack each other's job.
    let dir = p
        .state()
        .initramfs()
        .join(format!("run-{}", std::process::id()));
    let cpio = dir.join("initramfs.cpio");
    let what = || {
        format!(
            "pack {} from busybox, the guest programs, {} file(s) and the job",
            cpio.display(),
            c.files.len()
        )
    };
    let guard = exec.effect(what, || {
        let guard = TempPath::new(dir.clone());
        stage(exec, &busybox, &dir.join("root"), c, &cpio)?;
        Ok(Some(guard))
    })?;
    Ok((cpio, guard))
}

/// The applets `busybox --list` names (but busybox itself): the links the
/// initramfs's /bin gets. A busybox that fails to list them, or lists
/// none, is an error in one line: the guest would have no shell.
fn applets(exec: &Exec, busybox: &Path) -> Result<Vec<String>> {
    let out = exec.query(cmd!(exec.sh(), "{busybox} --list"))?;
    let why = if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let said = stderr.lines().next().unwrap_or_default().trim().to_string();
        format!(
            "failed ({}){}",
            describe(out.status),
            match said.is_empty() {
                true => String::new(),
                false => format!(": {said}"),
            }
        )
    } else {
        let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|a| !a.is_empty() && *a != "busybox")
            .map(String::from)
            .collect();
        if !names.is_empty() {
            return Ok(names);
        }
        "listed no applets".to_string()
    };
    bail!(
        "`{} --list` {why}: the initramfs would have no shell; reinstall it \
         (`apt-get install --reinstall busybox-static`)",
        busybox.display()
    )
}

/// Lays out the root under `root`, packs it into `cpio`, and removes it.
fn stage(exec: &Exec, busybox: &Path, root: &Path, c: &Contents, cpio: &Path) -> Result<()> {
    exec.remove_all(root)?;
    for sub in [
        "bin", "dev", "proc", "sys", "tmp", "run", "root", "var", "study",
    ] {
        exec.create_dir_all(&root.join(sub))?;
    }
    exec.copy(busybox, &root.join("bin/busybox"))?;
    for applet in applets(exec, Path::new(BUSYBOX))? {
        exec.symlink(Path::new("busybox"), &root.join("bin").join(&applet))
            .with_context(|| format!("applet {applet}"))?;
    }
    exec.copy(&c.programs.init(), &root.join("init"))?;
    for name in c.programs.commands() {
        exec.copy(&c.programs.dir.join(name), &root.join("bin").join(name))
            .with_context(|| format!("guest program {name}"))?;
    }
    for file in c.files {
        let inside = root.join(file.strip_prefix("/").unwrap_or(file));
        exec.copy(file, &inside)?;
    }
    exec.write(&root.join("study/job"), c.job)?;
    exec.write(&root.join("study/env"), c.env)?;
    // The file list, sorted, on cpio's stdin: no shell between them.
    let mut names: Vec<String> = walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let rel = e.path().strip_prefix(root).ok()?.display().to_string();
            Some(if rel.is_empty() {
                ".".into()
            } else {
                format!("./{rel}")
            })
        })
        .collect();
    names.sort();
    let list = names.join("\n") + "\n";
    let sh = exec.sh();
    let _dir = sh.push_dir(root);
    let archive =
        exec.capture_with_input(cmd!(sh, "cpio --quiet -o -H newc"), Some(list.into_bytes()))?;
    exec.write(cpio, &archive.stdout)?;
    exec.remove_all(root)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::exec::which;

    /// A busybox that cannot list its applets (`false`), or lists none
    /// (`true`), stops the initramfs in one line naming it; the host's
    /// busybox lists a shell.
    #[test]
    fn a_busybox_without_applets_is_an_error() {
        let exec = Exec::new(false, false).unwrap();
        let failing = which("false").unwrap();
        let err = applets(&exec, &failing).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "`{} --list` failed (exit status 1): the initramfs would have no shell; \
                 reinstall it (`apt-get install --reinstall busybox-static`)",
                failing.display()
            )
        );
        let silent = which("true").unwrap();
        let err = applets(&exec, &silent).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "`{} --list` listed no applets: ",
                silent.display()
            )),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
        if Path::new(BUSYBOX).is_file() {
            assert!(applets(&exec, Path::new(BUSYBOX))
                .unwrap()
                .iter()
                .any(|a| a == "sh"));
        }
    }
}
