//! The build passes: make with the profile's optimization rules, and after
//! a failed pass the fallback ladder's decisions, until the image links or
//! nothing more can be done; a one-line progress display, and the warnings
//! of a build that went through.

use std::{
    collections::BTreeMap,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{bail, Result};
use xshell::Cmd;

use crate::{
    builder::{
        ccache::{CacheSetup, CacheStats},
        configure,
        distcc::DistccStats,
        fallback::{self, Ladder, Learned, RecordedFallbacks},
        inputs,
        outcome::BuildOutcome,
        request::{explicit_targets, make_command, wants_image, BuildRequest},
        stale::{self, built_stamp, Changes},
        watch::{self, Plan, Watch},
    },
    ctx::{Ctx, Prepared},
    kernel::{
        buildlog::{BuildLog, Stage},
        kbuild, linkfix,
    },
    study::host_tools,
    util::exec::Exec,
};

/// Enough passes for O0 → O0-nocheck → Og → Og-nocheck → O2 plus link fixes.
const MAX_PASSES: usize = 8;

/// Configures when needed, then builds, falling back per object as the
/// policy says, until the image links or nothing more can be done. `None`:
/// a dry run, which showed the first pass's make and built nothing.
pub fn build(ctx: &Ctx, p: &Prepared, req: &BuildRequest) -> Result<Option<BuildOutcome>> {
    let exec = &ctx.exec;
    if configure::needs_config(p) {
        configure::configure(ctx, p, false)?;
    }
    host_tools::require_for(&ctx.study_dir(), "build", &p.arch.name, p.compiler)?;
    for group in p.toolchain_groups() {
        host_tools::require_for(&ctx.study_dir(), group, &p.arch.name, p.compiler)?;
    }
    let cache = CacheSetup::new(req.cache)?;
    let cache_before = cache.as_ref().and_then(|c| cache_stats(c, exec));
    let distcc_log = p.state().distcc_log();
    if req.distcc.is_some() {
        host_tools::require(&ctx.study_dir(), "distcc", &p.arch.name)?;
        exec.write(&distcc_log, "")?;
    }
    if let Some(note) = fallback::unmeasured_note(p) {
        eprintln!("{note}");
    }
    let learned = Learned::new(&ctx.root, p);
    let mut ladder = Ladder::new(
        exec,
        p,
        req.suggest_config,
        starting_records(exec, p, &learned)?,
    );
    let start = Instant::now();
    let mut fast_path = None;
    if req.skip_unchanged && !explicit_targets(req) {
        let overrides = fallback::overrides_text_with(p, &ladder.recorded);
        match stale::changes(p, req, &overrides) {
            Changes::Unknown(why) => {
                if exec.verbose {
                    eprintln!("make runs: {why}");
                }
            }
            Changes::Nothing(checked) => {
                eprintln!(
                    "nothing changed since the last build ({} objects, {} files checked in {:.2} s): make not run",
                    checked.objects,
                    checked.files,
                    checked.elapsed.as_secs_f64()
                );
                let made = Made {
                    stages: BTreeMap::new(),
                    compiled: 0,
                    warnings: 0,
                    passes: 0,
                    checks: Vec::new(),
                    recording: Duration::ZERO,
                };
                return Ok(Some(made.outcome(
                    exec,
                    p,
                    req,
                    start,
                    Vec::new(),
                    (None, None),
                )?));
            }
            Changes::Objects(changed) => {
                if let (true, Some(why)) = (exec.verbose, &changed.first) {
                    eprintln!("make runs: {why}");
                }
                fast_path = Some(changed);
            }
        }
    }
    if let Some(changed) = fast_path {
        match build_changed(ctx, p, req, &changed, cache.as_ref(), start)? {
            FastPath::DryRun => return Ok(None),
            FastPath::Built(made) => {
                let outcome = made.outcome(
                    exec,
                    p,
                    req,
                    start,
                    Vec::new(),
                    (cache.as_ref(), cache_before),
                )?;
                return Ok(Some(outcome));
            }
            FastPath::Incomplete(why) => {
                eprintln!("{why}: make walks the whole tree");
            }
        }
    }
    let (mut compiled, mut warnings) = (0, 0);
    let mut passes = 0;
    let checks;
    let mut stages = BTreeMap::new();
    let first = watch::nothing_built(&p.build_dir);
    let plan = full_walk_plan(
        ctx,
        p,
        req,
        &fallback::overrides_text_with(p, &ladder.recorded),
    )?;
    let mut watch = Watch::new(exec, p, &plan)?;
    let began = std::time::SystemTime::now();
    loop {
        passes += 1;
        exec.write(
            &kbuild::overrides_path(&p.build_dir),
            fallback::overrides_text_with(p, &ladder.recorded),
        )?;
        let cmd = make_command(exec.sh(), p, req, cache.as_ref(), None);
        stages.clear();
        let Some((log, success)) = run_make(&mut watch, exec, p, cmd, start, &mut stages)? else {
            return Ok(None);
        };
        compiled += log.compiled;
        warnings += log.warnings;
        if success {
            checks = check_warnings(p, &log)?;
            break;
        }
        let failed = || {
            format!(
                "{}; see {}",
                first_error(&log),
                p.state().build_log().display()
            )
        };
        if !req.fallback {
            bail!("build failed: {}", failed());
        }
        let moved_before = ladder.moved.len();
        if !ladder.after_failure(&log)? {
            bail!("build failed: {}", failed());
        }
        if passes == MAX_PASSES {
            bail!("still failing after {MAX_PASSES} passes: {}", failed());
        }
        watch.say(&format!(
            "pass {passes}: {} object(s) moved up so far; building again",
            ladder.moved.len()
        ));
        watch.next_pass(ladder.moved.len() - moved_before);
    }
    watch::learn(ctx, p, &watch, first)?;
    watch.finish();
    learned.add(exec, &ladder.recorded)?;
    let recording = if explicit_targets(req) {
        Duration::ZERO
    } else {
        let recording = record_inputs(exec, p, inputs::Walk::Full { began })?;
        stamp_built(exec, p)?;
        recording
    };
    let made = Made {
        stages,
        compiled,
        warnings,
        passes,
        checks,
        recording,
    };
    Ok(Some(made.outcome(
        exec,
        p,
        req,
        start,
        ladder.moved,
        (cache.as_ref(), cache_before),
    )?))
}

/// What the passes of one build did.
struct Made {
    stages: BTreeMap<Stage, Duration>,
    compiled: usize,
    warnings: usize,
    passes: usize,
    checks: Vec<String>,
    recording: Duration,
}

impl Made {
    /// The build's outcome: this, with the fallbacks it learned and what
    /// the compiler cache and distcc did since `cache_before`.
    fn outcome(
        self,
        exec: &Exec,
        p: &Prepared,
        req: &BuildRequest,
        start: Instant,
        new_fallbacks: Vec<(String, fallback::Recorded)>,
        (cache, cache_before): (Option<&CacheSetup>, Option<CacheStats>),
    ) -> Result<BuildOutcome> {
        let distcc = req.distcc.as_ref().and_then(|_| {
            let text = std::fs::read_to_string(p.state().distcc_log()).ok()?;
            Some(DistccStats::parse(&text))
        });
        let cache_stats = match (cache, cache_before) {
            (Some(c), Some(before)) => cache_stats(c, exec).map(|now| now.since(&before)),
            _ => None,
        };
        Ok(BuildOutcome {
            elapsed: start.elapsed(),
            stages: self.stages,
            compiled: self.compiled,
            warnings: self.warnings,
            passes: self.passes,
            new_fallbacks,
            recording: self.recording,
            checks: self.checks,
            cache: cache_stats,
            distcc,
            build_dir: p.build_dir.clone(),
            image: p.image(),
        })
    }
}

/// The compiler cache's counters, for the build's summary. Without them
/// the build is the same, so a ccache that cannot give them is said in one
/// line and the summary leaves the cache out (the compiles through it fail
/// on their own if it is broken for them too).
fn cache_stats(cache: &CacheSetup, exec: &Exec) -> Option<CacheStats> {
    cache
        .stats(exec)
        .map_err(|e| eprintln!("note: {e:#}; the build's summary leaves the cache out"))
        .ok()
}

/// The inputs index for the next build's "what changed" (builder::inputs).
fn record_inputs(exec: &Exec, p: &Prepared, walk: inputs::Walk) -> Result<Duration> {
    let start = Instant::now();
    inputs::record(exec, p, walk)?;
    let recording = start.elapsed();
    if exec.verbose {
        eprintln!(
            "recorded the build's inputs in {:.2} s",
            recording.as_secs_f64()
        );
    }
    Ok(recording)
}

fn stamp_built(exec: &Exec, p: &Prepared) -> Result<()> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    exec.write(&built_stamp(p), format!("{}\n", now.as_nanos()))?;
    Ok(())
}

