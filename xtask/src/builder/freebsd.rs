//! A FreeBSD kernel, built on Linux as FreeBSD's own CI builds it: make.py's
//! `kernel-toolchain` once per tree and compiler, in a cache under
//! `target/freebsd-toolchain/` that every build directory of the tree reuses,
//! then `buildkernel` of the configuration the tool generates, with the
//! kernel's objects under the build directory (`KRNLOBJDIR`). The rules reach
//! the compiler through the make fragment `study.mk` (SRCCONF=); BSD make
//! does not rebuild an object whose flags alone changed, so the objects
//! whose flags differ from the last build's are removed first. An object
//! that does not compile at its level moves up the ladder of
//! study/fallback.toml, recorded, as on Linux. The build directory's top gets
//! `kernel.full` (with DWARF) and `kernel` (what QEMU boots).

use std::{
    collections::BTreeMap,
    io::Write,
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::{bail, Context, Result};

use crate::{
    builder::{
        fallback::{placement, same_error, Recorded, RecordedFallbacks},
        outcome::human,
        BuildRequest,
    },
    ctx::{Ctx, Prepared},
    kernel::freebsd_src::{self as fb, KernelObject},
    study::os::{FreeBsd, OsArch},
    util::{
        exec::Exec,
        fsutil,
        lock::{Access, Wait},
    },
};

/// The passes a build may take: each moves at least one object up.
const MAX_PASSES: usize = 8;

/// One FreeBSD build: the data, and where everything goes.
pub struct Plan<'a> {
    pub p: &'a Prepared,
    pub data: &'a FreeBsd,
    pub arch: &'a OsArch,
    /// The toolchain cache: make.py's MAKEOBJDIRPREFIX.
    pub toolchain: PathBuf,
    /// `KRNLOBJDIR`: config(8) writes the kernel's object directory,
    /// `KERNCONF`, under it.
    pub objdir: PathBuf,
}

