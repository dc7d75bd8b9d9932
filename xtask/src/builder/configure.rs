//! Configuring a build directory: the profile's fragment in the kernel tree, the
//! `.config` of an out-of-tree build directory (base target, in-tree
//! fragments, the study fragment, olddefconfig), the optimization overrides,
//! and the proof that every requested option landed.
//!
//! Kconfig runs in a scratch directory (`DIR/.study/kconfig`); the result is
//! checked there and copied into `DIR/.config` only when every requested
//! option landed and it differs, so a failed or repeated run leaves the build
//! directory as it was (a failed result stays in the scratch directory). A copy of the last inputs and of the
//! `.config` written decide, as kunit.py does, whether anything must run.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::{
    builder::fallback,
    ctx::{Ctx, Prepared},
    kernel::{
        kbuild,
        kconfig::{self, Kconfig, SymbolIndex},
    },
    study::host_tools,
    util::{exec::Exec, fsutil, lock::Access},
};

/// The inputs that decide `.config`; a change means Kconfig must run again.
fn snapshot(p: &Prepared, fragment: &str) -> String {
    format!(
        "kernel = {} (Linux {})\narch = {}\ncc = {}\nbase = {}\nfragments = {}\nfragment = {}\n\n{fragment}",
        p.tree.path.display(),
        p.tree.version,
        p.arch.make_arch,
        p.compiler,
        p.profile.base,
        p.profile.fragments.join(" "),
        p.profile.fragment,
    )
}

/// Whether `build` must run `config` first: no `.config`, or the profile
/// changed since the last `config`.
pub fn needs_config(p: &Prepared) -> bool {
    !p.build_dir.join(".config").is_file()
        || profile_changed(p, &snapshot(p, &kconfig::fragment_text(&p.profile)))
}

/// Whether the inputs differ from those the last successful `config` recorded.
fn profile_changed(p: &Prepared, snapshot: &str) -> bool {
    std::fs::read_to_string(snapshot_path(p)).ok().as_deref() != Some(snapshot)
}

fn snapshot_path(p: &Prepared) -> PathBuf {
    p.state().profile_snapshot()
}

