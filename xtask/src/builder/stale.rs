//! Whether the image is older than what decides it, and building it then;
//! and what changed since the last build: nothing (the edit loop skips
//! make), some objects (make walks only the path to them), or what only
//! make's full walk can tell.

use std::{
    path::{Path, PathBuf},
    time::SystemTime,
};

use anyhow::Result;

use crate::{
    builder::{
        configure, inputs,
        passes::build,
        request::{wants_image, BuildRequest},
    },
    ctx::{BuildLock, Ctx, Prepared},
    kernel::kbuild,
};

/// Builds first when the image is missing or older than .config or the
/// overrides. Source edits need `cargo xtask build` (or `run --build`):
/// asking make would cost a no-op build's seconds on every run. A build
/// takes the directory's lock alone, then goes back to sharing it.
pub fn ensure_built(ctx: &Ctx, p: &Prepared, lock: &mut BuildLock) -> Result<()> {
    // A FreeBSD build has no .config: built once its image is there; source
    // and rule edits need `cargo xtask build`, as on Linux.
    if p.freebsd.is_some() {
        if !p.image().exists() {
            lock.exclusive()?;
            if !p.image().exists() {
                eprintln!("{} is missing: building", p.image().display());
                crate::builder::freebsd::build(ctx, p, &BuildRequest::default_for_run())?;
            }
            lock.shared()?;
        }
        return Ok(());
    }
    if is_stale(p) {
        lock.exclusive()?;
        // Another command may have built it while this one waited.
        if is_stale(p) {
            eprintln!("{} is missing or stale: building", p.image().display());
            build(ctx, p, &BuildRequest::default_for_run())?;
        }
        lock.shared()?;
    }
    Ok(())
}

fn mtime(path: &Path) -> Option<SystemTime> {
    path.metadata().and_then(|m| m.modified()).ok()
}

/// When `output` was last built: its mtime, or the stamp of the last
/// successful build when that is later. A build that relinked nothing (a
/// rewritten study.mk, a touched .config) leaves the output older.
fn last_built(p: &Prepared, output: &Path) -> Option<SystemTime> {
    let output = mtime(output)?;
    Some(mtime(&built_stamp(p)).map_or(output, |stamp| stamp.max(output)))
}

fn is_stale(p: &Prepared) -> bool {
    let stale = match last_built(p, &p.image()) {
        None => true,
        Some(built) => {
            configure::needs_config(p)
                || [
                    p.build_dir.join(".config"),
                    kbuild::overrides_path(&p.build_dir),
                ]
                .iter()
                .any(|input| mtime(input).is_some_and(|t| t > built))
        }
    };
    stale
}

/// What the next build has to do, as far as the inputs index tells.
pub enum Changes {
    /// make would find nothing to do.
    Nothing(inputs::Comparison),
    /// Only these objects are older than their inputs: make need enter
    /// only the directories on the way to them (the fast path).
    Objects(inputs::Comparison),
    /// Why only make's full walk can tell.
    Unknown(String),
}

/// What changed since the last build: nothing, when the overrides make
/// would write are the ones there, `.config` is older than the last
/// build, the boot image (if this request wants one) is not older than
/// vmlinux, and every object is newer than its recorded inputs; some
/// objects, when only those are older than their inputs.
pub fn changes(p: &Prepared, req: &BuildRequest, overrides: &str) -> Changes {
    match known_changes(p, req, overrides) {
        Ok(c) if c.stale.is_empty() => Changes::Nothing(c),
        Ok(c) => Changes::Objects(c),
        Err(why) => Changes::Unknown(why),
    }
}

fn known_changes(
    p: &Prepared,
    req: &BuildRequest,
    overrides: &str,
) -> Result<inputs::Comparison, String> {
    let overrides_path = kbuild::overrides_path(&p.build_dir);
    if std::fs::read_to_string(&overrides_path).ok().as_deref() != Some(overrides) {
        return Err(format!("{} is to be rewritten", overrides_path.display()));
    }
    let vmlinux_path = p.build_dir.join("vmlinux");
    let vmlinux = mtime(&vmlinux_path).ok_or("no vmlinux")?;
    let built = last_built(p, &vmlinux_path).ok_or("no vmlinux")?;
    if mtime(&p.build_dir.join(".config")).is_none_or(|t| t > built) {
        return Err(".config is newer than the last build".into());
    }
    if wants_image(p, req) && mtime(&p.image()).is_none_or(|t| t < vmlinux) {
        return Err(format!("{} is older than vmlinux", p.image().display()));
    }
    inputs::compare(p)
}

/// Touched by every successful build of the image.
pub fn built_stamp(p: &Prepared) -> PathBuf {
    p.state().built()
}