enum FastPath {
    DryRun,
    Built(Made),
    /// Why the full walk must follow.
    Incomplete(String),
}

/// Builds only what changed: make, with Kbuild's rules and flags, entering
/// only the directories on the way to the changed objects (and the boot
/// image's, when it is wanted); then the inputs index again, which must
/// find nothing left, since what the walk ran first (a regenerated header)
/// may have made objects elsewhere older than their inputs.
fn build_changed(
    ctx: &Ctx,
    p: &Prepared,
    req: &BuildRequest,
    changed: &inputs::Comparison,
    cache: Option<&CacheSetup>,
    start: Instant,
) -> Result<FastPath> {
    let exec = &ctx.exec;
    let dirs = kbuild::walked_dirs(&changed.stale);
    let prefixes: Vec<String> = wants_image(p, req)
        .then(|| format!("arch/{}/boot", p.arch.src_arch))
        .into_iter()
        .collect();
    let filter = p.state().walk_filter();
    exec.write(&filter, kbuild::walk_filter(&p.tree.path, &dirs, &prefixes))?;
    let more = match changed.stale.len() {
        1 => String::new(),
        n => format!(" and {} more", n - 1),
    };
    eprintln!(
        "{}{more} changed: make enters {} director{} on the way to it, not the whole tree",
        changed.stale[0],
        dirs.len() + prefixes.len(),
        if dirs.len() + prefixes.len() == 1 {
            "y"
        } else {
            "ies"
        }
    );
    let cmd = make_command(exec.sh(), p, req, cache, Some(&filter));
    let mut stages = BTreeMap::new();
    let mut watch = Watch::new(exec, p, &Plan::stale(ctx, p, &changed.stale))?;
    let Some((log, success)) = run_make(&mut watch, exec, p, cmd, start, &mut stages)? else {
        return Ok(FastPath::DryRun);
    };
    watch.finish();
    if !success {
        return Ok(FastPath::Incomplete(format!(
            "the build of what changed failed ({})",
            first_error(&log)
        )));
    }
    let recording = record_inputs(exec, p, inputs::Walk::Filtered)?;
    match inputs::compare(p) {
        Ok(left) if left.stale.is_empty() => {}
        Ok(left) => {
            return Ok(FastPath::Incomplete(format!(
                "{} object(s) outside that walk are still older than their inputs ({})",
                left.stale.len(),
                left.first.unwrap_or_default()
            )))
        }
        Err(why) => return Ok(FastPath::Incomplete(why)),
    }
    stamp_built(exec, p)?;
    Ok(FastPath::Built(Made {
        stages,
        compiled: log.compiled,
        warnings: log.warnings,
        passes: 1,
        checks: check_warnings(p, &log)?,
        recording,
    }))
}