pub fn configure(ctx: &Ctx, p: &Prepared, force: bool) -> Result<()> {
    let exec = &ctx.exec;
    host_tools::require_for(&ctx.study_dir(), "config", &p.arch.name, p.compiler)?;
    for group in p.toolchain_groups() {
        host_tools::require_for(&ctx.study_dir(), group, &p.arch.name, p.compiler)?;
    }
    // Walking every Kconfig file takes a moment: only when the answer is needed.
    let index = std::cell::OnceCell::new();
    let index = || index.get_or_init(|| SymbolIndex::scan(&p.tree.path));

    let fragment = kconfig::fragment_text(&p.profile);
    let fragment_path = p.tree.path.join("kernel/configs").join(&p.profile.fragment);
    guard_fragment(&fragment_path)?;

    let snapshot_path = snapshot_path(p);
    let last_config_path = p.state().config_last();
    let config_path = p.build_dir.join(".config");
    let snapshot = snapshot(p, &fragment);

    let current_config = std::fs::read(&config_path).ok();
    let last_config = std::fs::read(&last_config_path).ok();
    // No copy of what we wrote means we never finished writing: not a hand edit.
    let hand_edited =
        current_config.is_some() && last_config.is_some() && current_config != last_config;
    let profile_changed = profile_changed(p, &snapshot);

    if profile_changed || force {
        check_profile(p, index())?;
    }

    // The fragment is the tree's, one per profile, and its text depends on
    // the compiler and architecture (cc-options, arch-options): two build
    // directories configuring the same profile at once would merge each
    // other's. Held until Kconfig has read it; the lock lives under target/,
    // since a rerun must leave the tree untouched.
    let lock = ctx
        .root
        .join("target/locks")
        .join(format!("{}.lock", fsutil::name_for(&fragment_path)));
    let what = fragment_path.display().to_string();
    let _fragment_lock = exec.lock(&lock, &what, Access::Exclusive, ctx.wait)?;
    exec.write(&fragment_path, &fragment)?;
    let action = match (profile_changed, hand_edited, force) {
        (_, _, true) | (true, false, false) => Action::FromBase,
        (false, false, false) => Action::UpToDate,
        (false, true, false) => Action::KeepHandEdits,
        (true, true, false) => Action::MergeOntoHandEdits,
    };
    match action {
        Action::UpToDate => eprintln!("{}: .config is up to date", p.build_dir.display()),
        Action::KeepHandEdits => eprintln!(
            "{}: .config was edited by hand since the last `config`; keeping it (--force regenerates it)",
            config_path.display()
        ),
        Action::MergeOntoHandEdits => eprintln!(
            "{}: .config was edited by hand; merging the changed profile onto it (--force starts from {})",
            config_path.display(),
            p.profile.base
        ),
        Action::FromBase => {}
    }
    let ran_kconfig = matches!(action, Action::FromBase | Action::MergeOntoHandEdits);
    if ran_kconfig {
        let scratch = run_kconfig(ctx, p, action)?;
        let what = || {
            format!(
                "copy {} to {} if it differs and holds every requested option",
                scratch.display(),
                config_path.display()
            )
        };
        exec.effect(what, || {
            // Checked where Kconfig wrote it: a result that lacks an option
            // never replaces the build directory's .config.
            verify(p, index, &scratch).map_err(|e| {
                anyhow::anyhow!(
                    "{e:#}; {} is unchanged, the result is in {} for inspection",
                    config_path.display(),
                    scratch.display()
                )
            })?;
            install_config(exec, &scratch, &config_path)?;
            exec.copy(&config_path, &last_config_path)?;
            say_landed(p, &config_path);
            Ok(())
        })?;
    } else {
        let what = || {
            format!(
                "check that {} holds every requested option",
                config_path.display()
            )
        };
        exec.effect(what, || {
            verify(p, index, &config_path)?;
            say_landed(p, &config_path);
            Ok(())
        })?;
    }
    exec.write(
        &kbuild::overrides_path(&p.build_dir),
        &fallback::overrides_text(p)?,
    )?;
    // Only a .config that holds every requested option counts as done:
    // until then `build` runs `config` again, and fails the same way.
    if ran_kconfig {
        exec.write(&snapshot_path, &snapshot)?;
    }
    Ok(())
}

