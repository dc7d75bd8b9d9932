//! `cargo xtask packetdrill`: packetdrill scripts (the kernel tree's own
//! suite by default) in the guest, each in a fresh network namespace, once
//! per IP version, reported as KTAP with a summary.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

use crate::{
    analysis::packetdrill_results::{ktap, parse_results, skew_notes, summary, Outcome, Verdict},
    builder, cli,
    ctx::{Ctx, Prepared},
    guest::{
        kvm,
        packetdrill_script::{guest_script, Run},
        run::{self, RunRequest},
    },
    kernel::kconfig::Kconfig,
    study::packetdrill_suite::Packetdrill,
    util::{exec::which, lock::Access, supervise::TempPath},
};

/// Where packetdrill comes from, for the one line said when there is none.
const WHERE_FROM: &str = "packetdrill is not packaged by Debian: build it from its upstream \
     source (google/packetdrill, gtests/net/packetdrill: ./configure && make) and put it on \
     PATH or pass --packetdrill PATH";

impl cli::Packetdrill {
    pub fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let p = Prepared::new(ctx, &self.target.to_target())?;
        let spec = Packetdrill::load(&ctx.study_dir())?;
        let binary = find_binary(self.packetdrill.as_deref())?;
        let suite = p.tree.path.join(&spec.suite);
        let scripts = if self.scripts.is_empty() {
            if !suite.is_dir() {
                bail!(
                    "Linux {} has no packetdrill suite ({} is missing); name .pkt scripts or a directory of them",
                    p.tree.version,
                    suite.display()
                );
            }
            pkt_files(&suite)?
        } else {
            let mut all = Vec::new();
            for path in &self.scripts {
                all.extend(pkt_files(path)?);
            }
            all
        };
        if scripts.is_empty() {
            bail!("no .pkt scripts in {:?}", self.scripts);
        }
        let mut lock = p.lock(ctx, Access::Shared)?;
        builder::ensure_built(ctx, &p, &mut lock)?;
        if let Some(missing) = missing_suite_options(&p.config()?, &suite.join(&spec.suite_config))?
        {
            eprintln!(
                "warning: profile {} lacks what the packetdrill suite needs ({}): {}; add them to [profile.{}.options]",
                p.profile.name,
                suite.join(&spec.suite_config).display(),
                missing.join(", "),
                p.profile.name
            );
        }
        let run = Run {
            spec: &spec,
            versions: self.ip.versions(),
            tolerance_usecs: self.tolerance_usecs.unwrap_or(spec.tolerance_usecs),
        };
        let out_dir = p
            .state()
            .packetdrill()
            .join(format!("run-{}", std::process::id()));
        let _cleanup = TempPath::new(out_dir.clone());
        let script = out_dir.join("packetdrill.sh");
        ctx.exec.write(&script, &guest_script(&run))?;
        let accel = kvm::choose_accel(ctx, &p, self.accel.into())?;
        let request = RunRequest {
            out_dir: Some(out_dir.clone()),
            timeout: Duration::from_secs(self.timeout),
            ..RunRequest::new(accel)
        };
        let mut argv = vec![
            "/bin/sh".to_string(),
            script.display().to_string(),
            binary.display().to_string(),
        ];
        argv.extend(scripts.iter().map(|s| s.display().to_string()));
        let start = Instant::now();
        let Some(outcome) = run::run_command(ctx, &p, &request, &argv)? else {
            return Ok(ExitCode::SUCCESS);
        };
        if outcome.exit.is_none() {
            bail!("{}", outcome.failure());
        }
        let results = std::fs::read_to_string(out_dir.join("results")).unwrap_or_default();
        let log_of =
            |n: &str| std::fs::read_to_string(out_dir.join(format!("{n}.log"))).unwrap_or_default();
        let outcomes = parse_results(&results, &log_of);
        if outcomes.is_empty() {
            bail!(
                "the guest reported no packetdrill result (exit status {:?}); see the console above",
                outcome.exit
            );
        }
        if self.json {
            println!("{}", serde_json::to_string_pretty(&outcomes)?);
        } else {
            print!("{}", ktap(&outcomes));
            eprint!("{}", summary(&outcomes, start.elapsed()));
            eprint!("{}", skew_notes(&outcomes, &spec.skew));
        }
        Ok(
            if outcomes
                .iter()
                .any(|o: &Outcome| o.verdict == Verdict::NotOk)
            {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            },
        )
    }
}

/// `--packetdrill BIN`, else packetdrill on PATH; none is one line.
fn find_binary(given: Option<&Path>) -> Result<PathBuf> {
    match given {
        Some(path) => {
            let path = std::path::absolute(path)?;
            if !path.is_file() {
                bail!(
                    "--packetdrill {}: no such file; {WHERE_FROM}",
                    path.display()
                );
            }
            Ok(path)
        }
        None => {
            which("packetdrill").with_context(|| format!("no packetdrill on PATH; {WHERE_FROM}"))
        }
    }
}

/// A .pkt file, or the .pkt files of a directory, sorted, as absolute paths
/// (the guest sees the host's root at the same paths).
fn pkt_files(path: &Path) -> Result<Vec<PathBuf>> {
    let path = std::path::absolute(path)?;
    if path.is_file() {
        return Ok(vec![path]);
    }
    if !path.is_dir() {
        bail!("{}: no such .pkt script or directory", path.display());
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&path)?
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "pkt"))
        .collect();
    files.sort();
    Ok(files)
}

/// The suite's required options (its `config` file) that `.config` lacks;
/// `None` without such a file.
fn missing_suite_options(config: &Kconfig, suite_config: &Path) -> Result<Option<Vec<String>>> {
    let Ok(text) = std::fs::read_to_string(suite_config) else {
        return Ok(None);
    };
    let wanted = Kconfig::parse(suite_config, &text)?;
    let missing: Vec<String> = wanted
        .values
        .iter()
        .filter(|(name, value)| config.get(name) != value.as_str())
        .map(|(name, value)| format!("CONFIG_{name}={value}"))
        .collect();
    Ok((!missing.is_empty()).then_some(missing))
}
