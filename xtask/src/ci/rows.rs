//! Running the matrix's rows locally, step for step as GitHub Actions runs
//! them: each step a child process, grouped, logged to
//! target/ci/ROW/STEP.log and timed, with a table of what became of each.

use std::{
    io::Write,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{bail, Result};
use xshell::cmd;

use crate::{
    ci::matrix::{kernel_argv, Entry, Matrix, TreeSource, TEST},
    ctx::Ctx,
    kernel::{tree::KernelTree, uml_host},
    study::arch::Arch,
};

#[derive(Debug, Clone)]
pub struct Outcome {
    pub entry: String,
    pub step: String,
    pub result: StepResult,
    pub time: Duration,
}

/// What became of one step of one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepResult {
    Pass,
    Fail,
    /// Not run: an earlier step of the row failed, or the host cannot run
    /// the row (said once, with the reason).
    Skip,
    /// The entry says the step does not apply (`skip` in the matrix).
    NotApplicable,
}

impl StepResult {
    fn cell(self) -> &'static str {
        match self {
            StepResult::Pass => "pass",
            StepResult::Fail => "FAIL",
            StepResult::Skip => "skip",
            StepResult::NotApplicable => "n/a",
        }
    }
}

/// One row of the run: the test run, or an entry.
pub enum Row<'a> {
    Test,
    Entry(&'a Entry),
}

/// Runs `rows` of `matrix` in order, each step a child process, and says
/// what became of each.
pub fn run_rows(ctx: &Ctx, matrix: &Matrix, rows: &[Row]) -> Result<Vec<Outcome>> {
    let runner = Runner {
        ctx,
        actions: std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true"),
    };
    let mut outcomes = Vec::new();
    for row in rows {
        match row {
            Row::Test => {
                outcomes.push(runner.step(TEST, TEST, &matrix.test.run)?);
            }
            Row::Entry(entry) => {
                let kernel = matrix.kernel_of(entry)?;
                let source = kernel.resolve(&ctx.root);
                let (kernel_dir, mut failed) = match &source {
                    TreeSource::Missing(how) => {
                        runner.say_failed(&format!("{} / kernel", entry.name), how);
                        outcomes.push(Outcome {
                            entry: entry.name.clone(),
                            step: "kernel".into(),
                            result: StepResult::Fail,
                            time: Duration::ZERO,
                        });
                        (String::new(), true)
                    }
                    TreeSource::Ready(dir) | TreeSource::Unpack { dir, .. } => {
                        let argv = kernel_argv(&source).expect("a tree to get");
                        let outcome = runner.step(&entry.name, "kernel", &argv)?;
                        let failed = outcome.result == StepResult::Fail;
                        outcomes.push(outcome);
                        (dir.display().to_string(), failed)
                    }
                };
                // A row this host cannot run is skipped with the tool's
                // own reason, not failed: whether CI passes must not
                // depend on which CPU the machine has.
                let unfit = if failed {
                    None
                } else {
                    ctx.exec
                        .check(|| host_cannot_run(ctx, entry, &kernel_dir))?
                };
                if let Some(why) = &unfit {
                    println!("==> {} skipped: {why}", entry.name);
                }
                for step in &matrix.step {
                    let not_run = if entry.skip.contains(&step.name) {
                        Some(StepResult::NotApplicable)
                    } else if failed || unfit.is_some() {
                        Some(StepResult::Skip)
                    } else {
                        None
                    };
                    if let Some(result) = not_run {
                        outcomes.push(Outcome {
                            entry: entry.name.clone(),
                            step: step.name.clone(),
                            result,
                            time: Duration::ZERO,
                        });
                        continue;
                    }
                    let argv = entry.argv(step, &kernel_dir);
                    let outcome = runner.step(&entry.name, &step.name, &argv)?;
                    failed = outcome.result == StepResult::Fail;
                    outcomes.push(outcome);
                }
            }
        }
    }
    Ok(outcomes)
}

struct Runner<'a> {
    ctx: &'a Ctx,
    actions: bool,
}

impl Runner<'_> {
    /// Runs one step's argv at the repo root, grouped and logged to
    /// target/ci/ROW/STEP.log, and times it.
    fn step(&self, row: &str, step: &str, argv: &[String]) -> Result<Outcome> {
        let ctx = self.ctx;
        let sh = ctx.exec.sh();
        let _root = sh.push_dir(&ctx.root);
        let cmd = sh.cmd(&argv[0]).args(&argv[1..]);
        let title = format!("{row} / {step}");
        if self.actions {
            println!("::group::{title}");
        } else {
            println!("==> {title}");
        }
        let log_path = self.log_path(row, step);
        let mut log = ctx.exec.create(&log_path)?;
        let start = Instant::now();
        let status = ctx.exec.stream(cmd, |line| {
            println!("{line}");
            let _ = writeln!(log, "{line}");
        })?;
        let time = start.elapsed();
        if self.actions {
            println!("::endgroup::");
        }
        let result = match status {
            // A dry run: shown, not run.
            None => StepResult::Skip,
            Some(status) if status.success() => StepResult::Pass,
            Some(_) => {
                self.say_failed(&title, &format!("log: {}", log_path.display()));
                StepResult::Fail
            }
        };
        Ok(Outcome {
            entry: row.to_string(),
            step: step.to_string(),
            result,
            time,
        })
    }

    fn log_path(&self, row: &str, step: &str) -> PathBuf {
        self.ctx
            .root
            .join("target/ci")
            .join(row)
            .join(format!("{step}.log"))
    }

    fn say_failed(&self, title: &str, why: &str) {
        if self.actions {
            println!("::error::{title} failed; {why}");
        } else {
            println!("{title} failed; {why}");
        }
    }
}