/// What the ladder starts from: the build directory's own records, or, in
/// a directory that has none yet, what earlier builds of its kind learned.
fn starting_records(exec: &Exec, p: &Prepared, learned: &Learned) -> Result<RecordedFallbacks> {
    if RecordedFallbacks::path(&p.build_dir).exists() {
        return RecordedFallbacks::load(&p.build_dir);
    }
    let earlier = learned.load()?;
    if earlier.len() > 0 {
        eprintln!(
            "starting from {} fallback(s) that earlier builds of Linux {} learned ({})",
            earlier.len(),
            p.tree.version,
            learned.path.display()
        );
        earlier.save(exec, &p.build_dir)?;
    }
    Ok(earlier)
}

/// Runs make under `watch`; after a failure, forgets what the failed
/// objects left.
fn run_make(
    watch: &mut Watch,
    exec: &Exec,
    p: &Prepared,
    cmd: Cmd<'_>,
    start: Instant,
    stages: &mut BTreeMap<Stage, Duration>,
) -> Result<Option<(BuildLog, bool)>> {
    let ran = watch.run(exec, p, cmd, start, stages)?;
    if let Some((log, false)) = &ran {
        forget_failed(exec, &p.build_dir, log)?;
    }
    Ok(ran)
}

/// Removes what a failed compile left of each object that did not build:
/// gcc removes the outputs it was writing, the `.dwo` among them, but an
/// object it never reached the assembler for keeps the last build's `.o`,
/// and its `.cmd` that build's command. Once the object moves back to
/// that command (up the ladder to the level it had, or its rule undone),
/// if_changed finds the old `.o` current and nothing makes its `.dwo`
/// again: the build's objects and split DWARF would disagree. Without the
/// `.o` and its `.cmd`, make must compile it, whatever level it lands at.
fn forget_failed(exec: &Exec, build_dir: &Path, log: &BuildLog) -> Result<()> {
    let objects = log.failures.iter().map(|f| f.object.as_str());
    for object in objects.filter(|o| o.ends_with(".o") && Path::new(o).is_relative()) {
        for path in kbuild::object_outputs(build_dir, object) {
            exec.remove_all(&path)?;
        }
    }
    Ok(())
}

