//! What clangd reads: one build directory's compile commands without the
//! flags clang does not take (study/clangd.toml), as `compile_commands.json`
//! in the build directories' parent (`build/`). clangd looks for that file
//! in every parent directory of a source and in their `build/` folders, so
//! for a file of `kernel/` it finds `build/compile_commands.json` by
//! itself, whatever the editor. Kbuild's own file in the build directory
//! stays as Kbuild wrote it, and the kernel tree is not written to (see
//! docs/src/clang.md for why this and not a `.clangd` file).
//!
//! Which build directory: the last one `config --clangd` named (kept in
//! `build/clangd-follows`), else the default profile's.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::{
    ctx::{Ctx, Prepared},
    kernel::compdb,
    study::clangd_flags::ClangdFlags,
};

/// What [`refresh`] did, for the command to say.
pub enum Followed {
    /// Another build directory is the one clangd follows.
    Other,
    /// This one is, and `path` holds its commands (`written`: just now).
    Written { path: PathBuf, written: bool },
    /// This one is, but it has no compile_commands.json yet (`build` makes it).
    NotBuilt,
}

impl Followed {
    /// The line to print, if any: always when the user chose (`chosen`),
    /// else when the file changed.
    pub fn line(&self, p: &Prepared, chosen: bool) -> Option<String> {
        let build_dir = p.build_dir.display();
        match self {
            Followed::Other => None,
            Followed::NotBuilt if chosen => Some(format!(
                "clangd: will follow {build_dir} once `cargo xtask build` has made its compile_commands.json"
            )),
            Followed::NotBuilt => None,
            Followed::Written { written: false, .. } if !chosen => None,
            Followed::Written { path, .. } => {
                let mut line = format!(
                    "clangd: {} holds {build_dir}'s compile commands, without the flags clang does not take",
                    path.display()
                );
                if !found_from(&p.tree.path, path) {
                    let dir = path.parent().unwrap_or(path).display();
                    line.push_str(&format!(
                        "; clangd does not look there for {}'s files: give it --compile-commands-dir={dir}",
                        p.tree.path.display()
                    ));
                }
                Some(line)
            }
        }
    }
}

/// Makes `p`'s build directory the one clangd follows when `choose`, and,
/// if it is the one, writes its commands for clangd (atomically, and only
/// when they changed).
pub fn refresh(ctx: &Ctx, p: &Prepared, choose: bool) -> Result<Followed> {
    let Some(parent) = p.build_dir.parent() else {
        return Ok(Followed::Other);
    };
    let db = parent.join("compile_commands.json");
    let record = parent.join("clangd-follows");
    // Through a symbolic link or not, one directory is one directory.
    let real = |path: &Path| std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let this = real(&p.build_dir).display().to_string();
    if choose {
        ctx.exec.write(&record, format!("{this}\n"))?;
    } else {
        let followed = match std::fs::read_to_string(&record) {
            Ok(text) => PathBuf::from(text.trim_end()),
            Err(_) => ctx.build_dir(None, &ctx.profiles()?.default),
        };
        let followed = real(&followed).display().to_string();
        if followed != this {
            return Ok(Followed::Other);
        }
    }
    let kbuild = p.build_dir.join("compile_commands.json");
    let Ok(text) = std::fs::read_to_string(&kbuild) else {
        return Ok(Followed::NotBuilt);
    };
    let flags = ClangdFlags::load(&ctx.study_dir())?;
    let filtered = compdb::without_flags(&text, |f| flags.removes(f))
        .with_context(|| format!("{}: cannot read it", kbuild.display()))?;
    let written = ctx.exec.write(&db, filtered)?;
    Ok(Followed::Written { path: db, written })
}

/// Whether clangd, looking for a source of `tree`, comes upon `db` by
/// itself: `db`'s folder is a parent of the source, or a parent's `build/`.
pub fn found_from(tree: &Path, db: &Path) -> bool {
    let real = |path: &Path| std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let tree = &real(tree);
    let Some(dir) = db.parent().map(real) else {
        return false;
    };
    let dir = dir.as_path();
    tree.starts_with(dir)
        || (dir.file_name().is_some_and(|n| n == "build")
            && dir.parent().is_some_and(|above| tree.starts_with(above)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clangd_looks_in_the_parents_and_their_build_folders() {
        let db = Path::new("/repo/build/compile_commands.json");
        assert!(found_from(Path::new("/repo/kernel"), db));
        assert!(!found_from(Path::new("/elsewhere/linux"), db));
        let beside = Path::new("/cache/compile_commands.json");
        assert!(found_from(Path::new("/cache/linux"), beside));
        let other = Path::new("/repo/out/compile_commands.json");
        assert!(!found_from(Path::new("/repo/kernel"), other));
    }
}
