//! Which accelerator a guest gets: KVM only when a short probe boot under
//! KVM shows that it really accelerates, TCG otherwise; the verdict is
//! cached per host kernel and QEMU binary.

use std::{path::PathBuf, time::Duration};

use anyhow::{bail, Result};

use crate::{
    ctx::{Ctx, Prepared},
    guest::{
        qemu::Accel,
        run::{run_guest, RunRequest},
    },
    study::arch::{Arch, Runner},
    util::exec::which,
};

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccelChoice {
    Auto,
    Kvm,
    Tcg,
}

/// `auto`: KVM when /dev/kvm opens and a short probe boot under KVM
/// finishes quickly; else TCG. A paravirtual /dev/kvm (nested in another VM)
/// can open and still abort or crawl, so opening it proves nothing.
pub fn choose_accel(ctx: &Ctx, p: &Prepared, requested: AccelChoice) -> Result<Accel> {
    if p.arch.runner == Runner::Uml {
        // The kernel is a host process: nothing to accelerate.
        return Ok(Accel::Tcg);
    }
    let (accel, why) = match requested {
        AccelChoice::Kvm if p.arch.is_foreign() => bail!(
            "--accel kvm: KVM runs {} guests on an {} host only",
            p.arch.name,
            p.arch.runs
        ),
        AccelChoice::Auto if p.arch.is_foreign() => (
            Accel::Tcg,
            format!("an {} guest on an {} host", p.arch.name, Arch::host()),
        ),
        AccelChoice::Kvm => (Accel::Kvm, "requested".to_string()),
        AccelChoice::Tcg => (Accel::Tcg, "requested".to_string()),
        AccelChoice::Auto => match kvm_verdict(ctx, p)? {
            Ok(why) => (Accel::Kvm, why),
            Err(why) => (Accel::Tcg, why),
        },
    };
    eprintln!("accel: {} ({why})", accel.name());
    Ok(accel)
}

/// Where the probe's verdict is kept, and the key it holds for: this host
/// kernel and this QEMU binary.
fn kvm_cache(ctx: &Ctx, p: &Prepared) -> (PathBuf, String) {
    let binary = p.arch.qemu.as_ref().map_or("", |q| q.binary.as_str());
    let qemu = which(binary).unwrap_or_default();
    let key = format!(
        "{} {} {:?}",
        host_release(),
        qemu.display(),
        qemu.metadata().and_then(|m| m.modified()).ok()
    );
    (ctx.root.join("target/kvm-probe.txt"), key)
}

/// The cached verdict for this host and QEMU, if there is one.
pub fn cached_kvm_verdict(ctx: &Ctx, p: &Prepared) -> Option<Result<String, String>> {
    let (cache, key) = kvm_cache(ctx, p);
    let text = std::fs::read_to_string(&cache).ok()?;
    let (cached_key, verdict) = text.split_once('\n')?;
    if cached_key != key {
        return None;
    }
    let verdict = verdict.trim_end();
    Some(match verdict.strip_prefix("kvm: ") {
        Some(why) => Ok(format!("{why}, cached in {}", cache.display())),
        None => Err(format!(
            "{}, cached in {}",
            verdict.trim_start_matches("tcg: "),
            cache.display()
        )),
    })
}

fn kvm_verdict(ctx: &Ctx, p: &Prepared) -> Result<Result<String, String>> {
    if let Err(e) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        return Ok(Err(format!("cannot open /dev/kvm: {e}")));
    }
    if let Some(verdict) = cached_kvm_verdict(ctx, p) {
        return Ok(verdict);
    }
    let probed = ctx.exec.effect(
        || "probe KVM with a short boot".into(),
        || probe(ctx, p).map(Some),
    )?;
    Ok(probed.unwrap_or_else(|| Err("a dry run boots no probe".into())))
}

/// Boots `true` under KVM once, and caches the verdict.
fn probe(ctx: &Ctx, p: &Prepared) -> Result<Result<String, String>> {
    let probe = RunRequest {
        mem: "512M".into(),
        timeout: Duration::from_secs(15),
        ..RunRequest::new(Accel::Kvm)
    };
    eprintln!("probing KVM with a short boot (once; the verdict is cached)");
    let outcome = run_guest(&ctx.exec.quiet()?, p, &probe, &["true".to_string()], true)?
        .expect("a probe's executor is never a dry run");
    let verdict = match outcome.exit {
        Some(0) if outcome.elapsed < Duration::from_secs(10) => Ok(format!(
            "a probe boot under KVM ran `true` in {:.1} s",
            outcome.elapsed.as_secs_f64()
        )),
        Some(_) => Err(format!(
            "a probe boot under KVM took {:.1} s, slower than TCG",
            outcome.elapsed.as_secs_f64()
        )),
        None if outcome.killed.is_some() => Err(format!(
            "a probe boot under KVM did not finish in {:.0} s, where TCG takes about 5",
            outcome.elapsed.as_secs_f64()
        )),
        None => {
            let last = outcome
                .console_tail
                .last()
                .cloned()
                .unwrap_or_else(|| outcome.qemu_status.clone());
            Err(format!("a probe boot under KVM failed: {last}"))
        }
    };
    let line = match &verdict {
        Ok(why) => format!("kvm: {why}"),
        Err(why) => format!("tcg: {why}"),
    };
    let (cache, key) = kvm_cache(ctx, p);
    ctx.exec.write(&cache, format!("{key}\n{line}\n"))?;
    Ok(verdict)
}

fn host_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string()
}
