//! `cargo xtask packetdrill`: packetdrill scripts (the kernel tree's own
//! suite by default) in the guest, each in a fresh network namespace, once
//! per IP version, reported as KTAP with a summary.

use std::{
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{bail, Result};

use crate::{
    analysis::packetdrill_results::{ktap, parse_results, skew_notes, summary, Outcome, Verdict},
    builder, cli,
    ctx::{Ctx, Prepared},
    guest::{
        kvm,
        packetdrill_script::{self, guest_script, Run},
        run::{self, RunRequest},
    },
    study::packetdrill_suite::Packetdrill,
    util::{lock::Access, supervise::TempPath},
};

impl cli::Packetdrill {
    pub fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        let p = Prepared::new(ctx, &self.target.to_target())?;
        crate::guest::freebsd_guest::refuse_on_freebsd(&p, "packetdrill")?;
        let spec = Packetdrill::load(&ctx.study_dir())?;
        let binary = packetdrill_script::find_binary(self.packetdrill.as_deref())?;
        let suite = p.tree.path.join(&spec.suite);
        let scripts = if self.scripts.is_empty() {
            if !suite.is_dir() {
                bail!(
                    "Linux {} has no packetdrill suite ({} is missing); name .pkt scripts or a directory of them",
                    p.tree.version,
                    suite.display()
                );
            }
            packetdrill_script::pkt_files(&suite)?
        } else {
            let mut all = Vec::new();
            for path in &self.scripts {
                all.extend(packetdrill_script::pkt_files(path)?);
            }
            all
        };
        if scripts.is_empty() {
            bail!("no .pkt scripts in {:?}", self.scripts);
        }
        let mut lock = p.lock(ctx, Access::Shared)?;
        builder::ensure_built(ctx, &p, &mut lock)?;
        if let Some(missing) = p.config()?.missing_from(&suite.join(&spec.suite_config))? {
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
        ctx.exec.write(&script, guest_script(&run))?;
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
