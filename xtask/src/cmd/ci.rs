//! `cargo xtask ci`: the matrix in ci/matrix.toml, run locally step for step
//! as GitHub Actions runs it, or written out as the workflow.

use std::{
    io::Write,
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use xshell::cmd;

use crate::{
    cli,
    ctx::Ctx,
    spec::matrix::{workflow, Entry, Matrix, MATRIX, WORKFLOW},
};

#[derive(Debug, Clone)]
struct Outcome {
    entry: String,
    step: String,
    result: &'static str,
    time: Duration,
}

impl cli::Ci {
    pub fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let matrix = Matrix::load(&ctx.root)?;
        if self.write_workflow {
            ctx.exec
                .write(&ctx.root.join(WORKFLOW), &workflow(&matrix))?;
            eprintln!("{WORKFLOW} written from {MATRIX}");
            return Ok(ExitCode::SUCCESS);
        }
        let entries: Vec<&Entry> = if self.entries.is_empty() {
            matrix.entry.iter().filter(|e| e.local).collect()
        } else {
            self.entries
                .iter()
                .map(|n| matrix.entry(n))
                .collect::<Result<_>>()?
        };
        if self.check_kvm {
            return check_kvm(ctx, &entries);
        }
        let actions = std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true");
        let mut outcomes = Vec::new();
        for entry in &entries {
            let mut failed = false;
            for step in &matrix.step {
                if failed {
                    outcomes.push(Outcome {
                        entry: entry.name.clone(),
                        step: step.name.clone(),
                        result: "skip",
                        time: Duration::ZERO,
                    });
                    continue;
                }
                let argv = entry.argv(step);
                let sh = ctx.exec.sh();
                let _root = sh.push_dir(&ctx.root);
                let cmd = sh.cmd(&argv[0]).args(&argv[1..]);
                let title = format!("{} / {}", entry.name, step.name);
                if actions {
                    println!("::group::{title}");
                } else {
                    println!("==> {title}");
                }
                let log_path = ctx
                    .root
                    .join("target/ci")
                    .join(&entry.name)
                    .join(format!("{}.log", step.name));
                let mut log = if ctx.exec.dry_run {
                    None
                } else {
                    std::fs::create_dir_all(log_path.parent().expect("has a parent"))?;
                    Some(
                        std::fs::File::create(&log_path)
                            .with_context(|| format!("cannot write {}", log_path.display()))?,
                    )
                };
                let start = Instant::now();
                let status = ctx.exec.stream(cmd, |line| {
                    println!("{line}");
                    if let Some(log) = log.as_mut() {
                        let _ = writeln!(log, "{line}");
                    }
                })?;
                let time = start.elapsed();
                if actions {
                    println!("::endgroup::");
                }
                failed = !status.success();
                let result = if failed { "FAIL" } else { "pass" };
                if failed && actions {
                    println!("::error::{title} failed; log: {}", log_path.display());
                }
                outcomes.push(Outcome {
                    entry: entry.name.clone(),
                    step: step.name.clone(),
                    result,
                    time,
                });
            }
        }
        print!("{}", table(&matrix, &outcomes));
        let failures = outcomes.iter().filter(|o| o.result == "FAIL").count();
        Ok(if failures == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }
}

/// Entries × steps: pass, FAIL or skip, with the time.
fn table(m: &Matrix, outcomes: &[Outcome]) -> String {
    let width = outcomes
        .iter()
        .map(|o| o.entry.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut out = format!("\n{:<width$}", "entry");
    for step in &m.step {
        out.push_str(&format!(" {:>14}", step.name));
    }
    out.push('\n');
    let mut entries: Vec<&str> = outcomes.iter().map(|o| o.entry.as_str()).collect();
    entries.dedup();
    for entry in entries {
        out.push_str(&format!("{entry:<width$}"));
        for step in &m.step {
            let cell = outcomes
                .iter()
                .find(|o| o.entry == entry && o.step == step.name)
                .map_or("-".to_string(), |o| {
                    if o.result == "skip" {
                        "skip".to_string()
                    } else {
                        format!("{} {:.0}s", o.result, o.time.as_secs_f64())
                    }
                });
            out.push_str(&format!(" {cell:>14}"));
        }
        out.push('\n');
    }
    out
}

/// On a runner with KVM: `run --accel auto` must pick KVM.
fn check_kvm(ctx: &Ctx, entries: &[&Entry]) -> Result<ExitCode> {
    for entry in entries {
        let exe = std::env::current_exe()?;
        let (profile, cc, arch) = (&entry.profile, &entry.cc, &entry.arch);
        let build_dir = format!("build/{}", entry.name);
        let sh = ctx.exec.sh();
        let _root = sh.push_dir(&ctx.root);
        let cmd = cmd!(
            sh,
            "{exe} run --profile {profile} --cc {cc} --arch {arch} --build-dir {build_dir} -- true"
        );
        if ctx.exec.dry_run {
            ctx.exec.run(cmd)?;
            continue;
        }
        let output = ctx.exec.capture(cmd)?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        let Some(line) = stderr.lines().find(|l| l.starts_with("accel: ")) else {
            bail!("{}: run printed no accel line", entry.name);
        };
        println!("{}: {line}", entry.name);
        if !line.starts_with("accel: kvm") {
            bail!("{}: the guest does not use KVM: {line}", entry.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}
