//! The guest programs (study/guest/programs.toml): static executables,
//! built for the host by xtask/build.rs and reachable from the guest over
//! the host's root, or cross-compiled here for a guest that cannot run the
//! host's programs; and the environment init gives the command.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::{study::arch::Arch, util::exec::Exec};

/// Where the host's guest programs are (xtask/build.rs's output).
pub fn guest_init() -> &'static str {
    env!("STUDY_GUEST_STUDY_INIT")
}

pub fn guest_bin_dir() -> PathBuf {
    Path::new(env!("STUDY_GUEST_TCP_ECHO"))
        .parent()
        .expect("an absolute path")
        .to_path_buf()
}

/// init's environment file: the guest programs first on PATH.
pub fn guest_env() -> String {
    format!(
        "PATH={}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\0",
        guest_bin_dir().display()
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProgramFile {
    flags: Vec<String>,
    program: Vec<Program>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Program {
    source: String,
    name: String,
    #[serde(default)]
    flags: Vec<String>,
}

/// A directory of guest programs for one architecture, init among them.
pub struct GuestPrograms {
    pub dir: PathBuf,
    /// The program names, init's first.
    pub names: Vec<String>,
}

/// init's name among the programs.
const INIT: &str = "study-init";

impl GuestPrograms {
    pub fn init(&self) -> PathBuf {
        self.dir.join(INIT)
    }

    /// The programs a guest command can name: all but init.
    pub fn commands(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str).filter(|n| *n != INIT)
    }
}

/// The guest programs `arch` runs: the host's, or compiled with its cross
/// compiler into `target/guest/ARCH/` when a source (or the command line)
/// changed since. `root`: the repository.
pub fn for_arch(exec: &Exec, root: &Path, arch: &Arch) -> Result<GuestPrograms> {
    let study_dir = root.join("study");
    let list = study_dir.join("guest/programs.toml");
    let text = std::fs::read_to_string(&list)
        .with_context(|| format!("cannot read {}", list.display()))?;
    let file: ProgramFile =
        toml::from_str(&text).map_err(|e| crate::study::origin::toml_error(&list, &text, &e))?;
    let names = file.program.iter().map(|p| p.name.clone()).collect();
    let Some(cross) = arch.cross()? else {
        return Ok(GuestPrograms {
            dir: guest_bin_dir(),
            names,
        });
    };
    let cc = format!("{}gcc", cross.prefix);
    let dir = root.join("target/guest").join(&arch.name);
    for program in &file.program {
        let source = study_dir.join("guest").join(&program.source);
        let exe = dir.join(&program.name);
        let flags: Vec<&String> = file.flags.iter().chain(&program.flags).collect();
        // The stamp holds the command line: new flags rebuild too.
        let stamp = dir.join(format!(".{}.cmd", program.name));
        let line = format!("{cc} {flags:?} {}\n", source.display());
        let fresh =
            std::fs::read_to_string(&stamp).is_ok_and(|s| s == line) && newer(&exe, &source);
        if fresh {
            continue;
        }
        exec.require(
            &cc,
            &format!("run `cargo xtask setup --install --arch {}`", arch.name),
        )?;
        exec.create_dir_all(&dir)?;
        // Compiled aside and renamed: a failed compile leaves the old one.
        let partial = dir.join(format!(".{}.partial", program.name));
        let sh = exec.sh();
        exec.run(
            sh.cmd(&cc)
                .args(&flags)
                .arg("-o")
                .arg(&partial)
                .arg(&source),
        )
        .with_context(|| format!("{} did not compile for {}", source.display(), arch.name))?;
        exec.rename(&partial, &exe)?;
        exec.write(&stamp, &line)?;
    }
    Ok(GuestPrograms { dir, names })
}

fn newer(a: &Path, b: &Path) -> bool {
    let time = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    matches!((time(a), time(b)), (Some(a), Some(b)) if a >= b)
}
