//! The build passes: Kbuild with the profile's optimization rules, the
//! automatic fallback for objects that do not build at their level, the
//! link-time check for symbols that only another config option provides,
//! a compiler cache that actually hits, and a one-line progress display.

use std::{
    collections::{BTreeMap, HashSet},
    io::{IsTerminal, Write},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{bail, Result};

use xshell::{Cmd, Shell};

use crate::{
    builder::{
        ccache::{CacheMode, CacheSetup, CacheStats},
        configure,
        distcc::{self, DistccStats, Farm},
        fallback::{self, placement, source_of, Learned, Recorded, RecordedFallbacks},
    },
    ctx::{BuildLock, Ctx, Prepared, StateDir},
    kernel::{
        buildlog::{stage_of, BuildLog, FailedBy, Stage},
        kbuild,
        linkfix::{self, Provider},
    },
    study::{host_tools, opt_rules::Level, toolchain::Family},
    util::fsutil,
};

/// Enough passes for O0 → O0-nocheck → Og → Og-nocheck → O2 plus link fixes.
const MAX_PASSES: usize = 8;

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
        }
    }
}

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

/// Whether the make arguments name targets, which replace the image's.
fn explicit_targets(req: &BuildRequest) -> bool {
    req.make_args
        .iter()
        .any(|a| !a.starts_with('-') && !a.contains('='))
}

/// Touched by every successful build of the image.
fn built_stamp(p: &Prepared) -> PathBuf {
    p.state().built()
}

pub struct BuildOutcome {
    pub elapsed: Duration,
    /// When each stage of the last pass began, from the build's start.
    pub stages: BTreeMap<Stage, Duration>,
    pub compiled: usize,
    pub warnings: usize,
    pub passes: usize,
    pub new_fallbacks: Vec<(String, Recorded)>,
    /// What objtool and modpost warned about in the last pass, one line
    /// each, by object.
    pub checks: Vec<String>,
    pub cache: Option<CacheStats>,
    pub distcc: Option<DistccStats>,
    pub build_dir: PathBuf,
    pub image: PathBuf,
}

