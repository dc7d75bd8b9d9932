//! Whether the image is older than what decides it, and building it then.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::{
    builder::{configure, passes::build, request::BuildRequest},
    ctx::{BuildLock, Ctx, Prepared},
    kernel::kbuild,
};

/// Builds first when the image is missing or older than .config or the
/// overrides. Source edits need `cargo xtask build` (or `run --build`):
/// asking make would cost a no-op build's seconds on every run. A build
/// takes the directory's lock alone, then goes back to sharing it.
pub fn ensure_built(ctx: &Ctx, p: &Prepared, lock: &mut BuildLock) -> Result<()> {
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

fn is_stale(p: &Prepared) -> bool {
    let image = p.image();
    let mtime = |path: &Path| path.metadata().and_then(|m| m.modified()).ok();
    // A build that relinked nothing leaves the image older than a rewritten
    // study.mk: the stamp of the last successful build counts too.
    let built = mtime(&image).map(|image| mtime(&built_stamp(p)).map_or(image, |s| s.max(image)));
    let stale = match built {
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

/// Touched by every successful build of the image.
pub fn built_stamp(p: &Prepared) -> PathBuf {
    p.state().built()
}