/// Rows × steps: pass, FAIL or skip, with the time; `-` where a row has no
/// such step (the test run has one).
pub fn table(outcomes: &[Outcome]) -> String {
    let width = outcomes
        .iter()
        .map(|o| o.entry.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut steps: Vec<&str> = Vec::new();
    let mut rows: Vec<&str> = Vec::new();
    for o in outcomes {
        if !steps.contains(&o.step.as_str()) {
            steps.push(&o.step);
        }
        if !rows.contains(&o.entry.as_str()) {
            rows.push(&o.entry);
        }
    }
    let mut out = format!("\n{:<width$}", "entry");
    for step in &steps {
        out.push_str(&format!(" {step:>11}"));
    }
    out.push('\n');
    for row in rows {
        out.push_str(&format!("{row:<width$}"));
        for step in &steps {
            let cell = outcomes
                .iter()
                .find(|o| o.entry == row && o.step == *step)
                .map_or("-".to_string(), |o| match o.result {
                    StepResult::Pass | StepResult::Fail => {
                        format!("{} {:.0}s", o.result.cell(), o.time.as_secs_f64())
                    }
                    StepResult::Skip | StepResult::NotApplicable => o.result.cell().to_string(),
                });
            out.push_str(&format!(" {cell:>11}"));
        }
        out.push('\n');
    }
    out
}

/// Why this host cannot run `entry` (UML on a host with a larger XSAVE
/// area), in the line `config` would stop with; `None` when it can.
fn host_cannot_run(ctx: &Ctx, entry: &Entry, kernel_dir: &str) -> Result<Option<String>> {
    let arch = Arch::load(&ctx.study_dir(), &entry.arch)?;
    let Some(uml) = &arch.uml else {
        return Ok(None);
    };
    let tree = KernelTree::open(std::path::Path::new(kernel_dir))?;
    Ok(uml_host::check(&tree.path, &tree.version, &uml.host_fp)
        .err()
        .map(|unfit| unfit.to_string()))
}

/// On a runner with KVM: `run --accel auto` must pick KVM.
pub fn check_kvm(ctx: &Ctx, matrix: &Matrix, entries: &[&Entry]) -> Result<()> {
    for entry in entries {
        let exe = std::env::current_exe()?;
        let (profile, cc, arch) = (&entry.profile, &entry.cc, &entry.arch);
        let build_dir = format!("build/{}", entry.name);
        let kernel = match matrix.kernel_of(entry)?.resolve(&ctx.root) {
            TreeSource::Ready(dir) => dir,
            TreeSource::Unpack { .. } | TreeSource::Missing(_) => {
                bail!(
                    "{}: its tree is not there yet; run `cargo xtask ci {}` first",
                    entry.name,
                    entry.name
                )
            }
        };
        let sh = ctx.exec.sh();
        let _root = sh.push_dir(&ctx.root);
        let cmd = cmd!(
            sh,
            "{exe} run --kernel {kernel} --profile {profile} --cc {cc} --arch {arch} --build-dir {build_dir} -- true"
        );
        let output = ctx.exec.capture(cmd)?;
        ctx.exec.check(|| {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let Some(line) = stderr.lines().find(|l| l.starts_with("accel: ")) else {
                bail!("{}: run printed no accel line", entry.name);
            };
            println!("{}: {line}", entry.name);
            if !line.starts_with("accel: kvm") {
                bail!("{}: the guest does not use KVM: {line}", entry.name);
            }
            Ok(())
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_the_test_row_and_the_entries() {
        use StepResult::*;
        let o = |entry: &str, step: &str, result, secs| Outcome {
            entry: entry.into(),
            step: step.into(),
            result,
            time: Duration::from_secs(secs),
        };
        let outcomes = [
            o("test", "test", Pass, 300),
            o("tiny-6.1", "kernel", Pass, 20),
            o("tiny-6.1", "build", Fail, 360),
            o("tiny-6.1", "run", Skip, 0),
        ];
        assert_eq!(
            table(&outcomes),
            "\nentry           test      kernel       build         run\n\
             test       pass 300s           -           -           -\n\
             tiny-6.1           -    pass 20s   FAIL 360s        skip\n"
        );
    }
}