impl BuildOutcome {
    pub fn print(&self, p: &Prepared) {
        let secs = self.elapsed.as_secs_f64();
        println!(
            "built profile {} in {}: {} objects compiled, {} warnings, {} pass(es)",
            p.profile.name,
            human(self.elapsed),
            self.compiled,
            self.warnings,
            self.passes
        );
        if !self.new_fallbacks.is_empty() {
            println!("{} files fell back:", self.new_fallbacks.len());
            for (object, r) in &self.new_fallbacks {
                println!("  {} {}→{} ({})", source_of(object), r.from, r.to, r.reason);
            }
        }
        if !self.checks.is_empty() {
            println!(
                "{} warning(s) from objtool and modpost, which did not stop the build:",
                self.checks.len()
            );
            for line in &self.checks {
                println!("  {line}");
            }
        }
        if let Some(stats) = &self.cache {
            println!("{stats}");
        }
        if let Some(stats) = &self.distcc {
            println!("{stats}");
        }
        println!("vmlinux:    {}", self.build_dir.join("vmlinux").display());
        println!("boot image: {}", self.image.display());
        let _ = secs;
    }
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// Configures when needed, then builds, falling back per object as the
/// policy says, until the image links or nothing more can be done.
pub fn build(ctx: &Ctx, p: &Prepared, req: &BuildRequest) -> Result<BuildOutcome> {
    let exec = &ctx.exec;
    if configure::needs_config(p) {
        configure::configure(ctx, p, false)?;
    }
    host_tools::require_for(&ctx.study_dir(), "build", &p.arch.name, p.compiler)?;
    if p.compiler.family == Family::Clang {
        host_tools::require_for(&ctx.study_dir(), "clang", &p.arch.name, p.compiler)?;
    }
    let cache = CacheSetup::new(req.cache)?;
    let cache_before = cache.as_ref().map(|c| c.stats(exec)).transpose()?;
    if req.distcc.is_some() {
        host_tools::require(&ctx.study_dir(), "distcc", &p.arch.name)?;
        if !exec.dry_run {
            fsutil::write_if_changed(&distcc_log(p), b"")?;
        }
    }

    let mut recorded = RecordedFallbacks::load(&p.build_dir)?;
    if let Some(note) = fallback::unmeasured_note(p) {
        eprintln!("{note}");
    }
    let learned = Learned::new(&ctx.root, p);
    if !exec.dry_run && !RecordedFallbacks::path(&p.build_dir).exists() {
        let earlier = learned.load()?;
        if earlier.len() > 0 {
            eprintln!(
                "starting from {} fallback(s) that earlier builds of Linux {} learned ({})",
                earlier.len(),
                p.tree.version,
                learned.path.display()
            );
            recorded = earlier;
            recorded.save(&p.build_dir)?;
        }
    }
    let mut new_fallbacks = Vec::new();
    let mut retried = HashSet::new();
    let start = Instant::now();
    let (mut compiled, mut warnings) = (0, 0);
    let mut passes = 0;
    let checks;
    let mut stages = BTreeMap::new();
    let expected = expected_objects(&p.build_dir);
    loop {
        passes += 1;
        exec.write(
            &kbuild::overrides_path(&p.build_dir),
            &fallback::overrides_text_with(p, &recorded),
        )?;
        let cmd = make_command(exec.sh(), p, req, cache.as_ref());
        stages.clear();
        let log = run_make(ctx, p, cmd, expected, start, &mut stages)?;
        compiled += log.0.compiled;
        warnings += log.0.warnings;
        let (log, success) = log;
        if success || exec.dry_run {
            checks = check_warnings(p, &log)?;
            break;
        }
        if !req.fallback {
            bail!(
                "build failed: {}; see {}",
                first_error(&log),
                log_path(p).display()
            );
        }
        let moved =
            fall_back_compile_failures(p, &log, &mut recorded, &mut new_fallbacks, &mut retried)?;
        let moved =
            moved || fall_back_link_failures(p, req, &log, &mut recorded, &mut new_fallbacks)?;
        let moved =
            moved || fall_back_post_link_checks(p, req, &log, &mut recorded, &mut new_fallbacks)?;
        if !moved {
            bail!(
                "build failed: {}; see {}",
                first_error(&log),
                log_path(p).display()
            );
        }
        fsutil::write_if_changed(
            &RecordedFallbacks::path(&p.build_dir),
            recorded.to_toml().as_bytes(),
        )?;
        if passes == MAX_PASSES {
            bail!(
                "still failing after {MAX_PASSES} passes: {}; see {}",
                first_error(&log),
                log_path(p).display()
            );
        }
        eprintln!(
            "pass {passes}: {} object(s) moved up so far; building again",
            new_fallbacks.len()
        );
    }
    if !exec.dry_run {
        record_expected(&p.build_dir)?;
        learned.add(&recorded)?;
    }
    if !exec.dry_run && !explicit_targets(req) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        fsutil::write_if_changed(&built_stamp(p), format!("{}\n", now.as_nanos()).as_bytes())?;
    }
    let distcc = match &req.distcc {
        Some(_) if !exec.dry_run => Some(DistccStats::parse(
            &std::fs::read_to_string(distcc_log(p)).unwrap_or_default(),
        )),
        _ => None,
    };
    let cache_stats = match (&cache, cache_before) {
        (Some(c), Some(before)) => Some(c.stats(exec)?.since(&before)),
        _ => None,
    };
    Ok(BuildOutcome {
        elapsed: start.elapsed(),
        stages,
        compiled,
        warnings,
        passes,
        new_fallbacks,
        checks,
        cache: cache_stats,
        distcc,
        build_dir: p.build_dir.clone(),
        image: p.image(),
    })
}