impl<'a> Plan<'a> {
    pub fn new(root: &Path, p: &'a Prepared) -> Result<Plan<'a>> {
        let data = p
            .freebsd
            .as_ref()
            .expect("a FreeBSD build is prepared from a FreeBSD tree");
        let arch = data.arch(&p.arch.name)?;
        // Keyed by the tree, its release and the compiler's version: what
        // kernel-toolchain's output depends on. Not in the build directory:
        // every build directory of the tree shares it (three minutes and
        // more, against a buildkernel's one and a half).
        let key = format!(
            "{}-{}-{}-{}",
            fsutil::name_for(&p.tree.path),
            p.tree.version,
            p.compiler,
            p.compiler_version.as_deref().unwrap_or("unknown")
        );
        Ok(Plan {
            p,
            data,
            arch,
            toolchain: root.join("target/freebsd-toolchain").join(key),
            objdir: p.build_dir.join("obj"),
        })
    }

    /// The kernel's object directory: `obj/STUDY`.
    pub fn kernel_objdir(&self) -> PathBuf {
        fb::kernel_objdir(&self.objdir, &self.data.build)
    }

    pub fn kernconf_path(&self) -> PathBuf {
        self.p.build_dir.join(&self.data.build.kernconf)
    }

    pub fn fragment_path(&self) -> PathBuf {
        self.p.build_dir.join("study.mk")
    }

    /// The C objects of the last configuration, from config(8)'s Makefile;
    /// none before the first build.
    pub fn objects(&self) -> Vec<KernelObject> {
        std::fs::read_to_string(self.kernel_objdir().join("Makefile"))
            .map(|t| fb::objects_from_makefile(&t))
            .unwrap_or_default()
    }

    fn stamp(&self) -> String {
        format!(
            "FreeBSD {} in {}\n{} {}\n{}\n",
            self.p.tree.version,
            self.p.tree.path.display(),
            self.p.compiler,
            self.p.compiler_version.as_deref().unwrap_or("unknown"),
            self.toolchain_argv(1).join(" ")
        )
    }

    fn toolchain_argv(&self, jobs: usize) -> Vec<String> {
        let b = &self.data.build;
        fb::make_py(
            &self.p.tree.path,
            b,
            self.arch,
            &b.toolchain_target,
            &b.toolchain_args,
            jobs,
        )
    }

    pub fn kernel_argv(&self, jobs: usize, extra: &[String]) -> Vec<String> {
        let b = &self.data.build;
        let mut args = fb::kernel_args(b, &self.p.build_dir, &self.objdir, &self.fragment_path());
        args.extend(extra.iter().cloned());
        fb::make_py(
            &self.p.tree.path,
            b,
            self.arch,
            &b.kernel_target,
            &args,
            jobs,
        )
    }

    /// The generated kernel configuration.
    pub fn kernconf(&self) -> String {
        fb::kernconf(
            &self.data.build.kernconf,
            &self.data.kernel_config.include,
            &self.data.config_lines(&self.p.profile.name),
        )
    }

    /// The rules fragment, with the objects the ladder moved.
    pub fn fragment(&self, recorded: &RecordedFallbacks) -> Result<String> {
        let objects = placement(self.p, recorded).object_flags();
        fb::rules_fragment(
            &self.p.profile.name,
            &self.data.rules.head,
            &self.p.profile.rules,
            &objects,
        )
    }

    /// Each object's flags as this build asks for them, by file name: the
    /// line `object-flags` records.
    fn flags_now(&self, objects: &[KernelObject], recorded: &RecordedFallbacks) -> String {
        let place = placement(self.p, recorded);
        let mut out = format!(
            "# default {}; {}; {}\n",
            self.p.profile.rules.default.flag(),
            self.data.rules.head.join("; "),
            fb::rule_form()
        );
        for o in objects {
            let (step, _) = place.step_for(&o.object());
            let flags = self
                .p
                .policy
                .step(&step)
                .map_or(format!("-{step}"), |s| s.cflags().join(" "));
            out.push_str(&format!("{} {flags}\n", o.file));
        }
        out
    }
}

/// The rules fragment with the fallbacks the build directory recorded:
/// `config --show-overrides`.
pub fn overrides_text(ctx: &Ctx, p: &Prepared) -> Result<String> {
    let recorded = RecordedFallbacks::load(&p.build_dir)?;
    Plan::new(&ctx.root, p)?.fragment(&recorded)
}

/// `cargo xtask config` of a FreeBSD tree: the kernel configuration and
/// the rules fragment in the build directory (config(8) itself runs in
/// buildkernel's first stage, with the toolchain's config).
pub fn configure(ctx: &Ctx, p: &Prepared) -> Result<()> {
    let plan = Plan::new(&ctx.root, p)?;
    let recorded = RecordedFallbacks::load(&p.build_dir)?;
    ctx.exec.create_dir_all(&p.build_dir)?;
    ctx.exec.write(&plan.kernconf_path(), plan.kernconf())?;
    ctx.exec
        .write(&plan.fragment_path(), plan.fragment(&recorded)?)?;
    eprintln!(
        "config: {} and {} for FreeBSD {}; `cargo xtask build` builds them",
        plan.kernconf_path().display(),
        plan.fragment_path().display(),
        p.tree.version
    );
    Ok(())
}

/// `cargo xtask build` of a FreeBSD tree.
pub fn build(ctx: &Ctx, p: &Prepared, request: &BuildRequest) -> Result<()> {
    let plan = Plan::new(&ctx.root, p)?;
    let exec = &ctx.exec;
    ensure_toolchain(exec, &plan, request.jobs, ctx.wait)?;
    exec.create_dir_all(&p.build_dir)?;
    exec.write(&plan.kernconf_path(), plan.kernconf())?;
    let mut recorded = RecordedFallbacks::load(&p.build_dir)?;
    let mut moved = Vec::new();
    let log_path = p.state().build_log();
    let start = Instant::now();
    for pass in 1..=MAX_PASSES {
        exec.write(&plan.fragment_path(), plan.fragment(&recorded)?)?;
        remove_stale(exec, &plan, &recorded)?;
        let argv = plan.kernel_argv(request.jobs, &request.make_args);
        // None: a dry run, which only printed the command.
        let Some((ok, log)) = run_make_py(exec, &plan, &argv, &log_path)? else {
            return Ok(());
        };
        if ok {
            break;
        }
        let failed = fb::failed_objects(&log);
        if !request.fallback || failed.is_empty() || pass == MAX_PASSES {
            bail!(
                "buildkernel failed{}; see {}",
                if failed.is_empty() {
                    String::new()
                } else {
                    format!(" on {}", failed.join(" "))
                },
                log_path.display()
            );
        }
        let objects = plan.objects();
        for file in failed {
            let Some(o) = objects.iter().find(|o| o.file == file) else {
                bail!(
                    "{file} failed, and config(8)'s Makefile does not name it; see {}",
                    log_path.display()
                );
            };
            let object = o.object();
            let place = placement(p, &recorded);
            let (current, _) = place.step_for(&object);
            let rule = place.rule_level(&object);
            let error = fb::error_for(&log, &o.source);
            let next = p.policy.next_step(&current, &error);
            let same_again = recorded
                .get(&object, &rule)
                .is_some_and(|r| same_error(&r.reason, &error));
            if next.is_none() || same_again {
                // Not the level (a typo, say): its moves undone, so that once
                // it is fixed it builds at its rule's level again.
                recorded.object.remove(&object);
                recorded.save(exec, &p.build_dir)?;
            }
            let Some((next, class)) = next else {
                bail!(
                    "{} fails even at -{current}, so it is not the optimization level: {error}; see {}",
                    o.source,
                    log_path.display()
                );
            };
            if same_again {
                bail!(
                    "{} fails again with the same error one step up: {error}; see {}",
                    o.source,
                    log_path.display()
                );
            }
            let reason = class.map_or(error.clone(), |c| format!("{c}: {error}"));
            eprintln!(
                "fallback: {} -{current} → -{}: {reason}",
                o.source, next.name
            );
            let entry = Recorded {
                from: current,
                to: next.name.clone(),
                reason,
            };
            recorded.insert(&object, &rule, entry.clone());
            moved.push((object, entry));
        }
        recorded.save(exec, &p.build_dir)?;
    }
    let took = start.elapsed();
    link_images(exec, &plan)?;
    let objects = plan.objects();
    exec.write(
        &p.state().object_flags(),
        plan.flags_now(&objects, &recorded),
    )?;
    exec.write(
        &p.state().built_from(),
        format!("FreeBSD {} {}\n", p.tree.version, p.tree.path.display()),
    )?;
    let place = placement(p, &recorded);
    let mut levels: BTreeMap<String, usize> = BTreeMap::new();
    for o in &objects {
        *levels.entry(place.step_for(&o.object()).0).or_default() += 1;
    }
    let counts: Vec<String> = levels.iter().map(|(l, n)| format!("{n} at {l}")).collect();
    println!(
        "FreeBSD {} kernel `{}` built in {}: {} C objects, {}; {} moved up the ladder in this build",
        p.tree.version,
        plan.data.build.kernconf,
        human(took),
        objects.len(),
        counts.join(", "),
        moved.len()
    );
    for name in &plan.data.build.images {
        println!("{name}: {}", p.build_dir.join(name).display());
    }
    Ok(())
}

/// kernel-toolchain into the cache, unless the cache's stamp says it was
/// built there from this tree with this compiler. Under a lock of its own:
/// two build directories of one tree share it.
pub fn ensure_toolchain(exec: &Exec, plan: &Plan, jobs: usize, wait: Wait) -> Result<()> {
    let dir = &plan.toolchain;
    let sibling = |ext: &str| {
        let mut name = dir.file_name().unwrap_or_default().to_os_string();
        name.push(ext);
        dir.with_file_name(name)
    };
    let lock_path = sibling(".lock");
    if let Some(parent) = lock_path.parent() {
        exec.create_dir_all(parent)?;
    }
    let what = format!("FreeBSD toolchain {}", dir.display());
    let _lock = exec.lock(&lock_path, &what, Access::Exclusive, wait)?;
    let stamp_path = dir.join(".study-toolchain");
    let stamp = plan.stamp();
    if std::fs::read_to_string(&stamp_path).is_ok_and(|s| s == stamp) {
        return Ok(());
    }
    exec.create_dir_all(dir)?;
    let start = Instant::now();
    let log = sibling(".log");
    let Some((ok, _)) = run_make_py(exec, plan, &plan.toolchain_argv(jobs), &log)? else {
        return Ok(());
    };
    if !ok {
        bail!(
            "{} failed; see {}",
            plan.data.build.toolchain_target,
            log.display()
        );
    }
    exec.write(&stamp_path, stamp)?;
    eprintln!(
        "{}: built in {}, in {} (every build directory of this tree reuses it)",
        plan.data.build.toolchain_target,
        human(start.elapsed()),
        dir.display()
    );
    Ok(())
}

/// make.py with the cache as MAKEOBJDIRPREFIX, its output in `log` and its
/// stage lines (`>>> ...`) and errors on the terminal. Returns whether it
/// succeeded, and the log's text; a dry run, which starts nothing, `None`.
fn run_make_py(
    exec: &Exec,
    plan: &Plan,
    argv: &[String],
    log: &Path,
) -> Result<Option<(bool, String)>> {
    if let Some(parent) = log.parent() {
        exec.create_dir_all(parent)?;
    }
    let cmd = exec
        .sh()
        .cmd("python3")
        .args(argv)
        .envs(&plan.data.build.env)
        .env("MAKEOBJDIRPREFIX", &plan.toolchain);
    let mut sink = exec.create(log)?;
    let mut text = String::new();
    let status = exec.stream(cmd, |line| {
        let _ = writeln!(sink, "{line}");
        text.push_str(line);
        text.push('\n');
        if line.starts_with(">>>") || line.contains(" error: ") || line.starts_with("***") {
            eprintln!("{line}");
        }
    })?;
    Ok(status.map(|s| (s.success(), text)))
}

/// Removes the objects whose flags differ from those the last build
/// recorded (all of them when the fixed lines changed), and records the
/// flags this build asks for: BSD make rebuilds an object when a source or
/// header changes, never when its flags do.
fn remove_stale(exec: &Exec, plan: &Plan, recorded: &RecordedFallbacks) -> Result<()> {
    let objects = plan.objects();
    if objects.is_empty() {
        return Ok(());
    }
    let state = plan.p.state().object_flags();
    let now = plan.flags_now(&objects, recorded);
    let before = std::fs::read_to_string(&state).unwrap_or_default();
    if before == now {
        return Ok(());
    }
    let head = |t: &str| t.lines().next().map(String::from);
    let all = head(&before) != head(&now);
    let old: BTreeMap<&str, &str> = before
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(' '))
        .collect();
    let kobj = plan.kernel_objdir();
    let mut removed = 0;
    for line in now.lines().skip(1) {
        let Some((file, flags)) = line.split_once(' ') else {
            continue;
        };
        let path = kobj.join(file);
        if path.exists() && (all || old.get(file) != Some(&flags)) {
            exec.remove_all(&path)?;
            removed += 1;
        }
    }
    if removed > 0 {
        eprintln!("build: {removed} object(s) whose flags changed removed, so that make builds them again");
    }
    exec.write(&state, now)?;
    Ok(())
}

/// `kernel.full` and `kernel` at the build directory's top, as links into
/// the kernel's object directory.
fn link_images(exec: &Exec, plan: &Plan) -> Result<()> {
    let rel = plan
        .kernel_objdir()
        .strip_prefix(&plan.p.build_dir)
        .map(Path::to_path_buf)
        .context("the kernel's objects are under the build directory")?;
    for name in &plan.data.build.images {
        let link = plan.p.build_dir.join(name);
        let target = rel.join(name);
        if std::fs::read_link(&link).is_ok_and(|t| t == target) {
            continue;
        }
        exec.remove_all(&link)?;
        exec.symlink(&target, &link)?;
    }
    Ok(())
}