fn first_error(log: &BuildLog) -> String {
    if let Some(f) = log.failures.first() {
        return format!("{}: {}", f.object, f.error);
    }
    log.first_error
        .clone()
        .or_else(|| {
            log.failed_targets
                .first()
                .map(|t| format!("target {t} failed"))
        })
        .unwrap_or_else(|| "make failed".into())
}

/// objtool's and modpost's warnings in a build that went through, one line
/// each, with the object at fault (for vmlinux.o and vmlinux, the objects
/// that define the function named; at most a few such look-ups, each reads
/// every object's symbols).
fn check_warnings(p: &Prepared, log: &BuildLog) -> Result<Vec<String>> {
    const LOOKUPS: usize = 8;
    let vmlinux_objtool = log
        .objtool
        .iter()
        .filter(|m| !m.error && m.object == "vmlinux.o")
        .filter_map(|m| m.function.as_deref());
    let mismatches = log.section_mismatches.iter().map(|m| m.from.as_str());
    // The names to look up, in the order the lines below name them: one
    // walk over the objects for all of them.
    let wanted: Vec<&str> = vmlinux_objtool.chain(mismatches).take(LOOKUPS).collect();
    let defining = linkfix::defining_objects(&p.build_dir, &p.tree.path, &wanted)?;
    let mut lookups = 0;
    let mut definers = |function: &str| -> String {
        lookups += 1;
        match defining.get(function) {
            Some(objects) if lookups <= LOOKUPS && !objects.is_empty() => objects.join(", "),
            _ => "vmlinux".to_string(),
        }
    };
    let mut lines = Vec::new();
    for m in log.objtool.iter().filter(|m| !m.error) {
        let object = match (&m.function, m.object.as_str()) {
            (Some(function), "vmlinux.o") => definers(function),
            _ => m.object.clone(),
        };
        lines.push(format!("objtool: {object}: {}", m.message));
    }
    for m in &log.section_mismatches {
        lines.push(format!(
            "modpost: {}: section mismatch {} ({}) -> {} ({})",
            definers(&m.from),
            m.from,
            m.from_section,
            m.to,
            m.to_section
        ));
    }
    lines.dedup();
    Ok(lines)
}

/// What the full walk will compile, as far as the inputs index tells,
/// or what a first build of its kind compiles.
fn full_walk_plan(ctx: &Ctx, p: &Prepared, req: &BuildRequest, overrides: &str) -> Result<Plan> {
    if explicit_targets(req) {
        return Plan::unindexed(ctx, p, "make's own targets");
    }
    match stale::changes(p, req, overrides) {
        Changes::Nothing(c) | Changes::Objects(c) => Ok(Plan::stale(ctx, p, &c.stale)),
        Changes::Unknown(why) => Plan::unindexed(ctx, p, &why),
    }
}