pub fn make_command<'a>(
    sh: &'a Shell,
    p: &Prepared,
    req: &BuildRequest,
    cache: Option<&CacheSetup>,
) -> Cmd<'a> {
    let mut env = vec![
        // Fixed so that a second identical build is byte-identical and hits the cache.
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
        let d = distcc::setup(farm, cache.is_some(), p.compiler, &distcc_log(p));
        env.extend(d.env);
        cc = d.cc;
    }
    let mut extra = p.make_vars();
    if req.fallback {
        // Each object's diagnostics in one block, so errors are attributable.
        extra.push("--output-sync=target".to_string());
    }
    extra.extend(req.make_args.iter().cloned());
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
    // The edit loop skips what the next boot does not need.
    if !(req.quick && p.boots_vmlinux()) {
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

fn distcc_log(p: &Prepared) -> PathBuf {
    p.state().distcc_log()
}

fn log_path(p: &Prepared) -> PathBuf {
    p.state().build_log()
}

/// Runs make, showing one progress line on a terminal (plain output with
/// `-v` or when not a terminal), and keeps the whole output in build.log.
fn run_make(
    ctx: &Ctx,
    p: &Prepared,
    cmd: Cmd<'_>,
    expected: Option<usize>,
    start: Instant,
    stages: &mut BTreeMap<Stage, Duration>,
) -> Result<(BuildLog, bool)> {
    let tree_prefix = format!("{}/", p.tree.path.display());
    let mut log = BuildLog::new(vec![tree_prefix]);
    let progress = std::io::stderr().is_terminal() && !ctx.exec.verbose;
    if !ctx.exec.dry_run {
        std::fs::create_dir_all(p.state().path())?;
    }
    let mut file = if ctx.exec.dry_run {
        None
    } else {
        Some(std::fs::File::create(log_path(p))?)
    };
    let status = ctx.exec.stream(cmd, |line| {
        if let Some(f) = file.as_mut() {
            let _ = writeln!(f, "{line}");
        }
        log.line(line);
        if let Some(stage) = stage_of(line) {
            stages.entry(stage).or_insert_with(|| start.elapsed());
        }
        if progress {
            let total = expected.map_or(String::new(), |e| format!("/{e}"));
            let current = log.last_compiled.as_deref().unwrap_or("");
            eprint!(
                "\r\x1b[K[{}{total}] {} {current}",
                log.compiled,
                human(start.elapsed())
            );
        } else {
            println!("{line}");
        }
    })?;
    if progress {
        eprintln!();
    }
    Ok((log, status.success()))
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

/// Moves each object that did not compile one step up (or to the step its
/// failure class names). Returns whether any moved.
fn fall_back_compile_failures(
    p: &Prepared,
    log: &BuildLog,
    recorded: &mut RecordedFallbacks,
    moved: &mut Vec<(String, Recorded)>,
    retried: &mut HashSet<String>,
) -> Result<bool> {
    let mut any = false;
    let mut not_the_level = Vec::new();
    for failure in &log.failures {
        let (current, _) = placement(p, recorded).step_for(&failure.object);
        let rule = placement(p, recorded).rule_level(&failure.object);
        let source = source_of(&failure.object);
        match &failure.by {
            // fixdep or objtool that could not open a file, the compiler
            // killed: another make in this directory, or a killed one, leaves
            // such files half-made. No level fixes that, so nothing moves:
            // once more as it is, then stop.
            FailedBy::Tool(tool) => {
                if retried.insert(failure.object.clone()) {
                    eprintln!(
                        "{}: {tool} failed, and not on the code; building it once more at -{current}: {}",
                        failure.object, failure.error
                    );
                    any = true;
                } else {
                    not_the_level.push(format!(
                        "{}: {tool} failed, and not on the code: {}",
                        failure.object, failure.error
                    ));
                }
                continue;
            }
            // objtool on the object the compiler made: code the level shaped
            // (at -O0, an out-of-line helper called with UACCESS enabled, say);
            // extra flags at the same level do not change it.
            FailedBy::Objtool => {
                let Some(next) = next_higher_level(p, &current) else {
                    bail!(
                        "objtool: {}: {}; fix: a rule that builds {source} at another level; see {}",
                        failure.object,
                        failure.error,
                        log_path(p).display()
                    );
                };
                let entry = Recorded {
                    from: current,
                    to: next,
                    reason: failure.error.clone(),
                };
                recorded.insert(&failure.object, &rule, entry.clone());
                moved.push((failure.object.clone(), entry));
                any = true;
                continue;
            }
            FailedBy::Compiler => {}
        }
        // The same error one rung up, or at the top: not an optimization
        // problem (a typo, say). Undo this object's moves so that, once it is
        // fixed, it builds at its rule's level again.
        let same_again = recorded
            .get(&failure.object, &rule)
            .filter(|r| same_error(&r.reason, &failure.error))
            .map(|r| r.from.clone());
        let next = p.policy.next_step(&current, &failure.block);
        if same_again.is_some() || next.is_none() {
            recorded.object.remove(&failure.object);
            recorded.save(&p.build_dir)?;
            let levels = match same_again {
                Some(before) => format!("at -{before} and at -{current}"),
                None => format!("even at -{current}"),
            };
            bail!(
                "{source} fails {levels}, so it is not the optimization level: {}; see {}",
                failure.error,
                log_path(p).display()
            );
        }
        let (next, class) = next.expect("checked above");
        // An error no failure class explains may not be the level at all (a
        // generated header a killed build left half-made): build the object
        // once more where it is before recording a move for good.
        if class.is_none() && retried.insert(failure.object.clone()) {
            eprintln!(
                "{source}: an error no failure class explains; building it once more at -{current}: {}",
                failure.error
            );
            any = true;
            continue;
        }
        let reason = match class {
            Some(class) => format!("{class}: {}", failure.error),
            None => failure.error.clone(),
        };
        let entry = Recorded {
            from: current,
            to: next.name.clone(),
            reason,
        };
        recorded.insert(&failure.object, &rule, entry.clone());
        moved.push((failure.object.clone(), entry));
        any = true;
    }
    if let Some(first) = not_the_level.first() {
        for line in &not_the_level[1..] {
            eprintln!("{line}");
        }
        recorded.save(&p.build_dir)?;
        bail!(
            "{first} (twice): no optimization level fixes that, so nothing moved; \
             is another make running in {}? see {}",
            p.build_dir.display(),
            log_path(p).display()
        );
    }
    Ok(any)
}

/// Whether a recorded reason carries `error`, line and column numbers aside.
fn same_error(reason: &str, error: &str) -> bool {
    let digitless = |s: &str| {
        s.chars()
            .filter(|c| !c.is_ascii_digit())
            .collect::<String>()
    };
    digitless(reason).ends_with(&digitless(error))
}

/// For each undefined symbol: the objects that reference it, and the option
/// that would define it. Objects under an -O0 rule (or all, with
/// `--suggest-config`) stop the build with the one-line fix; others move to
/// the next step with a higher level.
fn fall_back_link_failures(
    p: &Prepared,
    req: &BuildRequest,
    log: &BuildLog,
    recorded: &mut RecordedFallbacks,
    moved: &mut Vec<(String, Recorded)>,
) -> Result<bool> {
    if log.undefined.is_empty() {
        return Ok(false);
    }
    let config = p.config()?;
    let mut fixes = Vec::new();
    let mut any = false;
    let mut moved_now = HashSet::new();
    let symbols: Vec<&str> = log.undefined.iter().map(|u| u.symbol.as_str()).collect();
    let referencing = linkfix::referencing_objects(&p.build_dir, &symbols)?;
    for undefined in &log.undefined {
        let objects = &referencing[&undefined.symbol];
        let provider =
            linkfix::find_provider(&p.tree.path, &p.arch.src_arch, &undefined.symbol, &config);
        for object in objects {
            let source = source_of(object);
            let (current, _) = placement(p, recorded).step_for(object);
            let at_o0 = p.profile.rules.level_for(&source) == Level::O0;
            if let Some(Provider {
                option: Some(option),
                gated_at: Some(at),
                ..
            }) = &provider
            {
                if at_o0 || req.suggest_config {
                    let line = format!(
                        "{source} at -{current} calls {}, built only with CONFIG_{option}=y ({at}): \
                         add {option} = true to the profile, or accept {} at -Og",
                        undefined.symbol,
                        file_name(&source),
                    );
                    fixes.push((line, option.clone()));
                    continue;
                }
            }
            // One object, several undefined symbols (__start_BTF and
            // __stop_BTF): one move per link, not one per symbol; every
            // fix line above is still said.
            if !moved_now.insert(object.clone()) {
                continue;
            }
            let Some(next) = next_higher_level(p, &current) else {
                bail!(
                    "{object} references undefined {} even at {current}",
                    undefined.symbol
                );
            };
            let rule = placement(p, recorded).rule_level(object);
            let entry = Recorded {
                from: current,
                to: next,
                reason: format!("link: undefined {}", undefined.symbol),
            };
            recorded.insert(object, &rule, entry.clone());
            moved.push((object.clone(), entry));
            any = true;
        }
        if objects.is_empty() {
            bail!(
                "undefined {} at link time, and no object references it; see {}",
                undefined.symbol,
                log_path(p).display()
            );
        }
    }
    if !fixes.is_empty() {
        fixes.sort();
        fixes.dedup();
        for (fix, _) in &fixes {
            eprintln!("{fix}");
        }
        let mut options: Vec<&str> = fixes.iter().map(|(_, o)| o.as_str()).collect();
        options.sort();
        options.dedup();
        bail!(
            "the link needs {} for objects at -O0 (see above): add {} to the profile, or rerun without --suggest-config to move non-O0 objects up",
            options.iter().map(|o| format!("CONFIG_{o}")).collect::<Vec<_>>().join(", "),
            options.iter().map(|o| format!("{o} = true")).collect::<Vec<_>>().join(", ")
        );
    }
    Ok(any)
}

/// The checks Kbuild runs on vmlinux.o, when they fail the build: modpost's
/// section mismatches and objtool's errors, each mapped back to the objects
/// that define the function it names. An object under an -O0 rule (or any,
/// with `--suggest-config`) stops the build with a one-line fix, as it would
/// lose the level its rule promises; others move to the next step with a
/// higher level (at -O0 and -Og a `static inline` helper stays out of line,
/// in .text, calling the `__init` function it wraps).
fn fall_back_post_link_checks(
    p: &Prepared,
    req: &BuildRequest,
    log: &BuildLog,
    recorded: &mut RecordedFallbacks,
    moved: &mut Vec<(String, Recorded)>,
) -> Result<bool> {
    let objtool_errors: Vec<_> = log
        .objtool
        .iter()
        .filter(|m| m.error && m.object == "vmlinux.o")
        .collect();
    if log.modpost_errors.is_empty() && objtool_errors.is_empty() {
        return Ok(false);
    }
    if !log.modpost_errors.is_empty() && log.section_mismatches.is_empty() {
        bail!(
            "modpost: {}; see {}",
            log.modpost_errors[0],
            log_path(p).display()
        );
    }
    // (check, function, what it found, the fix the user can make)
    let mut faults = Vec::new();
    let mut seen = HashSet::new();
    for m in &log.section_mismatches {
        if seen.insert(("modpost", m.from.clone())) {
            faults.push((
                "modpost",
                m.from.clone(),
                format!(
                    "section mismatch {} ({}) -> {} ({})",
                    m.from, m.from_section, m.to, m.to_section
                ),
                "add SECTION_MISMATCH_WARN_ONLY = true to the profile",
            ));
        }
    }
    for m in &objtool_errors {
        let Some(function) = &m.function else {
            bail!(
                "objtool: vmlinux.o: {}; see {}",
                m.message,
                log_path(p).display()
            );
        };
        if seen.insert(("objtool", function.clone())) {
            faults.push((
                "objtool",
                function.clone(),
                m.message.clone(),
                "a rule that builds it at another level",
            ));
        }
    }
    let mut fixes = Vec::new();
    let mut any = false;
    let functions: Vec<&str> = faults.iter().map(|(_, f, _, _)| f.as_str()).collect();
    let defining = linkfix::defining_objects(&p.build_dir, &p.tree.path, &functions)?;
    for (check, function, what, fix) in &faults {
        let objects = &defining[function];
        if objects.is_empty() {
            fixes.push(format!(
                "{check}: vmlinux: {what} (no compiled object defines {function}); fix: {fix}"
            ));
        }
        for object in objects {
            let source = source_of(object);
            let (current, _) = placement(p, recorded).step_for(object);
            let at_o0 = p.profile.rules.level_for(&source) == Level::O0;
            let next = next_higher_level(p, &current);
            match next {
                Some(next) if !(at_o0 || req.suggest_config) => {
                    let rule = placement(p, recorded).rule_level(object);
                    let entry = Recorded {
                        from: current,
                        to: next,
                        reason: format!("{check}: {what}"),
                    };
                    recorded.insert(object, &rule, entry.clone());
                    moved.push((object.clone(), entry));
                    any = true;
                }
                Some(_) => fixes.push(format!(
                    "{check}: {object} at -{current}: {what}; fix: {fix}, or accept {} at -Og",
                    file_name(&source)
                )),
                None => fixes.push(format!(
                    "{check}: {object} at -{current}: {what}; fix: {fix}"
                )),
            }
        }
    }
    if !fixes.is_empty() {
        fixes.sort();
        fixes.dedup();
        for fix in &fixes {
            eprintln!("{fix}");
        }
        bail!(
            "the checks after the link stopped the build for {} object(s) the tool leaves at their level (see above); see {}",
            fixes.len(),
            log_path(p).display()
        );
    }
    Ok(any)
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

/// The file name of a tree-relative source, for "accept X at -Og".
fn file_name(source: &str) -> String {
    Path::new(source)
        .file_name()
        .map_or(source.to_string(), |n| n.to_string_lossy().into_owned())
}

/// A link failure is not fixed by extra flags at the same level: skip to the
/// next rung with a different -O level.
fn next_higher_level(p: &Prepared, current: &str) -> Option<String> {
    let level = p.policy.step(current)?.level;
    let position = p.policy.ladder.iter().position(|s| s.name == current)?;
    p.policy.ladder[position + 1..]
        .iter()
        .find(|s| s.level != level)
        .map(|s| s.name.clone())
}

fn expected_objects(build_dir: &Path) -> Option<usize> {
    std::fs::read_to_string(StateDir::of(build_dir).objects())
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Counts the objects Kbuild knows (their .cmd files), for the next
/// build's progress line.
fn record_expected(build_dir: &Path) -> Result<()> {
    let count = walkdir::WalkDir::new(build_dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name().to_string_lossy().ends_with(".o.cmd")
                && !e.path().starts_with(StateDir::of(build_dir).path())
        })
        .count();
    fsutil::write_if_changed(
        &StateDir::of(build_dir).objects(),
        format!("{count}\n").as_bytes(),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_error_ignores_numbers_and_the_class() {
        let reason = "minmax-signedness: net/ipv4/tcp.c:12:3: error: call to '__compiletime_assert_490' failed";
        assert!(same_error(
            reason,
            "net/ipv4/tcp.c:14:3: error: call to '__compiletime_assert_512' failed"
        ));
        assert!(!same_error(
            reason,
            "net/ipv4/tcp.c:14:3: error: expected ';' before 'return'"
        ));
    }
}
