//! `cargo xtask trace`: an ftrace function_graph trace of FUNC while one
//! command runs in the guest, brought back to the host, printed in the
//! kernel's own format, condensed into a call chain by layer, and drawn as a
//! flame graph.

use std::{path::Path, process::ExitCode};

use anyhow::{bail, Context, Result};

use crate::{
    analysis::{
        ftrace::{self, Trace},
        symbols, trace_report,
    },
    builder, cli,
    ctx::{Ctx, Prepared},
    guest::{
        kvm,
        run::{self, RunRequest},
        trace_script::{check_function, guest_script, TraceSetup},
    },
    study::{arch::Arch, layers::Layers},
    util::{fsutil, lock::Access, supervise::TempPath},
};

impl cli::Trace {
    pub fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        for function in &self.functions {
            check_function(function, self.tracer.into()).map_err(anyhow::Error::msg)?;
        }
        let p = Prepared::new(ctx, &self.target.to_target())?;
        if !p.arch.ftrace {
            let with: Vec<String> = Arch::names(&ctx.study_dir())
                .into_iter()
                .filter(|n| Arch::load(&ctx.study_dir(), n).is_ok_and(|a| a.ftrace))
                .collect();
            bail!(
                "{} has no ftrace function_graph (study/arch/{}.toml: ftrace = false); trace on a build for {} (--arch)",
                p.arch.name,
                p.arch.name,
                with.join(" or ")
            );
        }
        let mut lock = p.lock(ctx, Access::Shared)?;
        builder::ensure_built(ctx, &p, &mut lock)?;
        let config = p.config()?;
        for option in ["FUNCTION_GRAPH_TRACER", "DYNAMIC_FTRACE"] {
            if config.get(option) != "y" {
                bail!(
                    "profile {} has CONFIG_{option} off; add {option} = true to it",
                    p.profile.name
                );
            }
        }
        let out_dir = p
            .state()
            .trace()
            .join(format!("run-{}", std::process::id()));
        let _cleanup = TempPath::new(out_dir.clone());
        let setup = TraceSetup {
            functions: self.functions.clone(),
            tracer: self.tracer.into(),
            depth: self.depth,
            cpu_times: self.cpu_times,
            buffer_kb: 16384,
        };
        let script = out_dir.join("trace.sh");
        ctx.exec.write(&script, &guest_script(&setup))?;
        let accel = kvm::choose_accel(ctx, &p, self.accel.into())?;
        let request = RunRequest {
            out_dir: Some(out_dir.clone()),
            files: vec![script.clone()],
            initramfs: self.initramfs,
            timeout: std::time::Duration::from_secs(self.timeout),
            ..RunRequest::new(accel)
        };
        let mut argv = vec!["/bin/sh".to_string(), script.display().to_string()];
        argv.extend(self.command.iter().cloned());
        let Some(outcome) = run::run_command(ctx, &p, &request, &argv)? else {
            return Ok(ExitCode::SUCCESS);
        };
        // A guest that never reported a status says why, not "no trace".
        let Some(code) = outcome.exit else {
            bail!("{}", outcome.failure())
        };
        self.report(ctx, &p, &out_dir)?;
        Ok(run::exit_code(code))
    }

    fn report(&self, ctx: &Ctx, p: &Prepared, out_dir: &Path) -> Result<()> {
        if let Some(why) = trace_report::untraceable(out_dir) {
            bail!("{why}");
        }
        let text = fsutil::read_to_string(&out_dir.join("trace.txt"))
            .context("the guest wrote no trace")?;
        match &self.output {
            Some(path) => {
                ctx.exec.write(path, &text)?;
                eprintln!("trace: {} ({} lines)", path.display(), text.lines().count());
            }
            None if !self.chain => print!("{text}"),
            None => {}
        }
        let trace = Trace::parse(&text);
        if let Some((line, text)) = trace.skipped.first() {
            eprintln!(
                "warning: {} trace lines not understood, e.g. line {line}: {text}",
                trace.skipped.len()
            );
        }
        if self.chain {
            let layers = Layers::load(&ctx.study_dir())?;
            let names: Vec<String> = trace
                .calls()
                .map(|c| ftrace::base_name(&c.name).to_string())
                .collect();
            let sources = symbols::source_files(&ctx.exec, p, &names)?;
            print!(
                "{}",
                trace_report::chains(&trace, &self.functions, &layers, &sources)
            );
        }
        if let Some(path) = &self.folded {
            ctx.exec.write(path, trace.folded())?;
            eprintln!("folded stacks: {}", path.display());
        }
        if let Some(path) = &self.svg {
            let svg = trace_report::flame_graph(&trace, &self.functions.join(", "))?;
            ctx.exec.write(path, svg)?;
            eprintln!("flame graph: {}", path.display());
        }
        Ok(())
    }
}
