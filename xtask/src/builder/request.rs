//! What a build is asked for, and the make command line that does it:
//! Kbuild's targets for the image, the profile's variables, the compiler
//! cache's and the distcc farm's environment.

use std::path::Path;

use xshell::{Cmd, Shell};

use crate::{
    builder::{
        ccache::{CacheMode, CacheSetup},
        distcc::{self, Farm},
    },
    ctx::Prepared,
    kernel::kbuild,
};

pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub struct BuildRequest {
    /// Only what the next boot needs (the edit loop): no compressed image
    /// where QEMU boots vmlinux, no compile_commands.json.
    pub quick: bool,
    pub jobs: usize,
    pub fallback: bool,
    pub suggest_config: bool,
    pub cache: CacheMode,
    pub make_args: Vec<String>,
    pub distcc: Option<Farm>,
    /// Skip make when nothing the last build was made from changed
    /// (builder::inputs): the edit loop's commands. `build` itself always
    /// asks make.
    pub skip_unchanged: bool,
}

impl BuildRequest {
    /// What `run` and `trace` build with when the image is stale.
    pub fn default_for_run() -> BuildRequest {
        BuildRequest {
            quick: false,
            jobs: default_jobs(),
            fallback: true,
            suggest_config: false,
            cache: CacheMode::Auto,
            make_args: Vec::new(),
            distcc: None,
            skip_unchanged: true,
        }
    }
}

/// Whether the build makes the boot image: the edit loop skips what the
/// next boot does not need.
pub fn wants_image(p: &Prepared, req: &BuildRequest) -> bool {
    !(req.quick && p.boots_vmlinux())
}

/// Whether the make arguments name targets, which replace the image's.
pub fn explicit_targets(req: &BuildRequest) -> bool {
    req.make_args
        .iter()
        .any(|a| !a.starts_with('-') && !a.contains('='))
}

/// The build's make. With `walk_filter`, make enters only the
/// directories that filter names (kbuild::walk_filter).
pub fn make_command<'a>(
    sh: &'a Shell,
    p: &Prepared,
    req: &BuildRequest,
    cache: Option<&CacheSetup>,
    walk_filter: Option<&Path>,
) -> Cmd<'a> {
    let mut env = vec![
        // Fixed so that a second identical build is byte-identical and hits
        // the cache: Kbuild would otherwise stamp each link with the date
        // and a count of links (.version).
        ("KBUILD_BUILD_VERSION".to_string(), "1".to_string()),
        (
            "KBUILD_BUILD_TIMESTAMP".to_string(),
            "1970-01-01".to_string(),
        ),
        ("KBUILD_BUILD_USER".to_string(), "study".to_string()),
        ("KBUILD_BUILD_HOST".to_string(), "linux-study".to_string()),
    ];
    if let Some(cache) = cache {
        env.extend(cache.env.iter().cloned());
    }
    let mut cc = None;
    if let Some(farm) = &req.distcc {
        let d = distcc::setup(farm, cache.is_some(), p.compiler, &p.state().distcc_log());
        env.extend(d.env);
        cc = d.cc;
    }
    let mut extra = p.make_vars();
    // Each object's diagnostics in one block, so errors are attributable
    // to it for the fallback ladder. The build of what changed never moves
    // an object (its failure sends the build to the full walk), and
    // without the sync each stage's line comes as it starts, so the edit
    // loop's phases are timed where they happen.
    if req.fallback && walk_filter.is_none() {
        extra.push("--output-sync=target".to_string());
    }
    extra.extend(req.make_args.iter().cloned());
    extra.extend(walk_filter.map(kbuild::walk_filter_var));
    let opts = kbuild::BuildOptions {
        jobs: req.jobs,
        keep_going: req.fallback,
        cc,
        env,
        extra,
    };
    // Targets among the make arguments replace the default ones.
    if explicit_targets(req) {
        return kbuild::build_make(
            sh,
            &p.tree.path,
            &p.build_dir,
            &p.arch.make_arch,
            &opts,
            &[],
        );
    }
    let mut targets = vec!["vmlinux"];
    if wants_image(p, req) {
        targets.push(p.arch.image_target.as_str());
    }
    if p.config().is_ok_and(|c| c.get("GDB_SCRIPTS") == "y") {
        targets.push("scripts_gdb");
    }
    if !req.quick {
        targets.push("compile_commands.json");
    }
    kbuild::build_make(
        sh,
        &p.tree.path,
        &p.build_dir,
        &p.arch.make_arch,
        &opts,
        &targets,
    )
}
