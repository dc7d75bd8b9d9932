//! Which accelerator a guest gets: KVM only when a short probe boot under
//! KVM shows that it really accelerates, TCG otherwise. A probe that fails
//! or crawls under KVM is checked against the same boot under TCG: only a
//! verdict the two prove is cached (per host kernel and QEMU binary), and a
//! negative one expires, since a loaded host, not KVM, may have been slow.

use std::{
    path::PathBuf,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

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
    if p.freebsd.is_some() {
        // No probe: its boot would run a Linux command, and the FreeBSD
        // guest's accelerator is data (study/guest/freebsd/guest.toml).
        if requested == AccelChoice::Kvm {
            bail!(
                "--accel kvm: a FreeBSD guest runs under TCG (study/guest/freebsd/guest.toml: \
                 KVM stops at its first x87 instruction on these hosts)"
            );
        }
        eprintln!("accel: tcg (a FreeBSD guest, study/guest/freebsd/guest.toml)");
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

/// How long a verdict against KVM holds: the host's load, or a kernel that
/// boots slowly, may have made it, and a day later KVM gets another probe.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(24 * 3600);

/// The cached verdict for this host and QEMU, if there is one.
pub fn cached_kvm_verdict(ctx: &Ctx, p: &Prepared) -> Option<Result<String, String>> {
    let (cache, key) = kvm_cache(ctx, p);
    let text = std::fs::read_to_string(&cache).ok()?;
    let verdict = read_cache(&text, &key, SystemTime::now())?;
    Some(match verdict {
        Ok(why) => Ok(format!("{why}, cached in {}", cache.display())),
        Err(why) => Err(format!("{why}, cached in {}", cache.display())),
    })
}

/// The cache file: the key, the verdict (`kvm: WHY` or `tcg: WHY`), and
/// the Unix time it was proved.
fn cache_text(key: &str, verdict: &Result<String, String>, at: SystemTime) -> String {
    let line = match verdict {
        Ok(why) => format!("kvm: {why}"),
        Err(why) => format!("tcg: {why}"),
    };
    let secs = at.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    format!("{key}\n{line}\nat {secs}\n")
}

/// The verdict `text` holds for `key` at `now`: none for another host or
/// QEMU, and none for a verdict against KVM older than [`NEGATIVE_TTL`]
/// (or without its time: a cache an older tool wrote).
fn read_cache(text: &str, key: &str, now: SystemTime) -> Option<Result<String, String>> {
    let mut lines = text.lines();
    if lines.next()? != key {
        return None;
    }
    let verdict = lines.next()?.trim_end();
    let at = lines
        .next()
        .and_then(|l| l.strip_prefix("at "))
        .and_then(|secs| secs.parse().ok())
        .map(|secs| UNIX_EPOCH + Duration::from_secs(secs));
    if let Some(why) = verdict.strip_prefix("kvm: ") {
        return Some(Ok(why.to_string()));
    }
    let why = verdict.strip_prefix("tcg: ")?;
    let age = now.duration_since(at?).ok()?;
    (age < NEGATIVE_TTL).then(|| Err(why.to_string()))
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
    let real = ctx.exec.effect(
        || {
            "probe KVM with a short boot of this build under `-accel kvm` (the real run \
             picks TCG, `-accel tcg`, if KVM fails where TCG boots, or is slower)"
                .into()
        },
        || Ok(true),
    )?;
    if !real {
        // The probe's own command, then the run's as a KVM verdict makes it.
        run_guest(
            &ctx.exec,
            p,
            &probe_request(Accel::Kvm),
            &probe_argv(),
            true,
        )?;
        return Ok(Ok(
            "a dry run: the probe above decides; these commands are a KVM verdict's".into(),
        ));
    }
    probe(ctx, p)
}

/// The probe's guest: `true`, in 512 MiB, bounded.
fn probe_request(accel: Accel) -> RunRequest {
    RunRequest {
        mem: "512M".into(),
        timeout: match accel {
            Accel::Kvm => KVM_BOUND,
            // The control may be slow: a loaded host is what it measures.
            Accel::Tcg => Duration::from_secs(120),
        },
        ..RunRequest::new(accel)
    }
}

fn probe_argv() -> Vec<String> {
    vec!["true".to_string()]
}

/// How long the probe waits for KVM, and how fast a KVM boot must be to be
/// taken without a control boot under TCG.
const KVM_BOUND: Duration = Duration::from_secs(15);
const KVM_QUICK: Duration = Duration::from_secs(10);

/// What one probe boot showed.
#[derive(Debug, Clone, PartialEq)]
struct Boot {
    /// `true` ran and exited 0.
    ran: bool,
    /// Killed at its bound.
    killed: bool,
    elapsed: Duration,
    /// Why it failed, from its console or QEMU's status.
    failure: String,
}

/// What the probes prove.
#[derive(Debug, Clone, PartialEq)]
enum Judgement {
    /// Cached, and used.
    Proved(Result<String, String>),
    /// Used for this run only: the boots do not show what KVM does (the
    /// kernel does not boot under TCG either, or TCG was as slow).
    Unproved(String),
}

/// The verdict of a KVM boot alone, when it is clear: quick and whole.
fn judge_kvm(kvm: &Boot) -> Option<Judgement> {
    (kvm.ran && kvm.elapsed < KVM_QUICK).then(|| {
        Judgement::Proved(Ok(format!(
            "a probe boot under KVM ran `true` in {:.1} s",
            kvm.elapsed.as_secs_f64()
        )))
    })
}

/// The verdict of a KVM boot that failed or was slow, against the same
/// boot under TCG: KVM loses only where TCG did better.
fn judge(kvm: &Boot, tcg: &Boot) -> Judgement {
    let kvm_s = kvm.elapsed.as_secs_f64();
    let tcg_s = tcg.elapsed.as_secs_f64();
    if !tcg.ran {
        return Judgement::Unproved(format!(
            "the probe proved nothing: this build does not run `true` under TCG either ({})",
            tcg.failure
        ));
    }
    if kvm.ran && kvm.elapsed <= tcg.elapsed {
        return Judgement::Proved(Ok(format!(
            "a probe boot under KVM ran `true` in {kvm_s:.1} s, TCG in {tcg_s:.1} s"
        )));
    }
    let what = if kvm.ran {
        format!("took {kvm_s:.1} s")
    } else if kvm.killed {
        format!("did not finish in {kvm_s:.0} s")
    } else {
        format!("failed ({})", kvm.failure)
    };
    if !kvm.ran && !kvm.killed || tcg.elapsed < kvm.elapsed {
        Judgement::Proved(Err(format!(
            "a probe boot under KVM {what}, where TCG ran `true` in {tcg_s:.1} s"
        )))
    } else {
        Judgement::Unproved(format!(
            "a probe boot under KVM {what}, and TCG took {tcg_s:.1} s: the host is slow now, \
             KVM gets another probe next time"
        ))
    }
}

fn boot(ctx: &Ctx, p: &Prepared, accel: Accel) -> Result<Boot> {
    let outcome = run_guest(
        &ctx.exec.quiet()?,
        p,
        &probe_request(accel),
        &probe_argv(),
        true,
    )?
    .expect("a probe's executor is never a dry run");
    let failure = match outcome
        .console_tail
        .iter()
        .find(|l| l.contains("Kernel panic"))
    {
        Some(panic) => panic.trim().to_string(),
        None => outcome
            .console_tail
            .last()
            .cloned()
            .unwrap_or_else(|| outcome.qemu_status.clone()),
    };
    Ok(Boot {
        ran: outcome.exit == Some(0),
        killed: outcome.killed.is_some(),
        elapsed: outcome.elapsed,
        failure,
    })
}

/// Boots `true` under KVM, and under TCG too when KVM's boot alone is not
/// clear; caches what the boots prove.
fn probe(ctx: &Ctx, p: &Prepared) -> Result<Result<String, String>> {
    eprintln!("probing KVM with a short boot (its verdict is cached once proved)");
    let kvm = boot(ctx, p, Accel::Kvm)?;
    let judgement = match judge_kvm(&kvm) {
        Some(judgement) => judgement,
        None => {
            eprintln!("probing TCG with the same boot, to compare");
            judge(&kvm, &boot(ctx, p, Accel::Tcg)?)
        }
    };
    match judgement {
        Judgement::Proved(verdict) => {
            let (cache, key) = kvm_cache(ctx, p);
            ctx.exec
                .write(&cache, cache_text(&key, &verdict, SystemTime::now()))?;
            Ok(verdict)
        }
        Judgement::Unproved(why) => Ok(Err(why)),
    }
}

fn host_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boot(ran: bool, killed: bool, secs: u64) -> Boot {
        Boot {
            ran,
            killed,
            elapsed: Duration::from_secs(secs),
            failure: match (ran, killed) {
                (true, _) => String::new(),
                (false, true) => "killed".into(),
                (false, false) => "Kernel panic - not syncing: VFS".into(),
            },
        }
    }

    /// A quick KVM boot needs no control; a slow or failed one is judged
    /// against TCG, and only what the two show is proved (cached).
    #[test]
    fn only_what_the_probes_prove_is_cached() {
        assert!(matches!(
            judge_kvm(&boot(true, false, 3)),
            Some(Judgement::Proved(Ok(_)))
        ));
        assert_eq!(judge_kvm(&boot(true, false, 12)), None);
        assert_eq!(judge_kvm(&boot(false, true, 15)), None);
        assert_eq!(judge_kvm(&boot(false, false, 1)), None);
        // A kernel that panics under TCG too: nothing about KVM.
        let broken = judge(&boot(false, false, 1), &boot(false, false, 1));
        assert!(
            matches!(&broken, Judgement::Unproved(why) if why.contains("under TCG either")),
            "{broken:?}"
        );
        // KVM fails where TCG boots: proved against KVM.
        assert!(matches!(
            judge(&boot(false, false, 1), &boot(true, false, 6)),
            Judgement::Proved(Err(_))
        ));
        // KVM killed at 15 s, TCG in 6: proved against KVM.
        assert_eq!(
            judge(&boot(false, true, 15), &boot(true, false, 6)),
            Judgement::Proved(Err(
                "a probe boot under KVM did not finish in 15 s, where TCG ran `true` in 6.0 s"
                    .into()
            ))
        );
        // Both slow under load: no verdict kept.
        assert!(matches!(
            judge(&boot(false, true, 15), &boot(true, false, 40)),
            Judgement::Unproved(_)
        ));
        // KVM slow, TCG slower: KVM still accelerates.
        assert!(matches!(
            judge(&boot(true, false, 12), &boot(true, false, 30)),
            Judgement::Proved(Ok(_))
        ));
        assert!(matches!(
            judge(&boot(true, false, 12), &boot(true, false, 5)),
            Judgement::Proved(Err(_))
        ));
    }

    /// A verdict for KVM holds; one against it expires after a day, and
    /// one without its time (an older tool's) is not trusted.
    #[test]
    fn a_negative_verdict_expires() {
        let key = "6.1.0 /usr/bin/qemu-system-x86_64 Some(1)";
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let yes: Result<String, String> = Ok("fast".into());
        let no: Result<String, String> = Err("slow".into());
        let later = |d: Duration| t0 + d;
        let hour = Duration::from_secs(3600);
        assert_eq!(
            read_cache(&cache_text(key, &yes, t0), key, later(hour * 1000)),
            Some(yes.clone())
        );
        assert_eq!(
            read_cache(&cache_text(key, &no, t0), key, later(hour)),
            Some(no.clone())
        );
        assert_eq!(
            read_cache(&cache_text(key, &no, t0), key, later(NEGATIVE_TTL)),
            None
        );
        assert_eq!(read_cache(&cache_text(key, &no, t0), "other", t0), None);
        assert_eq!(read_cache(&format!("{key}\ntcg: slow\n"), key, t0), None);
        assert_eq!(
            read_cache(&format!("{key}\nkvm: fast\n"), key, t0),
            Some(yes)
        );
    }
}