/// Copies a checked scratch `.config` into the build directory when it
/// differs, and says which.
fn install_config(exec: &Exec, scratch: &Path, config_path: &Path) -> Result<()> {
    if exec.copy(scratch, config_path)? {
        eprintln!("wrote {}", config_path.display());
    } else {
        eprintln!("{}: unchanged", config_path.display());
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Action {
    UpToDate,
    KeepHandEdits,
    FromBase,
    MergeOntoHandEdits,
}

/// Runs Kconfig in the scratch dir; returns the `.config` it wrote.
fn run_kconfig(ctx: &Ctx, p: &Prepared, action: Action) -> Result<PathBuf> {
    let exec = &ctx.exec;
    let scratch = p.state().kconfig();
    let make_vars = p.make_vars();
    let make = |target: &str| {
        kbuild::config_make(
            exec.sh(),
            &p.tree.path,
            &scratch,
            &p.arch.make_arch,
            &make_vars,
            target,
        )
    };
    let mut steps = Vec::new();
    if action == Action::FromBase {
        steps.push(make(&p.profile.base));
        steps.extend(p.profile.fragments.iter().map(|f| make(f)));
    } else {
        exec.copy(&p.build_dir.join(".config"), &scratch.join(".config"))?;
    }
    steps.push(make(&p.profile.fragment));
    steps.push(make("olddefconfig"));
    exec.create_dir_all(&scratch)?;
    for step in steps {
        if exec.verbose {
            exec.run(step)?;
        } else {
            exec.capture(step)?;
        }
    }
    Ok(scratch.join(".config"))
}

/// Options that name no Kconfig symbol or give a value of the wrong type,
/// and rule paths that name nothing in the tree, are errors at their line
/// in study.toml.
fn check_profile(p: &Prepared, index: &SymbolIndex) -> Result<()> {
    for option in &p.profile.options {
        if let Some((kind, decl)) = index.kind(&option.name) {
            if !kind.accepts(&option.value) {
                bail!(
                    "{}: {} is a {} in Linux {} ({}:{}), not {}: write {} = {}",
                    option.origin,
                    option.name,
                    kind.name(),
                    p.tree.version,
                    decl.file.display(),
                    decl.line,
                    option.value.config_text(),
                    option.name,
                    kind.spelling()
                );
            }
        }
        if !index.contains(&option.name) {
            let near = index.nearest(&option.name, 3);
            let hint = if near.is_empty() {
                String::new()
            } else {
                format!("; did you mean {}?", near.join(", "))
            };
            bail!(
                "{}: option `{}` is not a Kconfig symbol in Linux {} ({}){hint}",
                option.origin,
                option.name,
                p.tree.version,
                p.tree.path.display()
            );
        }
    }
    for rule in &p.profile.rules.rules {
        if !p.tree.path.join(&rule.path).exists() {
            bail!(
                "{}: path \"{}\" is not in the kernel tree {}; give a directory or a .c file",
                rule.origin,
                rule.path,
                p.tree.path.display()
            );
        }
    }
    for fragment in &p.profile.fragments {
        let found = p.tree.path.join("kernel/configs").join(fragment).is_file()
            || p.tree
                .path
                .join("arch")
                .join(&p.arch.src_arch)
                .join("configs")
                .join(fragment)
                .is_file();
        if !found {
            bail!(
                "{}: [profile.{}] fragment `{fragment}` is in neither kernel/configs/ nor arch/{}/configs/ of {}",
                p.profile.source.display(),
                p.profile.name,
                p.arch.src_arch,
                p.tree.path.display()
            );
        }
    }
    Ok(())
}

/// Refuses to overwrite a fragment the kernel ships (tiny.config is one).
fn guard_fragment(path: &Path) -> Result<()> {
    match std::fs::read_to_string(path) {
        Ok(text) if !text.starts_with("# Generated by `cargo xtask config`") => bail!(
            "{} belongs to the kernel, not to linux-study; set `fragment = \"study-NAME.config\"` in the profile",
            path.display()
        ),
        _ => Ok(()),
    }
}

/// Every requested option must be in the `.config` at `config_path`.
fn verify<'a>(p: &Prepared, index: impl Fn() -> &'a SymbolIndex, config_path: &Path) -> Result<()> {
    let config = Kconfig::parse(config_path, &fsutil::read_to_string(config_path)?)?;
    let mismatches = kconfig::mismatches(&p.profile.options, &config);
    let mut failed = Vec::new();
    for m in &mismatches {
        let deps = index().unmet_dependencies(&m.option.name, &config);
        let why = if deps.is_empty() {
            String::new()
        } else {
            format!("; unmet dependency: {}", deps.join("; "))
        };
        let line = format!(
            "{}: CONFIG_{} wanted {}, got {}{why}",
            m.option.origin,
            m.option.name,
            m.option.value.config_text(),
            m.got
        );
        if m.option.optional {
            eprintln!("warning: {line} (optional)");
        } else {
            eprintln!("{line}");
            failed.push(m.option.name.clone());
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} requested option(s) did not land in {}: {}; fix their dependencies or mark them optional",
            failed.len(),
            config_path.display(),
            failed.join(", ")
        );
    }
    Ok(())
}

fn say_landed(p: &Prepared, config_path: &Path) {
    eprintln!(
        "{}: all {} requested options landed (Linux {}, profile {})",
        config_path.display(),
        p.profile.options.len(),
        p.tree.version,
        p.profile.name
    );
}
