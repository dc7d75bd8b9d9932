//! `cargo xtask trace`: an ftrace function_graph trace of FUNC while one
//! command runs in the guest, brought back to the host, printed in the
//! kernel's own format, condensed into a call chain by layer, and drawn as a
//! flame graph.

use std::process::ExitCode;

use anyhow::Result;

use crate::{
    analysis::{
        ftrace::{self, Trace},
        symbols, trace_report,
    },
    builder, cli,
    ctx::{Ctx, Prepared},
    guest::{
        run,
        trace_script::{check_function, TraceSetup},
        tracing::{self, TraceRequest, TracedRun},
    },
    study::layers::Layers,
    util::lock::Access,
};

impl cli::Trace {
    pub fn run(self, ctx: &Ctx) -> Result<ExitCode> {
        for function in &self.functions {
            check_function(function, self.tracer.into()).map_err(anyhow::Error::msg)?;
        }
        let p = Prepared::new(ctx, &self.target.to_target())?;
        crate::guest::freebsd_guest::refuse_on_freebsd(&p, "trace")?;
        tracing::require_ftrace(ctx, &p)?;
        let mut lock = p.lock(ctx, Access::Shared)?;
        builder::ensure_built(ctx, &p, &mut lock)?;
        let request = TraceRequest {
            setup: TraceSetup {
                functions: self.functions.clone(),
                tracer: self.tracer.into(),
                depth: self.depth,
                cpu_times: self.cpu_times,
                buffer_kb: TraceSetup::BUFFER_KB,
            },
            command: &self.command,
            accel: self.accel.into(),
            timeout: std::time::Duration::from_secs(self.timeout),
            initramfs: self.initramfs,
        };
        let Some(run) = tracing::trace_command(ctx, &p, &request)? else {
            return Ok(ExitCode::SUCCESS);
        };
        self.report(ctx, &p, &run)?;
        Ok(run::exit_code(run.exit))
    }

    fn report(&self, ctx: &Ctx, p: &Prepared, run: &TracedRun) -> Result<()> {
        let text = run.trace_text()?;
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
            let sources = symbols::source_files(p, &names)?;
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
